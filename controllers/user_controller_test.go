package controllers_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/controllers"
	"roster.dev/roster/internal/status"
	"roster.dev/roster/internal/store"
	"roster.dev/roster/internal/stores"
)

const (
	timeout = 30 * time.Second
	tick    = 50 * time.Millisecond
)

func newUser(ns, name, email string) *v1alpha1.User {
	return &v1alpha1.User{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       v1alpha1.UserSpec{Email: email, FirstName: "Ada", LastName: "Lovelace"},
	}
}

// get reads the User straight from the API server.
func get(g Gomega, ctx context.Context, ns, name string) *v1alpha1.User {
	u := &v1alpha1.User{}
	g.Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, u)).To(Succeed())
	return u
}

// waitFor polls the User until cond holds and returns it.
func waitFor(t *testing.T, ns, name string, cond func(g Gomega, u *v1alpha1.User)) *v1alpha1.User {
	t.Helper()
	var got *v1alpha1.User
	NewWithT(t).Eventually(func(g Gomega) {
		got = get(g, t.Context(), ns, name)
		cond(g, got)
	}, timeout, tick).Should(Succeed())
	return got
}

func hasPhase(phase v1alpha1.UserPhase) func(Gomega, *v1alpha1.User) {
	return func(g Gomega, u *v1alpha1.User) {
		g.Expect(u.Status.Phase).To(Equal(phase))
		g.Expect(u.Status.ObservedGeneration).To(Equal(u.Generation))
	}
}

func readyCondition(u *v1alpha1.User) *metav1.Condition {
	return meta.FindStatusCondition(u.Status.Conditions, v1alpha1.ConditionReady)
}

func update(t *testing.T, ns, name string, mutate func(u *v1alpha1.User)) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		u := get(g, t.Context(), ns, name)
		mutate(u)
		g.Expect(k8s.Update(t.Context(), u)).To(Succeed())
	}, timeout, tick).Should(Succeed())
}

func TestUserProvisionedAsInvited(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	user := newUser(ns, "ada", "ada@"+ns+".example.com")
	user.Spec.Country = "GB"
	user.Spec.Attributes = map[string]string{"team": "engines"}
	g.Expect(k8s.Create(t.Context(), user)).To(Succeed())

	got := waitFor(t, ns, "ada", hasPhase(v1alpha1.UserInvited))
	g.Expect(got.Finalizers).To(ContainElement(v1alpha1.Finalizer))
	g.Expect(got.Status.StoreID).NotTo(BeEmpty())
	g.Expect(got.Status.Origin).To(Equal(v1alpha1.UserCreated))
	g.Expect(got.Status.Role).To(Equal(defaultRole))
	g.Expect(got.Status.DisplayName).To(Equal("Ada Lovelace"))
	ready := readyCondition(got)
	g.Expect(ready).NotTo(BeNil())
	g.Expect(ready.Status).To(Equal(metav1.ConditionTrue))
	g.Expect(ready.Reason).To(Equal(controllers.ReasonProvisioned))
	g.Expect(ready.ObservedGeneration).To(Equal(got.Generation))
	g.Expect(meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReconciling)).To(BeNil())

	su, err := backend.GetUser(t.Context(), got.Status.StoreID)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(su.Email).To(Equal(user.Spec.Email))
	g.Expect(su.ExternalID).To(Equal(string(got.UID)))
	g.Expect(su.FirstName).To(Equal("Ada"))
	g.Expect(su.Role).To(Equal(defaultRole))
	g.Expect(su.Country).To(Equal("GB"))
	g.Expect(su.Attributes).To(HaveKeyWithValue("team", "engines"))

	// Every store write is an event on the resource.
	g.Eventually(func(g Gomega) {
		var events eventsv1.EventList
		g.Expect(k8s.List(t.Context(), &events, client.InNamespace(ns))).To(Succeed())
		var reasons []string
		for _, e := range events.Items {
			if e.Regarding.Name == "ada" {
				reasons = append(reasons, e.Reason)
			}
		}
		g.Expect(reasons).To(ContainElement(controllers.ReasonCreated))
	}, timeout, tick).Should(Succeed())
}

