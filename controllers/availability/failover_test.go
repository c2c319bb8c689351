package availability_test

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/controllers/controllerstest"
	"roster.dev/roster/internal/mail"
	"roster.dev/roster/internal/mail/mailtest"
	"roster.dev/roster/internal/naming"
	"roster.dev/roster/internal/store/ldap/ldaptest"
	"roster.dev/roster/internal/testenv"
)

const (
	// failoverRows is the import the leader dies in the middle of.
	failoverRows = 2000
	// leaseName is the Lease main.go elects its leader with.
	leaseName = "roster.iam.roster.dev"
	// takeoverGoal is the bound the standby should take over within, which
	// the default lease settings (15 s lease, 2 s retry period) meet: the
	// test prints the figure and asserts only a generous bound, so that a
	// loaded machine does not fail it.
	takeoverGoal  = 20 * time.Second
	takeoverBound = 40 * time.Second
)

// Two manager processes elect a leader, with the directory as their store.
// The leader is killed (SIGKILL) in the middle of a 2,000-row import with
// invitations: the standby takes over, the import finishes with no row
// applied twice, every User is Invited, no address gets more than two
// invitations, and the standby's password pages answer throughout.
func TestLeaderKilledMidImport(t *testing.T) {
	g := NewWithT(t)
	slapd := ldaptest.Start(t)
	env, _, k8s := controlPlane(t, false)
	bin := buildManager(t)
	smtp, err := mailtest.Start(false)
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = smtp.Close() })
	g.Expect(k8s.Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: controllerstest.OperatorNamespace}})).To(Succeed())

	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	g.Expect(os.WriteFile(kubeconfig, env.KubeConfig, 0o600)).To(Succeed())
	smtpPassword, smtpCA := filepath.Join(dir, "smtp-password"), filepath.Join(dir, "smtp-ca.pem")
	g.Expect(os.WriteFile(smtpPassword, []byte(mailtest.Password), 0o600)).To(Succeed())
	g.Expect(os.WriteFile(smtpCA, smtp.CAPEM, 0o600)).To(Succeed())
	common := []string{
		"--kubeconfig=" + kubeconfig, "--namespace=" + controllerstest.OperatorNamespace, "--leader-elect",
		"--metrics-bind-address=0", "--smtp-url=" + smtp.URL, "--smtp-password-file=" + smtpPassword,
		"--smtp-ca-file=" + smtpCA, "--zap-log-level=info",
	}

	leader := startManager(t, bin, filepath.Join(dir, "a"), common)
	var leaderID string
	g.Eventually(func(g Gomega) {
		var lease coordinationv1.Lease
		g.Expect(k8s.Get(t.Context(), client.ObjectKey{Namespace: controllerstest.OperatorNamespace, Name: leaseName}, &lease)).To(Succeed())
		g.Expect(lease.Spec.HolderIdentity).NotTo(BeNil())
		leaderID = *lease.Spec.HolderIdentity
	}, time.Minute, tick).Should(Succeed())
	standby := startManager(t, bin, filepath.Join(dir, "b"), common)
	declareLDAP(t, k8s, slapd)

	ns := newNamespace(t, k8s, "failover-")
	// Killed between the first progress write (500 rows) and the second,
	// so that the standby meets rows the leader applied after its last
	// progress write.
	emails, imp, created := startImport(t, k8s, ns, failoverRows, 750, 3*time.Minute, "the leader's log:\n%s", leader.logTail)
	var link string
	g.Eventually(func(g Gomega) {
		link = invitationLink(g, smtp, standby.web)
	}, time.Minute, tick).Should(Succeed())

	g.Expect(leader.cmd.Process.Signal(syscall.SIGKILL)).To(Succeed())
	killed := time.Now()
	t.Logf("The leader was killed with %d of %d Users created", created, failoverRows)
	g.Expect(created).To(BeNumerically("<", failoverRows), "the import finished before the kill: nothing was tested")
	pages := pollPages(standby.web, link)

	var newID string
	g.Eventually(func(g Gomega) {
		var lease coordinationv1.Lease
		g.Expect(k8s.Get(t.Context(), client.ObjectKey{Namespace: controllerstest.OperatorNamespace, Name: leaseName}, &lease)).To(Succeed())
		g.Expect(lease.Spec.HolderIdentity).NotTo(BeNil())
		newID = *lease.Spec.HolderIdentity
		g.Expect(newID).NotTo(Equal(leaderID))
	}, 2*takeoverBound, 50*time.Millisecond).Should(Succeed())
	takeover := time.Since(killed)
	t.Logf("The standby took the lease %s after the kill (goal %s; lease 15s, renew deadline 10s, retry period 2s)",
		takeover.Round(100*time.Millisecond), takeoverGoal)
	g.Expect(takeover).To(BeNumerically("<", takeoverBound))

	done := &v1alpha1.UserImport{}
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(t.Context(), client.ObjectKeyFromObject(imp), done)).To(Succeed())
		g.Expect(done.Status.Phase).To(BeElementOf(v1alpha1.ImportSucceeded, v1alpha1.ImportPartiallySucceeded, v1alpha1.ImportFailed))
	}, 5*time.Minute, tick).Should(Succeed(), "the standby's log:\n%s", standby.logTail())
	t.Logf("The import finished %s after the kill", time.Since(killed).Round(100*time.Millisecond))
	g.Expect(done.Status.Phase).To(Equal(v1alpha1.ImportSucceeded), "conditions %+v, failures %+v", done.Status.Conditions, done.Status.Failures)
	g.Expect(done.Status.Rows).To(Equal(v1alpha1.ImportRowCounts{Total: failoverRows, Processed: failoverRows, Added: failoverRows}))

	var counts userCounts
	g.Eventually(func(g Gomega) {
		counts, err = countUsers(t.Context(), k8s, ns)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(counts.invited).To(Equal(failoverRows), "not Ready by reason: %v", counts.reasons)
	}, 5*time.Minute, tick).Should(Succeed(), "the standby's log:\n%s", standby.logTail())
	t.Logf("Every User Invited %s after the kill", time.Since(killed).Round(100*time.Millisecond))
	served, failed := pages.stop()
	t.Logf("The standby's pages answered %d requests during the failover, %d of them not with 200 OK", served, len(failed))
	g.Expect(failed).To(BeEmpty(), "the standby's pages failed")
	g.Expect(served).To(BeNumerically(">=", 20), "the pages were hardly asked")

	g.Expect(counts.total).To(Equal(failoverRows), "one User per row")
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
	entries := entriesByMail(t, slapd, ns)
	g.Expect(entries).To(HaveLen(failoverRows), "one entry per address, no others")
	for _, e := range emails {
		g.Expect(entries).To(HaveKeyWithValue(e, 1), "entries for %s", e)
	}
	invites := invitationsByAddress(t, smtp)
	twice := 0
	for _, e := range emails {
		g.Expect(invites[e]).To(BeNumerically(">=", 1), "no invitation to %s", e)
		g.Expect(invites[e]).To(BeNumerically("<=", 2), "invitations to %s", e)
		if invites[e] == 2 {
			twice++
		}
	}
	t.Logf("%d of %d addresses got a second invitation", twice, failoverRows)
	for _, line := range standby.logLines("lease", "leader") {
		t.Logf("standby: %s", line)
	}
}

