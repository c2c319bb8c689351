// Package web serves the pages where people use the links Roster emails:
// accepting an invitation and resetting a password, each by choosing a
// password that meets the policy; and the account page, where a person
// signs in with their password, edits their own settings and changes their
// password; and token introspection (RFC 7662) of access keys for the
// services that check them. Every replica serves them (the pages need
// no leader), reading Users and token records from the manager's cache and
// claiming a token with an optimistic-locked write, so two replicas cannot
// both accept the same link.
package web

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/internal/invitation"
	"roster.dev/roster/internal/password"
	"roster.dev/roster/internal/stores"
)

//go:embed templates/*.html
var templatesFS embed.FS

//go:embed static/*
var staticFS embed.FS

// maxFormBytes bounds a posted form: two passwords of MaxLength characters
// of up to four bytes, the CSRF token and some room, and no more.
const maxFormBytes = 8 << 10

// Config is what the pages need.
type Config struct {
	// Client reads Users and token records from the manager's cache, and
	// writes records.
	Client client.Client
	// APIReader reads a record straight from the API server before it is
	// claimed, so a stale cache cannot show a used link as usable.
	APIReader client.Reader
	// Stores are the open identity stores; each User's receives its
	// password.
	Stores *stores.Registry
	// Namespace is the operator's own: token records are read there only.
	Namespace string
	// Policy is the password policy.
	Policy password.Policy
	// ProductName names the platform on every page.
	ProductName string
	// PublicURL is the address people reach the pages at; its scheme decides
	// whether cookies are Secure and HSTS is sent.
	PublicURL *url.URL
	// SubmissionsPerMinute is how many forms one client address may post
	// per minute; it may post that many at once.
	SubmissionsPerMinute int
	// ClientIPHeader, when set, names a header (such as X-Forwarded-For)
	// that a trusted proxy in front of the pages sets to the client's
	// address; the last address in it is used. Without it, the connection's
	// address is used.
	ClientIPHeader string
	// Clock tells the time; nil for the real clock.
	Clock clock.PassiveClock
	// Metrics counts links used; may be nil.
	Metrics *invitation.Metrics
	// Log logs outcomes, never a token, a link, a password or a session.
	Log logr.Logger

	// FindUsers returns the Users holding an email address, in any
	// namespace and store, from the cache. The account page is served only
	// when it is set.
	FindUsers func(ctx context.Context, email string) ([]v1alpha1.User, error)
	// Wake, when set, asks the User controller to look at a User now (a
	// sign-in is a login its status shows). It must not block.
	Wake func(types.NamespacedName)
	// Mail sends the email that tells a person their password changed;
	// nil sends none.
	Mail *Mailer
	// OwnFieldManagers are the field managers, besides the account page's
	// own, whose fields of a User the person may change there
	// (DefaultOwnFieldManagers when nil). A field any other manager owns is
	// the administrator's, shown read-only.
	OwnFieldManagers []string
	// SessionIdle and SessionMax end a session unused for SessionIdle, or
	// SessionMax after sign-in (DefaultSessionIdle, DefaultSessionMax when
	// zero).
	SessionIdle, SessionMax time.Duration
	// FailedSignInsPerAddress and FailedSignInsPerClient are how many failed
	// sign-ins one email address, and one client address, may have in 15
	// minutes (5 and 20 when zero).
	FailedSignInsPerAddress, FailedSignInsPerClient int
}

// Server serves the pages.
type Server struct {
	cfg      Config
	pages    map[string]*template.Template
	limiter  *ipLimiter
	failures *failureLimiter
	sessions *sessions
	mux      *http.ServeMux

	introspection *introspectionCredentials
}

// failureLimiter counts failed sign-ins per email address and per client,
// in buckets of its own for each.
type failureLimiter struct{ address, client *ipLimiter }

func (f *failureLimiter) pick(key string) (*ipLimiter, string) {
	if k, ok := strings.CutPrefix(key, "email:"); ok {
		return f.address, k
	}
	return f.client, strings.TrimPrefix(key, "ip:")
}

func (f *failureLimiter) blocked(key string) bool { l, k := f.pick(key); return l.blocked(k) }
func (f *failureLimiter) fail(key string)         { l, k := f.pick(key); l.fail(k) }

