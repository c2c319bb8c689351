package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"strings"
	"time"
)

// Access keys are personal keys for API integrations. Roster generates
// them; a store that can check them keeps only a hash. The format is
// owned here: KeyPrefix, then the key ID (a short public prefix that
// tells keys apart and finds the hash), then the secret part, joined by
// underscores: rak_<keyID>_<secret>. The secret part carries 192 random
// bits, the key ID 64 more that are public.
const (
	KeyPrefix = "rak"

	keyIDBytes     = 8
	keySecretBytes = 24
)

// ErrKeysUnsupported means the store cannot check access keys: it keeps no
// passwords of its own (a SCIM service that signs people in through single
// sign-on) or no hashes of keys.
var ErrKeysUnsupported = errors.New("the store cannot check access keys")

// NewKey generates an access key and returns its key ID and the whole key.
func NewKey() (keyID, key string) {
	id := make([]byte, keyIDBytes)
	secret := make([]byte, keySecretBytes)
	_, _ = rand.Read(id) // crypto/rand.Read never fails on supported platforms.
	_, _ = rand.Read(secret)
	keyID = hex.EncodeToString(id)
	return keyID, KeyPrefix + "_" + keyID + "_" + hex.EncodeToString(secret)
}

// ParseKey returns the key ID of an access key, or false when the value is
// not shaped like one.
func ParseKey(key string) (keyID string, ok bool) {
	parts := strings.Split(key, "_")
	if len(parts) != 3 || parts[0] != KeyPrefix ||
		len(parts[1]) != 2*keyIDBytes || len(parts[2]) != 2*keySecretBytes || !isHex(parts[1]) || !isHex(parts[2]) {
		return "", false
	}
	return parts[1], true
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}

// HashKey is the SHA-256 of a key, hex-encoded. A key carries 192 random
// bits, so a fast hash suffices: there is nothing to guess that a slow one
// would protect.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// KeyHashMatches compares a key with a HashKey hash in constant time.
func KeyHashMatches(hash, key string) bool {
	return subtle.ConstantTimeCompare([]byte(hash), []byte(HashKey(key))) == 1
}

// Key is an access key as a store holds it: never the key itself.
type Key struct {
	// ID is the key's public prefix.
	ID string
	// UserID is the store ID of the user the key acts as.
	UserID string
	// ExpiresAt is when the key stops working; nil for never.
	ExpiresAt *time.Time
	// LastUsedAt is when the key was last accepted, where the store
	// records it.
	LastUsedAt *time.Time
}

// KeyStore is a store that can hold access keys so that they are checked
// where the person's password is: the embedded store keeps their hashes
// and answers token introspection, an LDAP directory keeps each as an
// additional userPassword value, so that a bind with the key succeeds. It
// is apart from Store because not every store can; ask with AsKeyStore.
type KeyStore interface {
	// AddKey adds the key to the user. Adding a key ID the user already
	// holds is not an error and changes nothing. It returns ErrNotFound
	// when the user is not in the store.
	AddKey(ctx context.Context, userID, key string, expiresAt *time.Time) error
	// GetKey returns the key with the ID held by the user, or ErrNotFound.
	GetKey(ctx context.Context, userID, keyID string) (Key, error)
	// RemoveKey removes the key with the ID from the user; a key or a user
	// already gone is not an error.
	RemoveKey(ctx context.Context, userID, keyID string) error
}

// KeyChecker is a store that checks an access key itself, for token
// introspection.
type KeyChecker interface {
	// CheckKey returns the key and its user when the key is one the store
	// holds, unexpired, of a user who may log in, and records its use. It
	// returns ErrInvalidCredentials for any refusal, without saying which.
	CheckKey(ctx context.Context, key string) (Key, User, error)
}

// AsKeyStore returns the store's access key operations, or false when it
// has none. It sees through Instrument's wrapper, whose calls are counted
// as its other calls are.
func AsKeyStore(s Store) (KeyStore, bool) {
	switch w := s.(type) {
	case *instrumented:
		inner, ok := AsKeyStore(w.Store)
		if !ok {
			return nil, false
		}
		return instrumentedKeys{w, inner}, true
	case KeyStore:
		return w, true
	case interface{ Unwrap() Store }:
		return AsKeyStore(w.Unwrap())
	}
	return nil, false
}

// AsKeyChecker returns the store's access key check, or false when it has
// none.
func AsKeyChecker(s Store) (KeyChecker, bool) {
	switch w := s.(type) {
	case *instrumented:
		inner, ok := AsKeyChecker(w.Store)
		if !ok {
			return nil, false
		}
		return instrumentedKeyChecker{w, inner}, true
	case KeyChecker:
		return w, true
	case interface{ Unwrap() Store }:
		return AsKeyChecker(w.Unwrap())
	}
	return nil, false
}

// Operations of access keys, as counted by Instrument. They are not among
// WriteOperations, which are the Store port's own.
const (
	OpAddKey    = "AddKey"
	OpGetKey    = "GetKey"
	OpRemoveKey = "RemoveKey"
	OpCheckKey  = "CheckKey"
)

type instrumentedKeys struct {
	i     *instrumented
	inner KeyStore
}

func (k instrumentedKeys) AddKey(ctx context.Context, userID, key string, expiresAt *time.Time) error {
	return k.i.observe(ctx, OpAddKey, func() error { return k.inner.AddKey(ctx, userID, key, expiresAt) })
}

func (k instrumentedKeys) GetKey(ctx context.Context, userID, keyID string) (got Key, err error) {
	err = k.i.observe(ctx, OpGetKey, func() error { got, err = k.inner.GetKey(ctx, userID, keyID); return err })
	return got, err
}

func (k instrumentedKeys) RemoveKey(ctx context.Context, userID, keyID string) error {
	return k.i.observe(ctx, OpRemoveKey, func() error { return k.inner.RemoveKey(ctx, userID, keyID) })
}

type instrumentedKeyChecker struct {
	i     *instrumented
	inner KeyChecker
}

// CheckKey counts the check; a refused key is an answer, not a failure of
// the store. It is not rate limited with the store's other calls: the
// services asking must not wait behind Roster's own resyncs.
func (k instrumentedKeyChecker) CheckKey(ctx context.Context, key string) (got Key, u User, err error) {
	start := time.Now()
	got, u, err = k.inner.CheckKey(ctx, key)
	k.i.m.calls.WithLabelValues(k.i.name, OpCheckKey).Inc()
	k.i.m.duration.WithLabelValues(k.i.name, OpCheckKey).Observe(time.Since(start).Seconds())
	return got, u, err
}
