package web

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/internal/invitation"
	"roster.dev/roster/internal/password"
	"roster.dev/roster/internal/store"
)

// pageData is what the page templates see.
type pageData struct {
	Title       string
	ProductName string
	// Initial is the product's first letter, for the logo mark; Static is
	// where the style sheet and script are.
	Initial string
	Static  string
	// Message pages.
	Heading string
	Body    string
	Success bool
	// Form pages.
	Purpose   string
	Email     string
	Greeting  string
	Intro     string
	Submit    string
	CSRF      string
	Rules     []password.Rule
	MinLength int
	Errors    []string
	Unmet     []password.Rule
	// Checked is true when the server checked a submitted password;
	// UnmetIDs are the rules it missed.
	Checked  bool
	UnmetIDs map[string]bool
	// Account pages.
	Base        string
	Notice      string
	NoPasswords bool
	Account     *accountData
	// Nav names the account page shown ("profile", "password") for the
	// navigation; Done is a password changed.
	Nav         string
	Done        bool
	SignInAgain string
	AccountPage bool
}

// message is a page with a heading and a sentence, and no form.
type message struct{ heading, body string }

var (
	messageInvalid = message{"This link is not valid",
		"Check that you opened the whole address from the email. If it still does not work, ask your administrator for a new link."}
	messageVoided = message{"This link is no longer valid",
		"A newer link may have been sent to you: use the one in the most recent email. Otherwise, ask your administrator for a new link."}
	messageExpired = message{"This link has expired",
		"For your security, links work for a limited time. Ask your administrator to send you a new one."}
	messageUsed = message{"This link has already been used",
		"Each link works once. If you need to choose a password again, ask your administrator for a password reset."}
	messageActive = message{"Your account is already active",
		"You have already set up your account, so this invitation is no longer needed. If you forgot your password, ask your administrator for a password reset."}
	messageDeactivated = message{"This account is deactivated",
		"Ask your administrator if you think you should have access."}
	messageUnavailable = message{"Something went wrong on our side",
		"Your password was not changed. Please try again in a few minutes."}
	messageStoreRefused = message{"Your password could not be saved",
		"The directory refused the change for a reason that trying again will not fix, and your administrator can see why. Your link stays valid: once they have fixed it, open the link again."}
	messageTooMany = message{"Too many attempts",
		"Please wait a minute, then try again."}
	messageTooLarge = message{"That form was too large",
		"Go back and try a shorter password."}
	messageFormExpired = message{"This form has expired",
		"Go back, reload the page and try again. Your password was not changed."}
)

// form texts by purpose.
var formText = map[invitation.Purpose]struct{ title, intro, submit, done, doneBody string }{
	invitation.PurposeInvitation: {
		title: "Accept your invitation", intro: "Choose a password to finish setting up your account.",
		submit: "Set password and continue", done: "You're all set",
		doneBody: "Your password is set and your account is active. You can now sign in as %s.",
	},
	invitation.PurposeReset: {
		title: "Choose a new password", intro: "Your new password replaces the old one as soon as you save it.",
		submit: "Save new password", done: "Your password has been changed",
		doneBody: "You can now sign in as %s with your new password.",
	},
}

// target is what a token leads to.
type target struct {
	purpose invitation.Purpose
	token   invitation.Token
	secret  *corev1.Secret
	record  invitation.Record
	user    *v1alpha1.User
	stored  store.User
	store   store.Store
}

