package controllers

import (
	"maps"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"roster.dev/roster/api/v1alpha1"
)

// requestAnnotations are the one-shot request annotations a reconcile acts on.
var requestAnnotations = []string{v1alpha1.ResendInvitationAnnotation, v1alpha1.ResetPasswordAnnotation}

// userChanged passes creations, deletions, spec changes (a new generation),
// the start of a deletion, a new value of a request annotation and new
// labels (a Group's selector may take the User in or out, which its
// status.groups shows). Status writes do not wake the User's own
// reconciler.
func userChanged() predicate.Predicate {
	return predicate.Or(predicate.GenerationChangedPredicate{}, updatesWhere(func(old, new client.Object) bool {
		return deletionStarted(old, new) || requestAnnotationChanged(old, new) || !maps.Equal(old.GetLabels(), new.GetLabels())
	}))
}

// updatesWhere passes the updates fn accepts, and no other event.
func updatesWhere(fn func(old, new client.Object) bool) predicate.Funcs {
	return predicate.Funcs{
		CreateFunc:  func(event.CreateEvent) bool { return false },
		DeleteFunc:  func(event.DeleteEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return false },
		UpdateFunc: func(e event.UpdateEvent) bool {
			return e.ObjectOld != nil && e.ObjectNew != nil && fn(e.ObjectOld, e.ObjectNew)
		},
	}
}

func deletionStarted(old, new client.Object) bool {
	return old.GetDeletionTimestamp().IsZero() && !new.GetDeletionTimestamp().IsZero()
}

func requestAnnotationChanged(old, new client.Object) bool {
	for _, key := range requestAnnotations {
		if old.GetAnnotations()[key] != new.GetAnnotations()[key] {
			return true
		}
	}
	return false
}

// onDelete passes only deletions.
func onDelete() predicate.Predicate {
	return predicate.Funcs{
		CreateFunc:  func(event.CreateEvent) bool { return false },
		UpdateFunc:  func(event.UpdateEvent) bool { return false },
		DeleteFunc:  func(event.DeleteEvent) bool { return true },
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
}

// specChangedOrDeleting passes creations, spec changes (a new generation)
// and the start of a deletion. Status writes and label changes do not wake
// the object's own reconciler.
func specChangedOrDeleting() predicate.Predicate {
	return predicate.Or(predicate.GenerationChangedPredicate{}, updatesWhere(deletionStarted))
}
