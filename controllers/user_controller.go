package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	crsource "sigs.k8s.io/controller-runtime/pkg/source"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/internal/naming"
	"roster.dev/roster/internal/status"
	"roster.dev/roster/internal/store"
	"roster.dev/roster/internal/stores"
	"roster.dev/roster/internal/validation"
)

// UserReconciler provisions Users into the identity store and reports their
// phase.
type UserReconciler struct {
	client.Client
	// Stores are the open identity stores; each User uses one.
	Stores *stores.Registry
	// Namespace is the operator's own, where token records are kept.
	Namespace string
	Recorder  events.EventRecorder
	Clock     clock.PassiveClock

	// DefaultRole applies to Users that set no role.
	DefaultRole string
	// Emails finds Users by email in the cache.
	Emails *EmailIndex
	// Drift, when set, is the store-wide comparison that wakes the Users
	// whose store user differs; SetupWithManager adds it to the manager.
	// Users are not compared with the store one by one.
	Drift *UserDrift
	// MaxConcurrentReconciles bounds the workers.
	MaxConcurrentReconciles int
	// Invitations configures the invitation and password reset emails; nil
	// sends none.
	Invitations *Invitations

	only    predicate.Predicate                                             // see Deps.Only
	wakeups *wakeups                                                        // Users due again later than the queue's horizon
	queue   *atomic.Pointer[priorityqueue.PriorityQueue[reconcile.Request]] // set by SetupWithManager
}

// Backlog is how many Users wait in the work queue, ready to be
// reconciled: the imports pace their creation by it.
func (r *UserReconciler) Backlog() int {
	if r.queue == nil {
		return 0
	}
	if q := r.queue.Load(); q != nil {
		return (*q).Len()
	}
	return 0
}

// newQueue is controller-runtime's priority queue, kept so that Backlog
// can read its length.
func (r *UserReconciler) newQueue(log logr.Logger) func(string, workqueue.TypedRateLimiter[reconcile.Request]) workqueue.TypedRateLimitingInterface[reconcile.Request] {
	return func(name string, limiter workqueue.TypedRateLimiter[reconcile.Request]) workqueue.TypedRateLimitingInterface[reconcile.Request] {
		q := priorityqueue.New(name, func(o *priorityqueue.Opts[reconcile.Request]) {
			o.Log = log.WithValues("controller", name)
			o.RateLimiter = limiter
		})
		r.queue.Store(&q)
		return q
	}
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
	ReasonNotPermitted     = "NotPermitted"
	ReasonStoreError       = "StoreError"
	ReasonStoreUnavailable = "StoreUnavailable"
	ReasonStoreRejected    = "StoreRejected"
)

// +kubebuilder:rbac:groups=iam.roster.dev,resources=users,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=iam.roster.dev,resources=users/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=iam.roster.dev,resources=users/finalizers,verbs=update
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch

// userPass is what one reconcile pass observed; status is computed from it.
type userPass struct {
	outcome
	tenancy   *stores.Tenancy // what the store's rules allow the namespace
	store     *stores.Handle  // the User's store, once resolved
	storeKeys []string        // the store's storeKeys
	observed  *store.User     // the store user, nil when it is not in the store
	origin    v1alpha1.UserOrigin
	links     *linkPass // the token records, once observed

	groups         []string // effective Groups, sorted
	groupsResolved bool     // groups was computed this pass
}

