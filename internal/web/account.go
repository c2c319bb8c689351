package web

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/internal/mail"
	"roster.dev/roster/internal/naming"
	"roster.dev/roster/internal/password"
	"roster.dev/roster/internal/store"
	"roster.dev/roster/internal/store/embedded"
)

// The account page: a person signs in with their email and password, which
// their User's store checks, then edits their own settings and changes
// their password. Every request checks the session and the User afresh.

// Session lifetimes when the configuration sets none.
const (
	DefaultSessionIdle = 30 * time.Minute
	DefaultSessionMax  = 8 * time.Hour
)

var (
	messageSignedOut = message{"You have signed out",
		"Every session of your account page has ended, on this device and any other."}
	messageSessionEnded = "Your session has ended. Please sign in again."
	errBadCredentials   = "The email address or password is not right."
	errCurrentPassword  = "Your current password is not right."
)

// Mailer sends the password-changed email.
type Mailer struct {
	Templates *mail.Templates
	Sender    mail.Sender
}

// accountData is what the account templates see.
type accountData struct {
	Email  string
	Role   string
	Groups []string
	Fields []settingField
	Saved  bool
	Keys   []accountKey
}

// accountKey is one of the person's AccessKeys, as the page lists it.
type accountKey struct {
	Name, Description, KeyID, Created, Expires, LastUsed string
}

// base is the prefix every page's path starts with.
func (s *Server) base() string { return s.prefix() }

// account serves GET /account: the settings of the signed-in person, or
// the sign-in form.
func (s *Server) account(w http.ResponseWriter, r *http.Request) {
	_, user, err := s.current(w, r)
	if err != nil {
		s.signInAfter(w, r, err)
		return
	}
	s.settings(w, r, user, http.StatusOK, nil, false)
}

// signInAfter shows the sign-in form when a request had no usable session,
// saying so when it had a cookie.
func (s *Server) signInAfter(w http.ResponseWriter, r *http.Request, err error) {
	if !errors.Is(err, errSessionEnded) {
		s.cfg.Log.Error(err, "Could not check a session")
		s.message(w, http.StatusServiceUnavailable, messageUnavailable)
		return
	}
	status, notice := http.StatusOK, ""
	if _, cerr := r.Cookie(s.sessionCookieName()); cerr == nil {
		s.clearSessionCookie(w)
		notice = messageSessionEnded
	}
	if r.Method == http.MethodPost {
		status = http.StatusUnauthorized
		notice = messageSessionEnded + " Nothing was changed."
	}
	s.signInForm(w, r, status, "", notice, nil)
}

func (s *Server) signInForm(w http.ResponseWriter, r *http.Request, status int, email, notice string, errs []string) {
	s.render(w, status, "signin.html", pageData{
		Title: "Sign in", Heading: "Sign in", Email: email, Notice: notice, Errors: errs,
		CSRF: s.csrfCookie(w, r), NoPasswords: !s.anyAuthenticator(),
	})
}

// anyAuthenticator reports whether any open store checks passwords: when
// none does, the page says where people sign in instead of showing a form.
func (s *Server) anyAuthenticator() bool {
	for _, h := range s.cfg.Stores.All() {
		if _, ok := store.AsAuthenticator(h.Store); ok {
			return true
		}
	}
	return false
}

// accountPost checks what every form of the account pages needs: the rate
// limit, the form's size and its CSRF token. It answers and returns false
// when one fails.
func (s *Server) accountPost(w http.ResponseWriter, r *http.Request) bool {
	if !s.limiter.allow(s.clientIP(r)) {
		w.Header().Set("Retry-After", "60")
		s.message(w, http.StatusTooManyRequests, messageTooMany)
		return false
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.message(w, http.StatusRequestEntityTooLarge, messageTooLarge)
			return false
		}
		s.message(w, http.StatusBadRequest, messageFormExpired)
		return false
	}
	if !s.csrfOK(r) {
		s.cfg.Log.Info("Refused an account form without a valid CSRF token")
		s.message(w, http.StatusForbidden, messageFormExpired)
		return false
	}
	return true
}

