// Package ldap is the identity store for OpenLDAP and compatible
// directories: users are inetOrgPerson entries under usersDN, groups are
// groupOfNames entries under groupsDN, passwords are set with the Password
// Modify extended operation (RFC 3062) and deactivation is the ppolicy
// overlay's permanent lock. Store IDs are entry DNs, so a group's member
// values are its members' IDs. docs/store-ldap.md describes the mapping.
package ldap

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	ldapv3 "github.com/go-ldap/ldap/v3"

	"roster.dev/roster/internal/store"
)

// Kind is the store's name in flags, logs and metrics.
const Kind = "ldap"

// Store is the LDAP identity store.
type Store struct {
	cfg  *Config
	pool *pool
}

var _ store.Store = (*Store)(nil)

// Open returns a store for the configuration. It does not connect: the
// first call does, so the operator starts (and reports the directory as
// unavailable on its resources) while the directory is down.
func Open(cfg *Config) (*Store, error) {
	p, err := newPool(cfg)
	if err != nil {
		return nil, err
	}
	return &Store{cfg: cfg, pool: p}, nil
}

// Kind implements store.Store.
func (s *Store) Kind() string { return Kind }

// Capabilities implements store.Store.
func (s *Store) Capabilities() store.Capabilities {
	return store.Capabilities{Passwords: true, LoginTimes: s.cfg.loginTimes(), Paging: true}
}

// Close implements store.Store.
func (s *Store) Close() error {
	s.pool.close()
	return nil
}

// userAttributes are the attributes read for a user. userPassword is read
// only to tell whether one is set; its value is dropped at once.
func (s *Store) userAttributes() []string {
	a := s.cfg.Attributes
	attrs := []string{a.Email, a.FirstName, a.LastName, a.Extra, s.cfg.LockAttribute, "userPassword"}
	for _, v := range []string{a.Role, a.Mobile, a.Locale, a.Country, a.TimeZone, a.ExternalID, s.cfg.LastLoginAttribute} {
		if v != notMapped {
			attrs = append(attrs, v)
		}
	}
	return attrs
}

func (s *Store) userFilter() string {
	return "(objectClass=" + ldapv3.EscapeFilter(s.cfg.UserObjectClasses[0]) + ")"
}

// searchOne returns the single entry the search finds, or ErrNotFound.
func (s *Store) searchOne(ctx context.Context, base string, scope int, filter string, attrs []string) (*ldapv3.Entry, error) {
	var entries []*ldapv3.Entry
	err := s.do(ctx, true, func(conn *ldapv3.Conn) error {
		res, err := conn.Search(ldapv3.NewSearchRequest(base, scope, ldapv3.NeverDerefAliases, 2, 0, false, filter, attrs, nil))
		if err != nil {
			return err
		}
		entries = res.Entries
		return nil
	})
	switch {
	case ldapv3.IsErrorWithCode(err, ldapv3.LDAPResultSizeLimitExceeded) || len(entries) > 1:
		return nil, fmt.Errorf("more than one entry under %q matches %s", base, filter)
	case err != nil:
		return nil, err
	case len(entries) == 0:
		return nil, fmt.Errorf("no entry under %q matches %s: %w", base, filter, store.ErrNotFound)
	}
	return entries[0], nil
}

// searchAll returns every entry the subtree search finds, page by page.
func (s *Store) searchAll(ctx context.Context, base, filter string, attrs []string) ([]*ldapv3.Entry, error) {
	var entries []*ldapv3.Entry
	err := s.do(ctx, true, func(conn *ldapv3.Conn) error {
		res, err := conn.SearchWithPaging(ldapv3.NewSearchRequest(base, ldapv3.ScopeWholeSubtree, ldapv3.NeverDerefAliases,
			0, 0, false, filter, attrs, nil), uint32(s.cfg.PageSize))
		if err != nil {
			return err
		}
		entries = res.Entries
		return nil
	})
	return entries, err
}

