// Package controllerstest builds the manager the way main does, for the
// integration tests of the controllers against real stores, with the
// invitation machinery around it: emails over a real SMTP conversation to
// an in-process server, and the invitation pages on a loopback port.
package controllerstest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	netmail "net/mail"
	"net/url"
	"regexp"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"roster.dev/roster/internal/testenv"

	"github.com/prometheus/client_golang/prometheus"
	ctrl "sigs.k8s.io/controller-runtime"

	"roster.dev/roster/controllers"
	"roster.dev/roster/internal/invitation"
	"roster.dev/roster/internal/mail"
	"roster.dev/roster/internal/mail/mailtest"
	"roster.dev/roster/internal/password"
	"roster.dev/roster/internal/web"
)

// OperatorNamespace is the operator's own namespace in the suites: store
// credentials and token records live there.
const OperatorNamespace = "roster-system"

// NewManager builds a manager on the control plane as main does: the
// controllers' one cache configuration, without metrics or probes, and
// creates the operator's namespace. Set it up with controllers.Setup, with
// Deps.Namespace OperatorNamespace.
func NewManager(cfg *rest.Config) (ctrl.Manager, error) {
	c, err := client.New(cfg, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		return nil, err
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: OperatorNamespace}}
	if err := c.Create(context.Background(), ns); client.IgnoreAlreadyExists(err) != nil {
		return nil, fmt.Errorf("creating namespace %s: %w", OperatorNamespace, err)
	}
	skip := true
	return ctrl.NewManager(cfg, ctrl.Options{
		Scheme:  testenv.Scheme(),
		Metrics: metricsserver.Options{BindAddress: "0"},
		Cache:   controllers.CacheOptions(OperatorNamespace),
		// Controller names are unique per process, for their metrics; a
		// test binary may run one manager after another.
		Controller: config.Controller{SkipNameValidation: &skip},
	})
}

// Invitations is the SMTP server that receives the emails, the
// configuration that sends them and the pages on a loopback port, for
// controllers.Deps.
type Invitations struct {
	SMTP   *mailtest.Server
	Config *controllers.Invitations
	Pages  *controllers.Pages
	// URL is where the pages are.
	URL string
}

// NewInvitations starts the SMTP server and opens the pages' listener;
// Close stops the SMTP server, and the manager the pages.
func NewInvitations() (*Invitations, error) {
	smtp, err := mailtest.Start(false)
	if err != nil {
		return nil, err
	}
	inv, err := newInvitations(smtp)
	if err != nil {
		_ = smtp.Close()
		return nil, err
	}
	return inv, nil
}

func newInvitations(smtp *mailtest.Server) (*Invitations, error) {
	sender, err := mail.NewSMTP(mail.SMTPConfig{
		URL: smtp.URL, Password: mailtest.Password, TLSConfig: smtp.ClientTLS,
		From: &netmail.Address{Name: "Roster Test", Address: "roster@example.com"}, Timeout: 10 * time.Second,
	})
	if err != nil {
		return nil, err
	}
	templates, err := mail.LoadTemplates("")
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	publicURL := &url.URL{Scheme: "http", Host: ln.Addr().String()}
	metrics := invitation.NewMetrics(prometheus.NewRegistry())
	return &Invitations{
		SMTP: smtp,
		URL:  publicURL.String(),
		Config: &controllers.Invitations{
			Templates: templates, Sender: sender, PublicURL: publicURL, ProductName: "Roster Test",
			InvitationTTL: 7 * 24 * time.Hour, ResetTTL: time.Hour, Metrics: metrics,
		},
		Pages: &controllers.Pages{Listener: ln, Config: web.Config{
			Policy: password.Default(), ProductName: "Roster Test", PublicURL: publicURL,
			SubmissionsPerMinute: 1000, Metrics: metrics, Log: ctrl.Log.WithName("web"),
			// Each test's Browser comes from an address of its own, so that
			// failed sign-ins of one test do not limit another's.
			ClientIPHeader: "X-Forwarded-For",
		}},
	}, nil
}

// Close stops the SMTP server.
func (i *Invitations) Close() { _ = i.SMTP.Close() }

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// Accept waits for the invitation emailed to the address, opens its link
// and sets the password on the page, as the invitee does.
func (i *Invitations) Accept(t testing.TB, email, pw string, timeout time.Duration) {
	t.Helper()
	link, err := i.awaitLink(email, timeout)
	if err != nil {
		t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	status, body, err := fetch(browser.Get(link))
	if err != nil {
		t.Fatalf("opening the invitation link: %v", err)
	}
	csrf := csrfField.FindSubmatch(body)
	if status != http.StatusOK || csrf == nil {
		t.Fatalf("the invitation page answered %d without a form", status)
	}
	status, body, err = fetch(browser.PostForm(link, url.Values{"csrf": {string(csrf[1])}, "password": {pw}, "confirm": {pw}}))
	if err != nil {
		t.Fatalf("posting the password: %v", err)
	}
	if status != http.StatusOK {
		t.Fatalf("the invitation page refused the password with %d:\n%s", status, body)
	}
}

// Link waits for the invitation emailed to the address and returns its
// link.
func (i *Invitations) Link(t testing.TB, email string, timeout time.Duration) string {
	t.Helper()
	link, err := i.awaitLink(email, timeout)
	if err != nil {
		t.Fatal(err)
	}
	return link
}

// awaitLink polls the SMTP server for the address's invitation link.
func (i *Invitations) awaitLink(email string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		for _, m := range i.SMTP.MessagesTo(email) {
			msg, err := mailtest.Parse(m.Raw)
			if err != nil {
				return "", fmt.Errorf("parsing the email to %s: %w", email, err)
			}
			if links := mailtest.Links(msg.Text); msg.Header.Get("X-Roster-Message") == string(mail.KindInvitation) && len(links) > 0 {
				return links[0], nil
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no invitation for %s within %s", email, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func fetch(resp *http.Response, err error) (int, []byte, error) {
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}
