package controllers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/internal/status"
	"roster.dev/roster/internal/store"
	"roster.dev/roster/internal/stores"
)

// StoreOpener opens the store an IdentityStore declares; stores.Opener in
// the manager, a wrapper in tests that inject faults.
type StoreOpener interface {
	Fingerprint(ctx context.Context, ids *v1alpha1.IdentityStore) (string, error)
	Open(ctx context.Context, ids *v1alpha1.IdentityStore) (store.Store, error)
}

// IdentityStoreReconciler opens the store each IdentityStore declares and
// keeps it in the registry the other reconcilers and the web pages use; it
// reopens it when the spec or a credential Secret changes, and reports the
// store's health. It runs on every replica, because every replica serves
// the web pages; only the leader writes to the IdentityStore.
type IdentityStoreReconciler struct {
	client.Client
	Stores   *stores.Registry
	Opener   StoreOpener
	Metrics  *store.Metrics
	Recorder events.EventRecorder
	// CheckPeriod is how often an open store is checked for reachability
	// and its Secrets for changes.
	CheckPeriod time.Duration
	// Elected is closed once this replica leads (the manager's Elected);
	// nil when it always does.
	Elected <-chan struct{}
	// Drift, when set, wakes the store's Users that are not Ready once the
	// store answers again after an outage: they wait in their backoff,
	// which grows to minutes, and would catch up only as slowly.
	Drift *UserDrift
	// Groups, when set, wakes the store's Groups that are not Ready at the
	// same moment.
	Groups *GroupReconciler

	mu           sync.Mutex
	fingerprints map[string]string // what each open store was opened from
}

// Reasons of IdentityStore conditions and events.
const (
	ReasonStoreReady      = "StoreReady"
	ReasonStoreOpened     = "Opened"
	ReasonInvalidConfig   = "InvalidConfig"
	ReasonWaitingForStore = "WaitingForStore"
	ReasonInUse           = "InUse"
	ReasonDefaultConflict = "DefaultConflict"

	ReasonDeactivationEnforced    = "Enforced"
	ReasonDeactivationNotEnforced = "NotEnforcedByStore"
)

// +kubebuilder:rbac:groups=iam.roster.dev,resources=identitystores,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=iam.roster.dev,resources=identitystores/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=iam.roster.dev,resources=identitystores/finalizers,verbs=update

// storePass is what one pass observed of an IdentityStore.
type storePass struct {
	outcome
	handle   *stores.Handle
	refs     int
	defaults []string // names of every IdentityStore marked default
	// follower is a pass on a replica that does not lead: it opens and
	// checks the store for this replica's pages and writes nothing.
	follower bool
}