// ListUsers implements store.Store with a paged subtree search under
// usersDN (RFC 2696), handing each page over as it arrives. A paging cookie
// belongs to its connection, so a listing interrupted by a reconnect starts
// again from the first page.
func (s *Store) ListUsers(ctx context.Context, page func([]store.User) error) error {
	err := s.do(ctx, true, func(conn *ldapv3.Conn) error {
		paging := ldapv3.NewControlPaging(uint32(s.cfg.PageSize))
		req := ldapv3.NewSearchRequest(s.cfg.UsersDN, ldapv3.ScopeWholeSubtree, ldapv3.NeverDerefAliases,
			0, 0, false, s.userFilter(), s.userAttributes(), []ldapv3.Control{paging})
		for {
			if err := ctx.Err(); err != nil {
				return err
			}
			res, err := conn.Search(req)
			if err != nil {
				return err
			}
			if len(res.Entries) > 0 {
				users := make([]store.User, len(res.Entries))
				for i, e := range res.Entries {
					users[i] = s.user(e)
				}
				if err := page(users); err != nil {
					return err
				}
			}
			next, ok := ldapv3.FindControl(res.Controls, ldapv3.ControlTypePaging).(*ldapv3.ControlPaging)
			if !ok || len(next.Cookie) == 0 {
				return nil
			}
			paging.SetCookie(next.Cookie)
		}
	})
	if err != nil {
		return fmt.Errorf("listing users under %q: %w", s.cfg.UsersDN, err)
	}
	return nil
}

// under reports whether dn names an entry below base. Roster reads and
// writes users only under usersDN and groups only under groupsDN: an ID
// from anywhere else (a status someone edited, say) names nothing of
// Roster's, and is not found.
func under(dn, base string) bool {
	d, err := ldapv3.ParseDN(dn)
	if err != nil {
		return false
	}
	b, err := ldapv3.ParseDN(base)
	return err == nil && b.AncestorOfFold(d)
}

// outside is the error for an ID outside the subtree Roster manages.
func outside(kind, id, field string) error {
	return fmt.Errorf("%s %q is not under %s: %w", kind, id, field, store.ErrNotFound)
}

// GetUser implements store.Store.
func (s *Store) GetUser(ctx context.Context, id string) (store.User, error) {
	if !under(id, s.cfg.UsersDN) {
		return store.User{}, outside("user", id, "usersDN")
	}
	e, err := s.searchOne(ctx, id, ldapv3.ScopeBaseObject, s.userFilter(), s.userAttributes())
	if err != nil {
		return store.User{}, fmt.Errorf("user %q: %w", id, err)
	}
	return s.user(e), nil
}

// FindUserByEmail implements store.Store. mail matches without regard to
// case in every standard schema.
func (s *Store) FindUserByEmail(ctx context.Context, email string) (store.User, error) {
	if err := checkEmail(email); err != nil {
		return store.User{}, err
	}
	filter := fmt.Sprintf("(&%s(%s=%s))", s.userFilter(), s.cfg.Attributes.Email, ldapv3.EscapeFilter(strings.TrimSpace(email)))
	e, err := s.searchOne(ctx, s.cfg.UsersDN, ldapv3.ScopeWholeSubtree, filter, s.userAttributes())
	if err != nil {
		return store.User{}, fmt.Errorf("user with email %q: %w", email, err)
	}
	return s.user(e), nil
}

func checkEmail(email string) error {
	switch {
	case strings.TrimSpace(email) == "":
		return errors.New("email is required")
	case strings.ContainsRune(email, 0):
		return fmt.Errorf("email %q holds a NUL character", email)
	}
	return nil
}

// userDN names a new user's entry after its email.
func (s *Store) userDN(email string) string {
	return s.cfg.UserRDNAttribute + "=" + ldapv3.EscapeDN(trimLower(email)) + "," + s.cfg.UsersDN
}