func TestUserUpdatedInStore(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	g.Expect(k8s.Create(t.Context(), newUser(ns, "grace", "grace@"+ns+".example.com"))).To(Succeed())
	got := waitFor(t, ns, "grace", hasPhase(v1alpha1.UserInvited))

	update(t, ns, "grace", func(u *v1alpha1.User) {
		u.Spec.FirstName = "Grace"
		u.Spec.LastName = "Hopper"
		u.Spec.Role = "Admin"
		u.Spec.TimeZone = "America/New_York"
	})
	waitFor(t, ns, "grace", func(g Gomega, u *v1alpha1.User) {
		g.Expect(u.Status.DisplayName).To(Equal("Grace Hopper"))
		g.Expect(u.Status.Role).To(Equal("Admin"))
	})
	su, err := backend.GetUser(t.Context(), got.Status.StoreID)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect([]string{su.FirstName, su.LastName, su.Role, su.TimeZone}).To(Equal([]string{"Grace", "Hopper", "Admin", "America/New_York"}))
}

func TestUserDeactivateAndReactivate(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	g.Expect(k8s.Create(t.Context(), newUser(ns, "linus", "linus@"+ns+".example.com"))).To(Succeed())
	got := waitFor(t, ns, "linus", hasPhase(v1alpha1.UserInvited))

	update(t, ns, "linus", func(u *v1alpha1.User) { u.Spec.Deactivated = ptr.To(true) })
	waitFor(t, ns, "linus", hasPhase(v1alpha1.UserInactive))
	su, err := backend.GetUser(t.Context(), got.Status.StoreID)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(su.Disabled).To(BeTrue())

	update(t, ns, "linus", func(u *v1alpha1.User) { u.Spec.Deactivated = ptr.To(false) })
	waitFor(t, ns, "linus", hasPhase(v1alpha1.UserInvited))
	su, err = backend.GetUser(t.Context(), got.Status.StoreID)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(su.Disabled).To(BeFalse())
}

func TestUserDeletedFromStore(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	email := "del@" + ns + ".example.com"
	g.Expect(k8s.Create(t.Context(), newUser(ns, "del", email))).To(Succeed())
	got := waitFor(t, ns, "del", hasPhase(v1alpha1.UserInvited))

	g.Expect(k8s.Delete(t.Context(), got)).To(Succeed())
	g.Eventually(func() bool {
		err := k8s.Get(t.Context(), client.ObjectKeyFromObject(got), &v1alpha1.User{})
		return client.IgnoreNotFound(err) == nil && err != nil
	}, timeout, tick).Should(BeTrue(), "the User should be gone")
	_, err := backend.FindUserByEmail(t.Context(), email)
	g.Expect(errors.Is(err, store.ErrNotFound)).To(BeTrue(), "store user should be deleted, got %v", err)
}

func TestUserAlreadyGoneFromStoreIsDeleted(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	g.Expect(k8s.Create(t.Context(), newUser(ns, "gone", "gone@"+ns+".example.com"))).To(Succeed())
	got := waitFor(t, ns, "gone", hasPhase(v1alpha1.UserInvited))
	g.Expect(backend.DeleteUser(t.Context(), got.Status.StoreID)).To(Succeed())

	g.Expect(k8s.Delete(t.Context(), got)).To(Succeed())
	g.Eventually(func() error {
		return k8s.Get(t.Context(), client.ObjectKeyFromObject(got), &v1alpha1.User{})
	}, timeout, tick).Should(MatchError(ContainSubstring("not found")))
}

func TestAdoptedUserIsRetained(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	email := "old@" + ns + ".example.com"
	existing, err := backend.CreateUser(t.Context(), store.User{Email: email, FirstName: "Old", LastName: "Timer", Role: "Owner", Mobile: "+15550001111"})
	g.Expect(err).NotTo(HaveOccurred())

	user := newUser(ns, "old", strings.ToUpper(email))
	g.Expect(k8s.Create(t.Context(), user)).To(Succeed())
	got := waitFor(t, ns, "old", hasPhase(v1alpha1.UserInvited))
	g.Expect(got.Status.StoreID).To(Equal(existing.ID))
	g.Expect(got.Status.Origin).To(Equal(v1alpha1.UserAdopted))
	g.Expect(readyCondition(got).Reason).To(Equal(controllers.ReasonAdopted))

	su, err := backend.GetUser(t.Context(), existing.ID)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(su.FirstName).To(Equal("Ada"), "managed fields follow the spec")
	g.Expect(su.Mobile).To(Equal("+15550001111"), "unmanaged fields are left alone")

	g.Expect(k8s.Delete(t.Context(), got)).To(Succeed())
	g.Eventually(func() error {
		return k8s.Get(t.Context(), client.ObjectKeyFromObject(got), &v1alpha1.User{})
	}, timeout, tick).Should(MatchError(ContainSubstring("not found")))
	_, err = backend.GetUser(t.Context(), existing.ID)
	g.Expect(err).NotTo(HaveOccurred(), "an adopted user stays in the store")
}

