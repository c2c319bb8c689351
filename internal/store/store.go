// Package store defines the port between Roster's controllers and an identity
// store: the operations every backend implements, the errors they share and
// the pure functions that decide what a store object needs.
//
// The port is shaped like crossplane-runtime's external client: reads
// (GetUser, FindUserByEmail, GetGroup, FindGroupByName, ListGroupMembers)
// have no side effects, and the writes (including SetPassword) are
// idempotent, so a controller can observe, compare and then write only what
// differs.
//
// Group membership is written as a diff (MemberDiff: the members to add and
// to remove) rather than as a whole list, because that is what the protocols
// do cheaply: LDAP modifies a groupOfNames with add/delete of member values,
// and SCIM PATCHes a Group with add/remove operations on members. A group of
// 10,000 members that gains one therefore costs one small call.
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
	// user, the email; for a group, the name or the external ID).
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
	// ErrRejected means the store refused the request for good: asking
	// again the same way gets the same answer (a request it calls malformed,
	// a schema or constraint violation, missing rights). A person must
	// change the object or the store; the wrapping error says what the
	// store answered.
	ErrRejected = errors.New("the store rejected the request")
	// ErrInvalidCredentials means an Authenticator did not accept an email
	// and password: an unknown user, a wrong password, no password set, or
	// a user who may not log in. The cases are not told apart, so that a
	// caller cannot tell a person which one it was.
	ErrInvalidCredentials = errors.New("invalid email or password")
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

// Group is a group as the store holds it. Its members are read and written
// apart from it (ListGroupMembers, UpdateGroupMembers), because a group may
// have many thousands of them.
type Group struct {
	// ID is the store's identifier for the group; set by the store.
	ID string
	// Name is the group's unique and unchanging key, chosen by the client
	// that creates the group: an LDAP backend makes it the entry's cn, a SCIM
	// backend the attribute it looks groups up by. Roster uses it to find its
	// group again when it lost the ID.
	Name string
	// DisplayName is the name people see.
	DisplayName string
	// ExternalID is the group's identifier in other systems; unique within
	// the store when set.
	ExternalID string
	// Description says what the group is for.
	Description string
}

// GroupUpdate changes some fields of a group. A nil field is left as it is
// in the store.
type GroupUpdate struct {
	DisplayName *string
	ExternalID  *string
	Description *string
}

// IsEmpty reports whether the update changes nothing.
func (u GroupUpdate) IsEmpty() bool {
	return u.DisplayName == nil && u.ExternalID == nil && u.Description == nil
}

// Apply returns the group with the update applied.
func (u GroupUpdate) Apply(g Group) Group {
	for _, f := range []struct{ dst, v *string }{
		{&g.DisplayName, u.DisplayName}, {&g.ExternalID, u.ExternalID}, {&g.Description, u.Description},
	} {
		if f.v != nil {
			*f.dst = *f.v
		}
	}
	return g
}

// MemberDiff is a change of a group's membership: the store user IDs to add
// and to remove. Members it does not name are left as they are.
type MemberDiff struct {
	Add    []string
	Remove []string
}

// IsEmpty reports whether the diff changes nothing.
func (d MemberDiff) IsEmpty() bool { return len(d.Add) == 0 && len(d.Remove) == 0 }

// Authenticator is a store that can check a person's password the way a
// platform's login does: the embedded store against its hashes, an LDAP
// directory by a bind as the user. It is apart from Store because not every
// store can (a SCIM service signs people in through its own single
// sign-on); ask with AsAuthenticator.
type Authenticator interface {
	// Authenticate checks the password of the user holding the email and
	// returns the user. A login counts as one where the store records
	// logins. It returns ErrInvalidCredentials for any refusal of the
	// credentials, and ErrUnavailable when the store cannot be asked.
	Authenticate(ctx context.Context, email, password string) (User, error)
}

// AsAuthenticator returns the store's password check, or false when the
// store has none or keeps no passwords (Capabilities().Passwords). It sees
// through Instrument's wrapper, whose check is counted as its other calls
// are, and through any wrapper with an Unwrap method returning the store it
// wraps.
func AsAuthenticator(s Store) (Authenticator, bool) {
	if !s.Capabilities().Passwords {
		return nil, false
	}
	switch w := s.(type) {
	case *instrumented:
		inner, ok := AsAuthenticator(w.Store)
		if !ok {
			return nil, false
		}
		return instrumentedAuthenticator{w, inner}, true
	case Authenticator:
		return w, true
	case interface{ Unwrap() Store }:
		return AsAuthenticator(w.Unwrap())
	}
	return nil, false
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
	// DeleteUser removes a user, and with it the user's membership in every
	// group, so that no group is left naming a user that is gone. A user
	// already gone is not an error.
	DeleteUser(ctx context.Context, id string) error
	// SetPassword sets the user's password and marks the user activated. The
	// store keeps only a one-way hash (or hands the password to a directory
	// that does). It returns ErrNotFound for a missing user and
	// ErrPasswordsUnsupported when Capabilities().Passwords is false.
	SetPassword(ctx context.Context, id, password string) error
	// ListUsers reads every user in the store, a page at a time, and calls
	// page with each page, in no particular order. It stops at the first
	// error, the store's or page's, and returns it. After a reconnect a page
	// may be delivered again. A user missing from a listing that failed part
	// way may well still be in the store.
	ListUsers(ctx context.Context, page func([]User) error) error

	// GetGroup returns the group with the store ID, or ErrNotFound.
	GetGroup(ctx context.Context, id string) (Group, error)
	// FindGroupByName returns the group with the name (compared exactly), or
	// ErrNotFound.
	FindGroupByName(ctx context.Context, name string) (Group, error)
	// CreateGroup adds a group with its first members (store user IDs) and
	// returns it with its ID. It returns ErrAlreadyExists when another group
	// holds the name or the external ID, and ErrNotFound when a member is not
	// a user in the store.
	CreateGroup(ctx context.Context, group Group, members []string) (Group, error)
	// UpdateGroup changes the fields the update names and returns the group.
	// It returns ErrAlreadyExists when another group holds the new external ID.
	UpdateGroup(ctx context.Context, id string, update GroupUpdate) (Group, error)
	// ListGroupMembers returns the store IDs of the group's members, sorted.
	// A backend that pages reads every page before answering: a partial list
	// would make a diff remove members that are still there.
	ListGroupMembers(ctx context.Context, id string) ([]string, error)
	// UpdateGroupMembers adds and removes the members the diff names, and
	// nothing else, in one call. Adding a member already in the group or
	// removing one not in it is not an error. It returns ErrNotFound when the
	// group is gone or a member to add is not a user in the store; then
	// nothing is changed.
	UpdateGroupMembers(ctx context.Context, id string, diff MemberDiff) error
	// DeleteGroup removes a group; its members stay in the store. A group
	// already gone is not an error.
	DeleteGroup(ctx context.Context, id string) error

	// Close releases the store's resources.
	Close() error
}
