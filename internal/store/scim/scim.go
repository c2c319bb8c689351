// Package scim is Roster's store for SCIM 2.0 service providers (RFC 7643
// and RFC 7644): AWS IAM Identity Center, Okta, Microsoft Entra ID, Slack
// and others. It is a small client on net/http and encoding/json that reads
// the service's /ServiceProviderConfig and adapts to it: PATCH where
// supported and PUT otherwise, passwords only where changePassword is
// supported, If-Match where ETags are. docs/store-scim.md describes the
// mapping of Roster's fields to SCIM attributes.
package scim

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"roster.dev/roster/internal/store"
)

// maxConflicts is how many times a write that lost an If-Match race is
// tried again.
const maxConflicts = 10

// Kind is the store's name in flags, logs and metrics.
const Kind = "scim"

// Store is a store.Store backed by a SCIM 2.0 service.
type Store struct {
	cfg      settings
	c        *client
	features serviceProviderConfig
	// userExt and groupExt are whether Roster's User and Group extensions
	// are written: as the config says, else as the service declares.
	userExt, groupExt bool
}

var _ store.Store = (*Store)(nil)

// Options are for tests: a transport to observe or fault requests.
type Options struct {
	// Transport replaces the default HTTP transport.
	Transport http.RoundTripper
}

// Open reads the --store-config file at path and connects to the service.
func Open(ctx context.Context, path string) (*Store, error) {
	cfg, err := LoadConfig(path)
	if err != nil {
		return nil, err
	}
	return New(ctx, cfg, Options{})
}

// New checks the config and reads the service's /ServiceProviderConfig.
func New(ctx context.Context, cfg Config, opts Options) (*Store, error) {
	set, err := cfg.settings()
	if err != nil {
		return nil, fmt.Errorf("scim store config: %w", err)
	}
	transport := opts.Transport
	if transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		if set.tls != nil {
			t.TLSClientConfig = set.tls
		}
		transport = t
	}
	s := &Store{cfg: set, c: &client{
		http: &http.Client{Transport: transport, Timeout: set.timeout}, base: set.base, token: set.token,
		limiter: set.limiter, maxRetries: set.maxRetries, maxRetryWait: set.maxRetryWait, now: time.Now,
	}}
	if _, err := s.c.do(ctx, request{method: http.MethodGet, path: "/ServiceProviderConfig"}, &s.features); err != nil {
		return nil, fmt.Errorf("reading the service provider config: %w", err)
	}
	if m := s.features.Filter.MaxResults; s.features.Filter.Supported && m > 0 && m < s.cfg.pageSize {
		s.cfg.pageSize = m
	}
	if on := s.cfg.rosterExtension; on != nil {
		s.userExt, s.groupExt = *on, *on
	} else {
		declared, err := s.declaredSchemas(ctx)
		if err != nil {
			return nil, fmt.Errorf("reading the schemas the service declares: %w", err)
		}
		s.userExt, s.groupExt = declared[rosterUserSchema], declared[rosterGroupSchema]
	}
	return s, nil
}

// declaredSchemas reads the schema URNs the service declares under /Schemas
// (RFC 7644 section 4). A service that does not answer there (404, 501)
// declares none beyond the core schemas.
func (s *Store) declaredSchemas(ctx context.Context) (map[string]bool, error) {
	declared := map[string]bool{}
	var list listResponse
	_, err := s.c.do(ctx, request{method: http.MethodGet, path: "/Schemas"}, &list)
	var se *Error
	if errors.As(err, &se) && (se.Status == http.StatusNotFound || se.Status == http.StatusNotImplemented) {
		return declared, nil
	}
	if err != nil {
		return nil, err
	}
	for _, r := range list.Resources {
		declared[r.str("id")] = true
	}
	return declared, nil
}

// Kind implements store.Store.
func (s *Store) Kind() string { return Kind }

// Capabilities implements store.Store: passwords only where the service
// says it supports changePassword; SCIM reports no login times.
func (s *Store) Capabilities() store.Capabilities {
	return store.Capabilities{Passwords: s.features.ChangePassword.Supported, Paging: true}
}