// New returns a server with the configuration.
func New(cfg Config) (*Server, error) {
	if cfg.Client == nil || cfg.APIReader == nil || cfg.Stores == nil || cfg.PublicURL == nil {
		return nil, errors.New("web: client, API reader, stores and public URL are required")
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.SubmissionsPerMinute <= 0 {
		cfg.SubmissionsPerMinute = 10
	}
	if cfg.SessionIdle <= 0 {
		cfg.SessionIdle = DefaultSessionIdle
	}
	if cfg.SessionMax <= 0 {
		cfg.SessionMax = DefaultSessionMax
	}
	if cfg.FailedSignInsPerAddress <= 0 {
		cfg.FailedSignInsPerAddress = 5
	}
	if cfg.FailedSignInsPerClient <= 0 {
		cfg.FailedSignInsPerClient = 20
	}
	if cfg.OwnFieldManagers == nil {
		cfg.OwnFieldManagers = DefaultOwnFieldManagers
	}
	s := &Server{
		cfg: cfg, pages: map[string]*template.Template{}, limiter: newIPLimiter(cfg.SubmissionsPerMinute, cfg.Clock),
		failures: &failureLimiter{
			address: newLimiter(cfg.FailedSignInsPerAddress, 15*time.Minute, cfg.Clock),
			client:  newLimiter(cfg.FailedSignInsPerClient, 15*time.Minute, cfg.Clock),
		},
		sessions: &sessions{client: cfg.Client, apiReader: cfg.APIReader, namespace: cfg.Namespace, clock: cfg.Clock,
			idle: cfg.SessionIdle, max: cfg.SessionMax},
	}
	for _, page := range []string{"form.html", "message.html", "home.html", "signin.html", "account.html", "password.html"} {
		t, err := template.New("layout.html").Funcs(template.FuncMap{"year": func() int { return cfg.Clock.Now().Year() }}).
			ParseFS(templatesFS, "templates/layout.html", "templates/nav.html", "templates/"+page)
		if err != nil {
			return nil, fmt.Errorf("web: parsing %s: %w", page, err)
		}
		s.pages[page] = t
	}
	// Pages live under the public URL's path, so that a proxy can forward
	// a sub-path without rewriting it.
	prefix := s.prefix()
	static, _ := fs.Sub(staticFS, "static")
	mux := http.NewServeMux()
	mux.Handle("GET "+prefix+"/static/", http.StripPrefix(prefix+"/static/", cacheStatic(http.FileServerFS(static))))
	for _, p := range invitation.Purposes {
		mux.HandleFunc("GET "+prefix+p.Path()+"{token}", s.handle(p))
		mux.HandleFunc("POST "+prefix+p.Path()+"{token}", s.handle(p))
	}
	if cfg.FindUsers != nil {
		mux.HandleFunc("GET "+prefix+"/account", s.account)
		mux.HandleFunc("POST "+prefix+"/account", s.saveSettings)
		mux.HandleFunc("POST "+prefix+"/account/sign-in", s.signIn)
		mux.HandleFunc("POST "+prefix+"/account/sign-out", s.signOut)
		mux.HandleFunc("POST "+prefix+"/account/keys/revoke", s.revokeKey)
		mux.HandleFunc("GET "+prefix+"/account/password", s.passwordPage)
		mux.HandleFunc("POST "+prefix+"/account/password", s.passwordPage)
	}
	s.introspection = &introspectionCredentials{srv: s}
	mux.HandleFunc("POST "+prefix+"/introspect", s.introspect)
	mux.HandleFunc("GET "+prefix+"/{$}", s.home)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.message(w, http.StatusNotFound, messageInvalid)
	})
	s.mux = mux
	return s, nil
}

// ServeHTTP implements http.Handler, with the security headers on every
// response.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), interest-cohort=()")
	if s.secure() {
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
	s.mux.ServeHTTP(w, r)
}

func (s *Server) prefix() string { return strings.TrimSuffix(s.cfg.PublicURL.Path, "/") }

func (s *Server) secure() bool { return s.cfg.PublicURL.Scheme == "https" }

func cacheStatic(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		h.ServeHTTP(w, r)
	})
}

func (s *Server) home(w http.ResponseWriter, r *http.Request) {
	s.render(w, http.StatusOK, "home.html", pageData{Title: s.cfg.ProductName, AccountPage: s.cfg.FindUsers != nil})
}

// Runnable serves the pages on an address as part of the manager.
type Runnable struct {
	Addr    string
	Handler http.Handler
	// Ready, when not nil, is closed once the listener is open.
	Ready chan struct{}
	// Listener, when not nil, is used instead of listening on Addr.
	Listener net.Listener
}

var (
	_ manager.Runnable               = (*Runnable)(nil)
	_ manager.LeaderElectionRunnable = (*Runnable)(nil)
)

// NeedLeaderElection implements manager.LeaderElectionRunnable: every
// replica serves the pages, leader or not.
func (r *Runnable) NeedLeaderElection() bool { return false }

// Start implements manager.Runnable.
func (r *Runnable) Start(ctx context.Context) error {
	srv := &http.Server{
		Handler:           r.Handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		// The server's own error log can print request details; it is
		// dropped rather than risk a path, and so a token, in a log.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	ln := r.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", r.Addr); err != nil {
			return fmt.Errorf("web pages: listening on %s: %w", r.Addr, err)
		}
	}
	if r.Ready != nil {
		close(r.Ready)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return srv.Shutdown(shutdown)
	case err := <-errc:
		return fmt.Errorf("web pages: %w", err)
	}
}
