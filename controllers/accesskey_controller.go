package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/internal/status"
	"roster.dev/roster/internal/store"
	"roster.dev/roster/internal/stores"
)

// AccessKeyReconciler issues AccessKeys: it generates each key, writes it
// once into the AccessKey's Secret and keeps the key's hash in the store of
// the User the key acts as, for as long as the key may be used.
type AccessKeyReconciler struct {
	client.Client
	// APIReader reads the key's Secret: the cache holds no Secrets outside
	// the operator's namespace.
	APIReader client.Reader
	Stores    *stores.Registry
	Recorder  events.EventRecorder
	Clock     clock.PassiveClock
	// ResyncPeriod is the time between comparisons of a key with its store
	// (a password change in a directory replaces every password value).
	ResyncPeriod time.Duration

	only predicate.Predicate // see Deps.Only
}

// Reasons of AccessKeys' conditions and events.
const (
	ReasonKeyReady        = "KeyReady"
	ReasonKeyIssued       = "KeyIssued"
	ReasonKeyAdded        = "KeyAdded"
	ReasonKeyRemoved      = "KeyRemoved"
	ReasonKeyExpired      = "Expired"
	ReasonKeysUnsupported = "KeysUnsupported"
	ReasonSecretConflict  = "SecretConflict"
	ReasonSecretChanged   = "SecretChanged"
	ReasonWaitingForUser  = "WaitingForUser"
	ReasonUserDeactivated = "UserDeactivated"
)

// AccessKeyUserIndex indexes AccessKeys by spec.userRef.name, so that a
// User's changes reach its keys.
const AccessKeyUserIndex = "spec.userRef.name"

// accessKeyIndexes are the indexes over AccessKeys, for setupIndexes.
func accessKeyIndexes() []fieldIndex {
	return []fieldIndex{{&v1alpha1.AccessKey{}, AccessKeyUserIndex, func(o client.Object) []string {
		return []string{o.(*v1alpha1.AccessKey).Spec.UserRef.Name}
	}}}
}

// +kubebuilder:rbac:groups=iam.roster.dev,resources=accesskeys,verbs=get;list;watch;update;patch;delete
// +kubebuilder:rbac:groups=iam.roster.dev,resources=accesskeys/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=iam.roster.dev,resources=accesskeys/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;create

// keyPass is what one reconcile pass observed.
type keyPass struct {
	outcome
	user      *v1alpha1.User
	store     *stores.Handle
	keys      store.KeyStore
	expiresAt *time.Time
	key       string // the key, read from or written to the Secret this pass; never logged
}

// Reconcile brings one AccessKey's key to where it is checked, or removes
// it from there.
func (r *AccessKeyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	ak := &v1alpha1.AccessKey{}
	if err := r.Get(ctx, req.NamespacedName, ak); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	base := ak.DeepCopy()
	pass := &keyPass{}
	defer func() {
		r.computeStatus(ak, pass, retErr)
		patchStatus(ctx, r.Client, ak, base, ak.Status, base.Status, &result, &retErr)
	}()

	if !ak.DeletionTimestamp.IsZero() {
		return requeueOnConflict(r.reconcileDelete(ctx, ak, pass))
	}
	if err := ensureFinalizer(ctx, r.Client, ak, base); err != nil {
		return requeueOnConflict(err)
	}
	if err := r.resolveUser(ctx, ak, pass); err != nil {
		return ctrl.Result{}, err
	}
	if pass.user == nil {
		// The User's changes wake the AccessKey; this is a fallback.
		return ctrl.Result{RequeueAfter: jittered(refusedRecheck)}, nil
	}
	if err := r.resolveKeyStore(ak, pass); err != nil {
		return ctrl.Result{}, err
	}
	if pass.keys == nil {
		return ctrl.Result{RequeueAfter: jittered(storeWait)}, nil
	}
	pass.expiresAt = expiryOf(ak)
	if expired(pass.expiresAt, r.Clock.Now()) {
		return ctrl.Result{}, r.expire(ctx, ak, pass)
	}
	if err := r.ensureSecret(ctx, ak, pass); err != nil || pass.key == "" {
		return ctrl.Result{}, err
	}
	if err := r.ensureInStore(ctx, ak, pass); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: r.nextCheck(pass)}, nil
}