// handle serves the page of a purpose: the form on GET, the password on POST.
func (s *Server) handle(p invitation.Purpose) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		log := s.cfg.Log.WithValues("purpose", p)
		post := r.Method == http.MethodPost
		if post {
			if !s.limiter.allow(s.clientIP(r)) {
				w.Header().Set("Retry-After", "60")
				s.message(w, http.StatusTooManyRequests, messageTooMany)
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
			if err := r.ParseForm(); err != nil {
				var tooBig *http.MaxBytesError
				if errors.As(err, &tooBig) {
					s.message(w, http.StatusRequestEntityTooLarge, messageTooLarge)
					return
				}
				s.message(w, http.StatusBadRequest, messageFormExpired)
				return
			}
			if !s.csrfOK(r) {
				log.Info("Refused a form without a valid CSRF token")
				s.message(w, http.StatusForbidden, messageFormExpired)
				return
			}
		}

		t, status, msg := s.resolve(r.Context(), p, r.PathValue("token"))
		if msg != nil {
			if status >= 500 {
				log.Info("Could not serve a link page", "status", status)
			}
			s.message(w, status, *msg)
			return
		}
		log = log.WithValues("user", types.NamespacedName{Namespace: t.user.Namespace, Name: t.user.Name})
		if !post {
			s.form(w, r, t, http.StatusOK, nil, nil)
			return
		}

		pw, confirm := r.PostForm.Get("password"), r.PostForm.Get("confirm")
		var errs []string
		unmet := s.cfg.Policy.Unmet(pw)
		if pw != confirm {
			errs = append(errs, "The two passwords do not match.")
		}
		if len(errs) > 0 || len(unmet) > 0 {
			s.form(w, r, t, http.StatusUnprocessableEntity, errs, unmet)
			return
		}

		switch err := s.setPassword(r.Context(), t, pw); {
		case apierrors.IsConflict(err):
			// Someone (another tab, another replica) used the link first.
			s.message(w, http.StatusGone, messageUsed)
		case errors.Is(err, store.ErrPasswordRejected):
			log.Info("The store refused a password", "reason", err.Error())
			s.form(w, r, t, http.StatusUnprocessableEntity, []string{"The password was not accepted. Please choose a different one."}, nil)
		case errors.Is(err, store.ErrRejected):
			log.Error(err, "The store refused to set a password; no password can pass until the store is fixed")
			s.message(w, http.StatusServiceUnavailable, messageStoreRefused)
		case err != nil:
			log.Error(err, "Could not set a password through a link")
			s.message(w, http.StatusServiceUnavailable, messageUnavailable)
		default:
			log.Info("Set a password through a link")
			text := formText[p]
			s.render(w, http.StatusOK, "message.html", pageData{
				Title: text.done, Heading: text.done, Success: true,
				Body: strings.Replace(text.doneBody, "%s", t.user.Spec.Email, 1),
			})
		}
	}
}

// resolve finds what a token leads to, or the page to show instead.
func (s *Server) resolve(ctx context.Context, p invitation.Purpose, raw string) (*target, int, *message) {
	tok, err := invitation.Parse(raw)
	if err != nil {
		return nil, http.StatusNotFound, &messageInvalid
	}
	// The token names its record. The cache answers a made-up token
	// without asking the API server; a record it holds is read afresh,
	// as the cache may not have seen it used yet.
	key := types.NamespacedName{Namespace: s.cfg.Namespace, Name: invitation.SecretName(p, tok.ID)}
	secret := &corev1.Secret{}
	if err := s.cfg.Client.Get(ctx, key, secret); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, http.StatusNotFound, &messageInvalid
		}
		return nil, http.StatusServiceUnavailable, &messageUnavailable
	}
	if err := s.cfg.APIReader.Get(ctx, key, secret); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, http.StatusNotFound, &messageInvalid
		}
		return nil, http.StatusServiceUnavailable, &messageUnavailable
	}
	rec, err := invitation.ReadRecord(secret)
	if err != nil {
		return nil, http.StatusNotFound, &messageInvalid
	}
	switch err := rec.Check(tok, s.cfg.Clock.Now()); {
	case errors.Is(err, invitation.ErrUsed):
		return nil, http.StatusGone, &messageUsed
	case errors.Is(err, invitation.ErrExpired):
		return nil, http.StatusGone, &messageExpired
	case err != nil:
		return nil, http.StatusGone, &messageVoided
	}

	user := &v1alpha1.User{}
	owner, uid := invitation.Owner(secret)
	if string(uid) != tok.ID {
		return nil, http.StatusNotFound, &messageInvalid
	}
	if err := s.cfg.Client.Get(ctx, owner, user); err != nil || string(user.UID) != tok.ID {
		return nil, http.StatusNotFound, &messageInvalid
	}
	if !user.DeletionTimestamp.IsZero() || user.Status.StoreID == "" {
		return nil, http.StatusNotFound, &messageInvalid
	}
	st, err := s.cfg.Stores.Resolve(user.Spec.StoreRef)
	if err != nil {
		return nil, http.StatusServiceUnavailable, &messageUnavailable
	}
	if !st.Capabilities().Passwords {
		return nil, http.StatusNotFound, &messageInvalid
	}
	stored, err := st.GetUser(ctx, user.Status.StoreID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, http.StatusNotFound, &messageInvalid
	case err != nil:
		return nil, http.StatusServiceUnavailable, &messageUnavailable
	case stored.Disabled:
		return nil, http.StatusGone, &messageDeactivated
	case p == invitation.PurposeInvitation && stored.Activated:
		return nil, http.StatusGone, &messageActive
	}
	return &target{purpose: p, token: tok, secret: secret, record: rec, user: user, stored: stored, store: st}, 0, nil
}

func initial(name string) string {
	for _, r := range name {
		return strings.ToUpper(string(r))
	}
	return "R"
}

