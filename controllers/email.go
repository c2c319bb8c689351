package controllers

import (
	"context"
	"fmt"
	"hash/fnv"
	"slices"

	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/internal/naming"
)

// emailBucketIndex is the index of the User informer by a bucket of each
// User's normalised email. Emails are unique, so an index by the email
// itself would hold one set per User, most of the index's memory at
// 100,000 Users; 4,096 buckets hold the same keys in a few thousand sets,
// and a lookup filters a few dozen Users.
const emailBucketIndex = "roster.spec.email.bucket"

const emailBuckets = 4096

// emailBucket is the bucket of an email.
func emailBucket(email string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(naming.NormalizeEmail(email)))
	return fmt.Sprintf("%03x", h.Sum32()%emailBuckets)
}

// EmailIndex finds Users by email in the manager's cache. It reads the
// User informer's own index, cluster-wide only, and hands out the cached
// Users themselves: a lookup through the client would copy every User of
// the bucket into a list first, which the drift pass (a lookup per store
// user) and the imports (a lookup per row) paid at each call.
type EmailIndex struct {
	indexer toolscache.Indexer
}

// NewEmailIndex adds the index to the cache's User informer; call it
// before the cache starts.
func NewEmailIndex(ctx context.Context, c cache.Cache) (*EmailIndex, error) {
	inf, err := c.GetInformer(ctx, &v1alpha1.User{})
	if err != nil {
		return nil, fmt.Errorf("getting the User informer: %w", err)
	}
	shared, ok := inf.(toolscache.SharedIndexInformer)
	if !ok {
		return nil, fmt.Errorf("the User informer (%T) keeps no index", inf)
	}
	err = shared.AddIndexers(toolscache.Indexers{emailBucketIndex: func(obj any) ([]string, error) {
		if u, ok := obj.(*v1alpha1.User); ok {
			return []string{emailBucket(u.Spec.Email)}, nil
		}
		return nil, nil
	}})
	if err != nil {
		return nil, fmt.Errorf("indexing Users by email: %w", err)
	}
	return &EmailIndex{indexer: shared.GetIndexer()}, nil
}

// each calls fn with each cached User holding the email (compared without
// regard to case), in any namespace and store: fn must not modify or keep
// the User.
func (x *EmailIndex) each(email string, fn func(*v1alpha1.User)) error {
	objs, err := x.indexer.ByIndex(emailBucketIndex, emailBucket(email))
	if err != nil {
		return fmt.Errorf("looking up Users with the same email: %w", err)
	}
	want := naming.NormalizeEmail(email)
	for _, obj := range objs {
		if u, ok := obj.(*v1alpha1.User); ok && naming.NormalizeEmail(u.Spec.Email) == want {
			fn(u)
		}
	}
	return nil
}

// eachInStore is each, for the Users of one store (keys, its storeKeys):
// an address is unique per store, so Users of other stores are left out.
func (x *EmailIndex) eachInStore(keys []string, email string, fn func(*v1alpha1.User)) error {
	return x.each(email, func(u *v1alpha1.User) {
		if slices.Contains(keys, storeKey(u.Spec.StoreRef)) {
			fn(u)
		}
	})
}

// inStore returns copies of the Users of the store (keys) holding the
// email. The User controller finds duplicates through it and the
// UserImport controller the User a row names.
func (x *EmailIndex) inStore(keys []string, email string) ([]v1alpha1.User, error) {
	var out []v1alpha1.User
	err := x.eachInStore(keys, email, func(u *v1alpha1.User) {
		out = append(out, *u.DeepCopy())
	})
	return out, err
}

// byEmail finds, for the account page's sign-in, copies of the Users
// holding an address in any namespace and store.
func (x *EmailIndex) byEmail(_ context.Context, email string) ([]v1alpha1.User, error) {
	var out []v1alpha1.User
	err := x.each(email, func(u *v1alpha1.User) {
		out = append(out, *u.DeepCopy())
	})
	return out, err
}

// emailHolder returns the User among others that holds the address instead
// of user, or nil when user holds it. A User being deleted still holds its
// address until it is gone, so that its store user is removed before
// another User can claim the address.
func emailHolder(user *v1alpha1.User, others []v1alpha1.User) *v1alpha1.User {
	holder := user
	for i := range others {
		if holdsEmailBefore(&others[i], holder) {
			holder = &others[i]
		}
	}
	if holder == user {
		return nil
	}
	return holder
}

// holdsEmailBefore orders Users competing for an address: one already
// provisioned keeps it.
func holdsEmailBefore(a, b *v1alpha1.User) bool {
	return holdsBefore(a, b, a.Status.StoreID != "", b.Status.StoreID != "")
}

// usersSharingEmail wakes the Users that wait for an address when its
// holder is deleted.
func (r *UserReconciler) usersSharingEmail(ctx context.Context, obj client.Object) []reconcile.Request {
	user, ok := obj.(*v1alpha1.User)
	if !ok {
		return nil
	}
	keys, err := storeKeysFor(r.Stores, user.Spec.StoreRef)
	if err != nil {
		return nil // the Users wait for their store, and are queued again then
	}
	var reqs []reconcile.Request
	err = r.Emails.eachInStore(keys, user.Spec.Email, func(u *v1alpha1.User) {
		if u.UID != user.UID {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(u)})
		}
	})
	if err != nil {
		log.FromContext(ctx).Error(err, "Listing Users with the same email")
		return nil
	}
	return reqs
}
