package controllers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/controllers"
	"roster.dev/roster/controllers/controllerstest"
	"roster.dev/roster/internal/invitation"
	"roster.dev/roster/internal/mail/mailtest"
	"roster.dev/roster/internal/store"
	"roster.dev/roster/internal/store/embedded"
	"roster.dev/roster/internal/testenv"
)

// Passwords the tests choose, so that the last test can look for them where
// they must never appear.
var (
	passwordsMu   sync.Mutex
	usedPasswords []string
)

func choose(pw string) string {
	passwordsMu.Lock()
	usedPasswords = append(usedPasswords, pw)
	passwordsMu.Unlock()
	return pw
}

// email is a parsed message the SMTP server received.
type email struct {
	mailtest.Parsed
	link string
}

// emailsTo returns the messages of a kind ("invitation" or "reset") sent to
// the address, parsed, with the link each carries.
func emailsTo(g Gomega, addr, kind string) []email {
	var out []email
	for _, m := range smtpServer.MessagesTo(addr) {
		p, err := mailtest.Parse(m.Raw)
		g.Expect(err).NotTo(HaveOccurred())
		if p.Header.Get("X-Roster-Message") != kind {
			continue
		}
		e := email{Parsed: p}
		for _, l := range mailtest.Links(p.Text) {
			if strings.HasPrefix(l, webURL+"/") {
				e.link = l
				break
			}
		}
		g.Expect(e.link).NotTo(BeEmpty(), "the %s email holds no link to the pages", kind)
		out = append(out, e)
	}
	return out
}

// waitForEmails waits until exactly n emails of the kind were sent to addr
// and returns them.
func waitForEmails(t *testing.T, addr, kind string, n int) []email {
	t.Helper()
	var got []email
	NewWithT(t).Eventually(func(g Gomega) {
		got = emailsTo(g, addr, kind)
		g.Expect(got).To(HaveLen(n))
	}, timeout, tick).Should(Succeed())
	return got
}

// settle lets the store-wide drift pass run twice more and wakes every
// User in the namespace three times as a pass that found a difference
// would, waiting for each reconcile, so that a test can say something did
// not happen on a resync.
func settle(t *testing.T, ns string) {
	t.Helper()
	g := NewWithT(t)
	complete := reconcilers.Drift.Metrics.Passes("embedded", "complete") + 2
	g.Eventually(func() float64 { return reconcilers.Drift.Metrics.Passes("embedded", "complete") }, timeout, tick).
		Should(BeNumerically(">=", complete))
	var users v1alpha1.UserList
	g.Expect(k8s.List(t.Context(), &users, client.InNamespace(ns))).To(Succeed())
	for range 3 {
		n := passes.get(ns) + len(users.Items)
		for i := range users.Items {
			wake := &v1alpha1.User{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: users.Items[i].Name}}
			select {
			case reconcilers.Drift.Events() <- event.GenericEvent{Object: wake}:
			case <-t.Context().Done():
				t.Fatal(t.Context().Err())
			}
		}
		g.Eventually(func() int { return passes.get(ns) }, timeout, tick).Should(BeNumerically(">=", n))
	}
}

func invitationCondition(u *v1alpha1.User) *metav1.Condition {
	return meta.FindStatusCondition(u.Status.Conditions, v1alpha1.ConditionInvitation)
}

func hasInvitationReason(reason string) func(Gomega, *v1alpha1.User) {
	return func(g Gomega, u *v1alpha1.User) {
		c := invitationCondition(u)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Reason).To(Equal(reason))
	}
}

func eventReasons(g Gomega, ns, name string) []string {
	reasons, err := testenv.EventReasons(context.Background(), k8s, ns, name)
	g.Expect(err).NotTo(HaveOccurred())
	return reasons
}

// page is a visit to the pages without a browser: a cookie jar and the
// last form's CSRF token.
type page struct {
	t      *testing.T
	client *http.Client
	csrf   string
}

