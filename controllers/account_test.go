package controllers_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/controllers/controllerstest"
	"roster.dev/roster/internal/mail/mailtest"
	"roster.dev/roster/internal/store"
	"roster.dev/roster/internal/web"
)

// Authenticate lets the suite's store check passwords as the embedded
// store under it does, unless it was told to keep none.
func (f *faultyStore) Authenticate(ctx context.Context, email, password string) (store.User, error) {
	if err := f.err(); err != nil {
		return store.User{}, err
	}
	return emb.Authenticate(ctx, email, password)
}

// The suite's pages are served over plain http on loopback, where a
// browser drops Secure cookies: the session cookie goes without the
// __Host- prefix there, as the CSRF cookie does (over https it is
// __Host-roster-session, Secure).
const sessionCookie = "roster-session"

// activeUser creates a User as an import does (Roster's own field
// manager), accepts its invitation with the password and waits for it to
// be Active.
func activeUser(t *testing.T, ns, name, addr, pw string) *v1alpha1.User {
	t.Helper()
	g := NewWithT(t)
	u := newUser(ns, name, addr)
	g.Expect(k8s.Create(t.Context(), u, client.FieldOwner("roster-manager"))).To(Succeed())
	link := waitForEmails(t, addr, "invitation", 1)[0].link
	p := newPage(t)
	// The pages read the link's record from the manager's cache, which may
	// not have seen it yet when the email arrives.
	g.Eventually(func() int { status, _ := p.get(link); return status }, timeout, tick).Should(Equal(http.StatusOK))
	status, body := p.post(link, pw, pw)
	g.Expect(status).To(Equal(http.StatusOK), body)
	return waitFor(t, ns, name, hasPhase(v1alpha1.UserActive))
}

func visitor(t *testing.T) *controllerstest.Browser { return controllerstest.NewBrowser(t, webURL) }

func TestAccountSignInAndSignOut(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	addr := "ada@" + ns + ".example.com"
	pw := choose("Analytical-Engine-1843")
	u := activeUser(t, ns, "ada", addr, pw)
	g.Expect(u.Status.LastLoginAt).To(BeNil(), "setting a password is not a login")

	b := visitor(t)
	status, body := b.Get("/account")
	g.Expect(status).To(Equal(http.StatusOK))
	g.Expect(body).To(ContainSubstring(`action="/account/sign-in"`))
	g.Expect(body).To(ContainSubstring(`autocomplete="current-password"`))

	// An unknown address and a wrong password get the same answer.
	status, unknown := b.Post("/account/sign-in", url.Values{"email": {"nobody@" + ns + ".example.com"}, "password": {pw}})
	g.Expect(status).To(Equal(http.StatusUnauthorized))
	status, wrong := b.Post("/account/sign-in", url.Values{"email": {addr}, "password": {pw + "x"}})
	g.Expect(status).To(Equal(http.StatusUnauthorized))
	g.Expect(wrong).To(ContainSubstring("The email address or password is not right."))
	g.Expect(alert(wrong)).To(Equal(alert(unknown)))
	g.Expect(b.Cookie(sessionCookie)).To(BeEmpty())

	// The right password: a session cookie and the account page.
	status, _ = b.Post("/account/sign-in", url.Values{"email": {strings.ToUpper(addr)}, "password": {pw}})
	g.Expect(status).To(Equal(http.StatusSeeOther))
	g.Expect(b.Last.Header.Get("Location")).To(Equal("/account"))
	set := b.Last.Header.Values("Set-Cookie")
	g.Expect(set).To(ContainElement(And(HavePrefix(sessionCookie+"="), ContainSubstring("HttpOnly"), ContainSubstring("SameSite=Strict"), ContainSubstring("Path=/"))))
	cookie := b.Cookie(sessionCookie)
	g.Expect(cookie).NotTo(BeEmpty())
	g.Expect(cookie).NotTo(ContainSubstring(pw))
	status, body = b.Get("/account")
	g.Expect(status).To(Equal(http.StatusOK))
	g.Expect(body).To(ContainSubstring("You are signed in as " + addr))

	// Signing in is a login: the store recorded it and the status shows it.
	waitFor(t, ns, "ada", func(g Gomega, u *v1alpha1.User) {
		g.Expect(u.Status.LastLoginAt).NotTo(BeNil())
		g.Expect(u.Status.Phase).To(Equal(v1alpha1.UserActive))
	})

	// The signing key is in the operator's namespace, for every replica.
	key := &corev1.Secret{}
	g.Expect(k8s.Get(t.Context(), client.ObjectKey{Namespace: controllerstest.OperatorNamespace, Name: web.SessionKeySecret}, key)).To(Succeed())
	g.Expect(len(key.Data["key"])).To(BeNumerically(">=", 32))

	// Signing out needs the form's CSRF token.
	status, _ = b.Post("/account/sign-out", url.Values{"csrf": {"forged"}})
	g.Expect(status).To(Equal(http.StatusForbidden))
	status, _ = b.Get("/account")
	g.Expect(status).To(Equal(http.StatusOK))
	status, body = b.Post("/account/sign-out", url.Values{})
	g.Expect(status).To(Equal(http.StatusOK))
	g.Expect(body).To(ContainSubstring("You have signed out"))
	g.Expect(b.Cookie(sessionCookie)).To(BeEmpty())

	// The old cookie, replayed, no longer works: signing out ended it.
	b.SetCookie(sessionCookie, cookie)
	status, body = b.Get("/account")
	g.Expect(status).To(Equal(http.StatusOK))
	g.Expect(body).To(ContainSubstring("Your session has ended"))
	g.Expect(body).To(ContainSubstring(`action="/account/sign-in"`))

	g.Expect(logs.String()).NotTo(ContainSubstring(cookie), "a session in the log")
	g.Expect(logs.String()).To(ContainSubstring("Signed in on the account page"))
}