// Reconcile brings one User's store user to its spec and reports what it saw.
func (r *UserReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	user := &v1alpha1.User{}
	if err := r.Get(ctx, req.NamespacedName, user); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}

	if _, err := r.Stores.Resolve(user.Spec.StoreRef); err != nil && storesOpening(ctx, r.Client, r.Stores) {
		return ctrl.Result{RequeueAfter: storesOpeningWait}, nil
	}
	base := user.DeepCopy()
	pass := &userPass{}
	defer func() {
		r.computeStatus(user, pass, retErr)
		patchStatus(ctx, r.Client, user, base, user.Status, base.Status, &result, &retErr)
	}()

	var err error
	if pass.store, pass.storeKeys, err = pass.resolveStore(r.Stores, user.Spec.StoreRef); err != nil {
		logStoreWait(ctx, err)
		return ctrl.Result{RequeueAfter: storeWait}, nil
	}
	if !user.DeletionTimestamp.IsZero() {
		return requeueOnConflict(r.reconcileDelete(ctx, user, pass))
	}
	if err := ensureFinalizer(ctx, r.Client, user, base); err != nil {
		return requeueOnConflict(err)
	}
	if err := r.validate(user, pass); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.admit(ctx, user, pass); err != nil {
		return pass.refusedOr(err)
	}
	if err := r.resolveGroups(ctx, user, pass); err != nil {
		return ctrl.Result{}, err
	}
	others, err := r.sameEmail(ctx, user, pass)
	if err != nil {
		return ctrl.Result{}, err
	}
	if holder := emailHolder(user, others); holder != nil {
		pass.duplicateOf(user, holder)
		return ctrl.Result{}, nil
	}
	if err := r.observe(ctx, user, pass); err != nil {
		return ctrl.Result{}, r.storeFailed(pass, "reading", err)
	}
	if holder, err := r.claim(user, others, pass); holder != nil || err != nil {
		if holder != nil {
			pass.duplicateOf(user, holder)
		}
		return pass.refusedOr(err)
	}
	if err := r.ensureInStore(ctx, user, pass); err != nil {
		return ctrl.Result{}, r.storeFailed(pass, "creating", err)
	}
	if err := r.ensureUpToDate(ctx, user, pass); err != nil {
		return ctrl.Result{}, r.storeFailed(pass, "updating", err)
	}
	if err := r.ensureLinks(ctx, user, pass); err != nil {
		if apierrors.IsConflict(err) {
			// The cache had not caught up with the records yet: what this
			// pass saw of them says nothing new, so the status keeps what
			// the last pass that saw them wrote.
			pass.links = nil
		}
		return requeueOnConflict(err)
	}
	return r.later(req.NamespacedName, r.nextCheck(pass)), nil
}

// later is the result that has the User reconciled again after d: from the
// work queue when that is soon, else from the wakeups.
func (r *UserReconciler) later(key types.NamespacedName, d time.Duration) ctrl.Result {
	if d <= queueHorizon || r.wakeups == nil {
		return ctrl.Result{RequeueAfter: d}
	}
	r.wakeups.after(key, d)
	return ctrl.Result{}
}

// validate checks what the API server's schema cannot.
func (r *UserReconciler) validate(user *v1alpha1.User, pass *userPass) error {
	if tz := user.Spec.TimeZone; tz != "" {
		if err := validation.TimeZone(tz); err != nil {
			pass.set(status.Stalled, ReasonInvalidSpec, "spec.timeZone: %v.", err)
			return reconcile.TerminalError(fmt.Errorf("spec.timeZone: %w", err))
		}
	}
	return nil
}

// sameEmail lists the other Users of the store, in any namespace, with
// this User's email.
func (r *UserReconciler) sameEmail(ctx context.Context, user *v1alpha1.User, pass *userPass) ([]v1alpha1.User, error) {
	users, err := r.Emails.inStore(pass.storeKeys, user.Spec.Email)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(users, func(u v1alpha1.User) bool { return u.UID == user.UID }), nil
}

// duplicateOf records that another User holds the address.
func (p *userPass) duplicateOf(user, holder *v1alpha1.User) {
	p.observed = nil
	p.set(status.Stalled, ReasonDuplicateEmail,
		"The email address %s is held by User %s/%s; this User is provisioned once that one is deleted.",
		user.Spec.Email, holder.Namespace, holder.Name)
}

// claim decides whose the observed store user is. One that carries the UID
// of another User with the address belongs to that User, even if this pass
// saw that User's status before it recorded the store user. Otherwise it is
// this User's: created by it, or adopted (said once, with an event).
func (r *UserReconciler) claim(user *v1alpha1.User, others []v1alpha1.User, pass *userPass) (*v1alpha1.User, error) {
	if pass.observed == nil {
		return nil, nil
	}
	for i := range others {
		if pass.observed.ExternalID == string(others[i].UID) {
			return &others[i], nil
		}
	}
	// Whose the store user is comes from the store, never from the status,
	// which whoever may write the User may write too.
	pass.origin = originOf(user, *pass.observed)
	if pass.origin != v1alpha1.UserAdopted {
		return nil, nil
	}
	if pass.tenancy == nil {
		return nil, stores.NotPermitted("the rules of IdentityStore %s for namespace %s could not be read, so the store user holding %s is left alone",
			pass.store.Name, user.Namespace, user.Spec.Email)
	}
	if err := pass.tenancy.CheckAdoption(user.Spec.Email); err != nil {
		pass.observed, pass.origin = nil, "" // nothing of someone else's account shows
		return nil, err
	}
	if user.Status.Origin != v1alpha1.UserAdopted {
		r.event(user, corev1.EventTypeNormal, ReasonAdopted, "Adopt",
			"Adopted the existing store user %s that already held the email address.", pass.observed.ID)
	}
	return nil, nil
}

