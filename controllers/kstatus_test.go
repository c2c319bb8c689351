package controllers_test

import (
	"errors"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/controllers"
	"roster.dev/roster/internal/store"
)

// kstatusOf is what kstatus, as Flux's wait and Argo CD's health read it,
// says of the User as the API server holds it.
func kstatusOf(g Gomega, u *v1alpha1.User) *kstatus.Result {
	u = u.DeepCopy()
	u.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("User"))
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(u)
	g.Expect(err).NotTo(HaveOccurred())
	res, err := kstatus.Compute(&unstructured.Unstructured{Object: obj})
	g.Expect(err).NotTo(HaveOccurred())
	return res
}

func hasKStatus(want kstatus.Status) func(Gomega, *v1alpha1.User) {
	return func(g Gomega, u *v1alpha1.User) {
		res := kstatusOf(g, u)
		g.Expect(res.Status).To(Equal(want), "kstatus says %s: %s", res.Status, res.Message)
	}
}

func storeRejected(g Gomega, u *v1alpha1.User) {
	stalled := meta.FindStatusCondition(u.Status.Conditions, v1alpha1.ConditionStalled)
	g.Expect(stalled).NotTo(BeNil())
	g.Expect(stalled.Status).To(Equal(metav1.ConditionTrue))
	g.Expect(stalled.Reason).To(Equal(controllers.ReasonStoreRejected))
	g.Expect(readyCondition(u).Status).To(Equal(metav1.ConditionFalse))
	g.Expect(meta.FindStatusCondition(u.Status.Conditions, v1alpha1.ConditionReconciling)).To(BeNil())
	g.Expect(u.Status.ObservedGeneration).To(Equal(u.Generation))
}

// A store answer that retrying cannot change stalls the User with what the
// store said, and the User is not sent to the store again until its spec
// changes.
func TestStoreRejectionStalls(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	addr := "refused@" + ns + ".example.com"
	backend.rejectCreate(addr, true)
	t.Cleanup(func() { backend.rejectCreate(addr, false) })
	g.Expect(k8s.Create(t.Context(), newUser(ns, "refused", addr))).To(Succeed())

	got := waitFor(t, ns, "refused", storeRejected)
	g.Expect(meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionStalled).Message).
		To(ContainSubstring("400 Bad Request (invalidValue): title exceeds 64 characters"), "the condition says what the store answered")
	g.Expect(got.Status.Phase).To(Equal(v1alpha1.UserPending))
	hasKStatus(kstatus.FailedStatus)(g, got)
	g.Eventually(func(g Gomega) []string { return eventReasons(g, ns, "refused") }, timeout, tick).
		ShouldNot(ContainElement(controllers.ReasonCreated))

	// The error is terminal: the request is not sent again and again as
	// backoff would (5 ms doubling: about ten times in 3 s).
	n := backend.rejectedCreates(addr)
	g.Expect(n).To(BeNumerically(">=", 1))
	g.Consistently(func() int { return backend.rejectedCreates(addr) }, 3*time.Second, tick).
		Should(BeNumerically("<=", n+1), "the rejected request is retried with backoff")

	// Once the store would accept it, a change to the spec provisions it.
	backend.rejectCreate(addr, false)
	update(t, ns, "refused", func(u *v1alpha1.User) { u.Spec.FirstName = "Ada Augusta" })
	got = waitFor(t, ns, "refused", hasPhase(v1alpha1.UserInvited))
	g.Expect(meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionStalled)).To(BeNil())
	hasKStatus(kstatus.CurrentStatus)(g, got)
	_, err := backend.FindUserByEmail(t.Context(), addr)
	g.Expect(err).NotTo(HaveOccurred())
}

// kstatus reads Users as Roster means them: Current when done (a mail
// outage included), InProgress only while Roster gets there by itself,
// Failed where a person must act.
func TestKStatusReadsUsers(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)

	// Invited: done, as far as Roster goes.
	g.Expect(k8s.Create(t.Context(), newUser(ns, "invited", "invited@"+ns+".example.com"))).To(Succeed())
	waitFor(t, ns, "invited", func(g Gomega, u *v1alpha1.User) {
		hasPhase(v1alpha1.UserInvited)(g, u)
		hasInvitationReason(controllers.ReasonInvitationSent)(g, u)
		hasKStatus(kstatus.CurrentStatus)(g, u)
	})

	// The mail server refuses: still Current, the Invitation condition says
	// why no email went out.
	smtpServer.RefuseAuth(true)
	t.Cleanup(func() { smtpServer.RefuseAuth(false) })
	g.Expect(k8s.Create(t.Context(), newUser(ns, "unmailed", "unmailed@"+ns+".example.com"))).To(Succeed())
	waitFor(t, ns, "unmailed", func(g Gomega, u *v1alpha1.User) {
		hasPhase(v1alpha1.UserInvited)(g, u)
		hasInvitationReason(controllers.ReasonMailFailed)(g, u)
		hasKStatus(kstatus.CurrentStatus)(g, u)
	})
	smtpServer.RefuseAuth(false)

	// The store rejects the user: a person must act.
	rejected := "rejected@" + ns + ".example.com"
	backend.rejectCreate(rejected, true)
	t.Cleanup(func() { backend.rejectCreate(rejected, false) })
	g.Expect(k8s.Create(t.Context(), newUser(ns, "rejected", rejected))).To(Succeed())
	waitFor(t, ns, "rejected", func(g Gomega, u *v1alpha1.User) {
		storeRejected(g, u)
		hasKStatus(kstatus.FailedStatus)(g, u)
	})

	// The store's rules refuse the namespace: a person must act.
	ten := newTenant(t)
	storeName := restrictedStore(t, ten.ns)
	outside := newUser(ten.ns, "outside", "outside@corp.example.com")
	outside.Spec.StoreRef = &v1alpha1.StoreReference{Name: storeName}
	g.Expect(ten.c.Create(t.Context(), outside)).To(Succeed())
	waitFor(t, ten.ns, "outside", func(g Gomega, u *v1alpha1.User) {
		notPermitted(g, u, storeName)
		hasKStatus(kstatus.FailedStatus)(g, u)
	})

	// The store is down: Roster gets there by itself once it is back.
	backend.setDown(true)
	t.Cleanup(func() { backend.setDown(false) })
	g.Expect(k8s.Create(t.Context(), newUser(ns, "waiting", "waiting@"+ns+".example.com"))).To(Succeed())
	waitFor(t, ns, "waiting", func(g Gomega, u *v1alpha1.User) {
		g.Expect(readyCondition(u)).NotTo(BeNil())
		g.Expect(readyCondition(u).Reason).To(Equal(controllers.ReasonStoreUnavailable))
		hasKStatus(kstatus.InProgressStatus)(g, u)
	})
	backend.setDown(false)
	waitFor(t, ns, "waiting", func(g Gomega, u *v1alpha1.User) {
		hasPhase(v1alpha1.UserInvited)(g, u)
		hasKStatus(kstatus.CurrentStatus)(g, u)
	})
	_, err := backend.FindUserByEmail(t.Context(), rejected)
	g.Expect(errors.Is(err, store.ErrNotFound)).To(BeTrue(), "the rejected user is not in the store")
}