// Features returns what discovery found, for status and tests.
func (s *Store) Features() (patch, filter, bulk, etag, changePassword bool) {
	f := s.features
	return f.Patch.Supported, f.Filter.Supported, f.Bulk.Supported, f.ETag.Supported, f.ChangePassword.Supported
}

// Close implements store.Store.
func (s *Store) Close() error {
	s.c.http.CloseIdleConnections()
	return nil
}

func (s *Store) get(ctx context.Context, path string) (resource, string, error) {
	var r resource
	h, err := s.c.do(ctx, request{method: http.MethodGet, path: path}, &r)
	if err != nil {
		return nil, "", err
	}
	return r, s.version(h, r), nil
}

// version is the resource's ETag where the service offers them.
func (s *Store) version(h http.Header, r resource) string {
	if !s.features.ETag.Supported {
		return ""
	}
	if v := h.Get("ETag"); v != "" {
		return v
	}
	if m := r.sub("meta", false); m != nil {
		return m.str("version")
	}
	return ""
}

func ifMatch(version string) http.Header {
	if version == "" {
		return nil
	}
	return http.Header{"If-Match": {version}}
}

// modify reads a resource, edits it and writes back what changed: PATCH
// replace/remove operations where the service supports PATCH, else a PUT of
// the whole resource. Where the service offers ETags the write carries
// If-Match, and a write that lost a race (412) is tried again on a fresh
// read: each round of racing writers lets at least one through, so a few
// rounds settle any ordinary contention.
//
// readPath may ask for fewer attributes than path names; writes go to path
// with no query, as SCIMMY, for one, applies a PATCH to the attributes the
// query names and would drop the others.
func (s *Store) modify(ctx context.Context, path, readPath string, edit func(resource) error) (resource, error) {
	for attempt := 0; ; attempt++ {
		before, version, err := s.get(ctx, readPath)
		if err != nil {
			return nil, err
		}
		after := before.clone()
		if err := edit(after); err != nil {
			return nil, err
		}
		var out resource
		if s.features.Patch.Supported {
			ops := changedOps(before, after)
			if len(ops) == 0 {
				return before, nil
			}
			_, err = s.c.do(ctx, request{method: http.MethodPatch, path: path, body: newPatch(ops), header: ifMatch(version)}, &out)
		} else {
			delete(after, "meta")
			_, err = s.c.do(ctx, request{method: http.MethodPut, path: path, body: after, header: ifMatch(version)}, &out)
		}
		var se *Error
		if errors.As(err, &se) && se.Status == http.StatusPreconditionFailed && attempt < maxConflicts {
			// A random, growing pause spreads racing writers apart.
			if err := sleep(ctx, rand.N(min(5*time.Millisecond<<attempt, 500*time.Millisecond))); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		if out == nil {
			// 204 No Content: the service did not echo the resource.
			out, _, err = s.get(ctx, readPath)
		}
		return out, err
	}
}

// search pages through the resources a filter matches (every resource when
// filter is ""), calling fn for each.
func (s *Store) search(ctx context.Context, endpoint, filter string, extra url.Values, fn func(resource) error) error {
	return s.searchPages(ctx, endpoint, filter, extra, func(page []resource) error {
		for _, r := range page {
			if err := fn(r); err != nil {
				return err
			}
		}
		return nil
	})
}

// searchPages pages through the resources a filter matches with startIndex
// and count (RFC 7644 section 3.4.2.4), calling fn with each page.
func (s *Store) searchPages(ctx context.Context, endpoint, filter string, extra url.Values, fn func([]resource) error) error {
	start := 1
	for {
		q := url.Values{"startIndex": {strconv.Itoa(start)}, "count": {strconv.Itoa(s.cfg.pageSize)}}
		if filter != "" {
			q.Set("filter", filter)
		}
		for k, v := range extra {
			q[k] = v
		}
		var page listResponse
		if _, err := s.c.do(ctx, request{method: http.MethodGet, path: endpoint + "?" + q.Encode()}, &page); err != nil {
			return err
		}
		if len(page.Resources) > 0 {
			if err := fn(page.Resources); err != nil {
				return err
			}
		}
		start += len(page.Resources)
		if len(page.Resources) == 0 || start > page.TotalResults {
			return nil
		}
	}
}

// quote returns a filter string value (RFC 7644 section 3.4.2.2: a JSON
// string), so that quotes and backslashes in an address stay inside it.
func quote(v string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range v {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func userPath(id string) string  { return "/Users/" + url.PathEscape(id) }
func groupPath(id string) string { return "/Groups/" + url.PathEscape(id) }

// GetUser implements store.Store.
func (s *Store) GetUser(ctx context.Context, id string) (store.User, error) {
	r, _, err := s.get(ctx, userPath(id))
	if err != nil {
		return store.User{}, err
	}
	return s.decodeUser(r), nil
}

// FindUserByEmail implements store.Store with a userName eq filter, or a
// scan of every user where the service offers no filters.
func (s *Store) FindUserByEmail(ctx context.Context, email string) (store.User, error) {
	filter := ""
	if s.features.Filter.Supported {
		filter = "userName eq " + quote(email)
	}
	var found *store.User
	errFound := errors.New("found")
	err := s.search(ctx, "/Users", filter, nil, func(r resource) error {
		if strings.EqualFold(r.str("userName"), email) {
			u := s.decodeUser(r)
			found = &u
			return errFound
		}
		return nil
	})
	if err != nil && !errors.Is(err, errFound) {
		return store.User{}, fmt.Errorf("finding a user by email: %w", err)
	}
	if found == nil {
		return store.User{}, fmt.Errorf("user with that email: %w", store.ErrNotFound)
	}
	return *found, nil
}

// ListUsers implements store.Store. Users created or deleted while it pages
// shift the pages after them, so a listing may miss or repeat a user; the
// caller treats a missing user as one to look up, never as gone.
func (s *Store) ListUsers(ctx context.Context, page func([]store.User) error) error {
	err := s.searchPages(ctx, "/Users", "", nil, func(resources []resource) error {
		users := make([]store.User, len(resources))
		for i, r := range resources {
			users[i] = s.decodeUser(r)
		}
		return page(users)
	})
	if err != nil {
		return fmt.Errorf("listing users: %w", err)
	}
	return nil
}

// CreateUser implements store.Store.
func (s *Store) CreateUser(ctx context.Context, user store.User) (store.User, error) {
	body, err := s.newUser(user)
	if err != nil {
		return store.User{}, err
	}
	var out resource
	if _, err := s.c.do(ctx, request{method: http.MethodPost, path: "/Users", body: body}, &out); err != nil {
		return store.User{}, err
	}
	return s.decodeUser(out), nil
}

// UpdateUser implements store.Store.
func (s *Store) UpdateUser(ctx context.Context, id string, update store.UserUpdate) (store.User, error) {
	out, err := s.modify(ctx, userPath(id), userPath(id), func(r resource) error { return s.userFields(r, update) })
	if err != nil {
		return store.User{}, err
	}
	return s.decodeUser(out), nil
}

// DeleteUser implements store.Store. SCIM services drop a deleted user
// from its groups themselves.
func (s *Store) DeleteUser(ctx context.Context, id string) error {
	_, err := s.c.do(ctx, request{method: http.MethodDelete, path: userPath(id)}, nil)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// SetPassword implements store.Store: the password goes to the service in
// one write (never into an error or a log), with the activated flag.
func (s *Store) SetPassword(ctx context.Context, id, password string) error {
	if !s.features.ChangePassword.Supported {
		return store.ErrPasswordsUnsupported
	}
	_, err := s.modify(ctx, userPath(id), userPath(id), func(r resource) error {
		r["password"] = password
		if s.userExt {
			r.addSchema(rosterUserSchema)
			r.sub(rosterUserSchema, true)["activated"] = true
		}
		return nil
	})
	var se *Error
	if errors.As(err, &se) {
		// A service that quotes the value in its error must not carry the
		// password into Roster's logs and events.
		se.Detail = strings.ReplaceAll(se.Detail, password, "[redacted]")
		if se.Status == http.StatusBadRequest {
			return fmt.Errorf("%w: %w", store.ErrPasswordRejected, err)
		}
	}
	return err
}

// GetGroup implements store.Store; members are left out of the answer.
func (s *Store) GetGroup(ctx context.Context, id string) (store.Group, error) {
	r, _, err := s.get(ctx, groupPath(id)+"?excludedAttributes=members")
	if err != nil {
		return store.Group{}, err
	}
	return s.decodeGroup(r), nil
}

// FindGroupByName implements store.Store with an externalId eq filter (see
// groupFields).
func (s *Store) FindGroupByName(ctx context.Context, name string) (store.Group, error) {
	filter := ""
	if s.features.Filter.Supported {
		filter = "externalId eq " + quote(name)
	}
	var found *store.Group
	errFound := errors.New("found")
	err := s.search(ctx, "/Groups", filter, url.Values{"excludedAttributes": {"members"}}, func(r resource) error {
		if g := s.decodeGroup(r); g.Name == name {
			found = &g
			return errFound
		}
		return nil
	})
	if err != nil && !errors.Is(err, errFound) {
		return store.Group{}, fmt.Errorf("finding a group by name: %w", err)
	}
	if found == nil {
		return store.Group{}, fmt.Errorf("group %q: %w", name, store.ErrNotFound)
	}
	return *found, nil
}

// CreateGroup implements store.Store. The service refuses a member that is
// not a user (404, so ErrNotFound) and creates nothing then.
func (s *Store) CreateGroup(ctx context.Context, group store.Group, members []string) (store.Group, error) {
	body, err := s.newGroup(group, members)
	if err != nil {
		return store.Group{}, err
	}
	var out resource
	if _, err := s.c.do(ctx, request{method: http.MethodPost, path: "/Groups", body: body}, &out); err != nil {
		return store.Group{}, err
	}
	return s.decodeGroup(out), nil
}

// UpdateGroup implements store.Store.
func (s *Store) UpdateGroup(ctx context.Context, id string, update store.GroupUpdate) (store.Group, error) {
	// Read without members: a PATCH of the other attributes does not need
	// them. A PUT does, as it replaces the whole group.
	readPath := groupPath(id) + "?excludedAttributes=members"
	if !s.features.Patch.Supported {
		readPath = groupPath(id)
	}
	out, err := s.modify(ctx, groupPath(id), readPath, func(r resource) error { return s.groupFields(r, update) })
	if err != nil {
		return store.Group{}, err
	}
	return s.decodeGroup(out), nil
}

// ListGroupMembers implements store.Store from the group's members
// attribute, which SCIM returns whole.
func (s *Store) ListGroupMembers(ctx context.Context, id string) ([]string, error) {
	r, _, err := s.get(ctx, groupPath(id)+"?attributes=members")
	if err != nil {
		return nil, err
	}
	return memberIDs(r), nil
}

// UpdateGroupMembers implements store.Store: one PATCH with an add of the
// new members and a remove per member that leaves, never a replace of the
// whole list. Without PATCH support the group is read and PUT back whole.
func (s *Store) UpdateGroupMembers(ctx context.Context, id string, diff store.MemberDiff) error {
	if diff.IsEmpty() {
		return nil
	}
	if !s.features.Patch.Supported {
		_, err := s.modify(ctx, groupPath(id), groupPath(id), func(r resource) error {
			ids := memberIDs(r)
			ids = slices.DeleteFunc(ids, func(m string) bool { return slices.Contains(diff.Remove, m) })
			for _, a := range diff.Add {
				if !slices.Contains(ids, a) {
					ids = append(ids, a)
				}
			}
			slices.Sort(ids)
			r["members"] = memberValues(ids)
			return nil
		})
		return err
	}
	var ops []patchOp
	for _, m := range diff.Remove {
		ops = append(ops, patchOp{Op: "remove", Path: "members[value eq " + quote(m) + "]"})
	}
	if len(diff.Add) > 0 {
		ops = append(ops, patchOp{Op: "add", Path: "members", Value: memberValues(diff.Add)})
	}
	_, err := s.c.do(ctx, request{method: http.MethodPatch, path: groupPath(id), body: newPatch(ops)}, nil)
	return err
}

// DeleteGroup implements store.Store.
func (s *Store) DeleteGroup(ctx context.Context, id string) error {
	_, err := s.c.do(ctx, request{method: http.MethodDelete, path: groupPath(id)}, nil)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}
