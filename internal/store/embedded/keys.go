package embedded

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"roster.dev/roster/internal/store"
)

var (
	_ store.KeyStore   = (*Store)(nil)
	_ store.KeyChecker = (*Store)(nil)
)

// keyRecord is an access key as persisted: its SHA-256, never the key.
// Field names are part of the file format.
type keyRecord struct {
	ID         string     `json:"id"`
	UserID     string     `json:"userID"`
	Hash       string     `json:"hash"`
	CreatedAt  time.Time  `json:"createdAt"`
	ExpiresAt  *time.Time `json:"expiresAt,omitempty"`
	LastUsedAt *time.Time `json:"lastUsedAt,omitempty"`
}

func (k keyRecord) key() store.Key {
	return store.Key{ID: k.ID, UserID: k.UserID, ExpiresAt: k.ExpiresAt, LastUsedAt: k.LastUsedAt}
}

// lastUseGranularity bounds the writes that checking keys causes: a key's
// last use is written again only once it is this much older.
const lastUseGranularity = time.Minute

func getKeyRecord(tx *bolt.Tx, keyID string) (keyRecord, error) {
	var k keyRecord
	raw := tx.Bucket(bucketAccessKeys).Get([]byte(keyID))
	if raw == nil {
		return k, fmt.Errorf("access key %q: %w", keyID, store.ErrNotFound)
	}
	if err := json.Unmarshal(raw, &k); err != nil {
		return k, fmt.Errorf("decoding access key %q: %w", keyID, err)
	}
	return k, nil
}

func putKeyRecord(tx *bolt.Tx, k keyRecord) error {
	raw, err := json.Marshal(k)
	if err != nil {
		return fmt.Errorf("encoding access key %q: %w", k.ID, err)
	}
	return tx.Bucket(bucketAccessKeys).Put([]byte(k.ID), raw)
}

// removeUserKeys deletes every key of the user, so that no key outlives
// its user. Keys are few, so a scan is cheap.
func removeUserKeys(tx *bolt.Tx, userID string) error {
	var ids [][]byte
	err := tx.Bucket(bucketAccessKeys).ForEach(func(k, v []byte) error {
		var r keyRecord
		if err := json.Unmarshal(v, &r); err == nil && r.UserID != userID {
			return nil
		}
		ids = append(ids, append([]byte(nil), k...))
		return nil
	})
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := tx.Bucket(bucketAccessKeys).Delete(id); err != nil {
			return err
		}
	}
	return nil
}

// AddKey implements store.KeyStore: it keeps the key's SHA-256.
func (s *Store) AddKey(ctx context.Context, userID, key string, expiresAt *time.Time) error {
	keyID, ok := store.ParseKey(key)
	if !ok {
		return fmt.Errorf("adding an access key to user %q: not an access key: %w", userID, store.ErrRejected)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		if _, err := getRecord(tx, userID); err != nil {
			return err
		}
		existing, err := getKeyRecord(tx, keyID)
		switch {
		case err == nil && existing.UserID == userID:
			return nil
		case err == nil:
			return fmt.Errorf("access key %q: %w", keyID, store.ErrAlreadyExists)
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		return putKeyRecord(tx, keyRecord{
			ID: keyID, UserID: userID, Hash: store.HashKey(key), CreatedAt: s.now().UTC(), ExpiresAt: expiresAt,
		})
	})
}

// GetKey implements store.KeyStore.
func (s *Store) GetKey(ctx context.Context, userID, keyID string) (store.Key, error) {
	var k keyRecord
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		k, err = getKeyRecord(tx, keyID)
		return err
	})
	if err != nil {
		return store.Key{}, err
	}
	if k.UserID != userID {
		return store.Key{}, fmt.Errorf("access key %q of user %q: %w", keyID, userID, store.ErrNotFound)
	}
	return k.key(), nil
}

// RemoveKey implements store.KeyStore.
func (s *Store) RemoveKey(ctx context.Context, userID, keyID string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		k, err := getKeyRecord(tx, keyID)
		if errors.Is(err, store.ErrNotFound) || (err == nil && k.UserID != userID) {
			return nil
		}
		if err != nil {
			return err
		}
		return tx.Bucket(bucketAccessKeys).Delete([]byte(keyID))
	})
}

// CheckKey implements store.KeyChecker: the key must be one the store
// holds, compared in constant time, unexpired, of a user who is not
// disabled. Its use is recorded, at most once a minute.
func (s *Store) CheckKey(ctx context.Context, key string) (store.Key, store.User, error) {
	keyID, ok := store.ParseKey(key)
	if !ok {
		return store.Key{}, store.User{}, store.ErrInvalidCredentials
	}
	var k keyRecord
	var u record
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		if k, err = getKeyRecord(tx, keyID); err != nil {
			return err
		}
		u, err = getRecord(tx, k.UserID)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return store.Key{}, store.User{}, store.ErrInvalidCredentials
	}
	if err != nil {
		return store.Key{}, store.User{}, err
	}
	now := s.now().UTC()
	if !store.KeyHashMatches(k.Hash, key) || u.Disabled || (k.ExpiresAt != nil && !now.Before(*k.ExpiresAt)) {
		return store.Key{}, store.User{}, store.ErrInvalidCredentials
	}
	if k.LastUsedAt == nil || now.Sub(*k.LastUsedAt) >= lastUseGranularity {
		k.LastUsedAt = &now
		if err := s.db.Update(func(tx *bolt.Tx) error {
			cur, err := getKeyRecord(tx, keyID)
			if err != nil {
				return err
			}
			cur.LastUsedAt = &now
			return putKeyRecord(tx, cur)
		}); err != nil && !errors.Is(err, store.ErrNotFound) {
			return store.Key{}, store.User{}, err
		}
	}
	return k.key(), u.user(), nil
}