// Reconcile opens, checks or closes one store.
func (r *IdentityStoreReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	ids := &v1alpha1.IdentityStore{}
	if err := r.Get(ctx, req.NamespacedName, ids); err != nil {
		if client.IgnoreNotFound(err) == nil {
			r.forget(req.Name)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !r.leading() {
		return r.follow(ctx, ids)
	}
	base := ids.DeepCopy()
	pass := &storePass{}
	defer func() {
		r.computeStatus(ids, pass, retErr)
		patchStatus(ctx, r.Client, ids, base, ids.Status, base.Status, &result, &retErr)
	}()

	var err error
	if pass.refs, err = r.references(ctx, ids); err != nil {
		return ctrl.Result{}, err
	}
	if !ids.DeletionTimestamp.IsZero() {
		return r.reconcileDelete(ctx, ids, pass)
	}
	if err := ensureFinalizer(ctx, r.Client, ids, base); err != nil {
		return requeueOnConflict(err)
	}
	if pass.defaults, err = r.defaults(ctx); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.ensureOpen(ctx, ids, pass); err != nil {
		if stores.IsConfigError(err) {
			return ctrl.Result{RequeueAfter: r.CheckPeriod}, nil
		}
		// A store that does not answer is checked more often, so that its
		// Users hear soon when it is back.
		return ctrl.Result{RequeueAfter: min(r.CheckPeriod, outageRecheck)}, nil
	}
	if wasDown(base) {
		keys := storeKeys(ids.Name, r.Stores.IsDefault(ids.Name))
		if r.Drift != nil {
			go r.Drift.wakeNotReady(ctx, keys)
		}
		if r.Groups != nil {
			go r.Groups.wakeNotReady(ctx, keys)
		}
	}
	return ctrl.Result{RequeueAfter: jittered(r.CheckPeriod)}, nil
}

// outageRecheck is how often a store that does not answer is checked.
const outageRecheck = 5 * time.Second

// wasDown reports whether the IdentityStore said its store did not answer.
func wasDown(ids *v1alpha1.IdentityStore) bool {
	c := meta.FindStatusCondition(ids.Status.Conditions, v1alpha1.ConditionReady)
	return c != nil && c.Status != metav1.ConditionTrue && c.Reason == ReasonStoreUnavailable
}

// leading reports whether this replica leads.
func (r *IdentityStoreReconciler) leading() bool {
	if r.Elected == nil {
		return true
	}
	select {
	case <-r.Elected:
		return true
	default:
		return false
	}
}

// follow keeps the store open on a replica that does not lead, so that its
// pages answer while the leader runs and the moment it dies. The status,
// finalizer and events are the leader's to write; a store being deleted is
// closed once the IdentityStore is gone.
func (r *IdentityStoreReconciler) follow(ctx context.Context, ids *v1alpha1.IdentityStore) (ctrl.Result, error) {
	if !ids.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	// What a follower meets shows on its pages; the leader reports it.
	if err := r.ensureOpen(ctx, ids, &storePass{follower: true}); err != nil {
		log.FromContext(ctx).V(1).Info("The store is not usable on this replica yet", "reason", err.Error())
	}
	return ctrl.Result{RequeueAfter: jittered(r.CheckPeriod)}, nil
}

// ensureOpen opens the store when it is not open from the current spec and
// Secrets, and otherwise checks that it still answers.
func (r *IdentityStoreReconciler) ensureOpen(ctx context.Context, ids *v1alpha1.IdentityStore, pass *storePass) error {
	fp, err := r.Opener.Fingerprint(ctx, ids)
	if err != nil {
		r.fail(ids, pass, err)
		return err
	}
	r.mu.Lock()
	same := r.fingerprints[ids.Name] == fp
	r.mu.Unlock()
	if h, ok := r.Stores.Get(ids.Name); ok && same {
		pass.handle = h.WithSpec(ids.Spec) // the default flag may change without a reopen
		r.Stores.Put(pass.handle)
		return r.check(ctx, ids, pass)
	}
	backend, err := r.Opener.Open(ctx, ids)
	if err != nil {
		r.fail(ids, pass, err)
		return err
	}
	var limiter *rate.Limiter
	if rl := ids.Spec.RateLimit; rl != nil {
		limiter = rate.NewLimiter(rate.Limit(rl.QPS), int(max(rl.Burst, rl.QPS)))
	}
	enforced, err := probeDeactivation(ctx, backend)
	if err != nil {
		_ = backend.Close()
		r.fail(ids, pass, fmt.Errorf("checking whether the store enforces deactivation: %w", err))
		return err
	}
	h := &stores.Handle{Name: ids.Name, Store: store.Instrument(ids.Name, backend, r.Metrics, limiter), Spec: ids.Spec, Deactivation: enforced}
	old := r.Stores.Put(h)
	if old != nil {
		_ = old.Close()
	}
	r.mu.Lock()
	r.fingerprints[ids.Name] = fp
	r.mu.Unlock()
	pass.handle = h
	// A manager that restarts opens every store again; that is no news
	// about a store its status already calls Ready, and records nothing.
	if !pass.follower && (old != nil || !status.IsReady(ids.Status.Conditions)) {
		recordEvent(r.Recorder, ids, corev1.EventTypeNormal, ReasonStoreOpened, "Open", "Opened the %s store.", ids.Kind())
	}
	return r.check(ctx, ids, pass)
}

// check asks the store one question, so that an unreachable store or
// refused credentials show on the IdentityStore. The store stays in use:
// its resources say what their own calls meet, and recover with it.
func (r *IdentityStoreReconciler) check(ctx context.Context, ids *v1alpha1.IdentityStore, pass *storePass) error {
	if _, err := pass.handle.FindUserByEmail(ctx, "roster-health-check@invalid"); err != nil && !errors.Is(err, store.ErrNotFound) {
		pass.set(status.Progressing, ReasonStoreUnavailable, "The %s store does not answer, retrying: %v.", ids.Kind(), err)
		return err
	}
	return nil
}

// deactivationProber is a store that can check whether it really refuses
// a deactivated user, rather than only recording the lock.
type deactivationProber interface {
	ProbeDeactivation(ctx context.Context) (bool, error)
}

// probeDeactivation asks the store, when it can tell, whether deactivating
// a user stops them logging in; stores that cannot tell are taken at their
// word.
func probeDeactivation(ctx context.Context, s store.Store) (bool, error) {
	if p, ok := s.(deactivationProber); ok {
		return p.ProbeDeactivation(ctx)
	}
	return true, nil
}

// fail takes the store out of use and says why.
func (r *IdentityStoreReconciler) fail(ids *v1alpha1.IdentityStore, pass *storePass, err error) {
	if old := r.Stores.Fail(ids.Name, ids.Spec.Default, err.Error()); old != nil {
		_ = old.Close()
	}
	r.mu.Lock()
	delete(r.fingerprints, ids.Name)
	r.mu.Unlock()
	if stores.IsConfigError(err) {
		pass.set(status.Stalled, ReasonInvalidConfig, "%v.", err)
		return
	}
	pass.set(status.Progressing, ReasonWaitingForStore, "The %s store cannot be opened yet, retrying: %v.", ids.Kind(), err)
}

// reconcileDelete keeps a store that resources still use; once none do, it
// closes the store and lets the IdentityStore go.
func (r *IdentityStoreReconciler) reconcileDelete(ctx context.Context, ids *v1alpha1.IdentityStore, pass *storePass) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(ids, v1alpha1.Finalizer) {
		return ctrl.Result{}, nil
	}
	if pass.refs > 0 {
		pass.set(status.Progressing, ReasonInUse,
			"Deletion waits: %d Users, Groups or UserImports still use this store; delete them or point them at another store.", pass.refs)
		return ctrl.Result{RequeueAfter: r.CheckPeriod}, nil
	}
	r.forget(ids.Name)
	return requeueOnConflict(removeFinalizer(ctx, r.Client, ids))
}

// forget closes and removes the named store.
func (r *IdentityStoreReconciler) forget(name string) {
	if old := r.Stores.Remove(name); old != nil {
		_ = old.Close()
	}
	r.mu.Lock()
	delete(r.fingerprints, name)
	r.mu.Unlock()
}

// references counts the resources that use the store, by name or as the
// default.
func (r *IdentityStoreReconciler) references(ctx context.Context, ids *v1alpha1.IdentityStore) (int, error) {
	keys := []string{ids.Name}
	if ids.Spec.Default {
		keys = append(keys, defaultStoreKey)
	}
	n := 0
	for _, key := range keys {
		for _, list := range []client.ObjectList{&v1alpha1.UserList{}, &v1alpha1.GroupList{}, &v1alpha1.UserImportList{}} {
			// Only counted: the cache need not copy 100,000 Users for it.
			if err := r.List(ctx, list, client.MatchingFields{storeRefIndex: key}, client.UnsafeDisableDeepCopy); err != nil {
				return 0, fmt.Errorf("counting the resources using the store: %w", err)
			}
			n += meta.LenList(list)
		}
	}
	return n, nil
}

// defaults names every IdentityStore marked default.
func (r *IdentityStoreReconciler) defaults(ctx context.Context) ([]string, error) {
	var list v1alpha1.IdentityStoreList
	if err := r.List(ctx, &list); err != nil {
		return nil, fmt.Errorf("listing IdentityStores: %w", err)
	}
	var names []string
	for i := range list.Items {
		if list.Items[i].Spec.Default && list.Items[i].DeletionTimestamp.IsZero() {
			names = append(names, list.Items[i].Name)
		}
	}
	return names, nil
}

// computeStatus is the one place the status is written from the pass.
func (r *IdentityStoreReconciler) computeStatus(ids *v1alpha1.IdentityStore, pass *storePass, err error) {
	st := &ids.Status
	st.Type = ids.Kind()
	st.ReferencedBy = int32(pass.refs)
	if h := pass.handle; h != nil {
		caps := h.Capabilities()
		st.Capabilities = &v1alpha1.StoreCapabilities{Passwords: caps.Passwords, Logins: caps.LoginTimes, Deactivation: h.Deactivation}
		enforced := metav1.Condition{Type: v1alpha1.ConditionDeactivationEnforced, Status: metav1.ConditionTrue,
			Reason: ReasonDeactivationEnforced, Message: "A deactivated user cannot log in.", ObservedGeneration: ids.Generation}
		if !h.Deactivation {
			enforced.Status, enforced.Reason = metav1.ConditionFalse, ReasonDeactivationNotEnforced
			enforced.Message = "The store accepted the password of a user it holds as locked: no password policy enforces the lock, so deactivated Users can still log in. Configure one (for OpenLDAP, ppolicy with pwdLockout: TRUE)."
		}
		meta.SetStatusCondition(&st.Conditions, enforced)
	}
	if pass.summary == nil {
		switch {
		case err != nil:
			pass.retrying(err)
		case !ids.DeletionTimestamp.IsZero():
			return
		case ids.Spec.Default && len(pass.defaults) > 1:
			pass.set(status.Stalled, ReasonDefaultConflict,
				"IdentityStores %v are all marked default; resources without a storeRef wait until only one is.", pass.defaults)
		default:
			pass.set(status.Ready, ReasonStoreReady, "The %s store is open and answers; %d resources use it.", ids.Kind(), pass.refs)
		}
	}
	pass.apply(&st.Conditions, &st.ObservedGeneration, ids.Generation)
}

// SetupWithManager registers the controller. A store is rechecked every
// CheckPeriod, which also notices changed Secrets.
func (r *IdentityStoreReconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.fingerprints = map[string]string{}
	everyReplica := false
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.IdentityStore{}, builder.WithPredicates(specChangedOrDeleting())).
		// Every replica keeps its stores open for its pages; see follow.
		WithOptions(controller.Options{NeedLeaderElection: &everyReplica}).
		Named("identitystore").
		Complete(r)
}

