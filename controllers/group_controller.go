package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	crsource "sigs.k8s.io/controller-runtime/pkg/source"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/internal/status"
	"roster.dev/roster/internal/store"
	"roster.dev/roster/internal/stores"
)

// GroupReconciler provisions Groups into the identity store and keeps each
// store group's membership equal to the Group's effective members.
type GroupReconciler struct {
	client.Client
	// Stores are the open identity stores; each Group uses one.
	Stores   *stores.Registry
	Recorder events.EventRecorder

	// ResyncPeriod is how often an unchanged Group is compared with the
	// store again; each Group's period is jittered by up to a tenth.
	ResyncPeriod time.Duration
	// MaxConcurrentReconciles bounds the workers.
	MaxConcurrentReconciles int
	// MaxStatusMembers caps status.members (MaxStatusMembers when zero);
	// memberCount always counts every member.
	MaxStatusMembers int

	only predicate.Predicate // see Deps.Only

	wakeOnce sync.Once
	wake     chan event.GenericEvent // see wakeNotReady
}

// Reasons a Group reports in conditions and events, besides the ones it
// shares with Users (Provisioned, Created, Updated, Deleted, InvalidSpec,
// StoreError, StoreUnavailable).
const (
	ReasonMembersChanged      = "MembersChanged"
	ReasonDuplicateExternalID = "DuplicateExternalID"
	ReasonMembersResolved     = "MembersResolved"
	ReasonMembersMissing      = "MembersMissing"
	ReasonMembersPending      = "MembersPending"
	ReasonTooManyMembers      = "TooManyMembers"
	ReasonMembersInOtherStore = "MembersInOtherStore"
)

// +kubebuilder:rbac:groups=iam.roster.dev,resources=groups,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=iam.roster.dev,resources=groups/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=iam.roster.dev,resources=groups/finalizers,verbs=update

// groupPass is what one reconcile pass observed; status is computed from it.
type groupPass struct {
	outcome
	store      *stores.Handle // the Group's store, once resolved
	storeKeys  []string       // the store's storeKeys
	observed   *store.Group   // the store group, nil when it is not in the store
	membership *memberSet     // nil until resolved
}

// Reconcile brings one Group's store group to its spec and members.
func (r *GroupReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	group := &v1alpha1.Group{}
	if err := r.Get(ctx, req.NamespacedName, group); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}

	if _, err := r.Stores.Resolve(group.Spec.StoreRef); err != nil && storesOpening(ctx, r.Client, r.Stores) {
		return ctrl.Result{RequeueAfter: storesOpeningWait}, nil
	}
	base := group.DeepCopy()
	pass := &groupPass{}
	defer func() {
		r.computeStatus(group, pass, retErr)
		patchStatus(ctx, r.Client, group, base, group.Status, base.Status, &result, &retErr)
	}()

	var err error
	if pass.store, pass.storeKeys, err = pass.resolveStore(r.Stores, group.Spec.StoreRef); err != nil {
		logStoreWait(ctx, err)
		return ctrl.Result{RequeueAfter: storeWait}, nil
	}
	if !group.DeletionTimestamp.IsZero() {
		return requeueOnConflict(r.reconcileDelete(ctx, group, pass))
	}
	if err := ensureFinalizer(ctx, r.Client, group, base); err != nil {
		return requeueOnConflict(err)
	}
	selector, err := r.validate(group, pass)
	if err != nil {
		return ctrl.Result{}, err
	}
	if _, err := tenancyOf(ctx, r.Client, pass.store, group.Namespace); err != nil {
		return pass.refusedOr(err)
	}
	if owner, err := r.externalIDOwner(ctx, group); err != nil || owner != nil {
		if owner != nil {
			pass.set(status.Stalled, ReasonDuplicateExternalID,
				"spec.externalID %q is held by Group %s/%s; this Group is provisioned once that one lets go of it.",
				group.Spec.ExternalID, owner.Namespace, owner.Name)
		}
		return ctrl.Result{}, err
	}
	if err := r.resolveMembers(ctx, group, selector, pass); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.observe(ctx, group, pass); err != nil {
		return ctrl.Result{}, r.storeFailed(pass, "reading", err)
	}
	if err := r.ensureInStore(ctx, group, pass); err != nil {
		return r.refusedOrFailed(group, pass, "creating", err)
	}
	if err := r.ensureUpToDate(ctx, group, pass); err != nil {
		return r.refusedOrFailed(group, pass, "updating", err)
	}
	if err := r.syncMembers(ctx, group, pass); err != nil {
		return ctrl.Result{}, r.storeFailed(pass, "updating the members of", err)
	}
	return ctrl.Result{RequeueAfter: r.resyncAfter()}, nil
}