func TestDuplicateEmailAcrossNamespaces(t *testing.T) {
	g := NewWithT(t)
	ns1, ns2 := newNamespace(t), newNamespace(t)
	email := "twin@" + ns1 + ".example.com"
	g.Expect(k8s.Create(t.Context(), newUser(ns1, "first", email))).To(Succeed())
	first := waitFor(t, ns1, "first", hasPhase(v1alpha1.UserInvited))
	// Creation times have a resolution of one second and ties go to the
	// lower namespace, which is random here: let the clock move on so that
	// the first User is the older one.
	g.Eventually(func() bool { return time.Now().After(first.CreationTimestamp.Add(time.Second)) }, timeout, tick).Should(BeTrue())

	g.Expect(k8s.Create(t.Context(), newUser(ns2, "second", strings.ToUpper(email)))).To(Succeed())
	second := waitFor(t, ns2, "second", func(g Gomega, u *v1alpha1.User) {
		ready := readyCondition(u)
		g.Expect(ready).NotTo(BeNil())
		g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(ready.Reason).To(Equal(controllers.ReasonDuplicateEmail))
		g.Expect(ready.Message).To(ContainSubstring(ns1 + "/first"))
	})
	g.Expect(second.Status.Phase).To(Equal(v1alpha1.UserPending))
	g.Expect(second.Status.StoreID).To(BeEmpty())
	g.Expect(meta.IsStatusConditionTrue(second.Status.Conditions, v1alpha1.ConditionStalled)).To(BeTrue())

	// The owner keeps the one store user.
	su, err := backend.FindUserByEmail(t.Context(), email)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(su.ID).To(Equal(first.Status.StoreID))

	// Once the owner is deleted, the second one is provisioned by itself.
	g.Expect(k8s.Delete(t.Context(), first)).To(Succeed())
	second = waitFor(t, ns2, "second", hasPhase(v1alpha1.UserInvited))
	g.Expect(readyCondition(second).Status).To(Equal(metav1.ConditionTrue))
	g.Expect(meta.FindStatusCondition(second.Status.Conditions, v1alpha1.ConditionStalled)).To(BeNil())
	su, err = backend.FindUserByEmail(t.Context(), email)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(su.ExternalID).To(Equal(string(second.UID)))
}

func TestFieldSelectors(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	for _, name := range []string{"a", "b", "c"} {
		u := newUser(ns, name, name+"@"+ns+".example.com")
		if name == "b" {
			u.Spec.Deactivated = ptr.To(true)
			u.Spec.Role = "Admin"
		}
		g.Expect(k8s.Create(t.Context(), u)).To(Succeed())
	}
	waitFor(t, ns, "b", hasPhase(v1alpha1.UserInactive))
	waitFor(t, ns, "a", hasPhase(v1alpha1.UserInvited))
	waitFor(t, ns, "c", hasPhase(v1alpha1.UserInvited))

	names := func(sel string) []string {
		var list v1alpha1.UserList
		g.Expect(k8s.List(t.Context(), &list, client.InNamespace(ns),
			client.MatchingFieldsSelector{Selector: fields.ParseSelectorOrDie(sel)})).To(Succeed())
		var out []string
		for _, u := range list.Items {
			out = append(out, u.Name)
		}
		return out
	}
	g.Expect(names("status.phase=Inactive")).To(ConsistOf("b"))
	g.Expect(names("status.phase=Invited")).To(ConsistOf("a", "c"))
	g.Expect(names("spec.role=Admin")).To(ConsistOf("b"))
}

// Drift passes over unchanged Users, and reconciles of them, write nothing,
// to the store or to the API server.
func TestResyncWritesNothing(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	for _, name := range []string{"calm", "calmer"} {
		g.Expect(k8s.Create(t.Context(), newUser(ns, name, name+"@"+ns+".example.com"))).To(Succeed())
	}
	for _, name := range []string{"calm", "calmer"} {
		waitFor(t, ns, name, hasPhase(v1alpha1.UserInvited))
	}
	// Let the first passes settle, then count what resyncs write.
	settle(t, ns)
	writesBefore := apiWrites.get(ns)
	storeWritesBefore := storeWrites()
	settle(t, ns)
	g.Expect(apiWrites.get(ns)).To(Equal(writesBefore), "API writes during resync")
	g.Expect(storeWrites()).To(Equal(storeWritesBefore), "store writes during resync")
}

func storeWrites() float64 {
	var n float64
	for _, op := range store.WriteOperations {
		n += storeMetrics.Calls("embedded", op)
	}
	return n
}

