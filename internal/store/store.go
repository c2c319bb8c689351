// Package store defines the port between Roster's controllers and an identity
// store: the operations every backend implements, the errors they share and
// the pure functions that decide what a store object needs.
//
// The port is shaped like crossplane-runtime's external client: reads
// (GetUser, FindUserByEmail) have no side effects, and CreateUser, UpdateUser,
// DeleteUser and SetPassword are idempotent, so a controller can observe,
// compare and then write only what differs.
package store

import (
	"context"
	"errors"
	"time"
)

// Errors shared by every backend. Compare with errors.Is.
var (
	// ErrNotFound means the object is not in the store.
	ErrNotFound = errors.New("not found in the store")
	// ErrAlreadyExists means another object holds the same unique key (for a
	// user, the email).
	ErrAlreadyExists = errors.New("already exists in the store")
	// ErrUnavailable means the store could not be reached; try again later.
	ErrUnavailable = errors.New("store unavailable")
	// ErrPasswordsUnsupported means the store does not accept passwords set
	// by Roster (its Capabilities say so); people sign in another way, such
	// as single sign-on.
	ErrPasswordsUnsupported = errors.New("the store does not accept passwords")
	// ErrPasswordRejected means the store refused a password, for example by
	// a policy of its own. The wrapping error says why, without the password.
	ErrPasswordRejected = errors.New("the store refused the password")
)

// Capabilities says what a store supports, so controllers ask instead of
// switching on the store's kind.
type Capabilities struct {
	// Passwords is true when the store accepts passwords set by Roster.
	Passwords bool
	// LoginTimes is true when the store reports users' last logins.
	LoginTimes bool
	// Paging is true when listing reads the store in pages.
	Paging bool
}

// User is a user as the store holds it.
type User struct {
	// ID is the store's identifier for the user; set by the store.
	ID string
	// Email is the user's address, unique within the store.
	Email string
	// ExternalID is set by the client that created the user. Roster writes
	// the UID of the User resource here, which tells a user it created apart
	// from one it adopted, even after a crash between create and status write.
	ExternalID string

	FirstName string
	LastName  string
	Role      string
	Mobile    string
	TimeZone  string
	Country   string
	Locale    string
	// Attributes are further key/value pairs.
	Attributes map[string]string

	// Disabled is true when the user cannot log in.
	Disabled bool
	// Activated is true once the user has set a password or logged in.
	Activated bool
	// LastLoginAt is the user's last login, where the store reports it.
	LastLoginAt *time.Time
}

// UserUpdate changes some fields of a user. A nil field is left as it is in
// the store: Roster only writes what it manages.
type UserUpdate struct {
	FirstName *string
	LastName  *string
	Role      *string
	Mobile    *string
	TimeZone  *string
	Country   *string
	Locale    *string
	// Attributes are set key by key; keys not named are left alone.
	Attributes map[string]string
	Disabled   *bool
}

// IsEmpty reports whether the update changes nothing.
func (u UserUpdate) IsEmpty() bool {
	return u.FirstName == nil && u.LastName == nil && u.Role == nil && u.Mobile == nil &&
		u.TimeZone == nil && u.Country == nil && u.Locale == nil && len(u.Attributes) == 0 &&
		u.Disabled == nil
}

// Apply returns the user with the update applied.
func (u UserUpdate) Apply(user User) User {
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	set(&user.FirstName, u.FirstName)
	set(&user.LastName, u.LastName)
	set(&user.Role, u.Role)
	set(&user.Mobile, u.Mobile)
	set(&user.TimeZone, u.TimeZone)
	set(&user.Country, u.Country)
	set(&user.Locale, u.Locale)
	if len(u.Attributes) > 0 {
		attrs := make(map[string]string, len(user.Attributes)+len(u.Attributes))
		for k, v := range user.Attributes {
			attrs[k] = v
		}
		for k, v := range u.Attributes {
			attrs[k] = v
		}
		user.Attributes = attrs
	}
	if u.Disabled != nil {
		user.Disabled = *u.Disabled
	}
	return user
}

// Store is an identity store. Implementations are safe for concurrent use.
type Store interface {
	// Kind names the backend ("embedded", "ldap", "scim") for logs and metrics.
	Kind() string
	// Capabilities says what the store supports.
	Capabilities() Capabilities

	// GetUser returns the user with the store ID, or ErrNotFound.
	GetUser(ctx context.Context, id string) (User, error)
	// FindUserByEmail returns the user holding the email (compared without
	// regard to case), or ErrNotFound.
	FindUserByEmail(ctx context.Context, email string) (User, error)
	// CreateUser adds a user and returns it with its ID. It returns
	// ErrAlreadyExists when another user holds the email.
	CreateUser(ctx context.Context, user User) (User, error)
	// UpdateUser changes the fields the update names and returns the user.
	UpdateUser(ctx context.Context, id string, update UserUpdate) (User, error)
	// DeleteUser removes a user. A user already gone is not an error.
	DeleteUser(ctx context.Context, id string) error
	// SetPassword sets the user's password and marks the user activated. The
	// store keeps only a one-way hash (or hands the password to a directory
	// that does). It returns ErrNotFound for a missing user and
	// ErrPasswordsUnsupported when Capabilities().Passwords is false.
	SetPassword(ctx context.Context, id, password string) error

	// Close releases the store's resources.
	Close() error
}