// alert is the error box of a page.
func alert(body string) string {
	i := strings.Index(body, `id="problems"`)
	if i < 0 {
		return ""
	}
	j := strings.Index(body[i:], "</div>")
	return body[i : i+j]
}

// sign makes a session cookie with the suite's real key, as a replica
// would, so that a test can hand the pages one that is expired or names
// another user.
func sign(t *testing.T, claims map[string]any) string {
	t.Helper()
	key := &corev1.Secret{}
	NewWithT(t).Expect(k8s.Get(t.Context(), client.ObjectKey{Namespace: controllerstest.OperatorNamespace, Name: web.SessionKeySecret}, key)).To(Succeed())
	payload, _ := json.Marshal(claims)
	mac := hmac.New(sha256.New, key.Data["key"])
	mac.Write(payload)
	return base64.RawURLEncoding.EncodeToString(payload) + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func TestAccountRefusesBadSessions(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	addr := "eve@" + ns + ".example.com"
	pw := choose("Difference-Engine-1822")
	u := activeUser(t, ns, "eve", addr, pw)

	b := visitor(t)
	status, _ := b.SignIn(addr, pw)
	g.Expect(status).To(Equal(http.StatusSeeOther))
	good := b.Cookie(sessionCookie)
	payload, mac, _ := strings.Cut(good, ".")
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	g.Expect(err).NotTo(HaveOccurred())
	var claims map[string]any
	g.Expect(json.Unmarshal(raw, &claims)).To(Succeed())

	now := time.Now().Unix()
	other := map[string]any{}
	for k, v := range claims {
		other[k] = v
	}
	other["name"] = "someone-else"
	forgedPayload, _ := json.Marshal(other)
	for name, value := range map[string]string{
		"garbage":                        "not-a-session",
		"payload changed, MAC kept":      base64.RawURLEncoding.EncodeToString(forgedPayload) + "." + mac,
		"MAC of another key":             payload + "." + base64.RawURLEncoding.EncodeToString(make([]byte, 32)),
		"idle for longer than allowed":   sign(t, map[string]any{"uid": u.UID, "ns": ns, "name": "eve", "iat": now - 3600, "seen": now - 31*60, "gen": claims["gen"]}),
		"older than the longest session": sign(t, map[string]any{"uid": u.UID, "ns": ns, "name": "eve", "iat": now - 9*3600, "seen": now, "gen": claims["gen"]}),
		"another generation":             sign(t, map[string]any{"uid": u.UID, "ns": ns, "name": "eve", "iat": now, "seen": now, "gen": 99}),
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			b := visitor(t)
			b.Get("/account")
			b.SetCookie(sessionCookie, value)
			status, body := b.Get("/account")
			g.Expect(status).To(Equal(http.StatusOK))
			g.Expect(body).To(ContainSubstring("Your session has ended"))
			g.Expect(body).NotTo(ContainSubstring(addr))
			// A form posted with it changes nothing.
			status, body = b.Post("/account", url.Values{"firstName": {"Mallory"}})
			g.Expect(status).To(Equal(http.StatusUnauthorized))
			g.Expect(body).To(ContainSubstring("Nothing was changed"))
		})
	}
	g.Expect(get(g, t.Context(), ns, "eve").Spec.FirstName).To(Equal("Ada"))

	// A good session still works, until the User is deactivated.
	status, _ = b.Get("/account")
	g.Expect(status).To(Equal(http.StatusOK))
	update(t, ns, "eve", func(u *v1alpha1.User) { u.Spec.Deactivated = ptr.To(true) })
	g.Eventually(func() string { _, body := b.Get("/account"); return body }, timeout, tick).Should(ContainSubstring("Your session has ended"))
	status, _ = visitor(t).SignIn(addr, pw)
	g.Expect(status).To(Equal(http.StatusUnauthorized))
}