func newPage(t *testing.T) *page {
	jar, _ := cookiejar.New(nil)
	return &page{t: t, client: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (p *page) get(link string) (int, string) {
	p.t.Helper()
	resp, err := p.client.Get(link)
	if err != nil {
		p.t.Fatalf("GET the link: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if m := csrfRE.FindSubmatch(body); m != nil {
		p.csrf = string(m[1])
	}
	return resp.StatusCode, string(body)
}

func (p *page) post(link, pw, confirm string) (int, string) {
	p.t.Helper()
	resp, err := p.client.PostForm(link, url.Values{"csrf": {p.csrf}, "password": {pw}, "confirm": {confirm}})
	if err != nil {
		p.t.Fatalf("POST the form: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func tokenSecret(link string) string {
	i := strings.LastIndex(link, ".")
	return link[i+1:]
}

func TestInvitationIsSentOnceAndAccepted(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	addr := "ada@" + ns + ".example.com"
	user := newUser(ns, "ada", addr)
	user.Spec.TimeZone = "Europe/Berlin"
	g.Expect(k8s.Create(t.Context(), user)).To(Succeed())

	got := waitFor(t, ns, "ada", func(g Gomega, u *v1alpha1.User) {
		g.Expect(u.Status.Phase).To(Equal(v1alpha1.UserInvited))
		g.Expect(u.Status.Invitation).NotTo(BeNil())
		g.Expect(u.Status.Invitation.SendCount).To(Equal(int32(1)))
		hasInvitationReason(controllers.ReasonInvitationSent)(g, u)
	})
	inv := got.Status.Invitation
	g.Expect(inv.SentAt).NotTo(BeNil())
	g.Expect(inv.ExpiresAt.Sub(inv.SentAt.Time)).To(BeNumerically("~", 7*24*time.Hour, time.Second))
	g.Expect(inv.AcceptedAt).To(BeNil())

	emails := waitForEmails(t, addr, "invitation", 1)
	msg := emails[0]
	g.Expect(msg.Subject).To(ContainSubstring("Roster Test"))
	g.Expect(msg.Text).To(ContainSubstring("Hello Ada"))
	g.Expect(msg.Header.Get("To")).To(Equal(`"Ada Lovelace" <`+addr+`>`), "the first email names the person too")
	g.Expect(msg.Text).To(ContainSubstring("CET"), "the expiry is in the user's time zone")
	g.Expect(msg.HTML).To(ContainSubstring(msg.link))
	g.Expect(msg.link).To(HavePrefix(webURL + "/invitation/" + string(got.UID) + "."))

	// The cluster keeps a hash of the token in a Secret of the operator's
	// namespace, where tenants cannot write, labelled with the User it
	// belongs to, and nothing from which the link could be rebuilt.
	secret := &corev1.Secret{}
	g.Expect(k8s.Get(t.Context(), invitation.SecretKey(controllerstest.OperatorNamespace, got, invitation.PurposeInvitation), secret)).To(Succeed())
	owner, uid := invitation.Owner(secret)
	g.Expect(owner).To(Equal(client.ObjectKeyFromObject(got)))
	g.Expect(uid).To(Equal(got.UID))
	g.Expect(secret.Data).To(HaveKey("tokenHash"))
	for k, v := range secret.Data {
		g.Expect(string(v)).NotTo(ContainSubstring(tokenSecret(msg.link)), "Secret key %s", k)
	}
	g.Eventually(func(g Gomega) []string { return eventReasons(g, ns, "ada") }, timeout, tick).Should(ContainElement(controllers.ReasonInvitationSent))

	// Resyncs do not send it again.
	settle(t, ns)
	waitForEmails(t, addr, "invitation", 1)

	// The person follows the link: a weak password is refused with every
	// unmet rule listed, a mismatch is refused, a strong one is accepted.
	p := newPage(t)
	status, body := p.get(msg.link)
	g.Expect(status).To(Equal(http.StatusOK))
	g.Expect(body).To(ContainSubstring("Accept your invitation"))
	g.Expect(body).To(ContainSubstring(addr))
	status, body = p.post(msg.link, "weak", "weak")
	g.Expect(status).To(Equal(http.StatusUnprocessableEntity), body)
	for _, rule := range []string{"At least 10 characters", "An uppercase letter", "A digit", "A special character"} {
		g.Expect(body).To(ContainSubstring(rule))
	}
	strong := choose("Analytical-Engine-1843")
	status, body = p.post(msg.link, strong, strong+"x")
	g.Expect(status).To(Equal(http.StatusUnprocessableEntity))
	g.Expect(body).To(ContainSubstring("do not match"))
	status, body = p.post(msg.link, strong, strong)
	g.Expect(status).To(Equal(http.StatusOK), body)
	g.Expect(body).To(ContainSubstring("all set"))

	got = waitFor(t, ns, "ada", func(g Gomega, u *v1alpha1.User) {
		g.Expect(u.Status.Phase).To(Equal(v1alpha1.UserActive))
		g.Expect(u.Status.Invitation.AcceptedAt).NotTo(BeNil())
		hasInvitationReason(controllers.ReasonInvitationAccepted)(g, u)
	})
	g.Expect(readyCondition(got).Status).To(Equal(metav1.ConditionTrue))

	// The link no longer works.
	status, body = newPage(t).get(msg.link)
	g.Expect(status).To(Equal(http.StatusGone))
	g.Expect(body).To(ContainSubstring("already been used"))
	g.Expect(body).NotTo(ContainSubstring("<form"))

	// The password is in the store, and a login shows in the status.
	_, err := emb.Authenticate(t.Context(), addr, strong)
	g.Expect(err).NotTo(HaveOccurred())
	waitFor(t, ns, "ada", func(g Gomega, u *v1alpha1.User) { g.Expect(u.Status.LastLoginAt).NotTo(BeNil()) })
	waitForEmails(t, addr, "invitation", 1)
}

func TestResendInvitationVoidsTheOldLink(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	addr := "grace@" + ns + ".example.com"
	g.Expect(k8s.Create(t.Context(), newUser(ns, "grace", addr))).To(Succeed())
	first := waitForEmails(t, addr, "invitation", 1)[0]

	annotate(t, ns, "grace", v1alpha1.ResendInvitationAnnotation, "2026-03-02T10:00:00Z")
	waitFor(t, ns, "grace", func(g Gomega, u *v1alpha1.User) {
		g.Expect(u.Status.Invitation.SendCount).To(Equal(int32(2)))
		g.Expect(u.Status.LastHandledResendInvitation).To(Equal("2026-03-02T10:00:00Z"))
	})
	second := waitForEmails(t, addr, "invitation", 2)[1]
	g.Expect(second.link).NotTo(Equal(first.link))

	status, body := newPage(t).get(first.link)
	g.Expect(status).To(Equal(http.StatusGone))
	g.Expect(body).To(ContainSubstring("no longer valid"))
	status, _ = newPage(t).get(second.link)
	g.Expect(status).To(Equal(http.StatusOK))

	// The same value again asks for nothing.
	settle(t, ns)
	waitForEmails(t, addr, "invitation", 2)
}

func TestInviteFalseRevokesTheInvitation(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	addr := "linus@" + ns + ".example.com"
	g.Expect(k8s.Create(t.Context(), newUser(ns, "linus", addr))).To(Succeed())
	link := waitForEmails(t, addr, "invitation", 1)[0].link

	update(t, ns, "linus", func(u *v1alpha1.User) { u.Spec.Invite = ptr.To(false) })
	waitFor(t, ns, "linus", hasInvitationReason(controllers.ReasonInvitationRevoked))
	status, _ := newPage(t).get(link)
	g.Expect(status).To(Equal(http.StatusGone))
	g.Eventually(func(g Gomega) []string { return eventReasons(g, ns, "linus") }, timeout, tick).Should(ContainElement(controllers.ReasonInvitationRevoked))

	// Wanting it again sends a fresh one.
	update(t, ns, "linus", func(u *v1alpha1.User) { u.Spec.Invite = ptr.To(true) })
	waitFor(t, ns, "linus", hasInvitationReason(controllers.ReasonInvitationSent))
	fresh := waitForEmails(t, addr, "invitation", 2)[1]
	status, _ = newPage(t).get(fresh.link)
	g.Expect(status).To(Equal(http.StatusOK))
}

func TestNoInvitationWhenInviteIsFalse(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	addr := "quiet@" + ns + ".example.com"
	u := newUser(ns, "quiet", addr)
	u.Spec.Invite = ptr.To(false)
	g.Expect(k8s.Create(t.Context(), u)).To(Succeed())
	got := waitFor(t, ns, "quiet", hasInvitationReason(controllers.ReasonInvitationDisabled))
	g.Expect(got.Status.Phase).To(Equal(v1alpha1.UserInvited))
	g.Expect(got.Status.Invitation).To(BeNil())
	settle(t, ns)
	g.Expect(smtpServer.MessagesTo(addr)).To(BeEmpty())
}

func TestExpiredInvitationIsResentOnlyOnRequest(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	addr := "late@" + ns + ".example.com"
	g.Expect(k8s.Create(t.Context(), newUser(ns, "late", addr))).To(Succeed())
	link := waitForEmails(t, addr, "invitation", 1)[0].link
	got := waitFor(t, ns, "late", hasInvitationReason(controllers.ReasonInvitationSent))

	// Let a week pass, as far as the record is concerned.
	key := invitation.SecretKey(controllerstest.OperatorNamespace, got, invitation.PurposeInvitation)
	g.Eventually(func(g Gomega) {
		secret := &corev1.Secret{}
		g.Expect(k8s.Get(t.Context(), key, secret)).To(Succeed())
		rec, err := invitation.ReadRecord(secret)
		g.Expect(err).NotTo(HaveOccurred())
		rec.ExpiresAt = time.Now().Add(-time.Minute)
		rec.WriteTo(secret)
		g.Expect(k8s.Update(t.Context(), secret)).To(Succeed())
	}, timeout, tick).Should(Succeed())

	got = waitFor(t, ns, "late", hasInvitationReason(controllers.ReasonInvitationExpired))
	g.Expect(invitationCondition(got).Message).To(ContainSubstring(v1alpha1.ResendInvitationAnnotation))
	g.Expect(got.Status.Phase).To(Equal(v1alpha1.UserInvited))
	status, body := newPage(t).get(link)
	g.Expect(status).To(Equal(http.StatusGone))
	g.Expect(body).To(ContainSubstring("expired"))

	settle(t, ns)
	waitForEmails(t, addr, "invitation", 1)

	annotate(t, ns, "late", v1alpha1.ResendInvitationAnnotation, "again")
	waitFor(t, ns, "late", hasInvitationReason(controllers.ReasonInvitationSent))
	fresh := waitForEmails(t, addr, "invitation", 2)[1]
	status, _ = newPage(t).get(fresh.link)
	g.Expect(status).To(Equal(http.StatusOK))
}

func TestPasswordReset(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	addr := "barbara@" + ns + ".example.com"
	g.Expect(k8s.Create(t.Context(), newUser(ns, "barbara", addr))).To(Succeed())

	// Before the user is Active, a reset is declined, not kept waiting.
	waitForEmails(t, addr, "invitation", 1)
	annotate(t, ns, "barbara", v1alpha1.ResetPasswordAnnotation, "too-early")
	waitFor(t, ns, "barbara", func(g Gomega, u *v1alpha1.User) {
		g.Expect(u.Status.LastHandledResetPassword).To(Equal("too-early"))
	})
	g.Eventually(func(g Gomega) []string { return eventReasons(g, ns, "barbara") }, timeout, tick).Should(ContainElement(controllers.ReasonPasswordResetNotSent))
	g.Expect(emailsTo(g, addr, "reset")).To(BeEmpty())

	// Accept the invitation, then ask for a reset.
	link := waitForEmails(t, addr, "invitation", 1)[0].link
	p := newPage(t)
	p.get(link)
	first := choose("Liskov-Substitution-87")
	status, _ := p.post(link, first, first)
	g.Expect(status).To(Equal(http.StatusOK))
	waitFor(t, ns, "barbara", hasPhase(v1alpha1.UserActive))

	annotate(t, ns, "barbara", v1alpha1.ResetPasswordAnnotation, "2026-03-02T11:00:00Z")
	got := waitFor(t, ns, "barbara", func(g Gomega, u *v1alpha1.User) {
		g.Expect(u.Status.LastHandledResetPassword).To(Equal("2026-03-02T11:00:00Z"))
		g.Expect(u.Status.PasswordResetAt).NotTo(BeNil())
	})
	g.Expect(got.Status.Phase).To(Equal(v1alpha1.UserActive))
	reset := waitForEmails(t, addr, "reset", 1)[0]
	g.Expect(reset.Subject).To(ContainSubstring("1 hour"))
	g.Expect(reset.link).To(HavePrefix(webURL + "/reset/"))
	g.Eventually(func(g Gomega) []string { return eventReasons(g, ns, "barbara") }, timeout, tick).Should(ContainElement(controllers.ReasonPasswordResetSent))

	// The old password works until the new one is chosen.
	_, err := emb.Authenticate(t.Context(), addr, first)
	g.Expect(err).NotTo(HaveOccurred())
	p = newPage(t)
	status, body := p.get(reset.link)
	g.Expect(status).To(Equal(http.StatusOK))
	g.Expect(body).To(ContainSubstring("Choose a new password"))
	second := choose("Abstraction-Barrier-74")
	status, body = p.post(reset.link, second, second)
	g.Expect(status).To(Equal(http.StatusOK), body)
	g.Expect(body).To(ContainSubstring("changed"))
	_, err = emb.Authenticate(t.Context(), addr, first)
	g.Expect(err).To(MatchError(embedded.ErrInvalidCredentials))
	_, err = emb.Authenticate(t.Context(), addr, second)
	g.Expect(err).NotTo(HaveOccurred())

	status, _ = newPage(t).get(reset.link)
	g.Expect(status).To(Equal(http.StatusGone))
	// An invitation link of an Active user does not work either.
	status, _ = newPage(t).get(link)
	g.Expect(status).To(Equal(http.StatusGone))

	settle(t, ns)
	waitForEmails(t, addr, "reset", 1)
}

// A store that refuses any password for a reason a person must fix (389
// Directory Server over plaintext answers confidentialityRequired) gets a
// clear page, not "try again", a condition on the User that says why, and a
// link that still works once the store is fixed.
func TestPasswordRefusedByTheStore(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	addr := "tls@" + ns + ".example.com"
	g.Expect(k8s.Create(t.Context(), newUser(ns, "tls", addr))).To(Succeed())
	invited := waitFor(t, ns, "tls", hasPhase(v1alpha1.UserInvited))
	refusal := fmt.Errorf("%w: setting the password of user %q: the directory accepts passwords only over an encrypted connection; use an ldaps:// URL or startTLS: LDAP Result Code 13 \"Confidentiality Required\"",
		store.ErrRejected, invited.Status.StoreID)
	backend.refusePasswords(invited.Status.StoreID, refusal)
	t.Cleanup(func() { backend.refusePasswords(invited.Status.StoreID, nil) })

	link := waitForEmails(t, addr, "invitation", 1)[0].link
	p := newPage(t)
	p.get(link)
	pw := choose("Transport-Layer-1999")
	status, body := p.post(link, pw, pw)
	g.Expect(status).To(Equal(http.StatusServiceUnavailable))
	g.Expect(body).To(ContainSubstring("trying again will not fix"))
	g.Expect(body).NotTo(ContainSubstring("<form"))
	got := waitFor(t, ns, "tls", hasInvitationReason(controllers.ReasonPasswordRefused))
	g.Expect(invitationCondition(got).Status).To(Equal(metav1.ConditionFalse))
	g.Expect(invitationCondition(got).Message).To(ContainSubstring("encrypted connection"))
	g.Expect(invitationCondition(got).Message).NotTo(ContainSubstring(pw))
	g.Expect(got.Status.Phase).To(Equal(v1alpha1.UserInvited))
	g.Expect(readyCondition(got).Status).To(Equal(metav1.ConditionTrue), "the User is provisioned; only the password waits")

	backend.refusePasswords(invited.Status.StoreID, nil)
	p = newPage(t)
	status, _ = p.get(link)
	g.Expect(status).To(Equal(http.StatusOK), "the link stays valid")
	status, body = p.post(link, pw, pw)
	g.Expect(status).To(Equal(http.StatusOK), body)
	waitFor(t, ns, "tls", func(g Gomega, u *v1alpha1.User) {
		g.Expect(u.Status.Phase).To(Equal(v1alpha1.UserActive))
		hasInvitationReason(controllers.ReasonInvitationAccepted)(g, u)
	})
}

func TestMailFailureIsRetried(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	addr := "patient@" + ns + ".example.com"
	smtpServer.RefuseAuth(true)
	t.Cleanup(func() { smtpServer.RefuseAuth(false) })
	g.Expect(k8s.Create(t.Context(), newUser(ns, "patient", addr))).To(Succeed())

	// A mail outage does not hold the provisioned User back: it is Ready,
	// and the Invitation condition says what the server answered.
	got := waitFor(t, ns, "patient", func(g Gomega, u *v1alpha1.User) {
		hasInvitationReason(controllers.ReasonMailFailed)(g, u)
		ready := readyCondition(u)
		g.Expect(ready).NotTo(BeNil())
		g.Expect(ready.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(ready.Reason).To(Equal(controllers.ReasonProvisioned))
		g.Expect(meta.FindStatusCondition(u.Status.Conditions, v1alpha1.ConditionReconciling)).To(BeNil())
		g.Expect(meta.FindStatusCondition(u.Status.Conditions, v1alpha1.ConditionStalled)).To(BeNil())
	})
	inv := invitationCondition(got)
	g.Expect(inv.Status).To(Equal(metav1.ConditionFalse))
	g.Expect(inv.Message).To(ContainSubstring("535"), "the condition says what the server answered")
	g.Expect(got.Status.Phase).To(Equal(v1alpha1.UserInvited))
	g.Expect(got.Status.Invitation).To(BeNil(), "no invitation counts as sent")
	g.Eventually(func(g Gomega) []string { return eventReasons(g, ns, "patient") }, timeout, tick).
		Should(ContainElement(controllers.ReasonMailFailed))

	smtpServer.RefuseAuth(false)
	waitFor(t, ns, "patient", func(g Gomega, u *v1alpha1.User) {
		g.Expect(readyCondition(u).Status).To(Equal(metav1.ConditionTrue))
		g.Expect(u.Status.Invitation).NotTo(BeNil())
		g.Expect(u.Status.Invitation.SendCount).To(Equal(int32(1)))
		hasInvitationReason(controllers.ReasonInvitationSent)(g, u)
	})
	link := waitForEmails(t, addr, "invitation", 1)[0].link
	status, _ := newPage(t).get(link)
	g.Expect(status).To(Equal(http.StatusOK))
	settle(t, ns)
	waitForEmails(t, addr, "invitation", 1)
}

// TestMailRetriesBackOff counts the attempts to send while the mail server
// refuses every login: each failure is recorded in the token record, whose
// update wakes the User, but the next attempt waits for its backoff (5 s,
// then 10 s, 20 s, ...) instead of following at once.
func TestMailRetriesBackOff(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	addr := "outage@" + ns + ".example.com"
	smtpServer.RefuseAuth(true)
	t.Cleanup(func() { smtpServer.RefuseAuth(false) })
	before := smtpServer.Logins()
	g.Expect(k8s.Create(t.Context(), newUser(ns, "outage", addr))).To(Succeed())
	waitFor(t, ns, "outage", hasInvitationReason(controllers.ReasonMailFailed))

	// Over 20 seconds, at most 6 attempts (the backoff allows 3: at 0, 5
	// and 15 seconds); without it there are hundreds.
	g.Consistently(func() int { return smtpServer.Logins() - before }, 20*time.Second, 100*time.Millisecond).
		Should(BeNumerically("<=", 6))
	g.Expect(smtpServer.Logins()-before).To(BeNumerically(">=", 2), "the email is retried")
	got := get(g, t.Context(), ns, "outage")
	g.Expect(invitationCondition(got).Message).To(ContainSubstring("times in a row"))
	g.Expect(readyCondition(got).Status).To(Equal(metav1.ConditionTrue))

	smtpServer.RefuseAuth(false)
	waitForEmails(t, addr, "invitation", 1)
}

func TestLoginWithoutTheInvitationActivates(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	addr := "sso@" + ns + ".example.com"
	g.Expect(k8s.Create(t.Context(), newUser(ns, "sso", addr))).To(Succeed())
	link := waitForEmails(t, addr, "invitation", 1)[0].link
	got := waitFor(t, ns, "sso", hasInvitationReason(controllers.ReasonInvitationSent))

	_, err := emb.RecordLogin(t.Context(), got.Status.StoreID)
	g.Expect(err).NotTo(HaveOccurred())
	got = waitFor(t, ns, "sso", func(g Gomega, u *v1alpha1.User) {
		g.Expect(u.Status.Phase).To(Equal(v1alpha1.UserActive))
		g.Expect(u.Status.LastLoginAt).NotTo(BeNil())
		hasInvitationReason(controllers.ReasonActivatedWithoutLink)(g, u)
	})
	g.Expect(got.Status.Invitation.AcceptedAt).To(BeNil())
	status, body := newPage(t).get(link)
	g.Expect(status).To(Equal(http.StatusGone))
	g.Expect(body).To(ContainSubstring("already active"))
}

func TestStoreWithoutPasswordsSendsNoLinks(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	addr := "federated@" + ns + ".example.com"
	backend.setNoPasswords(true)
	t.Cleanup(func() { backend.setNoPasswords(false) })
	g.Expect(k8s.Create(t.Context(), newUser(ns, "federated", addr))).To(Succeed())
	got := waitFor(t, ns, "federated", func(g Gomega, u *v1alpha1.User) {
		g.Expect(u.Status.Phase).To(Equal(v1alpha1.UserInvited))
		hasInvitationReason(controllers.ReasonPasswordsNotSupported)(g, u)
	})
	g.Expect(invitationCondition(got).Message).To(ContainSubstring("does not accept passwords"))
	g.Expect(readyCondition(got).Status).To(Equal(metav1.ConditionTrue))

	annotate(t, ns, "federated", v1alpha1.ResetPasswordAnnotation, "please")
	waitFor(t, ns, "federated", func(g Gomega, u *v1alpha1.User) {
		g.Expect(u.Status.LastHandledResetPassword).To(Equal("please"))
	})
	settle(t, ns)
	g.Expect(smtpServer.MessagesTo(addr)).To(BeEmpty())
	var secrets corev1.SecretList
	g.Expect(k8s.List(t.Context(), &secrets, client.InNamespace(ns))).To(Succeed())
	g.Expect(secrets.Items).To(BeEmpty())
}

// A lost status is rebuilt from the record, and nothing is sent again.
func TestLostStatusDoesNotResend(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	addr := "phoenix@" + ns + ".example.com"
	g.Expect(k8s.Create(t.Context(), newUser(ns, "phoenix", addr))).To(Succeed())
	waitForEmails(t, addr, "invitation", 1)
	annotate(t, ns, "phoenix", v1alpha1.ResendInvitationAnnotation, "once")
	got := waitFor(t, ns, "phoenix", func(g Gomega, u *v1alpha1.User) {
		g.Expect(u.Status.LastHandledResendInvitation).To(Equal("once"))
	})
	waitForEmails(t, addr, "invitation", 2)

	got.Status = v1alpha1.UserStatus{}
	g.Expect(k8s.Status().Update(t.Context(), got)).To(Succeed())
	waitFor(t, ns, "phoenix", func(g Gomega, u *v1alpha1.User) {
		g.Expect(u.Status.Invitation).NotTo(BeNil())
		g.Expect(u.Status.Invitation.SendCount).To(Equal(int32(2)))
		g.Expect(u.Status.LastHandledResendInvitation).To(Equal("once"))
	})
	settle(t, ns)
	waitForEmails(t, addr, "invitation", 2)
}

func TestPagesRefuseBadRequests(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	addr := "mallory@" + ns + ".example.com"
	g.Expect(k8s.Create(t.Context(), newUser(ns, "mallory", addr))).To(Succeed())
	link := waitForEmails(t, addr, "invitation", 1)[0].link
	strong := choose("Never-Gonna-Happen-99")

	t.Run("security headers", func(t *testing.T) {
		resp, err := http.Get(link)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		for h, want := range map[string]string{
			"Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
			"Cache-Control": "no-store",
		} {
			if got := resp.Header.Get(h); got != want {
				t.Errorf("%s = %q, want %q", h, got, want)
			}
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "default-src 'none'") {
			t.Errorf("Content-Security-Policy = %q", csp)
		}
	})
	t.Run("unknown, malformed and tampered tokens", func(t *testing.T) {
		g := NewWithT(t)
		uid := strings.TrimSuffix(link[strings.LastIndex(link, "/")+1:], "."+tokenSecret(link))
		for link, want := range map[string]int{
			webURL + "/invitation/nonsense":                               http.StatusNotFound,
			webURL + "/invitation/no-such-user." + tokenSecret(link):      http.StatusNotFound,
			webURL + "/invitation/" + uid + "." + strings.Repeat("A", 43): http.StatusGone,
			webURL + "/reset/" + uid + "." + tokenSecret(link):            http.StatusNotFound,
			webURL + "/elsewhere":                                         http.StatusNotFound,
		} {
			status, body := newPage(t).get(link)
			g.Expect(status).To(Equal(want), link)
			g.Expect(body).NotTo(ContainSubstring("<form"))
		}
	})
	t.Run("no CSRF token", func(t *testing.T) {
		p := newPage(t)
		p.get(link)
		p.csrf = ""
		status, _ := p.post(link, strong, strong)
		NewWithT(t).Expect(status).To(Equal(http.StatusForbidden))
	})
	t.Run("another site's form", func(t *testing.T) {
		p := newPage(t)
		p.get(link)
		req, _ := http.NewRequest(http.MethodPost, link, strings.NewReader(url.Values{"csrf": {p.csrf}, "password": {strong}, "confirm": {strong}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "https://evil.example.com")
		resp, err := p.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		NewWithT(t).Expect(resp.StatusCode).To(Equal(http.StatusForbidden))
	})
	t.Run("oversized form", func(t *testing.T) {
		p := newPage(t)
		p.get(link)
		huge := strings.Repeat("A", 64<<10)
		status, _ := p.post(link, huge, huge)
		NewWithT(t).Expect(status).To(Equal(http.StatusRequestEntityTooLarge))
	})
	// None of these used the link.
	status, _ := newPage(t).get(link)
	g.Expect(status).To(Equal(http.StatusOK))
	settle(t, ns)
	g.Expect(get(g, t.Context(), ns, "mallory").Status.Phase).To(Equal(v1alpha1.UserInvited))
}

func annotate(t *testing.T, ns, name, key, value string) {
	t.Helper()
	update(t, ns, name, func(u *v1alpha1.User) {
		if u.Annotations == nil {
			u.Annotations = map[string]string{}
		}
		u.Annotations[key] = value
	})
}

// No token, link or password ever shows in a User's status, an event, a
// Secret or the operator's log. It runs last in this package's integration
// tests and looks at everything the earlier ones did.
func TestZZNoTokenOrPasswordAppears(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	addr := "audit@" + ns + ".example.com"
	g.Expect(k8s.Create(t.Context(), newUser(ns, "audit", addr))).To(Succeed())
	waitFor(t, ns, "audit", hasPhase(v1alpha1.UserInvited))
	link := waitForEmails(t, addr, "invitation", 1)[0].link
	p := newPage(t)
	p.get(link)
	pw := choose("Audit-Trail-Clean-1")
	status, _ := p.post(link, pw, pw)
	g.Expect(status).To(Equal(http.StatusOK))
	waitFor(t, ns, "audit", hasPhase(v1alpha1.UserActive))

	var secrets []string
	for _, m := range smtpServer.Messages() {
		parsed, err := mailtest.Parse(m.Raw)
		g.Expect(err).NotTo(HaveOccurred())
		for _, l := range mailtest.Links(parsed.Text) {
			if strings.HasPrefix(l, webURL+"/") {
				secrets = append(secrets, tokenSecret(l))
			}
		}
	}
	g.Expect(len(secrets)).To(BeNumerically(">", 5), "the earlier tests sent links")
	passwordsMu.Lock()
	secrets = append(secrets, usedPasswords...)
	passwordsMu.Unlock()

	dump := func(obj any) string {
		b, err := json.Marshal(obj)
		g.Expect(err).NotTo(HaveOccurred())
		return string(b)
	}
	var users v1alpha1.UserList
	g.Expect(k8s.List(t.Context(), &users)).To(Succeed())
	var events eventsv1.EventList
	g.Expect(k8s.List(t.Context(), &events)).To(Succeed())
	var coreEvents corev1.EventList
	g.Expect(k8s.List(t.Context(), &coreEvents)).To(Succeed())
	var records corev1.SecretList
	g.Expect(k8s.List(t.Context(), &records, client.HasLabels{invitation.LabelPurpose})).To(Succeed())
	g.Expect(records.Items).NotTo(BeEmpty())
	places := map[string]string{
		"User statuses": dump(users.Items), "events": dump(events.Items) + dump(coreEvents.Items),
		"token records": dump(records.Items), "the operator's log": logs.String(),
	}
	g.Expect(places["the operator's log"]).To(ContainSubstring("Set a password through a link"), "the log is captured")
	for where, text := range places {
		for _, s := range secrets {
			g.Expect(text).NotTo(ContainSubstring(s), "a token or password in %s", where)
		}
		g.Expect(text).NotTo(ContainSubstring("/invitation/"+string(users.Items[0].UID)+"."), "a link in %s", where)
	}
}

// Request annotations set off at most linksPerHour emails of a purpose per
// User and hour; a request beyond waits, still pending, for the hour to end.
func TestLinkRequestsAreLimitedPerHour(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	addr := "flood@" + ns + ".example.com"
	g.Expect(k8s.Create(t.Context(), newUser(ns, "flood", addr))).To(Succeed())
	waitForEmails(t, addr, "invitation", 1)
	for i := 2; i <= linksPerHour; i++ {
		request := fmt.Sprintf("again-%d", i)
		annotate(t, ns, "flood", v1alpha1.ResendInvitationAnnotation, request)
		waitFor(t, ns, "flood", func(g Gomega, u *v1alpha1.User) {
			g.Expect(u.Status.LastHandledResendInvitation).To(Equal(request))
		})
	}
	waitForEmails(t, addr, "invitation", linksPerHour)

	annotate(t, ns, "flood", v1alpha1.ResendInvitationAnnotation, "one-too-many")
	g.Eventually(func(g Gomega) []string { return eventReasons(g, ns, "flood") }, timeout, tick).
		Should(ContainElement(controllers.ReasonLinkRequestDeferred))
	settle(t, ns)
	g.Expect(smtpServer.MessagesTo(addr)).To(HaveLen(linksPerHour), "no email beyond the limit")
	got := get(g, t.Context(), ns, "flood")
	g.Expect(got.Status.LastHandledResendInvitation).To(Equal(fmt.Sprintf("again-%d", linksPerHour)), "the request stays pending")
}
