package ldapintegration_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	ldapv3 "github.com/go-ldap/ldap/v3"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/controllers/controllerstest"
	"roster.dev/roster/internal/naming"
	"roster.dev/roster/internal/testenv"
)

// The whole of a person's first day, in Chromium, with the directory as
// the store: invited with kubectl roster invite, they accept the link,
// sign in, change their time zone (the User shows it; the last name, set
// from Git, is read-only), change their password (the old one no longer
// binds), and sign out.
func TestBrowserFirstDayWithTheDirectory(t *testing.T) {
	ctx := controllerstest.Chromium(t, true)
	g := NewWithT(t)
	ns := newNamespace(t)
	email := "kath@" + ns + ".example.com"
	const first, second = "Orbital-Mechanics-1962", "Friendship-Seven-62!"

	root, err := testenv.RepoRoot()
	g.Expect(err).NotTo(HaveOccurred())
	plugin := filepath.Join(t.TempDir(), "kubectl-roster")
	build := exec.Command("go", "build", "-o", plugin, "./cmd/kubectl-roster")
	build.Dir = root
	out, err := build.CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), "building the plugin: %s", out)
	out, err = exec.CommandContext(t.Context(), plugin, "--kubeconfig", kubeconfig, "-n", ns,
		"invite", email, "--first-name", "Katherine", "--last-name", "Goble").CombinedOutput()
	g.Expect(err).NotTo(HaveOccurred(), "kubectl roster invite: %s", out)
	name := naming.UserName(email)
	g.Expect(string(out)).To(And(ContainSubstring(name), ContainSubstring("Invited")))

	// Git (Argo CD) owns the last name from now on.
	git := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{"email": email, "lastName": "Johnson"}}}
	git.SetAPIVersion(v1alpha1.GroupVersion.String())
	git.SetKind("User")
	git.SetNamespace(ns)
	git.SetName(name)
	g.Expect(k8s.Apply(t.Context(), client.ApplyConfigurationFromUnstructured(git), client.FieldOwner("argocd-controller"), client.ForceOwnership)).To(Succeed())

	link := invitations.Link(t, email, timeout)
	controllerstest.Open(t, ctx, link, "#password")
	g.Expect(controllerstest.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#password"), first),
		chromedp.SendKeys(chromedp.CSS("#confirm"), first),
		chromedp.Click(chromedp.CSS("button[type=submit]")),
	)).To(Succeed())
	g.Expect(controllerstest.Text(t, ctx, ".message.success h1")).To(Equal("You're all set"))
	dn := waitForUser(t, ns, name, hasPhase(v1alpha1.UserActive)).Status.StoreID

	controllerstest.Open(t, ctx, invitations.URL+"/account", "#email")
	g.Expect(controllerstest.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#email"), email),
		chromedp.SendKeys(chromedp.CSS("#password"), first),
		chromedp.Click(chromedp.CSS(`form[action$="/sign-in"] button`)),
		chromedp.WaitVisible(chromedp.CSS("#timeZone")),
	)).To(Succeed())
	g.Expect(controllerstest.Text(t, ctx, "#lastName-managed")).To(Equal("Managed by your administrator."))
	g.Expect(controllerstest.Do(ctx,
		chromedp.SetValue(chromedp.CSS("#timeZone"), "America/New_York"),
		chromedp.Click(chromedp.CSS(`form[action$="/account"] button`)),
		chromedp.WaitVisible(chromedp.CSS(".notice.ok")),
	)).To(Succeed())
	got := waitForUser(t, ns, name, func(g Gomega, u *v1alpha1.User) {
		g.Expect(u.Spec.TimeZone).To(Equal("America/New_York"))
	})
	g.Expect(got.Spec.LastName).To(Equal("Johnson"), "the page wrote a field Git owns")

	controllerstest.Open(t, ctx, invitations.URL+"/account/password", "#current")
	g.Expect(controllerstest.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#current"), first),
		chromedp.SendKeys(chromedp.CSS("#password"), second),
		chromedp.SendKeys(chromedp.CSS("#confirm"), second),
		chromedp.Click(chromedp.CSS(`form[data-policy] button`)),
		chromedp.WaitVisible(chromedp.CSS(".notice.ok")),
	)).To(Succeed())
	g.Expect(bind(dn, second)).To(Succeed())
	g.Expect(ldapv3.IsErrorWithCode(bind(dn, first), ldapv3.LDAPResultInvalidCredentials)).To(BeTrue(), "the old password still binds")

	g.Expect(controllerstest.Do(ctx, chromedp.Click(chromedp.CSS(".signout button")))).To(Succeed())
	g.Expect(controllerstest.Text(t, ctx, ".message h1")).To(Equal("You have signed out"))
	controllerstest.Open(t, ctx, invitations.URL+"/account", "#email")

	// The page created nothing: the namespace holds the one User.
	var users v1alpha1.UserList
	g.Expect(k8s.List(t.Context(), &users, client.InNamespace(ns))).To(Succeed())
	g.Expect(users.Items).To(HaveLen(1))
	var fresh v1alpha1.User
	g.Expect(k8s.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: name}, &fresh)).To(Succeed())
	g.Expect(strings.Join(managers(&fresh), ",")).To(ContainSubstring("roster-account"))
}

// managers names the field managers of the User.
func managers(u *v1alpha1.User) []string {
	var out []string
	for _, m := range u.ManagedFields {
		out = append(out, m.Manager)
	}
	return out
}