// storeRefIndex indexes Users, Groups and UserImports by the store they
// name, or defaultStoreKey for those that use the default store.
const storeRefIndex = "spec.storeRef.name"

// defaultStoreKey is the storeRefIndex value of resources without a
// storeRef; no IdentityStore can be named so.
const defaultStoreKey = "#default"

// storeKey is a storeRef's value in the indexes.
func storeKey(ref *v1alpha1.StoreReference) string {
	if ref == nil {
		return defaultStoreKey
	}
	return ref.Name
}

// storeKeys are the index values of the resources that use the named store.
func storeKeys(name string, isDefault bool) []string {
	if isDefault {
		return []string{name, defaultStoreKey}
	}
	return []string{name}
}

// storeRefIndexes are the indexes by store, for setupIndexes.
func storeRefIndexes() []fieldIndex {
	return []fieldIndex{
		{&v1alpha1.User{}, storeRefIndex, func(o client.Object) []string { return []string{storeKey(o.(*v1alpha1.User).Spec.StoreRef)} }},
		{&v1alpha1.Group{}, storeRefIndex, func(o client.Object) []string { return []string{storeKey(o.(*v1alpha1.Group).Spec.StoreRef)} }},
		{&v1alpha1.UserImport{}, storeRefIndex, func(o client.Object) []string {
			return []string{storeKey(o.(*v1alpha1.UserImport).Spec.StoreRef)}
		}},
	}
}

// logStoreWait is how a reconciler says it waits for its store.
func logStoreWait(ctx context.Context, err error) {
	log.FromContext(ctx).V(1).Info("Waiting for the identity store", "reason", err.Error())
}
