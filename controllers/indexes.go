package controllers

import (
	"context"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"roster.dev/roster/api/v1alpha1"
)

// EmailIndex is the field index of Users by normalised email. The User
// controller finds duplicates through it (across namespaces) and the
// UserImport controller finds the User a row names (in its namespace).
const EmailIndex = "spec.email.normalized"

// NormalizeEmail is the form emails are compared in: the store treats
// addresses that differ only in case as one.
func NormalizeEmail(email string) string { return strings.ToLower(strings.TrimSpace(email)) }

// SetupIndexes registers the cache's field indexes. Call it once, before the
// controllers are set up.
func SetupIndexes(ctx context.Context, indexer client.FieldIndexer) error {
	return indexer.IndexField(ctx, &v1alpha1.User{}, EmailIndex, func(obj client.Object) []string {
		return []string{NormalizeEmail(obj.(*v1alpha1.User).Spec.Email)}
	})
}
