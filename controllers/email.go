package controllers

import (
	"context"
	"fmt"
	"hash/fnv"
	"slices"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/internal/naming"
)

// emailBucketIndex is the field index of Users by a bucket of their
// normalised email. Emails are unique, so an index by the email itself would
// hold one set per User (twice: cluster-wide and per namespace), which is
// most of the index's memory at 100,000 Users; 4,096 buckets hold the same
// keys in a few thousand sets, and a lookup filters a few dozen Users.
const emailBucketIndex = "spec.email.bucket"

const emailBuckets = 4096

func emailBucket(email string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(naming.NormalizeEmail(email)))
	return fmt.Sprintf("%03x", h.Sum32()%emailBuckets)
}

// emailIndexes are the indexes over email addresses, for setupIndexes.
func emailIndexes() []fieldIndex {
	return []fieldIndex{{&v1alpha1.User{}, emailBucketIndex, func(obj client.Object) []string {
		return []string{emailBucket(obj.(*v1alpha1.User).Spec.Email)}
	}}}
}

// usersWithEmail returns the Users of a store holding the email (compared
// without regard to case), in any namespace, from the cache; keys are the
// store's storeKeys. The User controller finds duplicates through it and
// the UserImport controller the User a row names.
func usersWithEmail(ctx context.Context, c client.Reader, keys []string, email string) ([]v1alpha1.User, error) {
	var out []v1alpha1.User
	err := eachUserWithEmail(ctx, c, keys, email, func(u *v1alpha1.User) {
		out = append(out, *u.DeepCopy())
	})
	return out, err
}

// eachUserWithEmail calls fn with each User of the store (keys, its
// storeKeys) holding the email, straight from the cache: fn must not modify
// or keep the User. An address is unique per store, so Users of other
// stores are left out.
func eachUserWithEmail(ctx context.Context, c client.Reader, keys []string, email string, fn func(*v1alpha1.User)) error {
	var list v1alpha1.UserList
	// The bucket's Users are only read here, so the cache need not copy them
	// all.
	err := c.List(ctx, &list, client.MatchingFields{emailBucketIndex: emailBucket(email)}, client.UnsafeDisableDeepCopy)
	if err != nil {
		return fmt.Errorf("listing Users with the same email: %w", err)
	}
	want := naming.NormalizeEmail(email)
	for i := range list.Items {
		if naming.NormalizeEmail(list.Items[i].Spec.Email) == want && slices.Contains(keys, storeKey(list.Items[i].Spec.StoreRef)) {
			fn(&list.Items[i])
		}
	}
	return nil
}

// usersByEmail finds, for the account page's sign-in, the Users holding an
// address in any namespace and store, from the cache.
func usersByEmail(c client.Reader) func(context.Context, string) ([]v1alpha1.User, error) {
	return func(ctx context.Context, email string) ([]v1alpha1.User, error) {
		var list v1alpha1.UserList
		if err := c.List(ctx, &list, client.MatchingFields{emailBucketIndex: emailBucket(email)}); err != nil {
			return nil, fmt.Errorf("listing Users with the email: %w", err)
		}
		want := naming.NormalizeEmail(email)
		out := list.Items[:0]
		for i := range list.Items {
			if naming.NormalizeEmail(list.Items[i].Spec.Email) == want {
				out = append(out, list.Items[i])
			}
		}
		return out, nil
	}
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
	users, err := usersWithEmail(ctx, r.Client, keys, user.Spec.Email)
	if err != nil {
		log.FromContext(ctx).Error(err, "Listing Users with the same email")
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(users))
	for i := range users {
		if users[i].UID != user.UID {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&users[i])})
		}
	}
	return reqs
}
