package controllers

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/internal/conditions"
	"roster.dev/roster/internal/patch"
	"roster.dev/roster/internal/store"
)

// UserReconciler provisions Users into the identity store and reports their
// phase.
type UserReconciler struct {
	client.Client
	Store    store.Store
	Recorder events.EventRecorder
	Clock    clock.PassiveClock

	// DefaultRole applies to Users that set no role.
	DefaultRole string
	// ResyncPeriod is how often an unchanged User is compared with the store
	// again; each User's period is jittered by up to a tenth.
	ResyncPeriod time.Duration
	// MaxConcurrentReconciles bounds the workers.
	MaxConcurrentReconciles int
}

// Reasons used in conditions and the matching events.
const (
	ReasonProvisioned      = "Provisioned"
	ReasonCreated          = "Created"
	ReasonAdopted          = "Adopted"
	ReasonUpdated          = "Updated"
	ReasonDeactivated      = "Deactivated"
	ReasonReactivated      = "Reactivated"
	ReasonDeleted          = "Deleted"
	ReasonRetained         = "Retained"
	ReasonDuplicateEmail   = "DuplicateEmail"
	ReasonInvalidSpec      = "InvalidSpec"
	ReasonStoreError       = "StoreError"
	ReasonStoreUnavailable = "StoreUnavailable"
)

// +kubebuilder:rbac:groups=iam.roster.dev,resources=users,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=iam.roster.dev,resources=users/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=iam.roster.dev,resources=users/finalizers,verbs=update
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// userPass is what one reconcile pass observed; status is computed from it.
type userPass struct {
	observed *store.User // the store user, nil when it is not in the store
	origin   v1alpha1.UserOrigin
	summary  *conditions.Summary // set by a step that failed or stalled

	groups         []string // effective Groups, sorted
	groupsResolved bool     // groups was computed this pass
}

