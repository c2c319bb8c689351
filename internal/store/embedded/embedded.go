// Package embedded is the identity store Roster runs with by default: users
// and groups kept in a bbolt file in the operator's data folder, needing
// nothing else running. The file belongs to one process, so the operator runs
// as a single replica with this store.
package embedded

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"roster.dev/roster/internal/store"
)

// Kind is the store's name in flags, logs and metrics.
const Kind = "embedded"

// FileName is the database file inside the data folder.
const FileName = "roster.db"

// Buckets. Membership is kept in both directions, one nested bucket per
// group (its members) and per user (its groups), so that a membership diff
// and a user's deletion touch only the keys concerned, whatever the size of
// the group.
var (
	bucketUsers        = []byte("users")
	bucketByEmail      = []byte("users-by-email")
	bucketGroups       = []byte("groups")
	bucketGroupsByName = []byte("groups-by-name")
	bucketGroupsByExt  = []byte("groups-by-external-id")
	bucketGroupMembers = []byte("group-members") // group ID -> {user ID}
	bucketUserGroups   = []byte("user-groups")   // user ID -> {group ID}
	bucketAccessKeys   = []byte("access-keys")   // key ID -> keyRecord
)

var allBuckets = [][]byte{
	bucketUsers, bucketByEmail, bucketGroups, bucketGroupsByName, bucketGroupsByExt,
	bucketGroupMembers, bucketUserGroups, bucketAccessKeys,
}

// Store is the embedded identity store.
type Store struct {
	db  *bolt.DB
	now func() time.Time
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the store in dir. It fails fast when another
// process holds the file, rather than waiting for it.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data folder %q: %w", dir, err)
	}
	path := filepath.Join(dir, FileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("opening embedded store %q: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("initialising embedded store %q: %w", path, err)
	}
	return &Store{db: db, now: time.Now}, nil
}

// Kind implements store.Store.
func (s *Store) Kind() string { return Kind }

// Capabilities implements store.Store.
func (s *Store) Capabilities() store.Capabilities {
	return store.Capabilities{Passwords: true, LoginTimes: true, Paging: true}
}

// Close implements store.Store.
func (s *Store) Close() error { return s.db.Close() }

// record is a user as persisted. Field names are part of the file format.
type record struct {
	ID          string            `json:"id"`
	Email       string            `json:"email"`
	ExternalID  string            `json:"externalID,omitempty"`
	FirstName   string            `json:"firstName,omitempty"`
	LastName    string            `json:"lastName,omitempty"`
	Role        string            `json:"role,omitempty"`
	Mobile      string            `json:"mobile,omitempty"`
	TimeZone    string            `json:"timeZone,omitempty"`
	Country     string            `json:"country,omitempty"`
	Locale      string            `json:"locale,omitempty"`
	Attributes  map[string]string `json:"attributes,omitempty"`
	Disabled    bool              `json:"disabled,omitempty"`
	Activated   bool              `json:"activated,omitempty"`
	LastLoginAt *time.Time        `json:"lastLoginAt,omitempty"`
	CreatedAt   time.Time         `json:"createdAt"`
	// PasswordHash is an argon2id hash in the PHC string format; the
	// password itself is never written.
	PasswordHash string `json:"passwordHash,omitempty"`
}

func (r record) user() store.User {
	return store.User{
		ID: r.ID, Email: r.Email, ExternalID: r.ExternalID,
		FirstName: r.FirstName, LastName: r.LastName, Role: r.Role,
		Mobile: r.Mobile, TimeZone: r.TimeZone, Country: r.Country, Locale: r.Locale,
		Attributes: r.Attributes, Disabled: r.Disabled, Activated: r.Activated, LastLoginAt: r.LastLoginAt,
	}
}

func (r *record) set(u store.User) {
	r.FirstName, r.LastName, r.Role = u.FirstName, u.LastName, u.Role
	r.Mobile, r.TimeZone, r.Country, r.Locale = u.Mobile, u.TimeZone, u.Country, u.Locale
	r.Attributes, r.Disabled = u.Attributes, u.Disabled
}

func emailKey(email string) []byte { return []byte(strings.ToLower(strings.TrimSpace(email))) }

func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms.
	return hex.EncodeToString(b)
}

func getRecord(tx *bolt.Tx, id string) (record, error) {
	var r record
	raw := tx.Bucket(bucketUsers).Get([]byte(id))
	if raw == nil {
		return r, fmt.Errorf("user %q: %w", id, store.ErrNotFound)
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return r, fmt.Errorf("decoding user %q: %w", id, err)
	}
	return r, nil
}

func putRecord(tx *bolt.Tx, r record) error {
	raw, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encoding user %q: %w", r.ID, err)
	}
	return tx.Bucket(bucketUsers).Put([]byte(r.ID), raw)
}

// GetUser implements store.Store.
func (s *Store) GetUser(ctx context.Context, id string) (store.User, error) {
	var r record
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		r, err = getRecord(tx, id)
		return err
	})
	return r.user(), err
}

// FindUserByEmail implements store.Store.
func (s *Store) FindUserByEmail(ctx context.Context, email string) (store.User, error) {
	var r record
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		id := tx.Bucket(bucketByEmail).Get(emailKey(email))
		if id == nil {
			return fmt.Errorf("user with email %q: %w", email, store.ErrNotFound)
		}
		r, err = getRecord(tx, string(id))
		return err
	})
	return r.user(), err
}