// A leader stopped gracefully (SIGTERM, as in a rolling update) releases
// the Lease as it exits, so that the standby need not wait the lease out.
func TestGracefulStopReleasesTheLease(t *testing.T) {
	g := NewWithT(t)
	env, _, k8s := controlPlane(t, false)
	bin := buildManager(t)
	g.Expect(k8s.Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: controllerstest.OperatorNamespace}})).To(Succeed())
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	g.Expect(os.WriteFile(kubeconfig, env.KubeConfig, 0o600)).To(Succeed())
	common := []string{"--kubeconfig=" + kubeconfig, "--namespace=" + controllerstest.OperatorNamespace, "--leader-elect",
		"--metrics-bind-address=0", "--zap-log-level=info"}
	holder := func(g Gomega) string {
		var lease coordinationv1.Lease
		g.Expect(k8s.Get(t.Context(), client.ObjectKey{Namespace: controllerstest.OperatorNamespace, Name: leaseName}, &lease)).To(Succeed())
		if lease.Spec.HolderIdentity == nil {
			return ""
		}
		return *lease.Spec.HolderIdentity
	}

	leader := startManager(t, bin, filepath.Join(dir, "a"), common)
	var leaderID string
	g.Eventually(func(g Gomega) {
		leaderID = holder(g)
		g.Expect(leaderID).NotTo(BeEmpty())
	}, time.Minute, tick).Should(Succeed())
	startManager(t, bin, filepath.Join(dir, "b"), common)

	g.Expect(leader.cmd.Process.Signal(syscall.SIGTERM)).To(Succeed())
	stopped := time.Now()
	<-leader.done
	// Released, or already taken by the standby: never still the leader's.
	g.Expect(holder(g)).NotTo(Equal(leaderID), "the stopped leader kept the Lease:\n%s", leader.logTail())
	g.Eventually(func(g Gomega) {
		g.Expect(holder(g)).NotTo(BeEmpty())
	}, time.Minute, 50*time.Millisecond).Should(Succeed())
	t.Logf("The standby took the Lease %s after the leader was told to stop (lease 15s, retry period 2s)",
		time.Since(stopped).Round(100*time.Millisecond))
}