// signIn serves POST /account/sign-in.
func (s *Server) signIn(w http.ResponseWriter, r *http.Request) {
	if !s.accountPost(w, r) {
		return
	}
	email, pw := strings.TrimSpace(r.PostForm.Get("email")), r.PostForm.Get("password")
	ip, addr := s.clientIP(r), naming.NormalizeEmail(email)
	if s.failures.blocked("ip:"+ip) || s.failures.blocked("email:"+addr) {
		w.Header().Set("Retry-After", "60")
		s.message(w, http.StatusTooManyRequests, messageTooMany)
		return
	}
	if email == "" || pw == "" || len(pw) > 4*password.MaxLength {
		s.signInForm(w, r, http.StatusUnprocessableEntity, email, "", []string{"Enter your email address and your password."})
		return
	}
	user, err := s.authenticate(r.Context(), email, pw)
	switch {
	case errors.Is(err, store.ErrInvalidCredentials):
		s.failures.fail("ip:" + ip)
		s.failures.fail("email:" + addr)
		s.cfg.Log.Info("Refused a sign-in")
		s.signInForm(w, r, http.StatusUnauthorized, email, "", []string{errBadCredentials})
		return
	case err != nil:
		s.cfg.Log.Error(err, "Could not check a sign-in")
		s.message(w, http.StatusServiceUnavailable, messageUnavailable)
		return
	}
	gen, err := s.sessions.generation(r.Context(), user.UID)
	if err == nil {
		now := s.cfg.Clock.Now().Unix()
		err = s.setSessionCookie(r.Context(), w, session{
			UID: user.UID, Namespace: user.Namespace, Name: user.Name, IssuedAt: now, SeenAt: now, Generation: gen,
		})
	}
	if err != nil {
		s.cfg.Log.Error(err, "Could not start a session")
		s.message(w, http.StatusServiceUnavailable, messageUnavailable)
		return
	}
	key := types.NamespacedName{Namespace: user.Namespace, Name: user.Name}
	s.cfg.Log.Info("Signed in on the account page", "user", key)
	s.wake(key)
	http.Redirect(w, r, s.base()+"/account", http.StatusSeeOther)
}

// authenticate finds the User holding the address whose store accepts the
// password. An address may be held in more than one store (tenants of
// different stores); each User's store is asked in turn. Any refusal, an
// unknown address included, is store.ErrInvalidCredentials.
func (s *Server) authenticate(ctx context.Context, email, pw string) (*v1alpha1.User, error) {
	users, err := s.cfg.FindUsers(ctx, email)
	if err != nil {
		return nil, err
	}
	var failure error
	asked := false
	defer func() {
		if !asked {
			// No store was asked: spend a password check's time, so that
			// the answer's timing does not tell an unknown address apart.
			embedded.SpendCheckTime(pw)
		}
	}()
	for i := range users {
		u := &users[i]
		if !u.DeletionTimestamp.IsZero() || u.Status.StoreID == "" || deactivated(u) {
			continue
		}
		h, err := s.cfg.Stores.Resolve(u.Spec.StoreRef)
		if err != nil {
			failure = err
			continue
		}
		auth, ok := store.AsAuthenticator(h.Store)
		if !ok {
			continue
		}
		asked = true
		got, err := auth.Authenticate(ctx, u.Spec.Email, pw)
		switch {
		case errors.Is(err, store.ErrInvalidCredentials):
			continue
		case err != nil:
			failure = err
			continue
		case got.ID != u.Status.StoreID:
			// The store's user with the address is not this User's.
			continue
		}
		return u, nil
	}
	if failure != nil {
		return nil, failure
	}
	return nil, store.ErrInvalidCredentials
}

// wake asks the User controller to look at the User now: a sign-in or a
// password change is a login its status shows. Best effort: without it the
// next drift pass shows it.
func (s *Server) wake(key types.NamespacedName) {
	if s.cfg.Wake != nil {
		s.cfg.Wake(key)
	}
}

// signOut serves POST /account/sign-out: it ends every session of the
// person, on every device.
func (s *Server) signOut(w http.ResponseWriter, r *http.Request) {
	if !s.accountPost(w, r) {
		return
	}
	_, user, err := s.current(w, r)
	switch {
	case errors.Is(err, errSessionEnded):
	case err != nil:
		s.cfg.Log.Error(err, "Could not check a session")
		s.message(w, http.StatusServiceUnavailable, messageUnavailable)
		return
	default:
		if _, err := s.sessions.endAll(r.Context(), user); err != nil {
			s.cfg.Log.Error(err, "Could not end the sessions of a user signing out")
			s.message(w, http.StatusServiceUnavailable, messageUnavailable)
			return
		}
		s.cfg.Log.Info("Signed out of the account page", "user", types.NamespacedName{Namespace: user.Namespace, Name: user.Name})
	}
	s.clearSessionCookie(w)
	s.render(w, http.StatusOK, "message.html", pageData{
		Title: messageSignedOut.heading, Heading: messageSignedOut.heading, Body: messageSignedOut.body, Success: true,
		SignInAgain: s.base() + "/account",
	})
}