// resolveUser finds the User the key acts as and its store. While the User
// is missing, being deleted or not yet in its store, the key is out of the
// store and the AccessKey waits.
func (r *AccessKeyReconciler) resolveUser(ctx context.Context, ak *v1alpha1.AccessKey, pass *keyPass) error {
	user := &v1alpha1.User{}
	err := r.Get(ctx, client.ObjectKey{Namespace: ak.Namespace, Name: ak.Spec.UserRef.Name}, user)
	switch {
	case apierrors.IsNotFound(err) || (err == nil && !user.DeletionTimestamp.IsZero()):
		pass.set(status.Progressing, ReasonWaitingForUser, "The User %s does not exist or is being deleted; the key does not work.", ak.Spec.UserRef.Name)
		return r.revoke(ctx, ak, "its User is gone")
	case err != nil:
		return fmt.Errorf("reading User %s: %w", ak.Spec.UserRef.Name, err)
	case user.Status.StoreID == "":
		pass.set(status.Progressing, ReasonWaitingForUser, "Waiting for the User %s to be in its identity store.", user.Name)
		return nil
	}
	pass.user = user
	return nil
}

// resolveKeyStore finds the User's store and its key operations; a store
// that cannot check keys stalls the AccessKey.
func (r *AccessKeyReconciler) resolveKeyStore(ak *v1alpha1.AccessKey, pass *keyPass) error {
	h, _, err := pass.resolveStore(r.Stores, pass.user.Spec.StoreRef)
	if err != nil {
		return nil
	}
	pass.store = h
	ks, ok := store.AsKeyStore(h.Store)
	if !ok || !h.Capabilities().Passwords {
		pass.set(status.Stalled, ReasonKeysUnsupported,
			"The %s store of IdentityStore %s cannot check access keys: people sign in to it another way, such as its single sign-on.", h.Kind(), h.Name)
		return reconcile.TerminalError(fmt.Errorf("IdentityStore %s: %w", h.Name, store.ErrKeysUnsupported))
	}
	pass.keys = ks
	return nil
}

// expiryOf is when the key stops working: expiresAfter after the
// AccessKey's creation, or never.
func expiryOf(ak *v1alpha1.AccessKey) *time.Time {
	if ak.Spec.ExpiresAfter == nil {
		return nil
	}
	t := ak.CreationTimestamp.Add(ak.Spec.ExpiresAfter.Duration).UTC()
	return &t
}

func expired(at *time.Time, now time.Time) bool { return at != nil && !now.Before(*at) }

// expire removes an expired key from the store; the AccessKey stays, to
// be deleted or replaced.
func (r *AccessKeyReconciler) expire(ctx context.Context, ak *v1alpha1.AccessKey, pass *keyPass) error {
	if err := r.revoke(ctx, ak, "it expired"); err != nil {
		return pass.storeFailed("access key", pass.store.Kind(), "removing", err)
	}
	pass.set(status.Stalled, ReasonKeyExpired, "The key expired at %s and no longer works; delete the AccessKey, or create a new one.",
		pass.expiresAt.Format(time.RFC3339))
	return nil
}

// ensureSecret reads the key from the AccessKey's Secret, or generates one
// and writes it there once. A Secret the AccessKey does not own is never
// written: someone else's Secret must not receive a key, nor be
// overwritten.
func (r *AccessKeyReconciler) ensureSecret(ctx context.Context, ak *v1alpha1.AccessKey, pass *keyPass) error {
	name := ak.SecretNameOrDefault()
	secret := &corev1.Secret{}
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: ak.Namespace, Name: name}, secret)
	switch {
	case err == nil && !metav1.IsControlledBy(secret, ak):
		pass.set(status.Stalled, ReasonSecretConflict,
			"The Secret %s exists and is not this AccessKey's; Roster writes keys only into a Secret it creates. Choose another spec.secretName, or delete the AccessKey and the Secret.", name)
		return reconcile.TerminalError(fmt.Errorf("the Secret %s is not owned by the AccessKey", name))
	case err == nil:
		return r.readKey(ctx, ak, pass, secret)
	case !apierrors.IsNotFound(err):
		return fmt.Errorf("reading the Secret %s: %w", name, err)
	}
	if ak.Status.KeyID != "" {
		// The Secret was deleted: its key is gone from the cluster, so it
		// is revoked and a new one issued.
		if err := r.revoke(ctx, ak, "its Secret was deleted"); err != nil {
			return pass.storeFailed("access key", pass.store.Kind(), "removing", err)
		}
	}
	keyID, key := store.NewKey()
	secret = &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ak.Namespace, Name: name},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{v1alpha1.AccessKeySecretKey: []byte(key)},
	}
	if err := controllerutil.SetControllerReference(ak, secret, r.Scheme()); err != nil {
		return err
	}
	if err := r.Create(ctx, secret); err != nil {
		// AlreadyExists too: someone created it meanwhile, and the next
		// pass looks whose it is.
		return fmt.Errorf("creating the Secret %s: %w", name, err)
	}
	ak.Status.KeyID, pass.key = keyID, key
	recordEvent(r.Recorder, ak, corev1.EventTypeNormal, ReasonKeyIssued, "Issue", "Issued key %s into the Secret %s", keyID, name)
	return nil
}

