package availability_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	ldapv3 "github.com/go-ldap/ldap/v3"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/controllers"
	"roster.dev/roster/controllers/controllerstest"
	"roster.dev/roster/internal/mail"
	"roster.dev/roster/internal/mail/mailtest"
	"roster.dev/roster/internal/store/ldap/ldaptest"
	"roster.dev/roster/internal/testenv"
)

const tick = 100 * time.Millisecond

func init() {
	// The managers' logs would drown the tests' own output; the figures
	// the tests print are what matters here.
	ctrl.SetLogger(zap.New(zap.WriteTo(io.Discard)))
}

// required reports whether a missing binary fails the test (CI=true)
// rather than skipping it, as in the other suites.
func required() bool { return os.Getenv("CI") == "true" }

// controlPlane starts a control plane for the test, skipping it when the
// binaries are missing outside CI. With restartable, the API server can be
// stopped and started again (testenv.StartRestartable).
func controlPlane(t *testing.T, restartable bool) (*envtest.Environment, *rest.Config, client.Client) {
	t.Helper()
	if _, err := testenv.Assets(); err != nil {
		if required() {
			t.Fatalf("the control plane binaries are required under CI=true: %v", err)
		}
		t.Skipf("no control plane binaries (make control-plane builds them): %v", err)
	}
	start := testenv.Start
	if restartable {
		dir := t.TempDir()
		start = func() (*envtest.Environment, *rest.Config, error) { return testenv.StartRestartable(dir) }
	}
	env, cfg, err := start()
	if err != nil {
		t.Fatalf("starting the control plane: %v", err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	c, err := client.New(cfg, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return env, cfg, c
}

// runManager builds a manager as the suites do (controllerstest.NewManager,
// controllers.Setup) with the invitations sent to a real SMTP server, and
// runs it until the test ends.
func runManager(t *testing.T, cfg *rest.Config, deps controllers.Deps) (*controllers.Reconcilers, *controllerstest.Invitations) {
	t.Helper()
	g := NewWithT(t)
	mgr, err := controllerstest.NewManager(cfg)
	g.Expect(err).NotTo(HaveOccurred())
	inv, err := controllerstest.NewInvitations()
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(inv.Close)
	deps.Namespace = controllerstest.OperatorNamespace
	deps.Registry = prometheus.NewRegistry()
	deps.DefaultRole = "Member"
	deps.Invitations, deps.Pages = inv.Config, inv.Pages
	r, err := controllers.Setup(mgr, deps)
	g.Expect(err).NotTo(HaveOccurred())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
	return r, inv
}

// declareLDAP makes the directory the default IdentityStore, its bind
// password in a Secret of the operator's namespace, and waits until it is
// Ready.
func declareLDAP(t *testing.T, c client.Client, slapd *ldaptest.Server) {
	t.Helper()
	g := NewWithT(t)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: controllerstest.OperatorNamespace}}
	g.Expect(client.IgnoreAlreadyExists(c.Create(t.Context(), ns))).To(Succeed())
	g.Expect(c.Create(t.Context(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: controllerstest.OperatorNamespace, Name: "ldap-bind"},
		StringData: map[string]string{"password": slapd.AdminPassword},
	})).To(Succeed())
	ids := controllerstest.EmbeddedDefault("ldap")
	ids.Spec.Embedded = nil
	ids.Spec.LDAP = &v1alpha1.LDAPStoreSpec{
		URL: slapd.URL, Insecure: true, BindDN: ldaptest.AdminDN,
		BindPasswordSecretRef: v1alpha1.SecretKeyReference{Name: "ldap-bind", Key: "password"},
		UsersDN:               ldaptest.UsersDN, GroupsDN: ldaptest.GroupsDN,
	}
	g.Expect(controllerstest.CreateStore(t.Context(), c, ids, 2*time.Minute)).To(Succeed())
}

func newNamespace(t *testing.T, c client.Client, prefix string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix}}
	if err := c.Create(t.Context(), ns); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	return ns.Name
}

