package main

import (
	"bytes"
	"context"
	"fmt"
	netmail "net/mail"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/controllers"
	"roster.dev/roster/controllers/controllerstest"
	"roster.dev/roster/internal/chunks"
	"roster.dev/roster/internal/invitation"
	"roster.dev/roster/internal/mail"
	"roster.dev/roster/internal/store/embedded"
	"roster.dev/roster/internal/testenv"
)

var (
	kubeconfig string
	k8s        client.Client
)

// TestMain runs a control plane and the UserImport and User controllers, so
// that the plugin's commands run against the real thing.
func TestMain(m *testing.M) { os.Exit(runSuite(m)) }

func runSuite(m *testing.M) int {
	env, cfg, err := testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	dir, err := os.MkdirTemp("", "kubectl-roster-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, env.KubeConfig, 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	scheme := testenv.Scheme()
	k8s, _ = client.New(cfg, client.Options{Scheme: scheme})
	mgr, err := controllerstest.NewManager(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// Users the plugin creates reach Invited: emails go to an outbox.
	emb, err := embedded.Open(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer emb.Close()
	invitations, err := outboxInvitations(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	_, err = controllers.Setup(mgr, controllers.Deps{
		Namespace:     controllerstest.OperatorNamespace,
		OpenStore:     controllerstest.StoreOpener(emb),
		Registry:      prometheus.NewRegistry(),
		DefaultRole:   "Member",
		ResyncPeriod:  time.Minute,
		ImportWorkers: 8,
		ImportSource:  controllers.SourceLoader{MaxBytes: 16 << 20, TempDir: dir},
		Invitations:   invitations,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = mgr.Start(ctx) }()
	if err := controllerstest.CreateStore(ctx, k8s, controllerstest.EmbeddedDefault("embedded"), time.Minute); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// outboxInvitations writes the emails to an outbox in dir.
func outboxInvitations(dir string) (*controllers.Invitations, error) {
	templates, err := mail.LoadTemplates("")
	if err != nil {
		return nil, err
	}
	outbox, err := mail.NewOutbox(filepath.Join(dir, "outbox"), &netmail.Address{Name: "Roster", Address: "roster@example.com"})
	if err != nil {
		return nil, err
	}
	return &controllers.Invitations{
		Templates: templates, Sender: outbox, PublicURL: &url.URL{Scheme: "http", Host: "localhost:8082"},
		ProductName: "Roster", InvitationTTL: 7 * 24 * time.Hour, ResetTTL: time.Hour,
		Metrics: invitation.NewMetrics(prometheus.NewRegistry()),
	}, nil
}

func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "plugin-"}}
	if err := k8s.Create(t.Context(), ns); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	return ns.Name
}

// roster runs `kubectl roster ARGS` in namespace ns.
func roster(t *testing.T, ns string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := NewRootCommand(genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	cmd.SetArgs(append([]string{"--kubeconfig", kubeconfig, "--namespace", ns}, args...))
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	err = cmd.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestImportExportRoundTrip(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	file := writeFile(t, "users.csv", strings.Join([]string{
		"action,username,firstName,lastName,role,groups,mobile,timeZone,country,locale",
		"add-user,ada@example.com,Ada,Lovelace,Admin,eng;ops,+447700900123,Europe/London,GB,en-GB",
		"add-user,grace@example.com,Grace,Hopper,,,,,US,",
		"add-user,=cmd@example.com,Formula,Person,,,,,,",
	}, "\n"))

	out, errOut, err := roster(t, ns, "import", file, "--skip-header", "--name", "first")
	g.Expect(err).NotTo(HaveOccurred(), out+errOut)
	g.Expect(out).To(ContainSubstring("Succeeded: 3 rows: 3 added"))
	g.Expect(errOut).To(ContainSubstring("3/3 rows"))

	var users v1alpha1.UserList
	g.Expect(k8s.List(t.Context(), &users, client.InNamespace(ns))).To(Succeed())
	g.Expect(users.Items).To(HaveLen(3))

	for _, format := range []string{"csv", "xlsx"} {
		t.Run(format, func(t *testing.T) {
			g := NewWithT(t)
			exported := filepath.Join(t.TempDir(), "export."+format)
			_, errOut, err := roster(t, ns, "export", exported, "--format", format)
			g.Expect(err).NotTo(HaveOccurred(), errOut)
			if format == "csv" {
				b, err := os.ReadFile(exported)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(string(b)).To(ContainSubstring("'=cmd@example.com"), "formula cells are neutralised")
			}
			out, errOut, err := roster(t, ns, "import", exported, "--skip-header", "--name", "again-"+format)
			g.Expect(err).NotTo(HaveOccurred(), out+errOut)
			g.Expect(out).To(ContainSubstring("Succeeded: 3 rows: 0 added, 0 updated, 0 removed, 3 unchanged"))
		})
	}
}

func TestImportShowsFailures(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	file := writeFile(t, "bad.csv", "add-user,ok@example.com,Ok,User\nadd-user,nope,Bad,Email\n")
	out, errOut, err := roster(t, ns, "import", file)
	g.Expect(err).NotTo(HaveOccurred(), out+errOut)
	g.Expect(out).To(ContainSubstring("PartiallySucceeded"))
	g.Expect(out).To(MatchRegexp(`ROW\s+EMAIL\s+MESSAGE`))
	g.Expect(out).To(MatchRegexp(`(?m)^2\s+`))

	header := writeFile(t, "header.csv", "action,username,firstName,lastName\nadd-user,h@example.com,H,I\n")
	out, _, err = roster(t, ns, "import", header)
	g.Expect(err).To(MatchError(ContainSubstring("failed")))
	g.Expect(out).To(ContainSubstring("set spec.skipHeader: true"))
}

func TestImportLargeFileInChunks(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	var b strings.Builder
	for i := 0; b.Len() < 2*chunks.Size+1000; i++ {
		fmt.Fprintf(&b, "add-user,person%06d@a-rather-long-domain-name.example.com,Person,Number%06d\n", i, i)
	}
	file := writeFile(t, "large.csv", b.String())
	out, errOut, err := roster(t, ns, "import", file, "--dry-run", "--name", "large")
	g.Expect(err).NotTo(HaveOccurred(), out+errOut)
	g.Expect(out).To(ContainSubstring("in 3 ConfigMap(s)"))
	g.Expect(out).To(ContainSubstring("Succeeded"))
	var cms corev1.ConfigMapList
	g.Expect(k8s.List(t.Context(), &cms, client.InNamespace(ns))).To(Succeed())
	owned := 0
	for _, cm := range cms.Items {
		if len(cm.OwnerReferences) == 1 && cm.OwnerReferences[0].Name == "large" {
			owned++
		}
	}
	g.Expect(owned).To(Equal(3), "the chunks belong to the import")
}

func TestTemplateIsAValidImport(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	// The template's update row changes a user who already exists.
	g.Expect(k8s.Create(t.Context(), &v1alpha1.User{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ana"},
		Spec:       v1alpha1.UserSpec{Email: "ana.silva@example.com", FirstName: "Ana", LastName: "Silva"},
	})).To(Succeed())
	for _, format := range []string{"csv", "xlsx"} {
		out, _, err := roster(t, ns, "template", "--format", format)
		g.Expect(err).NotTo(HaveOccurred())
		file := writeFile(t, "template."+format, out)
		out, errOut, err := roster(t, ns, "import", file, "--skip-header", "--dry-run", "--name", "tpl-"+format)
		g.Expect(err).NotTo(HaveOccurred(), out+errOut)
		g.Expect(out).To(ContainSubstring("Succeeded"), format)
		g.Expect(out).To(ContainSubstring(" 0 failed"), format)
	}
}

func TestBulkActions(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	for _, name := range []string{"a", "b", "c"} {
		team := "x"
		if name == "c" {
			team = "y"
		}
		u := &v1alpha1.User{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"team": team}},
			Spec:       v1alpha1.UserSpec{Email: name + "@" + ns + ".example.com"},
		}
		g.Expect(k8s.Create(t.Context(), u)).To(Succeed())
	}
	deactivated := func() []string {
		var list v1alpha1.UserList
		g.Expect(k8s.List(t.Context(), &list, client.InNamespace(ns))).To(Succeed())
		var out []string
		for _, u := range list.Items {
			if u.IsDeactivated() {
				out = append(out, u.Name)
			}
		}
		return out
	}

	out, _, err := roster(t, ns, "deactivate", "-l", "team=x")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).To(Equal("user/a deactivated\nuser/b deactivated\n"))
	g.Expect(deactivated()).To(ConsistOf("a", "b"))

	out, _, err = roster(t, ns, "reactivate", "a", "c")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).To(Equal("user/a reactivated\nuser/c unchanged\n"))
	g.Expect(deactivated()).To(ConsistOf("b"))

	for verb, key := range map[string]string{"reset-password": v1alpha1.ResetPasswordAnnotation, "resend-invitation": v1alpha1.ResendInvitationAnnotation} {
		out, _, err = roster(t, ns, verb, "--all")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(strings.Count(out, verb+" requested")).To(Equal(3))
		var list v1alpha1.UserList
		g.Expect(k8s.List(t.Context(), &list, client.InNamespace(ns))).To(Succeed())
		for _, u := range list.Items {
			g.Expect(u.Annotations).To(HaveKey(key))
		}
	}

	_, _, err = roster(t, ns, "deactivate")
	g.Expect(err).To(MatchError(ContainSubstring("--selector")))
	_, _, err = roster(t, ns, "deactivate", "-l", "team in (")
	g.Expect(err).To(MatchError(ContainSubstring("--selector")))
}
