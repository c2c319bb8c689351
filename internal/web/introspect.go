package web

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"roster.dev/roster/internal/invitation"
	"roster.dev/roster/internal/store"
)

// Token introspection (RFC 7662) lets a service ask whether an access key
// a caller presented is good, and whose it is. It answers for stores that
// check keys themselves (store.KeyChecker: the embedded store); keys of
// an LDAP directory are checked by a bind instead.
//
// The services asking authenticate with HTTP Basic client credentials kept
// in IntrospectionSecret in the operator's namespace, which the manager
// creates when it is absent. An administrator hands its clientID and
// clientSecret to the services, and rotates the secret by editing it.
const (
	// IntrospectionSecret names the Secret holding the client credentials.
	IntrospectionSecret = "roster-introspection"
	// IntrospectionClientIDKey and IntrospectionClientSecretKey are its keys.
	IntrospectionClientIDKey     = "clientID"
	IntrospectionClientSecretKey = "clientSecret"
	// DefaultIntrospectionClientID is the client ID of a Secret the manager
	// creates.
	DefaultIntrospectionClientID = "roster-introspection"

	// credentialsTTL is how long the credentials are used before the
	// Secret is read again, so that a rotated secret applies soon without
	// an API call per request.
	credentialsTTL = 30 * time.Second
)

// tokenTypeAccessKey is the token_type of an access key.
const tokenTypeAccessKey = "access_key"

// introspectionCredentials reads, and creates when absent, the client
// credentials.
type introspectionCredentials struct {
	srv *Server

	mu       sync.Mutex
	id       []byte
	secret   []byte
	readAt   time.Time
	hasValue bool
}

func (c *introspectionCredentials) get(ctx context.Context) (id, secret []byte, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.srv.cfg.Clock.Now()
	if c.hasValue && now.Sub(c.readAt) < credentialsTTL {
		return c.id, c.secret, nil
	}
	cfg := c.srv.cfg
	key := types.NamespacedName{Namespace: cfg.Namespace, Name: IntrospectionSecret}
	for range 3 {
		s := &corev1.Secret{}
		err := cfg.APIReader.Get(ctx, key, s)
		if err == nil {
			id, secret := s.Data[IntrospectionClientIDKey], s.Data[IntrospectionClientSecretKey]
			if len(id) == 0 || len(secret) < 16 {
				return nil, nil, fmt.Errorf("the Secret %s holds no %q or no %q of 16 bytes or more", key, IntrospectionClientIDKey, IntrospectionClientSecretKey)
			}
			c.id, c.secret, c.readAt, c.hasValue = id, secret, now, true
			return id, secret, nil
		}
		if !apierrors.IsNotFound(err) {
			return nil, nil, fmt.Errorf("reading the introspection credentials: %w", err)
		}
		raw := make([]byte, 32)
		_, _ = rand.Read(raw)
		s = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name,
				Labels: map[string]string{invitation.LabelManagedBy: invitation.ManagedBy}},
			Type: corev1.SecretTypeOpaque,
			Data: map[string][]byte{
				IntrospectionClientIDKey:     []byte(DefaultIntrospectionClientID),
				IntrospectionClientSecretKey: []byte(hex.EncodeToString(raw)),
			},
		}
		// Another replica may create it first: then read theirs.
		if err := cfg.Client.Create(ctx, s); err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, nil, fmt.Errorf("creating the introspection credentials: %w", err)
		}
	}
	return nil, nil, errors.New("the introspection credentials could not be created or read")
}

// EnsureIntrospectionCredentials creates the introspection client
// credentials when they are absent, so that an administrator finds them
// from the start.
func (s *Server) EnsureIntrospectionCredentials(ctx context.Context) error {
	_, _, err := s.introspection.get(ctx)
	return err
}

// introspectionResponse is RFC 7662's answer. An inactive key gets only
// active: false, whatever made it so.
type introspectionResponse struct {
	Active    bool   `json:"active"`
	Sub       string `json:"sub,omitempty"`
	Username  string `json:"username,omitempty"`
	Exp       int64  `json:"exp,omitempty"`
	ClientID  string `json:"client_id,omitempty"`
	TokenType string `json:"token_type,omitempty"`
}

// introspect answers POST /introspect.
func (s *Server) introspect(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	ip := "ip:" + s.clientIP(r)
	if s.failures.blocked(ip) {
		writeJSONError(w, http.StatusTooManyRequests, "invalid_client", "too many failed attempts; try again later")
		return
	}
	clientID, ok := s.authenticateClient(w, r)
	if !ok {
		s.failures.fail(ip)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		writeJSONError(w, http.StatusBadRequest, "invalid_request", "the body is not a form")
		return
	}
	token := r.PostForm.Get("token")
	if token == "" {
		writeJSONError(w, http.StatusBadRequest, "invalid_request", "the token parameter is required")
		return
	}
	resp := introspectionResponse{}
	key, user, err := s.checkKey(r.Context(), token)
	switch {
	case err == nil:
		resp = introspectionResponse{Active: true, Sub: user.Email, Username: user.Email, ClientID: clientID, TokenType: tokenTypeAccessKey}
		if key.ExpiresAt != nil {
			resp.Exp = key.ExpiresAt.Unix()
		}
	case !errors.Is(err, store.ErrInvalidCredentials):
		s.cfg.Log.Error(err, "Checking an access key")
		writeJSONError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "the identity store could not be asked")
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// checkKey asks each store that checks keys; key IDs are random, so at
// most one holds the key.
func (s *Server) checkKey(ctx context.Context, key string) (store.Key, store.User, error) {
	if _, ok := store.ParseKey(key); !ok {
		return store.Key{}, store.User{}, store.ErrInvalidCredentials
	}
	var errs []error
	for _, h := range s.cfg.Stores.All() {
		kc, ok := store.AsKeyChecker(h.Store)
		if !ok {
			continue
		}
		k, u, err := kc.CheckKey(ctx, key)
		if err == nil {
			return k, u, nil
		}
		if !errors.Is(err, store.ErrInvalidCredentials) {
			errs = append(errs, fmt.Errorf("IdentityStore %s: %w", h.Name, err))
		}
	}
	if len(errs) > 0 {
		return store.Key{}, store.User{}, errors.Join(errs...)
	}
	return store.Key{}, store.User{}, store.ErrInvalidCredentials
}

// authenticateClient checks the HTTP Basic client credentials, in
// constant time, and answers 401 when they are missing or wrong.
func (s *Server) authenticateClient(w http.ResponseWriter, r *http.Request) (string, bool) {
	id, secret, err := s.introspection.get(r.Context())
	if err != nil {
		s.cfg.Log.Error(err, "Reading the introspection client credentials")
		writeJSONError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "the client credentials could not be read")
		return "", false
	}
	gotID, gotSecret, ok := r.BasicAuth()
	idOK := subtle.ConstantTimeCompare([]byte(gotID), id) == 1
	secretOK := subtle.ConstantTimeCompare([]byte(gotSecret), secret) == 1
	if !ok || !idOK || !secretOK {
		w.Header().Set("WWW-Authenticate", `Basic realm="roster-introspection", charset="UTF-8"`)
		writeJSONError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return "", false
	}
	return gotID, true
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeJSONError(w http.ResponseWriter, code int, errCode, desc string) {
	writeJSON(w, code, map[string]string{"error": errCode, "error_description": desc})
}