// buildManager builds the manager's binary from the repository's main
// package.
func buildManager(t *testing.T) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		if required() {
			t.Fatalf("the go command is required under CI=true to build the manager: %v", err)
		}
		t.Skipf("no go command to build the manager with: %v", err)
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "manager")
	cmd := exec.Command(gobin, "build", "-o", bin, ".")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the manager: %v\n%s", err, out)
	}
	return bin
}

// managerProcess is a manager binary running against the control plane.
type managerProcess struct {
	cmd  *exec.Cmd
	log  *lockedBuffer
	web  string // host:port of its pages
	done chan struct{}
}

// startManager runs the manager with its own data folder and addresses, and
// waits until it answers its readiness probe; a standby does too. It is
// stopped when the test ends, unless it was killed first.
func startManager(t *testing.T, bin, dir string, args []string) *managerProcess {
	t.Helper()
	probe, web := freeAddr(t), freeAddr(t)
	m := &managerProcess{log: &lockedBuffer{}, web: web, done: make(chan struct{})}
	m.cmd = exec.Command(bin, append([]string{"--data-dir=" + dir, "--health-probe-bind-address=" + probe,
		"--web-bind-address=" + web, "--public-url=http://" + web}, args...)...)
	m.cmd.Stdout, m.cmd.Stderr = m.log, m.log
	if err := m.cmd.Start(); err != nil {
		t.Fatalf("starting the manager: %v", err)
	}
	go func() { _ = m.cmd.Wait(); close(m.done) }()
	t.Cleanup(func() {
		_ = m.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-m.done:
		case <-time.After(30 * time.Second):
			_ = m.cmd.Process.Kill()
			<-m.done
		}
	})
	NewWithT(t).Eventually(func(g Gomega) {
		select {
		case <-m.done:
			g.Expect("exited").To(Equal("running"), "the manager exited:\n%s", m.logTail())
		default:
		}
		resp, err := http.Get("http://" + probe + "/readyz")
		g.Expect(err).NotTo(HaveOccurred())
		_ = resp.Body.Close()
		g.Expect(resp.StatusCode).To(Equal(http.StatusOK))
	}, time.Minute, tick).Should(Succeed(), "the manager's log:\n%s", m.logTail())
	return m
}

func (m *managerProcess) logTail() string {
	lines := strings.Split(strings.TrimSpace(m.log.String()), "\n")
	return strings.Join(lines[max(0, len(lines)-30):], "\n")
}

// logLines are the lines of the log that mention any of the words.
func (m *managerProcess) logLines(words ...string) []string {
	var out []string
	for _, line := range strings.Split(m.log.String(), "\n") {
		for _, w := range words {
			if strings.Contains(line, w) {
				out = append(out, line)
				break
			}
		}
	}
	return out
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// invitationLink is the link of an invitation received so far, pointed at
// the pages on web.
func invitationLink(g Gomega, smtp *mailtest.Server, web string) string {
	for _, m := range smtp.Messages() {
		msg, err := mailtest.Parse(m.Raw)
		g.Expect(err).NotTo(HaveOccurred())
		if links := mailtest.Links(msg.Text); msg.Header.Get("X-Roster-Message") == string(mail.KindInvitation) && len(links) > 0 {
			u, err := url.Parse(links[0])
			g.Expect(err).NotTo(HaveOccurred())
			u.Host = web
			return u.String()
		}
	}
	g.Expect("").NotTo(BeEmpty(), "no invitation yet")
	return ""
}

// pagePoller asks the pages for their home page and an invitation's page,
// ten times a second, until stopped.
type pagePoller struct {
	stopped chan struct{}
	done    chan struct{}
	served  atomic.Int64
	mu      sync.Mutex
	failed  []string
}

func pollPages(web, link string) *pagePoller {
	p := &pagePoller{stopped: make(chan struct{}), done: make(chan struct{})}
	browser := &http.Client{Timeout: 5 * time.Second}
	go func() {
		defer close(p.done)
		every := time.NewTicker(100 * time.Millisecond)
		defer every.Stop()
		for {
			for _, u := range []string{"http://" + web + "/", link} {
				resp, err := browser.Get(u)
				p.served.Add(1)
				var failure string
				switch {
				case err != nil:
					failure = err.Error()
				case resp.StatusCode != http.StatusOK:
					failure = fmt.Sprintf("%s answered %s", u, resp.Status)
				}
				if resp != nil {
					_ = resp.Body.Close()
				}
				if failure != "" {
					p.mu.Lock()
					p.failed = append(p.failed, time.Now().Format(time.StampMilli)+": "+failure)
					p.mu.Unlock()
				}
			}
			select {
			case <-p.stopped:
				return
			case <-every.C:
			}
		}
	}()
	return p
}

// stop ends the polling and returns the requests made and the failures.
func (p *pagePoller) stop() (int64, []string) {
	close(p.stopped)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.served.Load(), p.failed
}