// readKey takes the key from the AccessKey's own Secret. One whose key is
// not the one issued (edited by hand) is not trusted: the issued key is
// revoked, and deleting the Secret issues a new one.
func (r *AccessKeyReconciler) readKey(ctx context.Context, ak *v1alpha1.AccessKey, pass *keyPass, secret *corev1.Secret) error {
	key := string(secret.Data[v1alpha1.AccessKeySecretKey])
	keyID, ok := store.ParseKey(key)
	if ak.Status.KeyID == "" && ok {
		// Written by an earlier pass that ended before its status did.
		ak.Status.KeyID = keyID
	}
	if !ok || keyID != ak.Status.KeyID {
		if err := r.revoke(ctx, ak, "its Secret was changed"); err != nil {
			return pass.storeFailed("access key", pass.store.Kind(), "removing", err)
		}
		pass.set(status.Stalled, ReasonSecretChanged,
			"The Secret %s no longer holds the key Roster issued, which is revoked; delete the Secret for a new key.", secret.Name)
		return reconcile.TerminalError(fmt.Errorf("the Secret %s holds no key issued for the AccessKey", secret.Name))
	}
	pass.key = key
	return nil
}

// ensureInStore keeps the key's hash in the User's store while the User is
// active, and out of it while the User is deactivated: a directory that
// does not enforce its lock must not accept the key either.
func (r *AccessKeyReconciler) ensureInStore(ctx context.Context, ak *v1alpha1.AccessKey, pass *keyPass) error {
	userID := pass.user.Status.StoreID
	if ak.Status.StoreUserID != "" && (ak.Status.StoreUserID != userID || ak.Status.Store != pass.store.Name) {
		// The User was re-created, or its store user replaced.
		if err := r.revoke(ctx, ak, "its user changed"); err != nil {
			return pass.storeFailed("access key", pass.store.Kind(), "removing", err)
		}
	}
	ak.Status.Store, ak.Status.StoreUserID = pass.store.Name, userID
	got, err := pass.keys.GetKey(ctx, userID, ak.Status.KeyID)
	present := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return pass.storeFailed("access key", pass.store.Kind(), "reading", err)
	}
	if pass.user.IsDeactivated() {
		if present {
			if err := pass.keys.RemoveKey(ctx, userID, ak.Status.KeyID); err != nil {
				return pass.storeFailed("access key", pass.store.Kind(), "removing", err)
			}
			recordEvent(r.Recorder, ak, corev1.EventTypeNormal, ReasonKeyRemoved, "Remove",
				"Removed key %s from IdentityStore %s: the User is deactivated", ak.Status.KeyID, pass.store.Name)
		}
		// Nothing changes until a person reactivates the User (whose
		// change wakes this AccessKey): the key does not work, so Stalled.
		pass.set(status.Stalled, ReasonUserDeactivated, "The User %s is deactivated; the key works again once they are reactivated.", pass.user.Name)
		return nil
	}
	if !present {
		if err := pass.keys.AddKey(ctx, userID, pass.key, pass.expiresAt); err != nil {
			return pass.storeFailed("access key", pass.store.Kind(), "adding", err)
		}
		recordEvent(r.Recorder, ak, corev1.EventTypeNormal, ReasonKeyAdded, "Add",
			"Added key %s for user %s to IdentityStore %s", ak.Status.KeyID, pass.user.Spec.Email, pass.store.Name)
	}
	if got.LastUsedAt != nil {
		t := metav1.NewTime(got.LastUsedAt.Truncate(time.Second))
		ak.Status.LastUsedAt = &t
	}
	pass.set(status.Ready, ReasonKeyReady, "The key of %s is checked by IdentityStore %s.", pass.user.Spec.Email, pass.store.Name)
	return nil
}

