// Package controllerstest runs the invitation machinery the way the manager
// does, for the integration tests of the controllers against real stores:
// emails over a real SMTP conversation to an in-process server, and the
// invitation pages on a loopback port.
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

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"roster.dev/roster/controllers"
	"roster.dev/roster/internal/invitation"
	"roster.dev/roster/internal/mail"
	"roster.dev/roster/internal/mail/mailtest"
	"roster.dev/roster/internal/password"
	"roster.dev/roster/internal/store"
	"roster.dev/roster/internal/web"
)

// CacheOptions caches only Roster's token Secrets, as the manager does.
func CacheOptions() cache.Options {
	return cache.Options{ByObject: map[client.Object]cache.ByObject{&corev1.Secret{}: {Label: invitation.SecretSelector()}}}
}

// Invitations is the SMTP server that receives the emails and the
// configuration that sends them, for a UserReconciler.
type Invitations struct {
	SMTP   *mailtest.Server
	Config *controllers.Invitations
}

// ServeInvitations starts the SMTP server and adds the invitation pages to
// the manager, on a free loopback port. The manager's cache needs
// CacheOptions; Close stops the SMTP server.
func ServeInvitations(mgr ctrl.Manager, st store.Store) (*Invitations, error) {
	smtp, err := mailtest.Start(false)
	if err != nil {
		return nil, err
	}
	inv, err := serve(mgr, st, smtp)
	if err != nil {
		_ = smtp.Close()
		return nil, err
	}
	return inv, nil
}

func serve(mgr ctrl.Manager, st store.Store, smtp *mailtest.Server) (*Invitations, error) {
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
	if err := web.IndexRecords(context.Background(), mgr.GetFieldIndexer()); err != nil {
		return nil, err
	}
	metrics := invitation.NewMetrics(prometheus.NewRegistry())
	pages, err := web.New(web.Config{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Store: st,
		Policy: password.Default(), ProductName: "Roster Test", PublicURL: publicURL,
		SubmissionsPerMinute: 1000, Metrics: metrics, Log: ctrl.Log.WithName("web"),
	})
	if err != nil {
		return nil, err
	}
	if err := mgr.Add(&web.Runnable{Listener: ln, Handler: pages}); err != nil {
		return nil, err
	}
	return &Invitations{SMTP: smtp, Config: &controllers.Invitations{
		Templates: templates, Sender: sender, PublicURL: publicURL, ProductName: "Roster Test",
		InvitationTTL: 7 * 24 * time.Hour, ResetTTL: time.Hour, Metrics: metrics,
	}}, nil
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
