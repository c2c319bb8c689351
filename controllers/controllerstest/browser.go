package controllerstest

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Browser visits the pages as a person without JavaScript does: a cookie
// jar, the last form's CSRF token, and a client address of its own (sent
// as X-Forwarded-For, which the suites' pages trust), so that the limits on
// failed sign-ins of one test leave another's alone. Redirects are not
// followed, so that a test sees each answer.
type Browser struct {
	t      testing.TB
	base   string
	Client *http.Client
	// CSRF is the token of the last form seen; a post sends it.
	CSRF string
	// IP is the client address the pages see.
	IP string
	// Last is the last response, its body read.
	Last *http.Response
}

var lastIP atomic.Int32

// NewBrowser returns a browser for the pages at base, from an address no
// other browser of the process uses.
func NewBrowser(t testing.TB, base string) *Browser {
	jar, _ := cookiejar.New(nil)
	n := lastIP.Add(1)
	return &Browser{
		t: t, base: strings.TrimSuffix(base, "/"),
		Client: &http.Client{Jar: jar, Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}},
		IP: "198.51." + strconv.Itoa(int(n/250)) + "." + strconv.Itoa(int(n%250)+1),
	}
}

// Get fetches a path and returns the status and the body.
func (b *Browser) Get(path string) (int, string) {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.base+path, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.Do(req)
}

// Post posts a form to a path, with the CSRF token unless the form holds
// one already.
func (b *Browser) Post(path string, form url.Values) (int, string) {
	b.t.Helper()
	if _, ok := form["csrf"]; !ok {
		form.Set("csrf", b.CSRF)
	}
	req, err := http.NewRequest(http.MethodPost, b.base+path, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.Do(req)
}

// Do sends a request from the browser's address, with its cookies, and
// remembers the CSRF token of a form in the answer.
func (b *Browser) Do(req *http.Request) (int, string) {
	b.t.Helper()
	req.Header.Set("X-Forwarded-For", b.IP)
	resp, err := b.Client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if m := csrfField.FindSubmatch(body); m != nil {
		b.CSRF = string(m[1])
	}
	b.Last = resp
	return resp.StatusCode, string(body)
}

// Cookie returns the value of the browser's cookie for the pages, or "".
func (b *Browser) Cookie(name string) string {
	u, _ := url.Parse(b.base + "/")
	for _, c := range b.Client.Jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// SetCookie replaces the browser's cookie for the pages.
func (b *Browser) SetCookie(name, value string) {
	u, _ := url.Parse(b.base + "/")
	b.Client.Jar.SetCookies(u, []*http.Cookie{{Name: name, Value: value, Path: "/"}})
}

// SignIn opens the sign-in form and posts the email and password; it
// returns the answer to the post.
func (b *Browser) SignIn(email, password string) (int, string) {
	b.t.Helper()
	b.Get("/account")
	return b.Post("/account/sign-in", url.Values{"email": {email}, "password": {password}})
}
