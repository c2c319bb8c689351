package ldap

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1" // {SSHA} is what every directory verifies; see keyValue.
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	ldapv3 "github.com/go-ldap/ldap/v3"

	"roster.dev/roster/internal/store"
)

var _ store.KeyStore = (*Store)(nil)

// An access key is kept as an additional userPassword value of the user's
// entry, so that a simple bind with the key succeeds wherever the
// directory checks passwords, and its password policy's lock refuses it
// with the person's password. The value is a salted SHA-1 ({SSHA}), which
// every directory verifies on bind; the key carries 192 random bits, so
// the hash's speed gives nothing to guess.
//
// The salt is keySaltPrefix, the key ID and random bytes, so that Roster
// finds the value of a key by its ID, to tell whether it is there and to
// delete that exact value, without keeping anything of its own.
const (
	keySaltPrefix   = "rak:"
	keySaltRandom   = 8
	keyIDLen        = 16 // hex characters of a key ID
	sshaScheme      = "{SSHA}"
	sha1DigestBytes = sha1.Size
)

// keyValue is the userPassword value of a key.
func keyValue(key, keyID string) string {
	salt := make([]byte, 0, len(keySaltPrefix)+keyIDLen+keySaltRandom)
	salt = append(salt, keySaltPrefix+keyID...)
	random := make([]byte, keySaltRandom)
	_, _ = rand.Read(random) // crypto/rand.Read never fails on supported platforms.
	salt = append(salt, random...)
	h := sha1.New()
	h.Write([]byte(key))
	h.Write(salt)
	return sshaScheme + base64.StdEncoding.EncodeToString(append(h.Sum(nil), salt...))
}

// keyIDOf returns the key ID of a userPassword value that holds an access
// key, or false for any other value (the person's password among them).
func keyIDOf(value []byte) (string, bool) {
	rest, ok := bytes.CutPrefix(value, []byte(sshaScheme))
	if !ok {
		return "", false
	}
	raw, err := base64.StdEncoding.DecodeString(string(rest))
	if err != nil || len(raw) != sha1DigestBytes+len(keySaltPrefix)+keyIDLen+keySaltRandom {
		return "", false
	}
	salt := raw[sha1DigestBytes:]
	id, ok := bytes.CutPrefix(salt[:len(salt)-keySaltRandom], []byte(keySaltPrefix))
	if !ok {
		return "", false
	}
	return string(id), true
}

// keyValues reads the user's userPassword values that hold the key.
func (s *Store) keyValues(ctx context.Context, userID, keyID string) ([][]byte, error) {
	if !under(userID, s.cfg.UsersDN) {
		return nil, outside("user", userID, "usersDN")
	}
	e, err := s.searchOne(ctx, userID, ldapv3.ScopeBaseObject, s.userFilter(), []string{"userPassword"})
	if err != nil {
		return nil, fmt.Errorf("user %q: %w", userID, err)
	}
	var found [][]byte
	for _, v := range e.GetEqualFoldRawAttributeValues("userPassword") {
		if id, ok := keyIDOf(v); ok && id == keyID {
			found = append(found, v)
		}
	}
	return found, nil
}

// allKeyValues reads the user's userPassword values that hold access keys.
func (s *Store) allKeyValues(ctx context.Context, userID string) ([]string, error) {
	e, err := s.searchOne(ctx, userID, ldapv3.ScopeBaseObject, s.userFilter(), []string{"userPassword"})
	if err != nil {
		return nil, fmt.Errorf("user %q: %w", userID, err)
	}
	var found []string
	for _, v := range e.GetEqualFoldRawAttributeValues("userPassword") {
		if _, ok := keyIDOf(v); ok {
			found = append(found, string(v))
		}
	}
	return found, nil
}

// restoreKeys adds back the key values a Password Modify operation
// replaced along with the old password.
func (s *Store) restoreKeys(ctx context.Context, userID string, values []string) error {
	if len(values) == 0 {
		return nil
	}
	req := ldapv3.NewModifyRequest(userID, nil)
	req.Add("userPassword", values)
	return s.do(ctx, false, func(conn *ldapv3.Conn) error { return conn.Modify(req) })
}

// AddKey implements store.KeyStore with a modify that adds a userPassword
// value. The directory does not expire it: Roster removes it at expiry.
func (s *Store) AddKey(ctx context.Context, userID, key string, _ *time.Time) error {
	keyID, ok := store.ParseKey(key)
	if !ok {
		return fmt.Errorf("adding an access key to user %q: not an access key: %w", userID, store.ErrRejected)
	}
	found, err := s.keyValues(ctx, userID, keyID)
	if err != nil || len(found) > 0 {
		return err
	}
	req := ldapv3.NewModifyRequest(userID, nil)
	req.Add("userPassword", []string{keyValue(key, keyID)})
	if err := s.do(ctx, false, func(conn *ldapv3.Conn) error { return conn.Modify(req) }); err != nil {
		return fmt.Errorf("adding access key %s to user %q: %w", keyID, userID, err)
	}
	return nil
}

// GetKey implements store.KeyStore. The directory records binds per
// entry, not per password value, so the key's last use is not known.
func (s *Store) GetKey(ctx context.Context, userID, keyID string) (store.Key, error) {
	found, err := s.keyValues(ctx, userID, keyID)
	if err != nil {
		return store.Key{}, err
	}
	if len(found) == 0 {
		return store.Key{}, fmt.Errorf("access key %s of user %q: %w", keyID, userID, store.ErrNotFound)
	}
	return store.Key{ID: keyID, UserID: userID}, nil
}

// RemoveKey implements store.KeyStore: it deletes exactly the key's
// values, and leaves the person's password and other keys alone.
func (s *Store) RemoveKey(ctx context.Context, userID, keyID string) error {
	found, err := s.keyValues(ctx, userID, keyID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil || len(found) == 0 {
		return err
	}
	values := make([]string, len(found))
	for i, v := range found {
		values[i] = string(v)
	}
	req := ldapv3.NewModifyRequest(userID, nil)
	req.Delete("userPassword", values)
	err = s.do(ctx, false, func(conn *ldapv3.Conn) error { return conn.Modify(req) })
	if err != nil && !errors.Is(err, store.ErrNotFound) && !ldapv3.IsErrorWithCode(err, ldapv3.LDAPResultNoSuchAttribute) {
		return fmt.Errorf("removing access key %s from user %q: %w", keyID, userID, err)
	}
	return nil
}
