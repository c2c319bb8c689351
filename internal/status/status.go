// Package status is how every Roster reconciler reports: the
// kstatus-compatible conditions each kind carries (Ready always, Reconciling
// and Stalled only while true), computed from one pass, and the one status
// write per pass, made only when the pass changed something.
package status

import (
	"context"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"roster.dev/roster/api/v1alpha1"
)

// State is the outcome of one reconcile pass, summarised for conditions.
type State int

const (
	// Ready: the object is in its desired state.
	Ready State = iota
	// Progressing: work is under way or will be retried by itself.
	Progressing
	// Stalled: no progress until a person changes something.
	Stalled
)

// Summary is what a pass observed, in words for people.
type Summary struct {
	State State
	// Reason is CamelCase; an event about the same thing uses the same reason.
	Reason string
	// Message is a sentence, without timestamps.
	Message string
}

// Apply sets Ready from the summary, and Reconciling or Stalled while they
// hold, all at generation gen. Conditions that did not change keep their
// lastTransitionTime, so a pass that observes nothing new writes nothing.
func Apply(conds *[]metav1.Condition, gen int64, s Summary) {
	ready := metav1.ConditionFalse
	if s.State == Ready {
		ready = metav1.ConditionTrue
	}
	set(conds, gen, v1alpha1.ConditionReady, ready, s.Reason, s.Message)
	toggle(conds, gen, v1alpha1.ConditionReconciling, s.State == Progressing, s.Reason, s.Message)
	toggle(conds, gen, v1alpha1.ConditionStalled, s.State == Stalled, s.Reason, s.Message)
}

func toggle(conds *[]metav1.Condition, gen int64, typ string, on bool, reason, msg string) {
	if !on {
		meta.RemoveStatusCondition(conds, typ)
		return
	}
	set(conds, gen, typ, metav1.ConditionTrue, reason, msg)
}

func set(conds *[]metav1.Condition, gen int64, typ string, status metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(conds, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: gen,
	})
}

// IsReady reports whether the Ready condition is True.
func IsReady(conds []metav1.Condition) bool {
	return meta.IsStatusConditionTrue(conds, v1alpha1.ConditionReady)
}

// Patch patches obj's status subresource with the difference from base, a
// copy of obj whose status is the one read at the start of the pass. The
// caller passes both statuses so that an unchanged status costs no API call.
//
// The patch carries base's resourceVersion: a pass that started from a
// cached copy older than the object is refused with a conflict instead of
// writing a status computed from what it did not see. A merge patch replaces
// lists whole, so without the lock such a pass would put back the conditions
// it read and keep the newer fields it did not touch, an Invitation
// condition lost while status.invitation stays. On success base follows the
// new resourceVersion, so a later patch in the same pass is not refused by
// this one. An object already deleted is not an error.
func Patch(ctx context.Context, c client.Client, obj, base client.Object, status, baseStatus any) error {
	if equality.Semantic.DeepEqual(status, baseStatus) {
		return nil
	}
	err := c.Status().Patch(ctx, obj, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err == nil {
		base.SetResourceVersion(obj.GetResourceVersion())
	}
	return err
}
