package web

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/internal/invitation"
)

// Sessions of the account page live in a cookie that the server signs, so
// that every replica accepts a session any replica issued without sharing
// state beyond two kinds of Secret in the operator's namespace:
//
//   - SessionKeySecret holds the HMAC-SHA256 key. The first replica that
//     needs it creates it; the others read it.
//   - One Secret per User that has signed in (SessionRecordName) holds the
//     User's session generation. A session carries the generation it was
//     issued under and is refused once the generation moved on: signing out
//     and changing the password move it, which ends every session of the
//     person, on every replica.
//
// Neither Secret carries the token-record label, so neither is in the
// manager's cache: both are read straight from the API server.
const (
	// SessionKeySecret names the Secret holding the session signing key.
	SessionKeySecret = "roster-session-key"
	sessionKeyField  = "key"
	generationField  = "generation"
	// LabelSessionRecord marks a User's session record.
	LabelSessionRecord = "iam.roster.dev/session-record"
)

// SessionRecordName is the name of the Secret holding the session
// generation of the User with the UID. The User controller deletes it with
// the User's token records.
func SessionRecordName(uid types.UID) string { return "roster-session-" + string(uid) }

// session is what the cookie holds, signed. It holds no password and
// nothing from which one could be derived.
type session struct {
	UID        types.UID `json:"uid"`
	Namespace  string    `json:"ns"`
	Name       string    `json:"name"`
	IssuedAt   int64     `json:"iat"`
	SeenAt     int64     `json:"seen"`
	Generation int64     `json:"gen"`
}

func (s session) key() types.NamespacedName {
	return types.NamespacedName{Namespace: s.Namespace, Name: s.Name}
}

// errSessionEnded is any session that cannot be used: none, malformed,
// forged, timed out or ended. The page asks the person to sign in again
// whichever it was.
var errSessionEnded = errors.New("no valid session")

// sessions issues and checks session cookies.
type sessions struct {
	client    client.Client
	apiReader client.Reader
	namespace string
	clock     clock.PassiveClock
	idle, max time.Duration

	mu      sync.Mutex
	signKey []byte
}

// signingKey returns the key, reading the Secret once, or creating it when
// no replica has yet.
func (s *sessions) signingKey(ctx context.Context) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.signKey != nil {
		return s.signKey, nil
	}
	key := types.NamespacedName{Namespace: s.namespace, Name: SessionKeySecret}
	for range 3 {
		secret := &corev1.Secret{}
		err := s.apiReader.Get(ctx, key, secret)
		if err == nil {
			k := secret.Data[sessionKeyField]
			if len(k) < 32 {
				return nil, fmt.Errorf("the Secret %s holds no %q of 32 bytes or more", key, sessionKeyField)
			}
			s.signKey = k
			return k, nil
		}
		if !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("reading the session key: %w", err)
		}
		k := make([]byte, 32)
		_, _ = rand.Read(k)
		secret = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name,
				Labels: map[string]string{invitation.LabelManagedBy: invitation.ManagedBy}},
			Type: corev1.SecretTypeOpaque,
			Data: map[string][]byte{sessionKeyField: k},
		}
		// Another replica may create it first: then read theirs.
		if err := s.client.Create(ctx, secret); err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("creating the session key: %w", err)
		}
	}
	return nil, errors.New("the session key could not be created or read")
}

var b64 = base64.RawURLEncoding

// encode signs a session into a cookie value: the payload and its MAC.
func (s *sessions) encode(ctx context.Context, sess session) (string, error) {
	k, err := s.signingKey(ctx)
	if err != nil {
		return "", err
	}
	payload, _ := json.Marshal(sess)
	mac := hmac.New(sha256.New, k)
	mac.Write(payload)
	return b64.EncodeToString(payload) + "." + b64.EncodeToString(mac.Sum(nil)), nil
}

// decode checks a cookie value's signature and times. The User and the
// generation are checked by the caller.
func (s *sessions) decode(ctx context.Context, v string) (session, error) {
	var sess session
	p, m, ok := strings.Cut(v, ".")
	if !ok || len(v) > 2048 {
		return sess, errSessionEnded
	}
	payload, err1 := b64.DecodeString(p)
	sum, err2 := b64.DecodeString(m)
	if err1 != nil || err2 != nil {
		return sess, errSessionEnded
	}
	k, err := s.signingKey(ctx)
	if err != nil {
		return sess, err
	}
	mac := hmac.New(sha256.New, k)
	mac.Write(payload)
	if !hmac.Equal(mac.Sum(nil), sum) {
		return sess, errSessionEnded
	}
	if err := json.Unmarshal(payload, &sess); err != nil || sess.UID == "" || sess.Name == "" || sess.Namespace == "" {
		return sess, errSessionEnded
	}
	now := s.clock.Now()
	issued, seen := time.Unix(sess.IssuedAt, 0), time.Unix(sess.SeenAt, 0)
	if now.Sub(issued) > s.max || now.Sub(seen) > s.idle || seen.Before(issued) || issued.After(now.Add(time.Minute)) {
		return sess, errSessionEnded
	}
	return sess, nil
}

