package controllers

import (
	"context"
	"fmt"
	"hash/fnv"

	"sigs.k8s.io/controller-runtime/pkg/client"

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

// SetupIndexes registers the cache's field indexes that the User, Group and
// UserImport controllers read. Call it once, before they are set up.
func SetupIndexes(ctx context.Context, indexer client.FieldIndexer) error {
	err := indexer.IndexField(ctx, &v1alpha1.User{}, emailBucketIndex, func(obj client.Object) []string {
		return []string{emailBucket(obj.(*v1alpha1.User).Spec.Email)}
	})
	if err != nil {
		return err
	}
	return IndexGroupFields(ctx, indexer)
}

// UsersWithEmail returns the Users holding the email (compared without regard
// to case), in any namespace, from the cache. The User controller finds
// duplicates through it and the UserImport controller the User a row names.
func UsersWithEmail(ctx context.Context, c client.Reader, email string) ([]v1alpha1.User, error) {
	var out []v1alpha1.User
	err := eachUserWithEmail(ctx, c, email, func(u *v1alpha1.User) {
		out = append(out, *u.DeepCopy())
	})
	return out, err
}

// eachUserWithEmail calls fn with each User holding the email, straight from
// the cache: fn must not modify or keep the User.
func eachUserWithEmail(ctx context.Context, c client.Reader, email string, fn func(*v1alpha1.User)) error {
	var list v1alpha1.UserList
	// The bucket's Users are only read here, so the cache need not copy them
	// all.
	err := c.List(ctx, &list, client.MatchingFields{emailBucketIndex: emailBucket(email)}, client.UnsafeDisableDeepCopy)
	if err != nil {
		return fmt.Errorf("listing Users with the same email: %w", err)
	}
	want := naming.NormalizeEmail(email)
	for i := range list.Items {
		if naming.NormalizeEmail(list.Items[i].Spec.Email) == want {
			fn(&list.Items[i])
		}
	}
	return nil
}
