package controllers

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	corev1 "k8s.io/api/core/v1"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/internal/status"
	"roster.dev/roster/internal/store"
	"roster.dev/roster/internal/stores"
)

// jittered returns period plus up to a tenth more, so that periodic
// resyncs of many objects spread out instead of arriving together.
func jittered(period time.Duration) time.Duration {
	if period <= 0 {
		return 0
	}
	return period + time.Duration(rand.Int64N(int64(period/10)+1))
}

// observeStore reads a store object afresh: by its store ID when the status
// knows one, else by its natural key (a store object deleted out of band, or
// a status lost before the ID was recorded). It returns nil when the store
// has no such object.
func observeStore[T any](id string, byID, byKey func() (T, error)) (*T, error) {
	got, err := *new(T), store.ErrNotFound
	if id != "" {
		got, err = byID()
	}
	if errors.Is(err, store.ErrNotFound) {
		got, err = byKey()
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	}
	return &got, nil
}

// recordEvent emits an event about obj when the reconciler has a recorder.
func recordEvent(rec events.EventRecorder, obj runtime.Object, typ, reason, action, format string, args ...any) {
	if rec != nil {
		rec.Eventf(obj, nil, typ, reason, action, format, args...)
	}
}

// requeueOnConflict turns an optimistic-lock conflict into a quiet requeue:
// the cache had not caught up with a write yet.
func requeueOnConflict(err error) (ctrl.Result, error) {
	if apierrors.IsConflict(err) {
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	return ctrl.Result{}, err
}

// patchStatus is the deferred end of every pass: the one status write,
// made only when the pass changed the status, its error joined to the
// pass's. A pass that read a cached copy older than the object has its
// patch refused (see status.Patch); when nothing else failed it runs again
// once the cache has caught up, without an error in the log.
func patchStatus(ctx context.Context, c client.Client, obj, base client.Object, st, baseStatus any, result *ctrl.Result, retErr *error) {
	err := status.Patch(ctx, c, obj, base, st, baseStatus)
	switch {
	case err == nil:
	case apierrors.IsConflict(err) && *retErr == nil:
		*result, _ = requeueOnConflict(err)
	default:
		*retErr = errors.Join(*retErr, fmt.Errorf("patching status: %w", err))
	}
}

// ensureFinalizer adds Roster's finalizer before anything is written to the
// store, so that no store object can outlive its resource unnoticed. base,
// the copy the status patch is computed from, follows the new metadata.
func ensureFinalizer(ctx context.Context, c client.Client, obj, base client.Object) error {
	if controllerutil.ContainsFinalizer(obj, v1alpha1.Finalizer) {
		return nil
	}
	before := obj.DeepCopyObject().(client.Object)
	controllerutil.AddFinalizer(obj, v1alpha1.Finalizer)
	if err := c.Patch(ctx, obj, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("adding finalizer: %w", err)
	}
	base.SetFinalizers(obj.GetFinalizers())
	base.SetResourceVersion(obj.GetResourceVersion())
	return nil
}

// removeFinalizer lets the resource go once its store object is dealt with.
func removeFinalizer(ctx context.Context, c client.Client, obj client.Object) error {
	before := obj.DeepCopyObject().(client.Object)
	controllerutil.RemoveFinalizer(obj, v1alpha1.Finalizer)
	if err := c.Patch(ctx, obj, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("removing finalizer: %w", client.IgnoreNotFound(err))
	}
	return nil
}

// holdsBefore orders two resources competing for one thing in the store (an
// email address, an external ID): one already in the store first, then the
// older (creation times are only precise to the second), then the lower
// namespace/name, so that every reconciler picks the same holder.
func holdsBefore(a, b client.Object, aInStore, bInStore bool) bool {
	if aInStore != bInStore {
		return aInStore
	}
	if at, bt := a.GetCreationTimestamp(), b.GetCreationTimestamp(); !at.Equal(&bt) {
		return at.Before(&bt)
	}
	if a.GetNamespace() != b.GetNamespace() {
		return a.GetNamespace() < b.GetNamespace()
	}
	return a.GetName() < b.GetName()
}

// outcome is how a pass ends, in words for people: the first step that
// fails or stalls sets it, and computeStatus sets it otherwise.
type outcome struct {
	summary *status.Summary
}

func (o *outcome) set(state status.State, reason, format string, args ...any) {
	o.summary = &status.Summary{State: state, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// storeFailed records a failed store call and returns the error for
// backoff. what names the object ("user", "group"). A store that rejected
// the request for good (store.ErrRejected) stalls the resource with the
// store's answer, and the error is terminal: the same request would get
// the same answer, so the resource waits for a change to its spec, or for
// the drift pass, instead of retrying.
func (o *outcome) storeFailed(what, storeKind, doing string, err error) error {
	if errors.Is(err, store.ErrRejected) {
		o.set(status.Stalled, ReasonStoreRejected,
			"The %s store rejected %s the %s, and retrying cannot change its answer; change the spec or the store: %v.", storeKind, doing, what, err)
		return reconcile.TerminalError(fmt.Errorf("%s the %s in the store: %w", doing, what, err))
	}
	reason := ReasonStoreError
	if errors.Is(err, store.ErrUnavailable) {
		reason = ReasonStoreUnavailable
	}
	o.set(status.Progressing, reason, "Failed %s the %s in the %s store, retrying: %v.", doing, what, storeKind, err)
	return fmt.Errorf("%s the %s in the store: %w", doing, what, err)
}

// retrying reports a failed pass that no step explained.
func (o *outcome) retrying(err error) {
	o.set(status.Progressing, ReasonStoreError, "Reconciling failed, retrying: %v.", err)
}

// apply writes the outcome into the conditions and marks the generation
// observed; a pass without an outcome (stopped early) leaves both alone.
func (o *outcome) apply(conds *[]metav1.Condition, observedGeneration *int64, gen int64) {
	if o.summary == nil {
		return
	}
	status.Apply(conds, gen, *o.summary)
	*observedGeneration = gen
}

// storeWait is how long a resource waits for its identity store before it
// looks again.
const storeWait = 10 * time.Second

// resolveStore finds the store a resource uses; while it cannot be used,
// the pass says why and the resource waits.
func (o *outcome) resolveStore(reg *stores.Registry, ref *v1alpha1.StoreReference) (*stores.Handle, []string, error) {
	h, err := reg.Resolve(ref)
	if err != nil {
		o.set(status.Progressing, ReasonWaitingForStore, "Waiting for the identity store: %v.", err)
		return nil, nil, err
	}
	return h, storeKeys(h.Name, reg.IsDefault(h.Name)), nil
}

// storesOpening reports whether some IdentityStore has not been opened, or
// failed to open, yet: right after the manager starts, before the
// IdentityStore controller has looked at each. A resource whose store
// cannot be resolved then waits without a word, rather than writing that it
// waits for its store and, a moment later, that it is Ready again: a
// restart with 100,000 Users would otherwise write every one of them twice.
func storesOpening(ctx context.Context, c client.Reader, reg *stores.Registry) bool {
	var list v1alpha1.IdentityStoreList
	if err := c.List(ctx, &list); err != nil {
		return false
	}
	for _, ids := range list.Items {
		if ids.DeletionTimestamp.IsZero() && !reg.Known(ids.Name) {
			return true
		}
	}
	return false
}

// storesOpeningWait is how soon a resource that waits for the stores to
// open looks again.
const storesOpeningWait = time.Second

// storeKeysFor are the storeKeys of the store ref names, or resolves to.
func storeKeysFor(reg *stores.Registry, ref *v1alpha1.StoreReference) ([]string, error) {
	name, err := reg.Name(ref)
	if err != nil {
		return nil, err
	}
	return storeKeys(name, reg.IsDefault(name)), nil
}

// refusedRecheck is how often a resource refused by a store's tenancy rules
// is looked at again: the rules, or the namespace's labels, may change
// without the resource changing.
const refusedRecheck = time.Minute

// tenancyOf is what the store's rules allow the namespace, or a
// stores.NotPermittedError.
func tenancyOf(ctx context.Context, c client.Reader, h *stores.Handle, namespace string) (*stores.Tenancy, error) {
	var ns corev1.Namespace
	if err := c.Get(ctx, client.ObjectKey{Name: namespace}, &ns); err != nil {
		return nil, fmt.Errorf("reading namespace %s: %w", namespace, err)
	}
	return h.Admit(&ns)
}

// refusedOr ends a pass: a refusal by the store's rules stalls the
// resource with reason NotPermitted, and it is looked at again later in
// case the rules change; any other error is returned for backoff.
func (o *outcome) refusedOr(err error) (ctrl.Result, error) {
	var np *stores.NotPermittedError
	if errors.As(err, &np) {
		o.set(status.Stalled, ReasonNotPermitted, "%v.", err)
		return ctrl.Result{RequeueAfter: jittered(refusedRecheck)}, nil
	}
	return ctrl.Result{}, err
}