// CreateUser implements store.Store.
func (s *Store) CreateUser(ctx context.Context, u store.User) (store.User, error) {
	if err := checkEmail(u.Email); err != nil {
		return store.User{}, fmt.Errorf("creating user: %w", err)
	}
	if err := checkStrings(u); err != nil {
		return store.User{}, fmt.Errorf("creating user %q: %w", u.Email, err)
	}
	// The DN makes a second create of the same email fail, but an existing
	// entry may hold the email under another name.
	switch _, err := s.FindUserByEmail(ctx, u.Email); {
	case err == nil:
		return store.User{}, fmt.Errorf("user with email %q: %w", u.Email, store.ErrAlreadyExists)
	case !errors.Is(err, store.ErrNotFound):
		return store.User{}, err
	}
	dn := s.userDN(u.Email)
	req := ldapv3.NewAddRequest(dn, nil)
	req.Attribute("objectClass", s.cfg.UserObjectClasses)
	a := s.cfg.Attributes
	req.Attribute(s.cfg.UserRDNAttribute, []string{trimLower(u.Email)})
	if s.cfg.UserRDNAttribute != a.Email {
		req.Attribute(a.Email, []string{strings.TrimSpace(u.Email)})
	}
	req.Attribute("cn", []string{commonName(u)})
	req.Attribute(a.LastName, []string{s.surname(u)})
	var extra []string
	for _, f := range s.fields(u) {
		switch {
		case f.value == "":
		case f.attr == notMapped:
			extra = append(extra, extraKeyPrefix+f.name+"="+f.value)
		default:
			req.Attribute(f.attr, []string{f.value})
		}
	}
	for _, k := range sortedKeys(u.Attributes) {
		extra = append(extra, k+"="+u.Attributes[k])
	}
	if len(extra) > 0 {
		req.Attribute(a.Extra, extra)
	}
	if u.Disabled {
		req.Attribute(s.cfg.LockAttribute, []string{s.cfg.LockValue})
	}
	if err := s.do(ctx, false, func(conn *ldapv3.Conn) error { return conn.Add(req) }); err != nil {
		if errors.Is(err, store.ErrAlreadyExists) {
			return store.User{}, fmt.Errorf("user with email %q: %w", u.Email, err)
		}
		return store.User{}, fmt.Errorf("adding user %q: %w", dn, err)
	}
	return s.GetUser(ctx, dn)
}

// checkStrings refuses NUL characters, which LDAP string syntaxes do not
// allow and which would otherwise surface as an obscure protocol error.
func checkStrings(u store.User) error {
	for _, v := range []string{u.FirstName, u.LastName, u.Role, u.Mobile, u.TimeZone, u.Country, u.Locale, u.ExternalID} {
		if strings.ContainsRune(v, 0) {
			return errors.New("a field holds a NUL character")
		}
	}
	for k, v := range u.Attributes {
		if !attrKey.MatchString(k) {
			return fmt.Errorf("attribute key %q is not a name (letters, digits, '.', '_', '-')", k)
		}
		if strings.ContainsRune(v, 0) {
			return fmt.Errorf("attribute %q holds a NUL character", k)
		}
	}
	return nil
}

var attrKey = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// commonName is the cn of a new user: cn is required by person, and
// directory tools show it as the user's name.
func commonName(u store.User) string {
	if n := strings.TrimSpace(u.FirstName + " " + u.LastName); n != "" {
		return n
	}
	return strings.TrimSpace(u.Email)
}

// surname is the sn of a user: person requires one, so a user without a
// last name gets the email there, read back as no last name.
func (s *Store) surname(u store.User) string {
	if u.LastName != "" {
		return u.LastName
	}
	return strings.TrimSpace(u.Email)
}

type field struct {
	name, attr, value string
}

// fields are the user's optional single-valued fields and where they go.
func (s *Store) fields(u store.User) []field {
	a := s.cfg.Attributes
	return []field{
		{"firstName", a.FirstName, u.FirstName},
		{"role", a.Role, u.Role},
		{"mobile", a.Mobile, u.Mobile},
		{"locale", a.Locale, u.Locale},
		{"country", a.Country, u.Country},
		{"timeZone", a.TimeZone, u.TimeZone},
		{"externalID", a.ExternalID, u.ExternalID},
	}
}