// admit checks the store's tenancy rules: the namespace must be admitted,
// and the address and the effective role (the default one included) must be
// allowed. A refusal stalls the User before anything is written to the
// store.
func (r *UserReconciler) admit(ctx context.Context, user *v1alpha1.User, pass *userPass) error {
	ten, err := tenancyOf(ctx, r.Client, pass.store, user.Namespace)
	if err != nil {
		return err
	}
	if err := errors.Join(ten.CheckEmail(user.Spec.Email), ten.CheckRole(effectiveRole(user, r.DefaultRole))); err != nil {
		return err
	}
	pass.tenancy = ten
	return nil
}

// observe reads the store user afresh: by store ID when one is known, else by
// email.
func (r *UserReconciler) observe(ctx context.Context, user *v1alpha1.User, pass *userPass) (err error) {
	pass.observed, err = observeStore(user.Status.StoreID,
		func() (store.User, error) {
			// The status may be written by whoever may write the User: a
			// recorded ID that leads to another address is not this User's.
			got, err := pass.store.GetUser(ctx, user.Status.StoreID)
			if err == nil && naming.NormalizeEmail(got.Email) != naming.NormalizeEmail(user.Spec.Email) {
				return store.User{}, store.ErrNotFound
			}
			return got, err
		},
		func() (store.User, error) { return pass.store.FindUserByEmail(ctx, user.Spec.Email) })
	return err
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
	desired := desiredStoreUser(user, r.DefaultRole)
	desired.ExternalID = string(user.UID)
	created, err := pass.store.CreateUser(ctx, desired)
	if err != nil {
		return err
	}
	pass.observed, pass.origin = &created, v1alpha1.UserCreated
	r.event(user, corev1.EventTypeNormal, ReasonCreated, "Create", "Created the user in the %s store.", pass.store.Name)
	return nil
}

