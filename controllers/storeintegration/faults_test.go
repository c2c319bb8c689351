package storeintegration_test

import (
	"context"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/controllers"
	"roster.dev/roster/controllers/controllerstest"
	"roster.dev/roster/internal/store"
	"roster.dev/roster/internal/store/storetest"
	"roster.dev/roster/internal/testenv"
)

func (s *scimSuite) createUsers(t *testing.T, ns, prefix string, n int) []string {
	return controllerstest.CreateUsers(t, s.k8s, ns, prefix, n)
}

func (s *scimSuite) waitForUser(t *testing.T, ns, name string, cond func(Gomega, *v1alpha1.User)) *v1alpha1.User {
	t.Helper()
	u := &v1alpha1.User{}
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(s.k8s.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: name}, u)).To(Succeed())
		cond(g, u)
	}, timeout, tick).Should(Succeed())
	return u
}

func (s *scimSuite) updateUser(t *testing.T, ns, name string, mutate func(*v1alpha1.User)) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		u := &v1alpha1.User{}
		g.Expect(s.k8s.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: name}, u)).To(Succeed())
		mutate(u)
		g.Expect(s.k8s.Update(t.Context(), u)).To(Succeed())
	}, timeout, tick).Should(Succeed())
}

func invitedAndReady(g Gomega, u *v1alpha1.User) {
	g.Expect(meta.IsStatusConditionTrue(u.Status.Conditions, v1alpha1.ConditionReady)).To(BeTrue(), "Ready: %+v", u.Status.Conditions)
	g.Expect(u.Status.ObservedGeneration).To(Equal(u.Generation))
	g.Expect(u.Status.Phase).To(Equal(v1alpha1.UserInvited))
}

// usersByEmail counts the peer's users by address.
func (s *scimSuite) usersByEmail(g Gomega) map[string]int {
	all, err := storetest.AllUsers(context.Background(), s.st)
	g.Expect(err).NotTo(HaveOccurred())
	out := map[string]int{}
	for _, u := range all {
		out[strings.ToLower(u.Email)]++
	}
	return out
}

func (s *scimSuite) eventReasons(g Gomega, ns, name string) []string {
	reasons, err := testenv.EventReasons(context.Background(), s.k8s, ns, name)
	g.Expect(err).NotTo(HaveOccurred())
	return reasons
}

// The service goes down while Users are being provisioned and changed,
// comes back, and then throttles with 429 and Retry-After: every User ends
// Ready, every change is applied and no user is duplicated.
func (s *scimSuite) testOutageAndThrottlingMidSync(t *testing.T) {
	g := NewWithT(t)
	ns := s.namespace(t)
	early := s.createUsers(t, ns, "early", 5)
	for _, name := range early {
		s.waitForUser(t, ns, name, invitedAndReady)
	}

	s.peer.Stop(t)
	late := s.createUsers(t, ns, "late", 5)
	s.updateUser(t, ns, "early-00", func(u *v1alpha1.User) { u.Spec.FirstName = "Renamed" })
	s.waitForUser(t, ns, "late-00", func(g Gomega, u *v1alpha1.User) {
		ready := meta.FindStatusCondition(u.Status.Conditions, v1alpha1.ConditionReady)
		g.Expect(ready).NotTo(BeNil())
		g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(ready.Reason).To(Equal(controllers.ReasonStoreUnavailable))
	})
	s.peer.Resume(t)
	s.peer.Throttle(t)
	throttled := s.createUsers(t, ns, "throttled", 5)
	s.peer.AwaitThrottleSpent(t)

	for _, name := range append(append(early, late...), throttled...) {
		s.waitForUser(t, ns, name, invitedAndReady)
	}
	counts := s.usersByEmail(g)
	for _, name := range append(append(early, late...), throttled...) {
		g.Expect(counts).To(HaveKeyWithValue(name+"@"+ns+".example.com", 1))
	}
	renamed := s.waitForUser(t, ns, "early-00", invitedAndReady)
	su, err := s.st.GetUser(t.Context(), renamed.Status.StoreID)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(su.FirstName).To(Equal("Renamed"))
}

// Changes made in the service behind Roster's back are corrected by the
// store-wide pass, each with an event, and a deleted user is provisioned
// again once.
func (s *scimSuite) testDriftIsCorrected(t *testing.T) {
	g := NewWithT(t)
	ns := s.namespace(t)
	s.createUsers(t, ns, "drift", 2)
	drifted := s.waitForUser(t, ns, "drift-00", invitedAndReady)
	gone := s.waitForUser(t, ns, "drift-01", invitedAndReady)

	name, role := "Mallory", "Admin"
	_, err := s.st.UpdateUser(t.Context(), drifted.Status.StoreID, store.UserUpdate{FirstName: &name, Role: &role})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(s.st.DeleteUser(t.Context(), gone.Status.StoreID)).To(Succeed())

	g.Eventually(func(g Gomega) {
		su, err := s.st.GetUser(t.Context(), drifted.Status.StoreID)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect([]string{su.FirstName, su.Role}).To(Equal([]string{"First", "Member"}))
		g.Expect(s.eventReasons(g, ns, "drift-00")).To(ContainElement(controllers.ReasonUpdated))
	}, timeout, tick).Should(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(s.usersByEmail(g)).To(HaveKeyWithValue(gone.Spec.Email, 1))
		created := 0
		for _, r := range s.eventReasons(g, ns, "drift-01") {
			if r == controllers.ReasonCreated {
				created++
			}
		}
		g.Expect(created).To(BeNumerically(">=", 2), "a Created event when first provisioned and one when provisioned again")
	}, timeout, tick).Should(Succeed())
	back := s.waitForUser(t, ns, "drift-01", invitedAndReady)
	g.Expect(back.Status.StoreID).NotTo(Equal(gone.Status.StoreID), "the user was provisioned again")
}