// passwordPage serves GET and POST /account/password.
func (s *Server) passwordPage(w http.ResponseWriter, r *http.Request) {
	post := r.Method == http.MethodPost
	if post && !s.accountPost(w, r) {
		return
	}
	sess, user, err := s.current(w, r)
	if err != nil {
		s.signInAfter(w, r, err)
		return
	}
	h, err := s.cfg.Stores.Resolve(user.Spec.StoreRef)
	if err != nil {
		s.message(w, http.StatusServiceUnavailable, messageUnavailable)
		return
	}
	auth, ok := store.AsAuthenticator(h.Store)
	if !ok || !h.Capabilities().Passwords {
		s.message(w, http.StatusNotFound, message{"Your password is not kept here",
			"You sign in through your organisation's single sign-on: change your password there."})
		return
	}
	if !post {
		s.passwordForm(w, r, user, http.StatusOK, nil, nil, false)
		return
	}
	current, pw, confirm := r.PostForm.Get("current"), r.PostForm.Get("password"), r.PostForm.Get("confirm")
	var errs []string
	unmet := s.cfg.Policy.Unmet(pw)
	if pw != confirm {
		errs = append(errs, "The two new passwords do not match.")
	}
	if current == "" {
		errs = append(errs, "Enter your current password.")
	}
	if len(errs) > 0 || len(unmet) > 0 {
		s.passwordForm(w, r, user, http.StatusUnprocessableEntity, errs, unmet, false)
		return
	}
	ip, addr := s.clientIP(r), naming.NormalizeEmail(user.Spec.Email)
	if s.failures.blocked("ip:"+ip) || s.failures.blocked("email:"+addr) {
		w.Header().Set("Retry-After", "60")
		s.message(w, http.StatusTooManyRequests, messageTooMany)
		return
	}
	log := s.cfg.Log.WithValues("user", types.NamespacedName{Namespace: user.Namespace, Name: user.Name})
	got, err := auth.Authenticate(r.Context(), user.Spec.Email, current)
	switch {
	case errors.Is(err, store.ErrInvalidCredentials) || (err == nil && got.ID != user.Status.StoreID):
		s.failures.fail("ip:" + ip)
		s.failures.fail("email:" + addr)
		log.Info("Refused a password change: wrong current password")
		s.passwordForm(w, r, user, http.StatusUnprocessableEntity, []string{errCurrentPassword}, nil, false)
		return
	case err != nil:
		log.Error(err, "Could not check a current password")
		s.message(w, http.StatusServiceUnavailable, messageUnavailable)
		return
	}
	switch err := h.SetPassword(r.Context(), user.Status.StoreID, pw); {
	case errors.Is(err, store.ErrPasswordRejected):
		log.Info("The store refused a password", "reason", err.Error())
		s.passwordForm(w, r, user, http.StatusUnprocessableEntity, []string{"The password was not accepted. Please choose a different one."}, nil, false)
		return
	case err != nil:
		log.Error(err, "Could not change a password")
		s.message(w, http.StatusServiceUnavailable, messageUnavailable)
		return
	}
	// The password changed: every other session ends, this one goes on
	// under the new generation.
	gen, err := s.sessions.endAll(r.Context(), user)
	if err == nil {
		sess.Generation = gen
		err = s.setSessionCookie(r.Context(), w, sess)
	}
	if err != nil {
		log.Error(err, "Changed a password but could not end the other sessions")
		s.clearSessionCookie(w)
	}
	log.Info("Changed a password on the account page")
	s.wake(types.NamespacedName{Namespace: user.Namespace, Name: user.Name})
	s.notifyPasswordChanged(r.Context(), user)
	s.passwordForm(w, r, user, http.StatusOK, nil, nil, true)
}