// user reads an entry.
func (s *Store) user(e *ldapv3.Entry) store.User {
	a := s.cfg.Attributes
	u := store.User{ID: e.DN, Email: e.GetEqualFoldAttributeValue(a.Email)}
	if u.Email == "" && s.cfg.UserRDNAttribute == "uid" {
		u.Email = e.GetEqualFoldAttributeValue("uid")
	}
	u.LastName = e.GetEqualFoldAttributeValue(a.LastName)
	if strings.EqualFold(u.LastName, u.Email) {
		u.LastName = ""
	}
	extra, attrs := parseExtra(e.GetEqualFoldAttributeValues(a.Extra))
	u.Attributes = attrs
	get := func(name, attr string) string {
		if attr == notMapped {
			return extra[name]
		}
		return e.GetEqualFoldAttributeValue(attr)
	}
	u.FirstName = get("firstName", a.FirstName)
	u.Role = get("role", a.Role)
	u.Mobile = get("mobile", a.Mobile)
	u.Locale = get("locale", a.Locale)
	u.Country = get("country", a.Country)
	u.TimeZone = get("timeZone", a.TimeZone)
	u.ExternalID = get("externalID", a.ExternalID)
	u.Disabled = slices.ContainsFunc(e.GetEqualFoldAttributeValues(s.cfg.LockAttribute), func(v string) bool {
		return strings.EqualFold(v, s.cfg.LockValue)
	})
	if s.cfg.loginTimes() {
		if t, ok := parseTime(e.GetEqualFoldAttributeValue(s.cfg.LastLoginAttribute)); ok {
			u.LastLoginAt = &t
		}
	}
	// An access key's value is not a password the person set.
	u.Activated = slices.ContainsFunc(e.GetEqualFoldRawAttributeValues("userPassword"), func(v []byte) bool {
		_, isKey := keyIDOf(v)
		return !isKey
	}) || u.LastLoginAt != nil
	return u
}

// parseExtra splits the Extra attribute's "key=value" values into Roster's
// own fields (under extraKeyPrefix) and the user's attributes. Values of
// another shape belong to someone else and are ignored.
func parseExtra(values []string) (own, attrs map[string]string) {
	own = map[string]string{}
	for _, v := range values {
		k, val, ok := strings.Cut(v, "=")
		if !ok || !attrKey.MatchString(k) {
			continue
		}
		if name, mine := strings.CutPrefix(k, extraKeyPrefix); mine {
			own[name] = val
			continue
		}
		if attrs == nil {
			attrs = map[string]string{}
		}
		attrs[k] = val
	}
	return own, attrs
}