func (p *userPass) set(state conditions.State, reason, format string, args ...any) {
	p.summary = &conditions.Summary{State: state, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// Reconcile brings one User's store user to its spec and reports what it saw.
func (r *UserReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	user := &v1alpha1.User{}
	if err := r.Get(ctx, req.NamespacedName, user); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}

	base := user.DeepCopy()
	pass := &userPass{origin: user.Status.Origin}
	defer func() {
		r.computeStatus(user, pass, retErr)
		if err := patch.Status(ctx, r.Client, user, base, user.Status, base.Status); err != nil {
			retErr = errors.Join(retErr, fmt.Errorf("patching status: %w", err))
		}
	}()

	if !user.DeletionTimestamp.IsZero() {
		return requeueOnConflict(r.reconcileDelete(ctx, user, pass))
	}
	if err := r.ensureFinalizer(ctx, user, base); err != nil {
		return requeueOnConflict(err)
	}
	if err := r.validate(user, pass); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.resolveGroups(ctx, user, pass); err != nil {
		return ctrl.Result{}, err
	}
	if owner, err := r.emailOwner(ctx, user); err != nil || owner != nil {
		if owner != nil {
			pass.set(conditions.Stalled, ReasonDuplicateEmail,
				"The email address %s is held by User %s/%s; this User is provisioned once that one is deleted.",
				user.Spec.Email, owner.Namespace, owner.Name)
		}
		return ctrl.Result{}, err
	}
	if err := r.observe(ctx, user, pass); err != nil {
		return ctrl.Result{}, r.storeFailed(pass, "reading", err)
	}
	if err := r.ensureInStore(ctx, user, pass); err != nil {
		return ctrl.Result{}, r.storeFailed(pass, "creating", err)
	}
	if err := r.ensureUpToDate(ctx, user, pass); err != nil {
		return ctrl.Result{}, r.storeFailed(pass, "updating", err)
	}
	return ctrl.Result{RequeueAfter: r.resyncAfter()}, nil
}

// ensureFinalizer adds the finalizer before anything is written to the store,
// so that no store user can outlive its User unnoticed.
func (r *UserReconciler) ensureFinalizer(ctx context.Context, user, base *v1alpha1.User) error {
	if controllerutil.ContainsFinalizer(user, v1alpha1.Finalizer) {
		return nil
	}
	before := user.DeepCopy()
	controllerutil.AddFinalizer(user, v1alpha1.Finalizer)
	if err := r.Patch(ctx, user, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("adding finalizer: %w", err)
	}
	base.ObjectMeta = *user.ObjectMeta.DeepCopy()
	return nil
}

// validate checks what the API server's schema cannot.
func (r *UserReconciler) validate(user *v1alpha1.User, pass *userPass) error {
	if tz := user.Spec.TimeZone; tz != "" {
		if _, err := time.LoadLocation(tz); err != nil {
			pass.set(conditions.Stalled, ReasonInvalidSpec, "spec.timeZone %q is not an IANA time zone name.", tz)
			return reconcile.TerminalError(fmt.Errorf("spec.timeZone %q: %w", tz, err))
		}
	}
	return nil
}

// emailOwner returns the User that holds the same email when that is not
// this one: the oldest User with the address, in any namespace. A User
// being deleted still holds its address until it is gone.
func (r *UserReconciler) emailOwner(ctx context.Context, user *v1alpha1.User) (*v1alpha1.User, error) {
	var list v1alpha1.UserList
	if err := r.List(ctx, &list, client.MatchingFields{EmailIndex: NormalizeEmail(user.Spec.Email)}); err != nil {
		return nil, fmt.Errorf("listing Users with the same email: %w", err)
	}
	owner := user
	for i := range list.Items {
		if holdsEmailBefore(&list.Items[i], owner) {
			owner = &list.Items[i]
		}
	}
	if owner.UID == user.UID {
		return nil, nil
	}
	return owner, nil
}

// holdsEmailBefore reports whether a holds the email before b: a User
// already in the store keeps it against a newcomer (creation times are only
// precise to the second); otherwise the older one, and on a tie the lower
// namespace/name, so every reconciler picks the same owner.
func holdsEmailBefore(a, b *v1alpha1.User) bool {
	if inA, inB := a.Status.StoreID != "", b.Status.StoreID != ""; inA != inB {
		return inA
	}
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	if a.Namespace != b.Namespace {
		return a.Namespace < b.Namespace
	}
	return a.Name < b.Name
}

// observe reads the store user afresh: by store ID when one is known, else by
// email.
func (r *UserReconciler) observe(ctx context.Context, user *v1alpha1.User, pass *userPass) error {
	var (
		got store.User
		err = store.ErrNotFound
	)
	if id := user.Status.StoreID; id != "" {
		got, err = r.Store.GetUser(ctx, id)
	}
	if errors.Is(err, store.ErrNotFound) {
		got, err = r.Store.FindUserByEmail(ctx, user.Spec.Email)
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		pass.observed = nil
		return nil
	case err != nil:
		return err
	}
	pass.observed = &got
	if pass.origin == "" {
		pass.origin = originOf(user, got)
		if pass.origin == v1alpha1.UserAdopted {
			r.event(user, corev1.EventTypeNormal, ReasonAdopted, "Adopt",
				"Adopted the existing store user %s that already held the email address.", got.ID)
		}
	}
	return nil
}

// originOf tells a store user Roster created for this User (it carries the
// User's UID) from one it found there.
func originOf(user *v1alpha1.User, got store.User) v1alpha1.UserOrigin {
	if got.ExternalID == string(user.UID) {
		return v1alpha1.UserCreated
	}
	return v1alpha1.UserAdopted
}

func (r *UserReconciler) ensureInStore(ctx context.Context, user *v1alpha1.User, pass *userPass) error {
	if pass.observed != nil {
		return nil
	}
	desired := DesiredStoreUser(user, r.DefaultRole)
	desired.ExternalID = string(user.UID)
	created, err := r.Store.CreateUser(ctx, desired)
	if err != nil {
		return err
	}
	pass.observed, pass.origin = &created, v1alpha1.UserCreated
	r.event(user, corev1.EventTypeNormal, ReasonCreated, "Create", "Created the user in the %s store.", r.Store.Kind())
	return nil
}

func (r *UserReconciler) ensureUpToDate(ctx context.Context, user *v1alpha1.User, pass *userPass) error {
	update := store.UserDiff(DesiredStoreUser(user, r.DefaultRole), *pass.observed)
	if update.IsEmpty() {
		return nil
	}
	updated, err := r.Store.UpdateUser(ctx, pass.observed.ID, update)
	if err != nil {
		return err
	}
	pass.observed = &updated
	switch fields := ChangedFields(update); {
	case update.Disabled != nil && *update.Disabled:
		r.event(user, corev1.EventTypeNormal, ReasonDeactivated, "Deactivate", "Deactivated the user in the store; they can no longer log in.")
	case update.Disabled != nil:
		r.event(user, corev1.EventTypeNormal, ReasonReactivated, "Reactivate", "Reactivated the user in the store.")
	default:
		r.event(user, corev1.EventTypeNormal, ReasonUpdated, "Update", "Updated %s in the store.", strings.Join(fields, ", "))
	}
	return nil
}

// reconcileDelete removes the store user as deletionPolicy says, then the
// finalizer. A store user already gone counts as deleted.
func (r *UserReconciler) reconcileDelete(ctx context.Context, user *v1alpha1.User, pass *userPass) error {
	if !controllerutil.ContainsFinalizer(user, v1alpha1.Finalizer) {
		return nil
	}
	owner, err := r.emailOwner(ctx, user)
	if err != nil {
		return err
	}
	if owner == nil { // a duplicate never touched the store
		if err := r.observe(ctx, user, pass); err != nil {
			return r.storeFailed(pass, "reading", err)
		}
		if pass.observed != nil {
			if policy := EffectiveDeletionPolicy(user, pass.origin); policy == v1alpha1.DeletionPolicyDelete {
				// DeleteUser also removes the user from every store group.
				if err := r.Store.DeleteUser(ctx, pass.observed.ID); err != nil {
					return r.storeFailed(pass, "deleting", err)
				}
				r.event(user, corev1.EventTypeNormal, ReasonDeleted, "Delete", "Deleted the user from the store.")
			} else {
				if err := r.leaveGroups(ctx, user, pass); err != nil {
					return r.storeFailed(pass, "removing group memberships of", err)
				}
				r.event(user, corev1.EventTypeNormal, ReasonRetained, "Retain",
					"Left the user in the store: deletionPolicy is %s.", policy)
			}
		}
	}
	before := user.DeepCopy()
	controllerutil.RemoveFinalizer(user, v1alpha1.Finalizer)
	if err := r.Patch(ctx, user, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("removing finalizer: %w", client.IgnoreNotFound(err))
	}
	pass.observed = nil
	return nil
}

// storeFailed records a failed store call on the pass and returns the error
// for backoff.
func (r *UserReconciler) storeFailed(pass *userPass, doing string, err error) error {
	reason := ReasonStoreError
	if errors.Is(err, store.ErrUnavailable) {
		reason = ReasonStoreUnavailable
	}
	pass.set(conditions.Progressing, reason, "Failed %s the user in the %s store, retrying: %v.", doing, r.Store.Kind(), err)
	return fmt.Errorf("%s the user in the store: %w", doing, err)
}

// computeStatus is the one place the status is written from what the pass
// observed.
func (r *UserReconciler) computeStatus(user *v1alpha1.User, pass *userPass, err error) {
	st := &user.Status
	st.Role = effectiveRole(user, r.DefaultRole)
	st.DisplayName = strings.TrimSpace(user.Spec.FirstName + " " + user.Spec.LastName)
	if pass.observed != nil {
		st.StoreID = pass.observed.ID
		st.Origin = pass.origin
		st.Phase = PhaseOf(pass.observed)
		st.LastLoginAt = timePtr(pass.observed.LastLoginAt)
	} else if err == nil || st.Phase == "" {
		// Not in the store, or not known because the store did not answer.
		st.Phase = v1alpha1.UserPending
	}
	if pass.groupsResolved {
		st.Groups = pass.groups
	}

	if pass.summary == nil {
		switch {
		case err != nil:
			pass.set(conditions.Progressing, ReasonStoreError, "Reconciling failed, retrying: %v.", err)
		case !user.DeletionTimestamp.IsZero():
			return
		case pass.origin == v1alpha1.UserAdopted:
			pass.set(conditions.Ready, ReasonAdopted,
				"Adopted the existing store user with this email; it stays in the store when this User is deleted unless deletionPolicy is Delete.")
		default:
			pass.set(conditions.Ready, ReasonProvisioned, "The user is in the %s store.", r.Store.Kind())
		}
	}
	conditions.Apply(&st.Conditions, user.Generation, *pass.summary)
	st.ObservedGeneration = user.Generation
}

func (r *UserReconciler) event(user *v1alpha1.User, typ, reason, action, format string, args ...any) {
	if r.Recorder != nil {
		r.Recorder.Eventf(user, nil, typ, reason, action, format, args...)
	}
}

func (r *UserReconciler) resyncAfter() time.Duration {
	if r.ResyncPeriod <= 0 {
		return 0
	}
	return r.ResyncPeriod + time.Duration(rand.Int64N(int64(r.ResyncPeriod/10)+1))
}

// SetupWithManager registers the controller: it reacts to spec changes and
// request annotations, wakes the Users that share an email when one of
// them is deleted, and the Users a Group change adds or removes. It uses the
// indexes the Group controller registers (IndexGroupFields).
func (r *UserReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := IndexUserEmail(context.Background(), mgr.GetFieldIndexer()); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.User{}, builder.WithPredicates(userChanged())).
		Watches(&v1alpha1.User{}, handler.EnqueueRequestsFromMapFunc(r.usersSharingEmail), builder.WithPredicates(onDelete())).
		Watches(&v1alpha1.Group{}, r.groupEvents()).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(1, r.MaxConcurrentReconciles)}).
		Named("user").
		Complete(r)
}

func (r *UserReconciler) usersSharingEmail(ctx context.Context, obj client.Object) []reconcile.Request {
	user, ok := obj.(*v1alpha1.User)
	if !ok {
		return nil
	}
	var list v1alpha1.UserList
	if err := r.List(ctx, &list, client.MatchingFields{EmailIndex: NormalizeEmail(user.Spec.Email)}); err != nil {
		log.FromContext(ctx).Error(err, "Listing Users with the same email")
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		if list.Items[i].UID != user.UID {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
	}
	return reqs
}

// requeueOnConflict turns an optimistic-lock conflict into a quiet requeue:
// the cache had not caught up with a write yet.
func requeueOnConflict(err error) (ctrl.Result, error) {
	if apierrors.IsConflict(err) {
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	return ctrl.Result{}, err
}