func (s *sessions) recordKey(uid types.UID) types.NamespacedName {
	return types.NamespacedName{Namespace: s.namespace, Name: SessionRecordName(uid)}
}

// generation reads the User's session generation: 0 before any sign-out or
// password change.
func (s *sessions) generation(ctx context.Context, uid types.UID) (int64, error) {
	secret := &corev1.Secret{}
	if err := s.apiReader.Get(ctx, s.recordKey(uid), secret); err != nil {
		if apierrors.IsNotFound(err) {
			return 0, nil
		}
		return 0, fmt.Errorf("reading the session record: %w", err)
	}
	n, err := strconv.ParseInt(string(secret.Data[generationField]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("the session record %s holds no generation", secret.Name)
	}
	return n, nil
}

// endAll moves the User's session generation on, which ends every session
// issued before, and returns the new generation. The write is
// optimistic-locked: of two replicas moving it at once, one retries.
func (s *sessions) endAll(ctx context.Context, user *v1alpha1.User) (int64, error) {
	key := s.recordKey(user.UID)
	for range 5 {
		secret := &corev1.Secret{}
		err := s.apiReader.Get(ctx, key, secret)
		switch {
		case apierrors.IsNotFound(err):
			secret = &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name, Labels: map[string]string{
					invitation.LabelManagedBy:     invitation.ManagedBy,
					LabelSessionRecord:            "true",
					invitation.LabelUserUID:       string(user.UID),
					invitation.LabelUserNamespace: user.Namespace,
					invitation.LabelUserName:      user.Name,
				}},
				Type: corev1.SecretTypeOpaque,
				Data: map[string][]byte{generationField: []byte("1")},
			}
			if err := s.client.Create(ctx, secret); err == nil {
				return 1, nil
			} else if !apierrors.IsAlreadyExists(err) {
				return 0, fmt.Errorf("creating the session record: %w", err)
			}
			continue
		case err != nil:
			return 0, fmt.Errorf("reading the session record: %w", err)
		}
		n, _ := strconv.ParseInt(string(secret.Data[generationField]), 10, 64)
		n++
		if secret.Data == nil {
			secret.Data = map[string][]byte{}
		}
		secret.Data[generationField] = []byte(strconv.FormatInt(n, 10))
		if err := s.client.Update(ctx, secret); err == nil {
			return n, nil
		} else if !apierrors.IsConflict(err) {
			return 0, fmt.Errorf("writing the session record: %w", err)
		}
	}
	return 0, errors.New("the session record kept changing")
}

// Cookie handling. Over https the cookie is a __Host- cookie: Secure, for
// the whole host and no other; over plain http (a workstation, the tests)
// a browser would drop a Secure cookie, so it goes by a plain name, as the
// CSRF cookie does.
func (s *Server) sessionCookieName() string {
	if s.secure() {
		return "__Host-roster-session"
	}
	return "roster-session"
}

func (s *Server) setSessionCookie(ctx context.Context, w http.ResponseWriter, sess session) error {
	v, err := s.sessions.encode(ctx, sess)
	if err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{
		Name: s.sessionCookieName(), Value: v, Path: "/", HttpOnly: true, Secure: s.secure(),
		SameSite: http.SameSiteStrictMode,
	})
	return nil
}

func (s *Server) clearSessionCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{
		Name: s.sessionCookieName(), Value: "", Path: "/", HttpOnly: true, Secure: s.secure(),
		SameSite: http.SameSiteStrictMode, MaxAge: -1,
	})
}

// current is the request's session and its User, checked afresh: the
// signature and times, the User (still there, the same UID, not being
// deleted, not deactivated) and the generation. A good session's last-seen
// time moves on with a new cookie.
func (s *Server) current(w http.ResponseWriter, r *http.Request) (session, *v1alpha1.User, error) {
	c, err := r.Cookie(s.sessionCookieName())
	if err != nil {
		return session{}, nil, errSessionEnded
	}
	ctx := r.Context()
	sess, err := s.sessions.decode(ctx, c.Value)
	if err != nil {
		return sess, nil, err
	}
	user := &v1alpha1.User{}
	if err := s.cfg.Client.Get(ctx, sess.key(), user); err != nil {
		if apierrors.IsNotFound(err) {
			return sess, nil, errSessionEnded
		}
		return sess, nil, err
	}
	if user.UID != sess.UID || !user.DeletionTimestamp.IsZero() || deactivated(user) {
		return sess, nil, errSessionEnded
	}
	gen, err := s.sessions.generation(ctx, user.UID)
	if err != nil {
		return sess, nil, err
	}
	if gen != sess.Generation {
		return sess, nil, errSessionEnded
	}
	sess.SeenAt = s.cfg.Clock.Now().Unix()
	if err := s.setSessionCookie(ctx, w, sess); err != nil {
		return sess, nil, err
	}
	return sess, user, nil
}

// deactivated reports whether the User may not sign in: deactivated in its
// spec, or Inactive as the controller last saw the store.
func deactivated(u *v1alpha1.User) bool {
	return (u.Spec.Deactivated != nil && *u.Spec.Deactivated) || u.Status.Phase == v1alpha1.UserInactive
}
