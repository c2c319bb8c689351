package controllers

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/internal/store"
)

// DesiredStoreUser is the store user a User asks for. Fields the spec leaves
// empty are not managed.
func desiredStoreUser(user *v1alpha1.User, defaultRole string) store.User {
	s := user.Spec
	return store.User{
		Disabled:   user.IsDeactivated(),
		Email:      s.Email,
		FirstName:  s.FirstName,
		LastName:   s.LastName,
		Role:       effectiveRole(user, defaultRole),
		Mobile:     s.Mobile,
		TimeZone:   s.TimeZone,
		Country:    s.Country,
		Locale:     s.Locale,
		Attributes: s.Attributes,
	}
}

// userUpdate is what brings the store user to the User. A user Roster
// adopted keeps its role and its deactivation unless the User sets them:
// the default role is not forced on someone else's account, and an unset
// spec.deactivated neither locks nor unlocks it.
func userUpdate(user *v1alpha1.User, defaultRole string, origin v1alpha1.UserOrigin, got store.User) store.UserUpdate {
	u := store.UserDiff(desiredStoreUser(user, defaultRole), got)
	if origin == v1alpha1.UserAdopted {
		if user.Spec.Role == "" {
			u.Role = nil
		}
		if user.Spec.Deactivated == nil {
			u.Disabled = nil
		}
	}
	return u
}

func effectiveRole(user *v1alpha1.User, defaultRole string) string {
	if user.Spec.Role != "" {
		return user.Spec.Role
	}
	return defaultRole
}

// PhaseOf derives a User's phase from its store user.
func phaseOf(u *store.User) v1alpha1.UserPhase {
	switch {
	case u == nil:
		return v1alpha1.UserPending
	case u.Disabled:
		return v1alpha1.UserInactive
	case u.Activated:
		return v1alpha1.UserActive
	default:
		return v1alpha1.UserInvited
	}
}

// EffectiveDeletionPolicy is spec.deletionPolicy, or Delete for users Roster
// created and Retain for users it adopted.
func effectiveDeletionPolicy(user *v1alpha1.User, origin v1alpha1.UserOrigin) v1alpha1.DeletionPolicy {
	if p := user.Spec.DeletionPolicy; p != "" {
		return p
	}
	if origin == v1alpha1.UserCreated {
		return v1alpha1.DeletionPolicyDelete
	}
	return v1alpha1.DeletionPolicyRetain
}

// ChangedFields names the fields an update writes, for events.
func changedFields(u store.UserUpdate) []string {
	var fields []string
	add := func(name string, changed bool) {
		if changed {
			fields = append(fields, name)
		}
	}
	add("firstName", u.FirstName != nil)
	add("lastName", u.LastName != nil)
	add("role", u.Role != nil)
	add("mobile", u.Mobile != nil)
	add("timeZone", u.TimeZone != nil)
	add("country", u.Country != nil)
	add("locale", u.Locale != nil)
	add("attributes", len(u.Attributes) > 0)
	add("deactivated", u.Disabled != nil)
	return fields
}

// StoreDrift names what a pass of the User's reconciler would change, given
// its store user: the managed fields that differ, and what the status says
// about the store user (its phase and last login). Nothing means the User is
// in sync.
func storeDrift(user *v1alpha1.User, got *store.User, defaultRole string) []string {
	fields := changedFields(userUpdate(user, defaultRole, originOf(user, *got), *got))
	if phaseOf(got) != user.Status.Phase {
		fields = append(fields, "phase")
	}
	if !timePtr(got.LastLoginAt).Equal(user.Status.LastLoginAt) {
		fields = append(fields, "lastLoginAt")
	}
	return fields
}

func timePtr(t *time.Time) *metav1.Time {
	if t == nil {
		return nil
	}
	mt := metav1.NewTime(t.UTC().Truncate(time.Second))
	return &mt
}
