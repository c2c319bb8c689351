package controllers

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/internal/store"
)

func TestPhaseOf(t *testing.T) {
	cases := []struct {
		name string
		user *store.User
		want v1alpha1.UserPhase
	}{
		{"not in the store", nil, v1alpha1.UserPending},
		{"never activated", &store.User{}, v1alpha1.UserInvited},
		{"activated", &store.User{Activated: true}, v1alpha1.UserActive},
		{"disabled wins over activated", &store.User{Activated: true, Disabled: true}, v1alpha1.UserInactive},
		{"disabled before activation", &store.User{Disabled: true}, v1alpha1.UserInactive},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := phaseOf(tc.user); got != tc.want {
				t.Errorf("PhaseOf() = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestEffectiveDeletionPolicy(t *testing.T) {
	cases := []struct {
		name   string
		spec   v1alpha1.DeletionPolicy
		origin v1alpha1.UserOrigin
		want   v1alpha1.DeletionPolicy
	}{
		{"created, unset", "", v1alpha1.UserCreated, v1alpha1.DeletionPolicyDelete},
		{"adopted, unset", "", v1alpha1.UserAdopted, v1alpha1.DeletionPolicyRetain},
		{"unknown origin, unset", "", "", v1alpha1.DeletionPolicyRetain},
		{"adopted, explicit Delete", v1alpha1.DeletionPolicyDelete, v1alpha1.UserAdopted, v1alpha1.DeletionPolicyDelete},
		{"created, explicit Retain", v1alpha1.DeletionPolicyRetain, v1alpha1.UserCreated, v1alpha1.DeletionPolicyRetain},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u := &v1alpha1.User{Spec: v1alpha1.UserSpec{DeletionPolicy: tc.spec}}
			if got := effectiveDeletionPolicy(u, tc.origin); got != tc.want {
				t.Errorf("EffectiveDeletionPolicy() = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestHoldsEmailBefore(t *testing.T) {
	t0 := metav1.NewTime(time.Unix(1000, 0))
	t1 := metav1.NewTime(time.Unix(1001, 0))
	mk := func(ns, name string, ts metav1.Time) *v1alpha1.User {
		return &v1alpha1.User{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, CreationTimestamp: ts}}
	}
	inStore := func(u *v1alpha1.User) *v1alpha1.User {
		u.Status.StoreID = "id-" + u.Name
		return u
	}
	cases := []struct {
		name string
		a, b *v1alpha1.User
		want bool
	}{
		{"older wins", mk("z", "z", t0), mk("a", "a", t1), true},
		{"newer loses", mk("a", "a", t1), mk("z", "z", t0), false},
		{"same time: lower namespace", mk("a", "z", t0), mk("b", "a", t0), true},
		{"same time and namespace: lower name", mk("a", "a", t0), mk("a", "b", t0), true},
		{"itself", mk("a", "a", t0), mk("a", "a", t0), false},
		{"in the store wins over a same-time newcomer", inStore(mk("z", "z", t0)), mk("a", "a", t0), true},
		{"in the store wins over older", inStore(mk("z", "z", t1)), mk("a", "a", t0), true},
		{"not in the store loses", mk("a", "a", t0), inStore(mk("z", "z", t1)), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := holdsEmailBefore(tc.a, tc.b); got != tc.want {
				t.Errorf("holdsEmailBefore() = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDesiredStoreUser(t *testing.T) {
	u := &v1alpha1.User{Spec: v1alpha1.UserSpec{
		Email: "ada@example.com", FirstName: "Ada", LastName: "Lovelace", Deactivated: ptr(true),
		Country: "GB", Attributes: map[string]string{"k": "v"},
	}}
	want := store.User{Email: "ada@example.com", FirstName: "Ada", LastName: "Lovelace", Role: "Member",
		Country: "GB", Attributes: map[string]string{"k": "v"}, Disabled: true}
	if diff := cmp.Diff(want, desiredStoreUser(u, "Member")); diff != "" {
		t.Errorf("DesiredStoreUser() mismatch (-want +got):\n%s", diff)
	}
	u.Spec.Role = "Admin"
	if got := desiredStoreUser(u, "Member").Role; got != "Admin" {
		t.Errorf("Role = %q, want the spec's Admin", got)
	}
}

func TestChangedFields(t *testing.T) {
	s := "x"
	b := true
	got := changedFields(store.UserUpdate{FirstName: &s, Country: &s, Attributes: map[string]string{"a": "b"}, Disabled: &b})
	want := []string{"firstName", "country", "attributes", "deactivated"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ChangedFields() mismatch (-want +got):\n%s", diff)
	}
}

func TestStoreDrift(t *testing.T) {
	login := time.Date(2026, 11, 3, 9, 30, 0, 0, time.UTC)
	user := func(mutate func(*v1alpha1.User)) *v1alpha1.User {
		u := &v1alpha1.User{
			Spec:   v1alpha1.UserSpec{Email: "ada@example.com", FirstName: "Ada", LastName: "Lovelace"},
			Status: v1alpha1.UserStatus{Phase: v1alpha1.UserInvited},
		}
		if mutate != nil {
			mutate(u)
		}
		return u
	}
	inStore := func(mutate func(*store.User)) *store.User {
		su := &store.User{ID: "1", Email: "ada@example.com", FirstName: "Ada", LastName: "Lovelace", Role: "Member"}
		if mutate != nil {
			mutate(su)
		}
		return su
	}
	cases := []struct {
		reason string
		user   *v1alpha1.User
		got    *store.User
		want   []string
	}{
		{reason: "in sync", user: user(nil), got: inStore(nil)},
		{reason: "an unmanaged field differs", user: user(nil), got: inStore(func(s *store.User) { s.Locale = "fr-FR" })},
		{reason: "attributes the User does not set are not managed", user: user(nil),
			got: inStore(func(s *store.User) { s.Attributes = map[string]string{"team": "ops"} })},
		{reason: "a name and the role changed in the store", user: user(nil),
			got:  inStore(func(s *store.User) { s.FirstName, s.Role = "Mallory", "Admin" }),
			want: []string{"firstName", "role"}},
		{reason: "locked in the store while the User is active",
			user: user(func(u *v1alpha1.User) { u.Status.Phase = v1alpha1.UserActive }),
			got:  inStore(func(s *store.User) { s.Disabled, s.Activated = true, true }),
			want: []string{"deactivated", "phase"}},
		{reason: "activated in the store: the status must say Active", user: user(nil),
			got: inStore(func(s *store.User) { s.Activated = true }), want: []string{"phase"}},
		{reason: "a login the status has not seen", user: user(nil),
			got: inStore(func(s *store.User) { s.LastLoginAt = &login }), want: []string{"lastLoginAt"}},
		{reason: "the login the status records",
			user: user(func(u *v1alpha1.User) { u.Status.LastLoginAt = &metav1.Time{Time: login} }),
			got:  inStore(func(s *store.User) { s.LastLoginAt = &login })},
	}
	for _, tc := range cases {
		t.Run(tc.reason, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, storeDrift(tc.user, tc.got, "Member")); diff != "" {
				t.Errorf("StoreDrift() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// A User an import created is queued behind one a person applied, though
// it came first; at start, settled Users come last, and a User created
// while the manager was down comes first.
func TestImportedUsersWaitBehindOthers(t *testing.T) {
	q := priorityqueue.New[reconcile.Request]("test")
	defer q.ShutDown()
	user := func(name string, imported bool) *v1alpha1.User {
		u := &v1alpha1.User{ObjectMeta: metav1.ObjectMeta{Namespace: "t", Name: name, Generation: 1}}
		if imported {
			u.Labels = map[string]string{v1alpha1.ImportLabel: "new-hires"}
		}
		return u
	}
	settled := user("settled", false)
	settled.Status.ObservedGeneration = 1
	h := userEvents()
	ctx := t.Context()
	h.Create(ctx, event.CreateEvent{Object: settled, IsInInitialList: true}, q)
	for i := range 3 {
		h.Create(ctx, event.CreateEvent{Object: user(fmt.Sprintf("imported-%d", i), true)}, q)
	}
	h.Create(ctx, event.CreateEvent{Object: user("while-down", false), IsInInitialList: true}, q)
	h.Create(ctx, event.CreateEvent{Object: user("applied", false)}, q)
	var order []string
	for range 6 {
		req, _, _ := q.GetWithPriority()
		order = append(order, req.Name)
		q.Done(req)
	}
	want := []string{"while-down", "applied", "imported-0", "imported-1", "imported-2", "settled"}
	if !slices.Equal(order, want) {
		t.Errorf("dequeued %v, want %v", order, want)
	}
}