// validate checks what the schema cannot and returns the parsed selector. A
// Group that fails is Stalled and changes nothing in the store.
func (r *GroupReconciler) validate(group *v1alpha1.Group, pass *groupPass) (labels.Selector, error) {
	selector, err := parseMemberSelector(group)
	if err != nil {
		pass.set(status.Stalled, ReasonInvalidSpec, "spec.memberSelector is not a valid label selector: %v.", err)
		return nil, reconcile.TerminalError(fmt.Errorf("spec.memberSelector: %w", err))
	}
	if bad := invalidMemberNames(group); len(bad) > 0 {
		pass.set(status.Stalled, ReasonInvalidSpec, "Not valid User names: %s.", nameList(bad, 5))
		return nil, reconcile.TerminalError(fmt.Errorf("invalid member names: %s", strings.Join(bad, ", ")))
	}
	return selector, nil
}

// externalIDOwner returns the Group that holds the same external ID when
// that is not this one: the oldest, in any namespace, since all share one
// store.
func (r *GroupReconciler) externalIDOwner(ctx context.Context, group *v1alpha1.Group) (*v1alpha1.Group, error) {
	if group.Spec.ExternalID == "" {
		return nil, nil
	}
	var list v1alpha1.GroupList
	if err := r.List(ctx, &list, client.MatchingFields{groupExternalIDIndex: group.Spec.ExternalID}); err != nil {
		return nil, fmt.Errorf("listing Groups with the same external ID: %w", err)
	}
	owner := group
	for i := range list.Items {
		if groupHoldsBefore(&list.Items[i], owner) {
			owner = &list.Items[i]
		}
	}
	if owner.UID == group.UID {
		return nil, nil
	}
	return owner, nil
}

// observe reads the store group afresh: by store ID when one is known, else
// by its name.
func (r *GroupReconciler) observe(ctx context.Context, group *v1alpha1.Group, pass *groupPass) (err error) {
	pass.observed, err = observeStore(group.Status.StoreID,
		func() (store.Group, error) {
			// A recorded ID that leads to another group is not this Group's:
			// the status may be written by whoever may write the Group.
			got, err := pass.store.GetGroup(ctx, group.Status.StoreID)
			if err == nil && got.Name != storeGroupName(group) {
				return store.Group{}, store.ErrNotFound
			}
			return got, err
		},
		func() (store.Group, error) { return pass.store.FindGroupByName(ctx, storeGroupName(group)) })
	return err
}

// ensureInStore creates the store group with its members in one call.
func (r *GroupReconciler) ensureInStore(ctx context.Context, group *v1alpha1.Group, pass *groupPass) error {
	if pass.observed != nil {
		return nil
	}
	desired := desiredStoreGroup(group)
	if desired.DisplayName == "" {
		desired.DisplayName = group.Name
	}
	created, err := pass.store.CreateGroup(ctx, desired, pass.membership.StoreIDs)
	if err != nil {
		return err
	}
	pass.observed = &created
	r.event(group, corev1.EventTypeNormal, ReasonCreated, "Create",
		"Created the group in the %s store with %d members.", pass.store.Name, len(pass.membership.StoreIDs))
	return nil
}

func (r *GroupReconciler) ensureUpToDate(ctx context.Context, group *v1alpha1.Group, pass *groupPass) error {
	update := store.GroupDiff(desiredStoreGroup(group), *pass.observed)
	if update.IsEmpty() {
		return nil
	}
	updated, err := pass.store.UpdateGroup(ctx, pass.observed.ID, update)
	if err != nil {
		return err
	}
	pass.observed = &updated
	var fields []string
	for _, f := range []struct {
		name    string
		changed bool
	}{{"displayName", update.DisplayName != nil}, {"externalID", update.ExternalID != nil}, {"description", update.Description != nil}} {
		if f.changed {
			fields = append(fields, f.name)
		}
	}
	r.event(group, corev1.EventTypeNormal, ReasonUpdated, "Update", "Updated %s in the store.", strings.Join(fields, ", "))
	return nil
}

// syncMembers reads the store group's members afresh and writes the
// difference from the effective members as one diff; nothing when they agree.
func (r *GroupReconciler) syncMembers(ctx context.Context, group *v1alpha1.Group, pass *groupPass) error {
	observed, err := pass.store.ListGroupMembers(ctx, pass.observed.ID)
	if err != nil {
		return err
	}
	diff := membershipUpdate(pass.membership, observed)
	if diff.IsEmpty() {
		return nil
	}
	if err := pass.store.UpdateGroupMembers(ctx, pass.observed.ID, diff); err != nil {
		return err
	}
	r.event(group, corev1.EventTypeNormal, ReasonMembersChanged, "UpdateMembers",
		"Added %d and removed %d members in the store.", len(diff.Add), len(diff.Remove))
	return nil
}