// A status lost between the store create and the status write (a crash)
// must neither duplicate the store user nor turn it into an adopted one.
func TestLostStatusIsRecovered(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	g.Expect(k8s.Create(t.Context(), newUser(ns, "phoenix", "phoenix@"+ns+".example.com"))).To(Succeed())
	got := waitFor(t, ns, "phoenix", hasPhase(v1alpha1.UserInvited))
	storeID := got.Status.StoreID
	creates := storeMetrics.Calls("embedded", store.OpCreateUser)

	got.Status = v1alpha1.UserStatus{}
	g.Expect(k8s.Status().Update(t.Context(), got)).To(Succeed())

	got = waitFor(t, ns, "phoenix", func(g Gomega, u *v1alpha1.User) {
		g.Expect(u.Status.StoreID).To(Equal(storeID))
		g.Expect(u.Status.Phase).To(Equal(v1alpha1.UserInvited))
	})
	g.Expect(got.Status.Origin).To(Equal(v1alpha1.UserCreated))
	g.Expect(storeMetrics.Calls("embedded", store.OpCreateUser)).To(Equal(creates))
}

func TestStoreOutageAndRecovery(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	backend.setDown(true)
	t.Cleanup(func() { backend.setDown(false) })
	g.Expect(k8s.Create(t.Context(), newUser(ns, "patient", "patient@"+ns+".example.com"))).To(Succeed())
	waitFor(t, ns, "patient", func(g Gomega, u *v1alpha1.User) {
		ready := readyCondition(u)
		g.Expect(ready).NotTo(BeNil())
		g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(ready.Reason).To(Equal(controllers.ReasonStoreUnavailable))
		g.Expect(meta.IsStatusConditionTrue(u.Status.Conditions, v1alpha1.ConditionReconciling)).To(BeTrue())
		g.Expect(u.Status.Phase).To(Equal(v1alpha1.UserPending))
	})

	backend.setDown(false)
	got := waitFor(t, ns, "patient", hasPhase(v1alpha1.UserInvited))
	g.Expect(readyCondition(got).Status).To(Equal(metav1.ConditionTrue))
	g.Expect(meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReconciling)).To(BeNil())
}

// A time zone that is no IANA name stalls the User, by the same rule an
// import row is checked with: "Local" names the manager's own zone, not one
// that a person lives in.
func TestInvalidTimeZoneStalls(t *testing.T) {
	for _, tz := range []string{"Mars/Olympus_Mons", "Local"} {
		t.Run(tz, func(t *testing.T) {
			g := NewWithT(t)
			ns := newNamespace(t)
			u := newUser(ns, "lost", "lost@"+ns+".example.com")
			u.Spec.TimeZone = tz
			g.Expect(k8s.Create(t.Context(), u)).To(Succeed())
			waitFor(t, ns, "lost", func(g Gomega, u *v1alpha1.User) {
				ready := readyCondition(u)
				g.Expect(ready).NotTo(BeNil())
				g.Expect(ready.Reason).To(Equal(controllers.ReasonInvalidSpec))
				g.Expect(ready.Message).To(ContainSubstring("spec.timeZone"))
				g.Expect(ready.Message).To(ContainSubstring(tz))
				g.Expect(meta.IsStatusConditionTrue(u.Status.Conditions, v1alpha1.ConditionStalled)).To(BeTrue())
			})
			_, err := backend.FindUserByEmail(t.Context(), "lost@"+ns+".example.com")
			g.Expect(errors.Is(err, store.ErrNotFound)).To(BeTrue())
		})
	}
}

// The API server refuses bad input with a message naming the field.
func TestValidation(t *testing.T) {
	ns := newNamespace(t)
	cases := []struct {
		name   string
		mutate func(u *v1alpha1.User)
		field  string
	}{
		{"bad email", func(u *v1alpha1.User) { u.Spec.Email = "not-an-address" }, "spec.email"},
		{"bad mobile", func(u *v1alpha1.User) { u.Spec.Mobile = "0151 234" }, "spec.mobile"},
		{"bad country", func(u *v1alpha1.User) { u.Spec.Country = "XX" }, "spec.country"},
		{"lower-case country", func(u *v1alpha1.User) { u.Spec.Country = "de" }, "spec.country"},
		{"unknown deletion policy", func(u *v1alpha1.User) { u.Spec.DeletionPolicy = "Orphan" }, "spec.deletionPolicy"},
		{"bad group name", func(u *v1alpha1.User) { u.Spec.Groups = []string{"Not A Name"} }, "spec.groups[0]"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u := newUser(ns, "v"+string(rune('a'+i)), "valid@"+ns+".example.com")
			tc.mutate(u)
			err := k8s.Create(t.Context(), u)
			if err == nil {
				t.Fatalf("Create succeeded, want a validation error naming %s", tc.field)
			}
			t.Logf("refused: %v", err)
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error %q does not name %s", err, tc.field)
			}
		})
	}

	t.Run("email is immutable", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(k8s.Create(t.Context(), newUser(ns, "fixed", "fixed@"+ns+".example.com"))).To(Succeed())
		g.Eventually(func(g Gomega) {
			u := get(g, t.Context(), ns, "fixed")
			u.Spec.Email = "moved@" + ns + ".example.com"
			err := k8s.Update(t.Context(), u)
			g.Expect(apierrors.IsConflict(err)).To(BeFalse(), "retry after a conflict with the controller")
			g.Expect(err).To(MatchError(And(ContainSubstring("spec.email"), ContainSubstring("immutable"))))
		}, timeout, tick).Should(Succeed())
	})
}