// setPassword claims the token, sets the password in the store and records
// the link as completed. The claim is a write with the resourceVersion read,
// so of two submissions of the same link only one gets through; if the store
// then fails, the claim is undone so that the person can try again.
func (s *Server) setPassword(ctx context.Context, t *target, pw string) error {
	rec := t.record
	hash := rec.Claim(s.cfg.Clock.Now())
	claimed := t.secret.DeepCopy()
	rec.WriteTo(claimed)
	if err := s.cfg.Client.Update(ctx, claimed); err != nil {
		return err
	}
	if err := t.store.SetPassword(ctx, t.stored.ID, pw); err != nil {
		rec.Unclaim(hash)
		if errors.Is(err, store.ErrRejected) && !errors.Is(err, store.ErrPasswordRejected) {
			// The User's Invitation condition tells its owner.
			rec.Refuse(s.cfg.Clock.Now(), err)
		}
		rec.WriteTo(claimed)
		if uerr := s.cfg.Client.Update(ctx, claimed); uerr != nil {
			s.cfg.Log.Error(uerr, "Could not give back a link after the store failed; the person needs a new link",
				"user", types.NamespacedName{Namespace: t.user.Namespace, Name: t.user.Name})
		}
		return err
	}
	s.cfg.Metrics.Completed(t.purpose)
	// A reset password ends the account page's sessions, as a change there
	// does. (An invitation's first password has none to end.)
	if t.purpose == invitation.PurposeReset {
		if _, err := s.sessions.endAll(ctx, t.user); err != nil {
			s.cfg.Log.Error(err, "Could not end the account page's sessions after a password reset",
				"user", types.NamespacedName{Namespace: t.user.Namespace, Name: t.user.Name})
		}
	}
	// The controller watches the record: this write tells it to look at the
	// user again, who is now Active.
	rec.Complete(s.cfg.Clock.Now())
	rec.WriteTo(claimed)
	if err := s.cfg.Client.Update(ctx, claimed); err != nil {
		s.cfg.Log.Error(err, "Could not record a used link as completed; the user's status catches up at the next resync",
			"user", types.NamespacedName{Namespace: t.user.Namespace, Name: t.user.Name})
	}
	return nil
}

// form renders the password form.
func (s *Server) form(w http.ResponseWriter, r *http.Request, t *target, status int, errs []string, unmet []password.Rule) {
	text := formText[t.purpose]
	greeting := t.user.Spec.FirstName
	data := pageData{
		Title: text.title, Heading: text.title, Intro: text.intro, Submit: text.submit,
		Purpose: string(t.purpose), Email: t.user.Spec.Email, Greeting: greeting,
		CSRF: s.csrfCookie(w, r), Rules: s.cfg.Policy.Rules(), MinLength: s.cfg.Policy.MinLength,
		Errors: errs, Unmet: unmet, Checked: r.Method == http.MethodPost, UnmetIDs: map[string]bool{},
	}
	for _, rule := range unmet {
		data.UnmetIDs[rule.ID] = true
	}
	s.render(w, status, "form.html", data)
}

func (s *Server) message(w http.ResponseWriter, status int, m message) {
	s.render(w, status, "message.html", pageData{Title: m.heading, Heading: m.heading, Body: m.body})
}

// render writes a page. Pages that follow a link are never cached: they
// are reached with a token in the address.
func (s *Server) render(w http.ResponseWriter, status int, page string, data pageData) {
	data.ProductName = s.cfg.ProductName
	data.Initial = initial(s.cfg.ProductName)
	data.Static = s.prefix() + "/static/"
	data.Base = s.prefix()
	var buf bytes.Buffer
	if err := s.pages[page].Execute(&buf, data); err != nil {
		s.cfg.Log.Error(err, "Rendering a page", "page", page)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// CSRF protection: a random value in a SameSite=Strict cookie that the form
// repeats in a hidden field (the double-submit pattern, which needs no state
// shared between replicas), and, when the browser sends one, an Origin that
// is the public URL's.
func (s *Server) csrfCookieName() string {
	if s.secure() {
		return "__Host-roster-csrf"
	}
	return "roster-csrf"
}

func (s *Server) csrfCookie(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(s.csrfCookieName()); err == nil && validCSRF(c.Value) {
		return c.Value
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	v := base64.RawURLEncoding.EncodeToString(b)
	http.SetCookie(w, &http.Cookie{
		Name: s.csrfCookieName(), Value: v, Path: "/", HttpOnly: true, Secure: s.secure(),
		SameSite: http.SameSiteStrictMode, MaxAge: int((2 * time.Hour).Seconds()),
	})
	return v
}

func validCSRF(v string) bool {
	b, err := base64.RawURLEncoding.DecodeString(v)
	return err == nil && len(b) == 32
}

func (s *Server) csrfOK(r *http.Request) bool {
	if origin := r.Header.Get("Origin"); origin != "" && origin != "null" {
		pub := s.cfg.PublicURL
		if origin != pub.Scheme+"://"+pub.Host && origin != "http://"+r.Host && origin != "https://"+r.Host {
			return false
		}
	}
	c, err := r.Cookie(s.csrfCookieName())
	if err != nil || !validCSRF(c.Value) {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostForm.Get("csrf"))) == 1
}