// parseTime reads a GeneralizedTime as OpenLDAP and 389 DS write it.
func parseTime(v string) (time.Time, bool) {
	if v == "" {
		return time.Time{}, false
	}
	for _, layout := range []string{"20060102150405Z0700", "20060102150405.999999999Z0700", "200601021504Z0700"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// UpdateUser implements store.Store. It reads the entry and writes, in one
// modify, only the attributes whose value the update changes.
func (s *Store) UpdateUser(ctx context.Context, id string, update store.UserUpdate) (store.User, error) {
	if !under(id, s.cfg.UsersDN) {
		return store.User{}, outside("user", id, "usersDN")
	}
	e, err := s.searchOne(ctx, id, ldapv3.ScopeBaseObject, s.userFilter(), append(s.userAttributes(), "cn"))
	if err != nil {
		return store.User{}, fmt.Errorf("user %q: %w", id, err)
	}
	cur := s.user(e)
	next := update.Apply(cur)
	if err := checkStrings(next); err != nil {
		return store.User{}, fmt.Errorf("updating user %q: %w", id, err)
	}
	req := ldapv3.NewModifyRequest(id, nil)
	a := s.cfg.Attributes
	curExtra := e.GetEqualFoldAttributeValues(a.Extra)
	var addExtra, delExtra []string
	setExtra := func(key, old, val string, had bool) {
		if had {
			delExtra = append(delExtra, findExtra(curExtra, key, old))
		}
		addExtra = append(addExtra, key+"="+val)
	}
	curFields, nextFields := s.fields(cur), s.fields(next)
	curOwn, _ := parseExtra(curExtra)
	for i, f := range nextFields {
		if f.value == curFields[i].value || f.name == "externalID" {
			continue
		}
		if f.attr == notMapped {
			_, had := curOwn[f.name]
			if f.value == "" {
				if had {
					delExtra = append(delExtra, findExtra(curExtra, extraKeyPrefix+f.name, curFields[i].value))
				}
				continue
			}
			setExtra(extraKeyPrefix+f.name, curFields[i].value, f.value, had)
			continue
		}
		req.Replace(f.attr, nonEmpty(f.value))
	}
	if next.LastName != cur.LastName {
		req.Replace(a.LastName, []string{s.surname(next)})
	}
	// cn follows the name only while it is the one Roster wrote, so an
	// adopted entry's own cn stays, and never when it names the entry.
	if (next.FirstName != cur.FirstName || next.LastName != cur.LastName) && !namedBy(id, "cn") &&
		slices.Contains(e.GetEqualFoldAttributeValues("cn"), commonName(cur)) {
		if cn := commonName(next); cn != commonName(cur) {
			req.Delete("cn", []string{commonName(cur)})
			req.Add("cn", []string{cn})
		}
	}
	for _, k := range sortedKeys(update.Attributes) {
		old, had := cur.Attributes[k]
		if had && old == update.Attributes[k] {
			continue
		}
		setExtra(k, old, update.Attributes[k], had)
	}
	if len(delExtra) > 0 {
		req.Delete(a.Extra, delExtra)
	}
	if len(addExtra) > 0 {
		req.Add(a.Extra, addExtra)
	}
	if next.Disabled != cur.Disabled {
		if next.Disabled {
			req.Replace(s.cfg.LockAttribute, []string{s.cfg.LockValue})
		} else {
			req.Delete(s.cfg.LockAttribute, []string{findValue(e.GetEqualFoldAttributeValues(s.cfg.LockAttribute), s.cfg.LockValue)})
		}
	}
	if len(req.Changes) == 0 {
		return cur, nil
	}
	if err := s.do(ctx, false, func(conn *ldapv3.Conn) error { return conn.Modify(req) }); err != nil {
		return store.User{}, fmt.Errorf("modifying user %q: %w", id, err)
	}
	return s.GetUser(ctx, id)
}

// namedBy reports whether the entry's RDN uses the attribute.
func namedBy(dn, attr string) bool {
	parsed, err := ldapv3.ParseDN(dn)
	if err != nil || len(parsed.RDNs) == 0 {
		return false
	}
	return slices.ContainsFunc(parsed.RDNs[0].Attributes, func(a *ldapv3.AttributeTypeAndValue) bool {
		return strings.EqualFold(a.Type, attr)
	})
}

// findExtra returns the stored value for key, in its stored spelling, so
// that a delete names it exactly.
func findExtra(values []string, key, val string) string {
	for _, v := range values {
		if k, x, ok := strings.Cut(v, "="); ok && k == key && x == val {
			return v
		}
	}
	return key + "=" + val
}

func findValue(values []string, want string) string {
	for _, v := range values {
		if strings.EqualFold(v, want) {
			return v
		}
	}
	return want
}

// nonEmpty is the values for a replace: none removes the attribute.
func nonEmpty(v string) []string {
	if v == "" {
		return nil
	}
	return []string{v}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// DeleteUser implements store.Store. It first takes the user out of every
// group under groupsDN, so it does not depend on the directory's
// referential integrity overlay, then deletes the entry.
func (s *Store) DeleteUser(ctx context.Context, id string) error {
	if _, err := s.GetUser(ctx, id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	}
	groups, err := s.searchAll(ctx, s.cfg.GroupsDN,
		fmt.Sprintf("(%s=%s)", s.cfg.MemberAttribute, ldapv3.EscapeFilter(id)), []string{"1.1"})
	if err != nil {
		return fmt.Errorf("finding the groups of user %q: %w", id, err)
	}
	for _, g := range groups {
		if err := s.UpdateGroupMembers(ctx, g.DN, store.MemberDiff{Remove: []string{id}}); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("removing user %q from group %q: %w", id, g.DN, err)
		}
	}
	err = s.do(ctx, false, func(conn *ldapv3.Conn) error { return conn.Del(ldapv3.NewDelRequest(id, nil)) })
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("deleting user %q: %w", id, err)
	}
	return nil
}

// SetPassword implements store.Store with the Password Modify extended
// operation, so the directory hashes the password by its own policy.
func (s *Store) SetPassword(ctx context.Context, id, password string) error {
	if password == "" {
		return fmt.Errorf("user %q: an empty password: %w", id, store.ErrPasswordRejected)
	}
	if _, err := s.GetUser(ctx, id); err != nil {
		return err
	}
	// Password Modify replaces every userPassword value, the access keys'
	// too: they are read first and added back after.
	keys, err := s.allKeyValues(ctx, id)
	if err != nil {
		return err
	}
	err = s.do(ctx, false, func(conn *ldapv3.Conn) error {
		_, err := conn.PasswordModify(ldapv3.NewPasswordModifyRequest(id, "", password))
		return err
	})
	if err == nil {
		if err := s.restoreKeys(ctx, id, keys); err != nil {
			// The password is set; the AccessKey controller adds the keys
			// again at its next comparison.
			return fmt.Errorf("the password of user %q is set, but adding back its %d access keys failed: %w", id, len(keys), err)
		}
		return nil
	}
	switch {
	case ldapv3.IsErrorAnyOf(err, ldapv3.LDAPResultConstraintViolation, ldapv3.LDAPResultUnwillingToPerform):
		return fmt.Errorf("setting the password of user %q: %w: %w", id, store.ErrPasswordRejected, err)
	case ldapv3.IsErrorWithCode(err, ldapv3.LDAPResultConfidentialityRequired):
		// 389 Directory Server, for one, refuses password changes over a
		// plaintext connection: no password can pass until the store's
		// connection is encrypted.
		return fmt.Errorf("setting the password of user %q: the directory accepts passwords only over an encrypted connection; use an ldaps:// URL or startTLS: %w", id, err)
	case ldapv3.IsErrorWithCode(err, ldapv3.LDAPResultInsufficientAccessRights):
		return fmt.Errorf("setting the password of user %q: the bind DN may not change this user's password: %w", id, err)
	}
	if err != nil {
		return fmt.Errorf("setting the password of user %q: %w", id, err)
	}
	return nil
}

var _ store.Authenticator = (*Store)(nil)

// Authenticate implements store.Authenticator with a simple bind as the
// user's entry on a connection of its own, so the directory decides as it
// does for any platform's login: its password policy's lockouts apply and
// it records the bind (authTimestamp, pwdFailureTime) where it keeps them.
// An empty password is refused before the bind: a simple bind without a
// password is an unauthenticated bind, which a directory accepts as
// anonymous.
func (s *Store) Authenticate(ctx context.Context, email, password string) (store.User, error) {
	if password == "" || strings.ContainsRune(email, 0) {
		return store.User{}, store.ErrInvalidCredentials
	}
	if _, isKey := store.ParseKey(password); isKey {
		// An access key binds (that is how services check it), but it is
		// for API integrations: it does not sign a person in to Roster.
		return store.User{}, store.ErrInvalidCredentials
	}
	u, err := s.FindUserByEmail(ctx, email)
	if errors.Is(err, store.ErrNotFound) {
		return store.User{}, store.ErrInvalidCredentials
	}
	if err != nil {
		return store.User{}, err
	}
	if u.Disabled {
		return store.User{}, store.ErrInvalidCredentials
	}
	// A fresh connection: a pooled one is bound as Roster, and binding it
	// as the user would leave it so.
	conn, err := s.pool.dialAnonymous()
	if err != nil {
		return store.User{}, err
	}
	defer conn.Close()
	switch err := conn.Bind(u.ID, password); {
	case err == nil:
		return u, nil
	case ldapv3.IsErrorWithCode(err, ldapv3.LDAPResultInvalidCredentials):
		// Also the answer of a directory whose policy locked the account.
		return store.User{}, store.ErrInvalidCredentials
	default:
		return store.User{}, fmt.Errorf("binding as user %q: %w", u.ID, mapError(err))
	}
}