// reconcileDelete removes the store group, and only it, then the finalizer.
// A store group already gone counts as deleted.
func (r *GroupReconciler) reconcileDelete(ctx context.Context, group *v1alpha1.Group, pass *groupPass) error {
	if !controllerutil.ContainsFinalizer(group, v1alpha1.Finalizer) {
		return nil
	}
	if err := r.observe(ctx, group, pass); err != nil {
		return r.storeFailed(pass, "reading", err)
	}
	if pass.observed != nil {
		if err := pass.store.DeleteGroup(ctx, pass.observed.ID); err != nil {
			return r.storeFailed(pass, "deleting", err)
		}
		r.event(group, corev1.EventTypeNormal, ReasonDeleted, "Delete", "Deleted the group from the store; its members stay.")
	}
	if err := removeFinalizer(ctx, r.Client, group); err != nil {
		return err
	}
	pass.observed = nil
	return nil
}

// refusedOrFailed tells a store that refuses the external ID (a store group
// without a Group holds it: a person must resolve it) from a failed call.
// The refusal is checked again at each resync, since the other group may go.
func (r *GroupReconciler) refusedOrFailed(group *v1alpha1.Group, pass *groupPass, doing string, err error) (ctrl.Result, error) {
	if errors.Is(err, store.ErrAlreadyExists) {
		pass.set(status.Stalled, ReasonDuplicateExternalID,
			"spec.externalID %q is held by another group in the %s store; nothing was changed.", group.Spec.ExternalID, pass.store.Name)
		return ctrl.Result{RequeueAfter: r.resyncAfter()}, nil
	}
	return ctrl.Result{}, r.storeFailed(pass, doing, err)
}

// storeFailed records a failed store call on the pass and returns the error
// for backoff.
func (r *GroupReconciler) storeFailed(pass *groupPass, doing string, err error) error {
	return pass.storeFailed("group", pass.store.Name, doing, err)
}

// computeStatus is the one place the status is written from what the pass
// observed.
func (r *GroupReconciler) computeStatus(group *v1alpha1.Group, pass *groupPass, err error) {
	st := &group.Status
	if pass.observed != nil {
		st.StoreID = pass.observed.ID
	}
	if m := pass.membership; m != nil {
		limit := r.MaxStatusMembers
		if limit <= 0 {
			limit = MaxStatusMembers
		}
		members, truncated := truncateMembers(m.Members, limit, maxStatusMembersBytes)
		st.Members = members
		st.MemberCount = int32(len(m.Members))
		setMembersConditions(st, group.Generation, m, truncated)
	}

	if pass.summary == nil {
		switch {
		case err != nil:
			pass.retrying(err)
		case !group.DeletionTimestamp.IsZero(), pass.membership == nil:
			return // being deleted, or stopped early by a conflict: the next pass reports
		default:
			pass.set(status.Ready, ReasonProvisioned, "The group is in the %s store with %d members.",
				pass.store.Name, len(pass.membership.StoreIDs))
		}
	}
	pass.apply(&st.Conditions, &st.ObservedGeneration, group.Generation)
}

// setMembersConditions reports members that are missing or not in the store
// yet, and a member list cut short.
func setMembersConditions(st *v1alpha1.GroupStatus, gen int64, m *memberSet, truncated bool) {
	resolved := metav1.Condition{
		Type: v1alpha1.ConditionMembersResolved, Status: metav1.ConditionTrue, ObservedGeneration: gen,
		Reason: ReasonMembersResolved, Message: "Every member is a User in the store.",
	}
	var parts []string
	if len(m.Missing) > 0 {
		resolved.Reason = ReasonMembersMissing
		parts = append(parts, fmt.Sprintf("spec.members names Users that do not exist: %s; they become members when they are created.", nameList(m.Missing, 10)))
	}
	if len(m.Pending) > 0 {
		if len(m.Missing) == 0 {
			resolved.Reason = ReasonMembersPending
		}
		parts = append(parts, fmt.Sprintf("Members not in the store yet, added once they are: %s.", nameList(m.Pending, 10)))
	}
	if len(m.OtherStore) > 0 {
		if len(parts) == 0 {
			resolved.Reason = ReasonMembersInOtherStore
		}
		parts = append(parts, fmt.Sprintf("Users of another identity store, which cannot be members of this group: %s.", nameList(m.OtherStore, 10)))
	}
	if len(parts) > 0 {
		resolved.Status, resolved.Message = metav1.ConditionFalse, strings.Join(parts, " ")
	}
	meta.SetStatusCondition(&st.Conditions, resolved)

	if !truncated {
		meta.RemoveStatusCondition(&st.Conditions, v1alpha1.ConditionMembersTruncated)
		return
	}
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionMembersTruncated, Status: metav1.ConditionTrue, ObservedGeneration: gen,
		Reason: ReasonTooManyMembers,
		Message: fmt.Sprintf("status.members lists the first %d of %d members, to keep the Group under the API server's size limit; memberCount counts them all.",
			len(st.Members), len(m.Members)),
	})
}