func TestAccountSettings(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	addr := "augusta@" + ns + ".example.com"
	pw := choose("Note-G-Bernoulli-1843")
	activeUser(t, ns, "augusta", addr, pw)
	// Git sets the last name (Argo CD applies it): it is the
	// administrator's from then on.
	git := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{"email": addr, "lastName": "King"}}}
	git.SetAPIVersion(v1alpha1.GroupVersion.String())
	git.SetKind("User")
	git.SetNamespace(ns)
	git.SetName("augusta")
	g.Expect(k8s.Apply(t.Context(), client.ApplyConfigurationFromUnstructured(git), client.FieldOwner("argocd-controller"), client.ForceOwnership)).To(Succeed())

	b := visitor(t)
	status, _ := b.SignIn(addr, pw)
	g.Expect(status).To(Equal(http.StatusSeeOther))
	status, body := b.Get("/account")
	g.Expect(status).To(Equal(http.StatusOK))
	g.Expect(body).To(MatchRegexp(`id="lastName" type="text" value="King" readonly`))
	g.Expect(body).To(ContainSubstring("Managed by your administrator"))
	g.Expect(body).To(MatchRegexp(`<input id="firstName" name="firstName"`))
	g.Expect(body).To(ContainSubstring(`<option value="Europe/Berlin">Europe/Berlin</option>`))
	g.Expect(body).To(ContainSubstring("Set by your administrator"))
	g.Expect(body).To(ContainSubstring(addr))

	before := get(g, t.Context(), ns, "augusta")
	t.Run("bad input is named next to its field and saves nothing", func(t *testing.T) {
		g := NewWithT(t)
		status, body := b.Post("/account", url.Values{
			"firstName": {"Augusta"}, "timeZone": {"Mars/Olympus_Mons"}, "mobile": {"0151 2345678"}, "locale": {"en-GB"},
		})
		g.Expect(status).To(Equal(http.StatusUnprocessableEntity))
		g.Expect(body).To(ContainSubstring(`id="timeZone-error">&#34;Mars/Olympus_Mons&#34; is not an IANA time zone name`))
		g.Expect(body).To(ContainSubstring(`id="mobile-error">&#34;0151 2345678&#34; is not a mobile number in E.164 form`))
		g.Expect(body).To(ContainSubstring("Nothing was saved"))
		g.Expect(body).To(ContainSubstring(`value="0151 2345678"`), "the form keeps what was typed")
		after := get(g, t.Context(), ns, "augusta")
		// The spec and its generation, not the resourceVersion: the User
		// controller may write the status (the sign-in's login) meanwhile.
		g.Expect(after.Spec).To(Equal(before.Spec))
		g.Expect(after.Generation).To(Equal(before.Generation))
	})
	t.Run("a form from another site", func(t *testing.T) {
		g := NewWithT(t)
		req, _ := http.NewRequest(http.MethodPost, webURL+"/account", strings.NewReader(url.Values{"csrf": {b.CSRF}, "timeZone": {"UTC"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "https://evil.example.com")
		status, _ := b.Do(req)
		g.Expect(status).To(Equal(http.StatusForbidden))
		after := get(g, t.Context(), ns, "augusta")
		g.Expect(after.Spec).To(Equal(before.Spec))
		g.Expect(after.Generation).To(Equal(before.Generation))
	})

	// A save: the settings the person may change are applied under
	// roster-account; the last name, Git's, is not touched though posted.
	status, body = b.Post("/account", url.Values{
		"firstName": {"Augusta Ada"}, "lastName": {"Lovelace"}, "timeZone": {"Europe/Berlin"},
		"mobile": {"+4915123456789"}, "locale": {"en-GB"},
	})
	g.Expect(status).To(Equal(http.StatusOK), body)
	g.Expect(body).To(ContainSubstring("Your changes are saved"))
	after := get(g, t.Context(), ns, "augusta")
	g.Expect(after.Spec.FirstName).To(Equal("Augusta Ada"))
	g.Expect(after.Spec.LastName).To(Equal("King"))
	g.Expect(after.Spec.TimeZone).To(Equal("Europe/Berlin"))
	g.Expect(after.Spec.Mobile).To(Equal("+4915123456789"))
	g.Expect(after.Spec.Locale).To(Equal("en-GB"))
	var fields string
	for _, mf := range after.ManagedFields {
		if mf.Manager == web.FieldManager {
			g.Expect(mf.Operation).To(BeEquivalentTo("Apply"))
			fields = mf.FieldsV1.GetRawString()
		}
	}
	g.Expect(fields).To(ContainSubstring(`"f:timeZone"`))
	g.Expect(fields).To(ContainSubstring(`"f:firstName"`))
	g.Expect(fields).NotTo(ContainSubstring(`"f:lastName"`))
	// The store follows the User.
	g.Eventually(func(g Gomega) {
		su, err := emb.GetUser(t.Context(), after.Status.StoreID)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(su.TimeZone).To(Equal("Europe/Berlin"))
	}, timeout, tick).Should(Succeed())

	// Emptying a field removes it.
	status, _ = b.Post("/account", url.Values{
		"firstName": {"Augusta Ada"}, "timeZone": {"Europe/Berlin"}, "mobile": {""}, "locale": {"en-GB"},
	})
	g.Expect(status).To(Equal(http.StatusOK))
	g.Expect(get(g, t.Context(), ns, "augusta").Spec.Mobile).To(BeEmpty())
}

func TestAccountChangePassword(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	addr := "charles@" + ns + ".example.com"
	old := choose("Calculating-Engine-1834")
	u := activeUser(t, ns, "charles", addr, old)

	here, there := visitor(t), visitor(t)
	for _, b := range []*controllerstest.Browser{here, there} {
		status, _ := b.SignIn(addr, old)
		g.Expect(status).To(Equal(http.StatusSeeOther))
	}
	status, body := here.Get("/account/password")
	g.Expect(status).To(Equal(http.StatusOK))
	g.Expect(body).To(ContainSubstring("At least 10 characters"))
	g.Expect(body).To(ContainSubstring(`autocomplete="new-password"`))

	next := choose("Mechanical-Notation-1826")
	for name, c := range map[string]struct {
		current, pw, confirm, want string
	}{
		"weak":            {old, "weak", "weak", "An uppercase letter"},
		"mismatch":        {old, next, next + "x", "do not match"},
		"wrong current":   {old + "x", next, next, "Your current password is not right."},
		"no current":      {"", next, next, "Enter your current password."},
		"over the policy": {old, strings.Repeat("Aa1!", 70), strings.Repeat("Aa1!", 70), "At most 256 characters"},
	} {
		status, body := here.Post("/account/password", url.Values{"current": {c.current}, "password": {c.pw}, "confirm": {c.confirm}})
		g.Expect(status).To(Equal(http.StatusUnprocessableEntity), name)
		g.Expect(body).To(ContainSubstring(c.want), name)
	}
	_, err := emb.Authenticate(t.Context(), addr, old)
	g.Expect(err).NotTo(HaveOccurred(), "the refused changes left the password")

	status, body = here.Post("/account/password", url.Values{"current": {old}, "password": {next}, "confirm": {next}})
	g.Expect(status).To(Equal(http.StatusOK), body)
	g.Expect(body).To(ContainSubstring("Your password has been changed"))
	_, err = emb.Authenticate(t.Context(), addr, next)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = emb.Authenticate(t.Context(), addr, old)
	g.Expect(err).To(MatchError(store.ErrInvalidCredentials))

	// This session goes on; the other one ended.
	status, body = here.Get("/account")
	g.Expect(status).To(Equal(http.StatusOK))
	g.Expect(body).To(ContainSubstring("You are signed in as"))
	_, body = there.Get("/account")
	g.Expect(body).To(ContainSubstring("Your session has ended"))
	status, _ = visitor(t).SignIn(addr, old)
	g.Expect(status).To(Equal(http.StatusUnauthorized))

	// An email says so, with no link.
	var notice mailtest.Parsed
	g.Eventually(func(g Gomega) {
		var found []mailtest.Parsed
		for _, m := range smtpServer.MessagesTo(addr) {
			p, err := mailtest.Parse(m.Raw)
			g.Expect(err).NotTo(HaveOccurred())
			if p.Header.Get("X-Roster-Message") == "password-changed" {
				found = append(found, p)
			}
		}
		g.Expect(found).To(HaveLen(1))
		notice = found[0]
	}, timeout, tick).Should(Succeed())
	g.Expect(notice.Subject).To(ContainSubstring("password was changed"))
	g.Expect(mailtest.Links(notice.Text)).To(BeEmpty())
	g.Expect(notice.HTML).NotTo(ContainSubstring("href"))
	g.Expect(notice.Text).NotTo(ContainSubstring(next))

	// The session record goes with the User.
	record := &corev1.Secret{}
	recordKey := client.ObjectKey{Namespace: controllerstest.OperatorNamespace, Name: web.SessionRecordName(u.UID)}
	g.Expect(k8s.Get(t.Context(), recordKey, record)).To(Succeed())
	g.Expect(k8s.Delete(t.Context(), u)).To(Succeed())
	g.Eventually(func() bool { return apierrors.IsNotFound(k8s.Get(t.Context(), recordKey, &corev1.Secret{})) }, timeout, tick).Should(BeTrue())
	g.Expect(logs.String()).NotTo(ContainSubstring(next))
}

func TestAccountSignInsAreLimited(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	addr := "brute@" + ns + ".example.com"
	pw := choose("Rate-Limited-Login-7")
	activeUser(t, ns, "brute", addr, pw)

	// Per address: five failures from five clients, then even the right
	// password is refused unheard.
	for range 5 {
		status, _ := visitor(t).SignIn(addr, "Wrong-Guess-123!")
		g.Expect(status).To(Equal(http.StatusUnauthorized))
	}
	status, body := visitor(t).SignIn(addr, pw)
	g.Expect(status).To(Equal(http.StatusTooManyRequests))
	g.Expect(body).To(ContainSubstring("Too many attempts"))

	// Per client: twenty failures for twenty addresses, then the client is
	// refused for another address too.
	other := "other@" + ns + ".example.com"
	otherPW := choose("Other-Person-Login-8")
	activeUser(t, ns, "other", other, otherPW)
	b := visitor(t)
	for i := range 20 {
		status, _ := b.SignIn("guess"+string(rune('a'+i))+"@"+ns+".example.com", "Wrong-Guess-123!")
		g.Expect(status).To(Equal(http.StatusUnauthorized))
	}
	status, _ = b.SignIn(other, otherPW)
	g.Expect(status).To(Equal(http.StatusTooManyRequests))
	status, _ = visitor(t).SignIn(other, otherPW)
	g.Expect(status).To(Equal(http.StatusSeeOther), "another client may sign in")
}

func TestAccountStoreWithoutPasswords(t *testing.T) {
	g := NewWithT(t)
	backend.setNoPasswords(true)
	defer backend.setNoPasswords(false)
	status, body := visitor(t).Get("/account")
	g.Expect(status).To(Equal(http.StatusOK))
	g.Expect(body).To(ContainSubstring("single sign-on"))
	g.Expect(body).NotTo(ContainSubstring(`action="/account/sign-in"`))
}