// revoke removes the key from the store it was added to, as the status
// records it; a key never added, or a store no longer open, has nothing
// to remove (a store that is gone took its keys with it).
func (r *AccessKeyReconciler) revoke(ctx context.Context, ak *v1alpha1.AccessKey, why string) error {
	if ak.Status.KeyID == "" || ak.Status.StoreUserID == "" {
		return nil
	}
	h, ok := r.Stores.Get(ak.Status.Store)
	if !ok {
		// A store not open yet (the manager just started) or failing is
		// waited for; only one whose IdentityStore is gone is given up.
		err := r.Get(ctx, client.ObjectKey{Name: ak.Status.Store}, &v1alpha1.IdentityStore{})
		if err == nil {
			return fmt.Errorf("IdentityStore %s is not open: %w", ak.Status.Store, store.ErrUnavailable)
		}
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("reading IdentityStore %s: %w", ak.Status.Store, err)
		}
		ak.Status.Store, ak.Status.StoreUserID = "", ""
		return nil
	}
	if ks, ok := store.AsKeyStore(h.Store); ok {
		if err := ks.RemoveKey(ctx, ak.Status.StoreUserID, ak.Status.KeyID); err != nil {
			return err
		}
		recordEvent(r.Recorder, ak, corev1.EventTypeNormal, ReasonKeyRemoved, "Remove",
			"Removed key %s from IdentityStore %s: %s", ak.Status.KeyID, h.Name, why)
	}
	ak.Status.Store, ak.Status.StoreUserID = "", ""
	return nil
}

// reconcileDelete revokes the key; the Secret goes with the AccessKey, its
// owner.
func (r *AccessKeyReconciler) reconcileDelete(ctx context.Context, ak *v1alpha1.AccessKey, pass *keyPass) error {
	if !controllerutil.ContainsFinalizer(ak, v1alpha1.Finalizer) {
		return nil
	}
	if err := r.revoke(ctx, ak, "the AccessKey is being deleted"); err != nil {
		return pass.storeFailed("access key", ak.Status.Store, "removing", err)
	}
	return removeFinalizer(ctx, r.Client, ak)
}

// nextCheck is when the key is looked at again: at its expiry, or at the
// next resync.
func (r *AccessKeyReconciler) nextCheck(pass *keyPass) time.Duration {
	next := jittered(r.ResyncPeriod)
	if pass.expiresAt != nil {
		if until := pass.expiresAt.Sub(r.Clock.Now()) + time.Second; next <= 0 || until < next {
			next = until
		}
	}
	return next
}

// computeStatus sets the conditions from what the pass observed.
func (r *AccessKeyReconciler) computeStatus(ak *v1alpha1.AccessKey, pass *keyPass, err error) {
	if pass.expiresAt != nil {
		t := metav1.NewTime(*pass.expiresAt)
		ak.Status.ExpiresAt = &t
	} else if pass.user != nil {
		ak.Status.ExpiresAt = nil
	}
	if pass.summary == nil && err != nil && !apierrors.IsConflict(err) {
		pass.retrying(err)
	}
	pass.apply(&ak.Status.Conditions, &ak.Status.ObservedGeneration, ak.Generation)
}

// SetupWithManager watches AccessKeys and the Users they act as. Their
// Secrets are not watched: that would cache every Secret of the cluster.
func (r *AccessKeyReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.AccessKey{}, builder.WithPredicates(forPredicates(r.only, specChangedOrDeleting())...)).
		Watches(&v1alpha1.User{}, handler.EnqueueRequestsFromMapFunc(r.keysOfUser), builder.WithPredicates(keyUserChanged())).
		Named("accesskey").
		Complete(r)
}

// keyUserChanged passes what changes whether a User's keys work: its
// creation and deletion, its deactivation, its store user.
func keyUserChanged() predicate.Predicate {
	return predicate.Or(predicate.GenerationChangedPredicate{}, updatesWhere(func(old, new client.Object) bool {
		o, n := old.(*v1alpha1.User), new.(*v1alpha1.User)
		return deletionStarted(old, new) || o.Status.StoreID != n.Status.StoreID
	}))
}

// keysOfUser maps a User to its AccessKeys.
func (r *AccessKeyReconciler) keysOfUser(ctx context.Context, o client.Object) []reconcile.Request {
	var keys v1alpha1.AccessKeyList
	if err := r.List(ctx, &keys, client.InNamespace(o.GetNamespace()), client.MatchingFields{AccessKeyUserIndex: o.GetName()}); err != nil {
		log.FromContext(ctx).Error(err, "Listing the AccessKeys of a User", "user", client.ObjectKeyFromObject(o))
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(keys.Items))
	for _, k := range keys.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&k)})
	}
	return reqs
}