// A restarted manager writes nothing to a User that is as it should be:
// before the IdentityStore controller has opened the stores, the User waits
// without a word (not "waiting for the store", then "Ready" again), and
// once they are open its status stays as it was.
func TestRestartWritesNoUserStatus(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	g.Expect(k8s.Create(t.Context(), newUser(ns, "steady", "steady@"+ns+".example.com"))).To(Succeed())
	waitFor(t, ns, "steady", func(g Gomega, u *v1alpha1.User) {
		g.Expect(u.Status.Phase).To(Equal(v1alpha1.UserInvited))
		hasInvitationReason(controllers.ReasonInvitationSent)(g, u)
	})
	settle(t, ns)
	var before v1alpha1.User
	key := types.NamespacedName{Namespace: ns, Name: "steady"}
	g.Expect(k8s.Get(t.Context(), key, &before)).To(Succeed())

	// The reconciler as a fresh manager has it: no store opened yet.
	restarted := *reconcilers.User
	restarted.Stores = stores.NewRegistry()
	res, err := restarted.Reconcile(t.Context(), reconcile.Request{NamespacedName: key})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.RequeueAfter).To(BeNumerically(">", 0), "the User waits for the stores to open")
	var waiting v1alpha1.User
	g.Expect(k8s.Get(t.Context(), key, &waiting)).To(Succeed())
	g.Expect(waiting.ResourceVersion).To(Equal(before.ResourceVersion), "status while the stores open: %+v", waiting.Status.Conditions)

	for _, h := range reconcilers.Stores.All() {
		restarted.Stores.Put(h)
	}
	_, err = restarted.Reconcile(t.Context(), reconcile.Request{NamespacedName: key})
	g.Expect(err).NotTo(HaveOccurred())
	var after v1alpha1.User
	g.Expect(k8s.Get(t.Context(), key, &after)).To(Succeed())
	g.Expect(after.ResourceVersion).To(Equal(before.ResourceVersion), "status after the restart: %+v", after.Status)
}

// A pass that read the User before a newer status was written must not
// write its own view over it: a merge patch replaces the conditions whole
// and leaves the fields it did not change, so the newer Invitation
// condition would be lost while status.invitation stays.
func TestStatusFromAnOlderCopyIsRefused(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	g.Expect(k8s.Create(t.Context(), newUser(ns, "stale", "stale@"+ns+".example.com"))).To(Succeed())
	current := waitFor(t, ns, "stale", hasInvitationReason(controllers.ReasonInvitationSent))
	g.Expect(current.Status.Invitation).NotTo(BeNil())

	// The copy a pass would hold had the cache not yet seen the
	// invitation: no Invitation condition, and an older resourceVersion.
	older := current.DeepCopy()
	meta.RemoveStatusCondition(&older.Status.Conditions, v1alpha1.ConditionInvitation)
	older.Status.Invitation = nil
	update(t, ns, "stale", func(u *v1alpha1.User) { u.Annotations = map[string]string{"example.com/touched": "yes"} })

	base := older.DeepCopy()
	meta.SetStatusCondition(&older.Status.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Recomputed", Message: "Recomputed from the older copy.",
	})
	err := status.Patch(t.Context(), k8s, older, base, older.Status, base.Status)
	g.Expect(apierrors.IsConflict(err)).To(BeTrue(), "patch from the older copy: %v", err)

	after := get(g, t.Context(), ns, "stale")
	g.Expect(invitationCondition(after)).NotTo(BeNil(), "conditions: %+v", after.Status.Conditions)
	g.Expect(after.Status.Invitation).NotTo(BeNil())
}