func (r *UserReconciler) ensureUpToDate(ctx context.Context, user *v1alpha1.User, pass *userPass) error {
	update := userUpdate(user, r.DefaultRole, pass.origin, *pass.observed)
	if update.IsEmpty() {
		return nil
	}
	updated, err := pass.store.UpdateUser(ctx, pass.observed.ID, update)
	if err != nil {
		return err
	}
	pass.observed = &updated
	switch fields := changedFields(update); {
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
	others, err := r.sameEmail(ctx, user, pass)
	if err != nil {
		return err
	}
	if emailHolder(user, others) == nil { // a duplicate never touched the store
		if err := r.observe(ctx, user, pass); err != nil {
			return r.storeFailed(pass, "reading", err)
		}
		// Rules that no longer admit the namespace still let a User
		// remove what Roster created for it, and nothing else.
		pass.tenancy, _ = tenancyOf(ctx, r.Client, pass.store, user.Namespace)
		if holder, err := r.claim(user, others, pass); holder == nil && err == nil && pass.observed != nil {
			if policy := r.deletionPolicy(user, pass); policy == v1alpha1.DeletionPolicyDelete {
				// DeleteUser also removes the user from every store group.
				if err := pass.store.DeleteUser(ctx, pass.observed.ID); err != nil {
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
	if err := r.deleteRecords(ctx, user); err != nil {
		return err
	}
	if err := removeFinalizer(ctx, r.Client, user); err != nil {
		return err
	}
	pass.observed = nil
	return nil
}

// deletionPolicy is what deleting the User does to its store user. An
// adopted one is deleted only when the User says deletionPolicy: Delete and
// the store's rule for the namespace says deleteAdopted.
func (r *UserReconciler) deletionPolicy(user *v1alpha1.User, pass *userPass) v1alpha1.DeletionPolicy {
	policy := effectiveDeletionPolicy(user, pass.origin)
	if pass.origin == v1alpha1.UserAdopted && (pass.tenancy == nil || !pass.tenancy.MayDeleteAdopted()) {
		return v1alpha1.DeletionPolicyRetain
	}
	return policy
}

// storeFailed records a failed store call on the pass and returns the error
// for backoff.
func (r *UserReconciler) storeFailed(pass *userPass, doing string, err error) error {
	return pass.storeFailed("user", pass.store.Name, doing, err)
}

// displayName is the name the User is shown by, from its spec: the status
// field and the emails, the first of which is rendered before any status
// is written.
func displayName(user *v1alpha1.User) string {
	return strings.TrimSpace(user.Spec.FirstName + " " + user.Spec.LastName)
}

// computeStatus is the one place the status is written from what the pass
// observed.
func (r *UserReconciler) computeStatus(user *v1alpha1.User, pass *userPass, err error) {
	st := &user.Status
	st.Role = effectiveRole(user, r.DefaultRole)
	st.DisplayName = displayName(user)
	if pass.observed != nil {
		st.StoreID = pass.observed.ID
		st.Origin = pass.origin
		st.Phase = phaseOf(pass.observed)
		st.LastLoginAt = timePtr(pass.observed.LastLoginAt)
	} else if err == nil || st.Phase == "" {
		// Not in the store, or not known because the store did not answer.
		st.Phase = v1alpha1.UserPending
	}
	r.computeLinkStatus(user, pass)
	setDeactivationCondition(user, pass)
	if pass.groupsResolved {
		st.Groups = pass.groups
	}

	if pass.summary == nil {
		switch {
		case err != nil:
			pass.retrying(err)
		case !user.DeletionTimestamp.IsZero():
			return
		case pass.origin == v1alpha1.UserAdopted:
			pass.set(status.Ready, ReasonAdopted,
				"Adopted the existing store user with this email; it stays in the store when this User is deleted unless deletionPolicy is Delete.")
		default:
			pass.set(status.Ready, ReasonProvisioned, "The user is in the %s store.", pass.store.Name)
		}
	}
	pass.apply(&st.Conditions, &st.ObservedGeneration, user.Generation)
}

func (r *UserReconciler) event(user *v1alpha1.User, typ, reason, action, format string, args ...any) {
	recordEvent(r.Recorder, user, typ, reason, action, format, args...)
}

// SetupWithManager registers the controller: it reacts to spec changes,
// request annotations and used links, wakes the Users that share an email
// when one of them is deleted, and the Users a Group change adds or removes.
// It needs the indexes of SetupIndexes.
func (r *UserReconciler) SetupWithManager(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr).
		Watches(&v1alpha1.User{}, userEvents(), builder.WithPredicates(forPredicates(r.only, userChanged())...)).
		Watches(&v1alpha1.User{}, handler.EnqueueRequestsFromMapFunc(r.usersSharingEmail), builder.WithPredicates(onDelete())).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(recordOwner), builder.WithPredicates(recordUsed())).
		Watches(&v1alpha1.Group{}, r.groupEvents()).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(1, r.MaxConcurrentReconciles), NewQueue: r.newQueue(mgr.GetLogger())}).
		Named("user")
	r.wakeups = newWakeups()
	r.queue = &atomic.Pointer[priorityqueue.PriorityQueue[reconcile.Request]]{}
	if err := mgr.Add(r.wakeups); err != nil {
		return err
	}
	b = b.WatchesRawSource(crsource.Channel(r.wakeups.events, &handler.EnqueueRequestForObject{}))
	if r.Drift != nil {
		b = b.WatchesRawSource(crsource.Channel(r.Drift.Events(), &handler.EnqueueRequestForObject{}))
		if err := mgr.Add(r.Drift); err != nil {
			return err
		}
	}
	return b.Complete(r)
}

// importPriority is the work queue priority of a User an import created:
// below everyone else's, so that a person's kubectl apply is not queued
// behind a bulk import of thousands, and above a settled User's at start.
const importPriority = handler.LowPriority / 2

// userEvents enqueues a User on its own events, as For would, except for
// the priority of a new one: a User an import created waits behind the
// others, and at start only the Users already settled (their status
// describes their spec) wait behind everything, as controller-runtime's
// start-up list does; one created or changed while the manager was down is
// work a person is waiting for.
func userEvents() handler.EventHandler {
	enqueue := &handler.EnqueueRequestForObject{}
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			pq, ok := q.(priorityqueue.PriorityQueue[reconcile.Request])
			u, isUser := e.Object.(*v1alpha1.User)
			if !ok || !isUser {
				enqueue.Create(ctx, e, q)
				return
			}
			priority := 0
			switch {
			case e.IsInInitialList && u.Status.ObservedGeneration == u.Generation:
				priority = handler.LowPriority
			case u.Labels[v1alpha1.ImportLabel] != "":
				priority = importPriority
			}
			pq.AddWithOpts(priorityqueue.AddOpts{Priority: &priority}, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(u)})
		},
		UpdateFunc:  enqueue.Update,
		DeleteFunc:  enqueue.Delete,
		GenericFunc: enqueue.Generic,
	}
}

// setDeactivationCondition says, on a deactivated User, when its store was
// found not to enforce the lock: Inactive there does not stop a login.
func setDeactivationCondition(user *v1alpha1.User, pass *userPass) {
	if pass.store == nil || !user.IsDeactivated() || pass.store.Deactivation {
		meta.RemoveStatusCondition(&user.Status.Conditions, v1alpha1.ConditionDeactivationEnforced)
		return
	}
	meta.SetStatusCondition(&user.Status.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionDeactivationEnforced, Status: metav1.ConditionFalse, ObservedGeneration: user.Generation,
		Reason:  ReasonDeactivationNotEnforced,
		Message: fmt.Sprintf("The user is locked in IdentityStore %s, but that store does not enforce the lock: they can still log in until its administrators configure a password policy.", pass.store.Name),
	})
}
