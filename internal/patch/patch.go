// Package patch writes an object's status once per reconcile pass, and only
// when the pass changed it.
package patch

import (
	"context"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Status patches obj's status subresource with the difference from base, a
// copy of obj whose status is the one read at the start of the pass. The
// caller passes both statuses so that an unchanged status costs no API call.
// An object already deleted is not an error.
func Status(ctx context.Context, c client.Client, obj, base client.Object, status, baseStatus any) error {
	if equality.Semantic.DeepEqual(status, baseStatus) {
		return nil
	}
	err := c.Status().Patch(ctx, obj, client.MergeFrom(base))
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