func (r *GroupReconciler) event(group *v1alpha1.Group, typ, reason, action, format string, args ...any) {
	recordEvent(r.Recorder, group, typ, reason, action, format, args...)
}

// events is the channel the Groups to reconcile now are sent to; the
// controller watches it.
func (r *GroupReconciler) events() chan event.GenericEvent {
	r.wakeOnce.Do(func() { r.wake = make(chan event.GenericEvent) })
	return r.wake
}

// wakeNotReady has the Groups of the store (keys as storeRefIndex holds
// them) that are not Ready reconciled now: the store answers again after
// an outage, and a Group that failed waits in its backoff, which grows to
// minutes, as Users do (see UserDrift.wakeNotReady).
func (r *GroupReconciler) wakeNotReady(ctx context.Context, keys []string) {
	logger := log.FromContext(ctx)
	woken := 0
	for _, key := range keys {
		var groups v1alpha1.GroupList
		if err := r.List(ctx, &groups, client.MatchingFields{storeRefIndex: key}, client.UnsafeDisableDeepCopy); err != nil {
			logger.Error(err, "Could not list the Groups to wake after the store came back")
			return
		}
		for i := range groups.Items {
			g := &groups.Items[i]
			if !g.DeletionTimestamp.IsZero() || meta.IsStatusConditionTrue(g.Status.Conditions, v1alpha1.ConditionReady) {
				continue
			}
			ref := &v1alpha1.Group{ObjectMeta: metav1.ObjectMeta{Namespace: g.Namespace, Name: g.Name}}
			select {
			case r.events() <- event.GenericEvent{Object: ref}:
				woken++
			case <-ctx.Done():
				return
			}
		}
	}
	logger.Info("The store answers again: woke the Groups that are not Ready", "groups", woken)
}

func (r *GroupReconciler) resyncAfter() time.Duration { return jittered(r.ResyncPeriod) }

// SetupWithManager registers the controller; it needs the indexes of
// SetupIndexes. It reacts to spec changes, to Users whose membership may
// have changed, and to a Group letting go of an external ID that others
// wait for.
func (r *GroupReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.Group{}, builder.WithPredicates(forPredicates(r.only, specChangedOrDeleting())...)).
		Watches(&v1alpha1.User{}, r.userEvents()).
		Watches(&v1alpha1.Group{}, handler.Funcs{
			UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
				old, cur := e.ObjectOld.(*v1alpha1.Group), e.ObjectNew.(*v1alpha1.Group)
				if old.Spec.ExternalID != cur.Spec.ExternalID || (old.DeletionTimestamp.IsZero() && !cur.DeletionTimestamp.IsZero()) {
					r.enqueueSharingExternalID(ctx, q, old)
				}
			},
			DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
				if g, ok := e.Object.(*v1alpha1.Group); ok {
					r.enqueueSharingExternalID(ctx, q, g)
				}
			},
		}).
		WatchesRawSource(crsource.Channel(r.events(), &handler.EnqueueRequestForObject{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(1, r.MaxConcurrentReconciles)}).
		Named("group").
		Complete(r)
}

func (r *GroupReconciler) enqueueSharingExternalID(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request], group *v1alpha1.Group) {
	if group.Spec.ExternalID == "" {
		return
	}
	var list v1alpha1.GroupList
	if err := r.List(ctx, &list, client.MatchingFields{groupExternalIDIndex: group.Spec.ExternalID}); err != nil {
		log.FromContext(ctx).Error(err, "Listing Groups with the same external ID")
		return
	}
	for i := range list.Items {
		if list.Items[i].UID != group.UID {
			q.Add(reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
	}
}

// GroupExternalIDIndex indexes Groups by spec.externalID, across
// namespaces: the external ID is unique within the store.
const groupExternalIDIndex = "spec.externalID"

// externalIDIndexes are the indexes for external ID ownership, for
// setupIndexes.
func externalIDIndexes() []fieldIndex {
	return []fieldIndex{{&v1alpha1.Group{}, groupExternalIDIndex, func(o client.Object) []string {
		if ext := o.(*v1alpha1.Group).Spec.ExternalID; ext != "" {
			return []string{ext}
		}
		return nil
	}}}
}
