package availability_test

import (
	"runtime"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"roster.dev/roster/api/v1alpha1"

	"roster.dev/roster/controllers"
	"roster.dev/roster/internal/store/ldap/ldaptest"
)

// The sizes issue 14 fixes.
const (
	outageUsers = 1000
	outage      = 60 * time.Second
)

// The directory goes away for a minute while 1,000 Users are being
// provisioned: every User ends Ready and Invited, the directory holds one
// entry per address, each address got its invitation, and the manager's
// goroutines and heap come back to about where they were before the outage.
func TestStoreOutageDuringProvisioning(t *testing.T) {
	g := NewWithT(t)
	slapd := ldaptest.Start(t)
	_, cfg, k8s := controlPlane(t, false)
	// The manager's defaults, but for a store check every 10 s rather
	// than every minute, which would only add up to a minute of waiting.
	_, inv := runManager(t, cfg, controllers.Deps{
		StoreCheckPeriod: 10 * time.Second,
		ResyncPeriod:     10 * time.Minute,
		UserConcurrency:  8,
		GroupConcurrency: 2,
	})
	declareLDAP(t, k8s, slapd)
	ns := newNamespace(t, k8s, "outage-")

	emails := createUsers(t, k8s, ns, outageUsers)
	var before userCounts
	g.Eventually(func(g Gomega) {
		var err error
		before, err = countUsers(t.Context(), k8s, ns)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(before.invited).To(BeNumerically(">=", 100))
	}, 2*time.Minute, tick).Should(Succeed())
	goroutines, heap := settledRuntime()

	slapd.Stop()
	down := time.Now()
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			_ = slapd.Restart()
		}
	})
	// A Group declared during the outage fails and backs off as the Users
	// do; the store's recovery wakes it too.
	group := &v1alpha1.Group{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "during-the-outage"},
		Spec:       v1alpha1.GroupSpec{Members: []string{"user-0000", "user-0001"}},
	}
	g.Expect(k8s.Create(t.Context(), group)).To(Succeed())
	t.Logf("The directory stopped with %d of %d Users Invited; %d goroutines, %.1f MiB heap in use",
		before.invited, outageUsers, goroutines, mib(heap))
	g.Expect(before.invited).To(BeNumerically("<", outageUsers), "provisioning finished before the outage: nothing was tested")

	// The Users still to be provisioned say why they wait; the outage lasts
	// its full minute whatever they say.
	var during userCounts
	peak := goroutines
	sawUnavailable := false
	end := time.NewTimer(outage - time.Since(down))
	look := time.NewTicker(time.Second)
	defer look.Stop()
	for over := false; !over; {
		select {
		case <-end.C:
			over = true
		case <-look.C:
		}
		var err error
		during, err = countUsers(t.Context(), k8s, ns)
		g.Expect(err).NotTo(HaveOccurred())
		sawUnavailable = sawUnavailable || during.reasons[controllers.ReasonStoreUnavailable] > 0
		peak = max(peak, runtime.NumGoroutine())
	}
	g.Expect(sawUnavailable).To(BeTrue(), "no User said its store was unavailable: %v", during.reasons)
	g.Expect(k8s.Get(t.Context(), client.ObjectKeyFromObject(group), group)).To(Succeed())
	g.Expect(meta.IsStatusConditionTrue(group.Status.Conditions, v1alpha1.ConditionReady)).To(BeFalse(),
		"the Group was Ready without its directory: %+v", group.Status.Conditions)
	t.Logf("After %s without the directory: %d Users Invited, not Ready by reason %v; peak of %d goroutines",
		outage, during.invited, during.reasons, peak)

	g.Expect(slapd.Restart()).To(Succeed())
	restarted = true
	up := time.Now()

	var after userCounts
	g.Eventually(func(g Gomega) {
		var err error
		after, err = countUsers(t.Context(), k8s, ns)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(after.invited).To(Equal(outageUsers), "not Ready by reason: %v", after.reasons)
	}, 5*time.Minute, tick).Should(Succeed())
	// Users that met the outage wait out their exponential backoff (its
	// steps double up to 1,000 s), so recovery takes about as long again
	// as the outage; docs/operations.md says so.
	t.Logf("Every User Invited %s after the directory came back", time.Since(up).Round(100*time.Millisecond))
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(t.Context(), client.ObjectKeyFromObject(group), group)).To(Succeed())
		g.Expect(meta.IsStatusConditionTrue(group.Status.Conditions, v1alpha1.ConditionReady)).To(BeTrue(), "%+v", group.Status.Conditions)
		g.Expect(group.Status.MemberCount).To(BeEquivalentTo(2))
	}, 5*time.Minute, tick).Should(Succeed())
	t.Logf("The Group declared during the outage Ready %s after the directory came back", time.Since(up).Round(100*time.Millisecond))

	entries := entriesByMail(t, slapd, ns)
	g.Expect(entries).To(HaveLen(outageUsers), "one entry per address, no others")
	for _, e := range emails {
		g.Expect(entries).To(HaveKeyWithValue(e, 1), "entries for %s", e)
	}
	g.Eventually(func(g Gomega) {
		invites := invitationsByAddress(t, inv.SMTP)
		g.Expect(invites).To(HaveLen(outageUsers))
		for _, e := range emails {
			g.Expect(invites).To(HaveKeyWithValue(e, 1), "invitations to %s", e)
		}
	}, time.Minute, tick).Should(Succeed())

	// What the outage left behind is let go: the retries' goroutines end
	// and their memory is collected. The bounds are generous; a leak per
	// retry or per User would pass them by far.
	var nowGoroutines int
	var nowHeap uint64
	g.Eventually(func(g Gomega) {
		nowGoroutines, nowHeap = settledRuntime()
		g.Expect(nowGoroutines).To(BeNumerically("<=", goroutines+50), "goroutines before the outage: %d", goroutines)
		g.Expect(nowHeap).To(BeNumerically("<=", heap+32<<20), "heap before the outage: %.1f MiB", mib(heap))
	}, time.Minute, time.Second).Should(Succeed())
	t.Logf("Settled at %d goroutines (%d before the outage), %.1f MiB heap in use (%.1f MiB before)",
		nowGoroutines, goroutines, mib(nowHeap), mib(heap))
}

// settledRuntime collects garbage and returns the goroutines and the bytes
// of live heap.
func settledRuntime() (int, uint64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return runtime.NumGoroutine(), ms.HeapAlloc
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