// notifyPasswordChanged emails the person. The change is made whether the
// email goes or not; a failure is logged without the message.
func (s *Server) notifyPasswordChanged(ctx context.Context, user *v1alpha1.User) {
	if s.cfg.Mail == nil || s.cfg.Mail.Templates == nil || s.cfg.Mail.Sender == nil {
		return
	}
	log := s.cfg.Log.WithValues("user", types.NamespacedName{Namespace: user.Namespace, Name: user.Name})
	loc := time.UTC
	if user.Spec.TimeZone != "" {
		if l, err := time.LoadLocation(user.Spec.TimeZone); err == nil {
			loc = l
		}
	}
	display := strings.TrimSpace(user.Spec.FirstName + " " + user.Spec.LastName)
	msg, err := s.cfg.Mail.Templates.Render(mail.KindPasswordChanged, user.Spec.Email, mail.Data{
		ProductName: s.cfg.ProductName, FirstName: user.Spec.FirstName, DisplayName: display,
		Email: user.Spec.Email, ChangedAt: s.cfg.Clock.Now(), Location: loc,
	})
	if err != nil {
		log.Error(err, "Could not render the password-changed email")
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := s.cfg.Mail.Sender.Send(ctx, msg); err != nil {
		log.Error(err, "Could not send the password-changed email")
	}
}

func (s *Server) passwordForm(w http.ResponseWriter, r *http.Request, user *v1alpha1.User, status int, errs []string, unmet []password.Rule, done bool) {
	data := pageData{
		Title: "Change your password", Heading: "Change your password", Email: user.Spec.Email,
		CSRF: s.csrfCookie(w, r), Rules: s.cfg.Policy.Rules(), MinLength: s.cfg.Policy.MinLength,
		Errors: errs, Unmet: unmet, Checked: r.Method == http.MethodPost && !done, UnmetIDs: map[string]bool{},
		Done: done, Nav: "password",
	}
	for _, rule := range unmet {
		data.UnmetIDs[rule.ID] = true
	}
	s.render(w, status, "password.html", data)
}

// keysOf lists the User's AccessKeys that are not being revoked, oldest
// first.
func (s *Server) keysOf(ctx context.Context, user *v1alpha1.User) ([]accountKey, error) {
	var list v1alpha1.AccessKeyList
	if err := s.cfg.Client.List(ctx, &list, client.InNamespace(user.Namespace)); err != nil {
		return nil, err
	}
	slices.SortFunc(list.Items, func(a, b v1alpha1.AccessKey) int {
		return a.CreationTimestamp.Compare(b.CreationTimestamp.Time)
	})
	day := func(t *metav1.Time, none string) string {
		if t == nil {
			return none
		}
		return t.UTC().Format("2 Jan 2006")
	}
	var keys []accountKey
	for _, k := range list.Items {
		if k.Spec.UserRef.Name != user.Name || !k.DeletionTimestamp.IsZero() {
			continue
		}
		created := k.CreationTimestamp
		keys = append(keys, accountKey{
			Name: k.Name, Description: k.Spec.Description, KeyID: k.Status.KeyID, Created: day(&created, ""),
			Expires: day(k.Status.ExpiresAt, "Never"), LastUsed: day(k.Status.LastUsedAt, "Not known"),
		})
	}
	return keys, nil
}

// signedInPost checks a form posted to the account page and the session
// it came with, and returns the signed-in User; otherwise it has answered.
func (s *Server) signedInPost(w http.ResponseWriter, r *http.Request) (*v1alpha1.User, bool) {
	if !s.accountPost(w, r) {
		return nil, false
	}
	_, user, err := s.current(w, r)
	if err != nil {
		s.signInAfter(w, r, err)
		return nil, false
	}
	return user, true
}

// revokeKey serves POST /account/keys/revoke: the signed-in person deletes
// one of their own AccessKeys, which revokes the key.
func (s *Server) revokeKey(w http.ResponseWriter, r *http.Request) {
	user, ok := s.signedInPost(w, r)
	if !ok {
		return
	}
	key := &v1alpha1.AccessKey{}
	name := r.PostForm.Get("key")
	err := s.cfg.Client.Get(r.Context(), types.NamespacedName{Namespace: user.Namespace, Name: name}, key)
	switch {
	case apierrors.IsNotFound(err) || err == nil && key.Spec.UserRef.Name != user.Name:
		// Not theirs to revoke, or gone already: the list shows what is.
		http.Redirect(w, r, s.base()+"/account", http.StatusSeeOther)
		return
	case err != nil:
		s.cfg.Log.Error(err, "Could not read an access key to revoke")
		s.message(w, http.StatusServiceUnavailable, messageUnavailable)
		return
	}
	if err := s.cfg.Client.Delete(r.Context(), key, client.Preconditions{UID: &key.UID}); client.IgnoreNotFound(err) != nil {
		s.cfg.Log.Error(err, "Could not revoke an access key")
		s.message(w, http.StatusServiceUnavailable, messageUnavailable)
		return
	}
	s.cfg.Log.Info("Revoked an access key on the account page", "accessKey", types.NamespacedName{Namespace: key.Namespace, Name: key.Name})
	http.Redirect(w, r, s.base()+"/account", http.StatusSeeOther)
}