// CreateUser implements store.Store.
func (s *Store) CreateUser(ctx context.Context, u store.User) (store.User, error) {
	if strings.TrimSpace(u.Email) == "" {
		return store.User{}, fmt.Errorf("creating user: email is required")
	}
	r := record{ID: newID(), Email: u.Email, ExternalID: u.ExternalID, Activated: u.Activated, CreatedAt: s.now().UTC()}
	r.set(u)
	err := s.db.Update(func(tx *bolt.Tx) error {
		byEmail := tx.Bucket(bucketByEmail)
		if byEmail.Get(emailKey(u.Email)) != nil {
			return fmt.Errorf("user with email %q: %w", u.Email, store.ErrAlreadyExists)
		}
		if err := byEmail.Put(emailKey(u.Email), []byte(r.ID)); err != nil {
			return err
		}
		return putRecord(tx, r)
	})
	if err != nil {
		return store.User{}, err
	}
	return r.user(), nil
}

// UpdateUser implements store.Store.
func (s *Store) UpdateUser(ctx context.Context, id string, update store.UserUpdate) (store.User, error) {
	var r record
	err := s.db.Update(func(tx *bolt.Tx) (err error) {
		if r, err = getRecord(tx, id); err != nil {
			return err
		}
		r.set(update.Apply(r.user()))
		return putRecord(tx, r)
	})
	return r.user(), err
}

// DeleteUser implements store.Store.
func (s *Store) DeleteUser(ctx context.Context, id string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		r, err := getRecord(tx, id)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			return err
		}
		if err := leaveAllGroups(tx, id); err != nil {
			return err
		}
		if err := removeUserKeys(tx, id); err != nil {
			return err
		}
		if err := tx.Bucket(bucketByEmail).Delete(emailKey(r.Email)); err != nil {
			return err
		}
		return tx.Bucket(bucketUsers).Delete([]byte(id))
	})
}

// SetPassword implements store.Store. It keeps an argon2id hash of the
// password and marks the user activated.
func (s *Store) SetPassword(ctx context.Context, id, password string) error {
	if password == "" {
		return fmt.Errorf("user %q: an empty password: %w", id, store.ErrPasswordRejected)
	}
	// Hash outside the transaction: argon2id is slow on purpose, and bbolt
	// allows one writer at a time.
	hash, err := hashPassword(password)
	if err != nil {
		return fmt.Errorf("hashing the password of user %q: %w", id, err)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		r, err := getRecord(tx, id)
		if err != nil {
			return err
		}
		r.PasswordHash, r.Activated = hash, true
		return putRecord(tx, r)
	})
}

// ErrInvalidCredentials means Authenticate did not accept the email and
// password: unknown user, wrong password, no password set or deactivated.
var ErrInvalidCredentials = store.ErrInvalidCredentials

var _ store.Authenticator = (*Store)(nil)

// unknownUserHash is checked against when no user holds the address, so
// that an unknown address costs the same argon2id time as a wrong
// password and the answer's timing does not tell them apart.
var unknownUserHash = sync.OnceValue(func() string {
	h, _ := hashPassword("no user holds this address")
	return h
})

// SpendCheckTime checks password against a hash no user has, for a caller
// that found no user to ask: an unknown address then takes as long to
// refuse as a wrong password.
func SpendCheckTime(password string) { verifyPassword(unknownUserHash(), password) }

// Authenticate implements store.Authenticator: it checks a user's password
// the way a platform's login would and records the login: the user's last
// login time is set and the user counts as activated from then on. The
// account page signs people in with it, and it makes the embedded store
// report logins like a directory does (its Capabilities include
// LoginTimes).
func (s *Store) Authenticate(ctx context.Context, email, password string) (store.User, error) {
	u, err := s.FindUserByEmail(ctx, email)
	if errors.Is(err, store.ErrNotFound) {
		verifyPassword(unknownUserHash(), password)
		return store.User{}, ErrInvalidCredentials
	}
	if err != nil {
		return store.User{}, err
	}
	var hash string
	if err := s.db.View(func(tx *bolt.Tx) error {
		r, err := getRecord(tx, u.ID)
		hash = r.PasswordHash
		return err
	}); err != nil {
		return store.User{}, err
	}
	if hash == "" {
		hash = unknownUserHash()
	}
	if ok := verifyPassword(hash, password); !ok || u.Disabled || hash == unknownUserHash() {
		return store.User{}, ErrInvalidCredentials
	}
	return s.RecordLogin(ctx, u.ID)
}

// RecordLogin records that the user logged in now, through whatever means
// the platform uses (a password or single sign-on): it sets the last login
// time and marks the user activated.
func (s *Store) RecordLogin(ctx context.Context, id string) (store.User, error) {
	var r record
	err := s.db.Update(func(tx *bolt.Tx) (err error) {
		if r, err = getRecord(tx, id); err != nil {
			return err
		}
		now := s.now().UTC()
		r.LastLoginAt, r.Activated = &now, true
		return putRecord(tx, r)
	})
	return r.user(), err
}

// listPageSize is how many users ListUsers reads in one transaction, so
// that a long listing never holds the database open for writers' remaps.
const listPageSize = 500

// ListUsers implements store.Store, in the order of the user IDs.
func (s *Store) ListUsers(ctx context.Context, page func([]store.User) error) error {
	var after []byte
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		users := make([]store.User, 0, listPageSize)
		err := s.db.View(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketUsers).Cursor()
			k, v := c.First()
			if after != nil {
				if k, v = c.Seek(after); k != nil && bytes.Equal(k, after) {
					k, v = c.Next()
				}
			}
			for ; k != nil && len(users) < listPageSize; k, v = c.Next() {
				var r record
				if err := json.Unmarshal(v, &r); err != nil {
					return fmt.Errorf("decoding user %q: %w", k, err)
				}
				users = append(users, r.user())
				after = append(after[:0], k...)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if len(users) == 0 {
			return nil
		}
		if err := page(users); err != nil {
			return err
		}
		if len(users) < listPageSize {
			return nil
		}
	}
}