// createUsers creates n Users user-NNNN in the namespace, eight at a time,
// and returns their addresses.
func createUsers(t *testing.T, c client.Client, ns string, n int) []string {
	t.Helper()
	emails := make([]string, n)
	next := make(chan int)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range next {
				name := fmt.Sprintf("user-%04d", i)
				emails[i] = name + "@" + ns + ".example.com"
				u := &v1alpha1.User{
					ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
					Spec:       v1alpha1.UserSpec{Email: emails[i], FirstName: "First", LastName: name},
				}
				if err := c.Create(context.Background(), u); err != nil {
					errs <- fmt.Errorf("creating User %s: %w", name, err)
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return emails
}

// userCounts lists the namespace's Users and counts them, those Ready and
// Invited, and the reasons of the Ready conditions of the others.
type userCounts struct {
	total, invited int
	reasons        map[string]int
	users          []v1alpha1.User
}

func countUsers(ctx context.Context, c client.Reader, ns string) (userCounts, error) {
	var list v1alpha1.UserList
	if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return userCounts{}, err
	}
	out := userCounts{total: len(list.Items), reasons: map[string]int{}, users: list.Items}
	for i := range list.Items {
		u := &list.Items[i]
		ready := meta.FindStatusCondition(u.Status.Conditions, v1alpha1.ConditionReady)
		switch {
		case ready != nil && ready.Status == metav1.ConditionTrue && u.Status.Phase == v1alpha1.UserInvited &&
			u.Status.ObservedGeneration == u.Generation:
			out.invited++
		case ready != nil:
			out.reasons[ready.Reason]++
		default:
			out.reasons["NoReadyCondition"]++
		}
	}
	return out, nil
}

// entriesByMail counts the directory's user entries by address, for the
// addresses of the namespace.
func entriesByMail(t *testing.T, slapd *ldaptest.Server, ns string) map[string]int {
	t.Helper()
	res, err := slapd.Dial(t).SearchWithPaging(ldapv3.NewSearchRequest(ldaptest.UsersDN, ldapv3.ScopeWholeSubtree, 0, 0, 0, false,
		"(mail=*@"+ldapv3.EscapeFilter(ns)+".example.com)", []string{"mail"}, nil), 500)
	if err != nil {
		t.Fatalf("listing the directory's entries: %v", err)
	}
	out := map[string]int{}
	for _, e := range res.Entries {
		out[strings.ToLower(e.GetAttributeValue("mail"))]++
	}
	return out
}

// invitationsByAddress counts the invitation emails the SMTP server
// received, by recipient.
func invitationsByAddress(t *testing.T, smtp *mailtest.Server) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, m := range smtp.Messages() {
		msg, err := mailtest.Parse(m.Raw)
		if err != nil {
			t.Fatalf("parsing an email: %v", err)
		}
		if msg.Header.Get("X-Roster-Message") != string(mail.KindInvitation) {
			continue
		}
		for _, to := range m.To {
			out[strings.ToLower(to)]++
		}
	}
	return out
}

// importFile is a file of n add-user rows for the namespace, and its
// addresses.
func importFile(ns string, n int) ([]string, string) {
	emails := make([]string, n)
	var b strings.Builder
	for i := range n {
		emails[i] = fmt.Sprintf("row-%04d@%s.example.com", i, ns)
		fmt.Fprintf(&b, "add-user,%s,First,Row %d\n", emails[i], i)
	}
	return emails, b.String()
}

// startImport creates an import of rows invited Users into ns and waits,
// up to within, until at least atLeast of them exist. It returns their
// addresses, the import, and how many existed when it looked. explain
// (a format and functions giving its arguments) is printed if they never
// do.
func startImport(t *testing.T, k8s client.Client, ns string, rows, atLeast int, within time.Duration, explain ...any) ([]string, *v1alpha1.UserImport, int) {
	t.Helper()
	g := NewWithT(t)
	emails, csv := importFile(ns, rows)
	imp := &v1alpha1.UserImport{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "people"},
		Spec:       v1alpha1.UserImportSpec{Source: v1alpha1.ImportSource{Inline: csv}, SendInvitations: true},
	}
	g.Expect(k8s.Create(t.Context(), imp)).To(Succeed())
	var created int
	g.Eventually(func(g Gomega) {
		var list v1alpha1.UserList
		g.Expect(k8s.List(t.Context(), &list, client.InNamespace(ns))).To(Succeed())
		created = len(list.Items)
		var now v1alpha1.UserImport
		g.Expect(k8s.Get(t.Context(), client.ObjectKeyFromObject(imp), &now)).To(Succeed())
		g.Expect(created).To(BeNumerically(">=", atLeast), "import status: %+v", now.Status)
	}, within, 20*time.Millisecond).Should(Succeed(), explained(explain)...)
	return emails, imp, created
}

// explained turns a format and functions giving its arguments into
// Gomega's description arguments, so the arguments are read only when the
// description is printed.
func explained(explain []any) []any {
	if len(explain) == 0 {
		return nil
	}
	return []any{func() string {
		args := make([]any, 0, len(explain)-1)
		for _, a := range explain[1:] {
			if f, ok := a.(func() string); ok {
				a = f()
			}
			args = append(args, a)
		}
		return fmt.Sprintf(explain[0].(string), args...)
	}}
}
