package availability_test

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/controllers"
	"roster.dev/roster/controllers/controllerstest"
	"roster.dev/roster/internal/naming"
)

// restartRows is three of the import's progress chunks (500 rows each), so
// that the restart falls between progress writes.
const restartRows = 1500

// The API server stops and starts again while an import runs: the import
// resumes and completes, every row applied once (one User per row, created
// under its own name and never changed again) and every User Invited.
func TestImportAcrossAPIServerRestart(t *testing.T) {
	g := NewWithT(t)
	env, cfg, k8s := controlPlane(t, true)
	_, inv := runManager(t, cfg, controllers.Deps{
		DataDir:          t.TempDir(),
		StoreCheckPeriod: 10 * time.Second,
		ResyncPeriod:     10 * time.Minute,
		UserConcurrency:  8,
		GroupConcurrency: 2,
		ImportSource:     controllers.SourceLoader{MaxBytes: 64 << 20},
	})
	g.Expect(controllerstest.CreateStore(t.Context(), k8s, controllerstest.EmbeddedDefault("embedded"), time.Minute)).To(Succeed())
	ns := newNamespace(t, k8s, "apiserver-")

	emails, imp, created := startImport(t, k8s, ns, restartRows, 300, time.Minute)

	stopped := time.Now()
	g.Expect(env.ControlPlane.APIServer.Stop()).To(Succeed())
	t.Logf("The API server took %s to stop", time.Since(stopped).Round(100*time.Millisecond))
	g.Expect(env.ControlPlane.APIServer.Start()).To(Succeed())
	t.Logf("The API server stopped with %d of %d Users created and answered again %s later",
		created, restartRows, time.Since(stopped).Round(100*time.Millisecond))
	g.Expect(created).To(BeNumerically("<", restartRows), "the import finished before the restart: nothing was tested")

	back := time.Now()
	done := &v1alpha1.UserImport{}
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(t.Context(), client.ObjectKeyFromObject(imp), done)).To(Succeed())
		g.Expect(done.Status.Phase).To(BeElementOf(v1alpha1.ImportSucceeded, v1alpha1.ImportPartiallySucceeded, v1alpha1.ImportFailed))
	}, 3*time.Minute, tick).Should(Succeed())
	t.Logf("The import finished %s after the API server came back", time.Since(back).Round(100*time.Millisecond))
	g.Expect(done.Status.Phase).To(Equal(v1alpha1.ImportSucceeded), "conditions %+v, failures %+v", done.Status.Conditions, done.Status.Failures)
	g.Expect(done.Status.Rows).To(Equal(v1alpha1.ImportRowCounts{Total: restartRows, Processed: restartRows, Added: restartRows}))

	var counts userCounts
	g.Eventually(func(g Gomega) {
		var err error
		counts, err = countUsers(t.Context(), k8s, ns)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(counts.invited).To(Equal(restartRows), "not Ready by reason: %v", counts.reasons)
	}, 3*time.Minute, tick).Should(Succeed())
	g.Expect(counts.total).To(Equal(restartRows), "one User per row")
	byEmail := map[string]v1alpha1.User{}
	for _, u := range counts.users {
		byEmail[u.Spec.Email] = u
	}
	for _, e := range emails {
		u, ok := byEmail[e]
		g.Expect(ok).To(BeTrue(), "no User for %s", e)
		g.Expect(u.Name).To(Equal(naming.UserName(e)), "a second attempt would take the name with a suffix")
		g.Expect(u.Generation).To(BeEquivalentTo(1), "User %s was changed after it was created", u.Name)
	}
	// An invitation is recorded after it is sent: one whose record the
	// restart kept from being written is sent again, once.
	var invites map[string]int
	g.Eventually(func(g Gomega) {
		invites = invitationsByAddress(t, inv.SMTP)
		g.Expect(invites).To(HaveLen(restartRows))
	}, time.Minute, tick).Should(Succeed())
	twice := 0
	for _, e := range emails {
		g.Expect(invites[e]).To(BeNumerically("<=", 2), "invitations to %s", e)
		if invites[e] == 2 {
			twice++
		}
	}
	t.Logf("%d of %d addresses got a second invitation", twice, restartRows)
}
