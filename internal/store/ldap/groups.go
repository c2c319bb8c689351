package ldap

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	ldapv3 "github.com/go-ldap/ldap/v3"

	"roster.dev/roster/internal/store"
)

// permissiveModify is the control (supported by OpenLDAP and Active
// Directory) under which adding a value already present or deleting one
// absent is not an error, so that a membership diff is one modify that
// never reads the group first. It is sent as non-critical: a directory
// without it answers with an error and the diff is retried against the
// current members.
var permissiveModify = ldapv3.NewControlString("1.2.840.113556.1.4.1413", false, "")

func (s *Store) groupFilter() string {
	return "(objectClass=" + ldapv3.EscapeFilter(s.cfg.GroupObjectClasses[0]) + ")"
}

func (s *Store) groupAttributes() []string {
	g := s.cfg.GroupAttributes
	return []string{"cn", g.DisplayName, g.ExternalID, g.Description}
}

// group reads an entry; the name is the value of the entry's RDN, which is
// cn for the groups Roster creates.
func (s *Store) group(e *ldapv3.Entry) store.Group {
	g := s.cfg.GroupAttributes
	out := store.Group{
		ID:          e.DN,
		Name:        e.GetEqualFoldAttributeValue("cn"),
		DisplayName: e.GetEqualFoldAttributeValue(g.DisplayName),
		ExternalID:  e.GetEqualFoldAttributeValue(g.ExternalID),
		Description: e.GetEqualFoldAttributeValue(g.Description),
	}
	if dn, err := ldapv3.ParseDN(e.DN); err == nil && len(dn.RDNs) > 0 && len(dn.RDNs[0].Attributes) > 0 &&
		strings.EqualFold(dn.RDNs[0].Attributes[0].Type, "cn") {
		out.Name = dn.RDNs[0].Attributes[0].Value
	}
	return out
}

// GetGroup implements store.Store.
func (s *Store) GetGroup(ctx context.Context, id string) (store.Group, error) {
	if !under(id, s.cfg.GroupsDN) {
		return store.Group{}, outside("group", id, "groupsDN")
	}
	e, err := s.searchOne(ctx, id, ldapv3.ScopeBaseObject, s.groupFilter(), s.groupAttributes())
	if err != nil {
		return store.Group{}, fmt.Errorf("group %q: %w", id, err)
	}
	return s.group(e), nil
}

// FindGroupByName implements store.Store. cn matches without regard to
// case in LDAP, so names that differ only in case are the same group.
func (s *Store) FindGroupByName(ctx context.Context, name string) (store.Group, error) {
	if strings.ContainsRune(name, 0) {
		return store.Group{}, fmt.Errorf("group name %q holds a NUL character", name)
	}
	filter := fmt.Sprintf("(&%s(cn=%s))", s.groupFilter(), ldapv3.EscapeFilter(name))
	e, err := s.searchOne(ctx, s.cfg.GroupsDN, ldapv3.ScopeWholeSubtree, filter, s.groupAttributes())
	if err != nil {
		return store.Group{}, fmt.Errorf("group named %q: %w", name, err)
	}
	return s.group(e), nil
}

// checkExternalID fails when a group other than self holds the external ID.
func (s *Store) checkExternalID(ctx context.Context, ext, self string) error {
	if ext == "" {
		return nil
	}
	filter := fmt.Sprintf("(&%s(%s=%s))", s.groupFilter(), s.cfg.GroupAttributes.ExternalID, ldapv3.EscapeFilter(ext))
	entries, err := s.searchAll(ctx, s.cfg.GroupsDN, filter, []string{"1.1"})
	if err != nil {
		return fmt.Errorf("looking up external ID %q: %w", ext, err)
	}
	for _, e := range entries {
		if !sameDN(e.DN, self) {
			return fmt.Errorf("group with external ID %q (%s): %w", ext, e.DN, store.ErrAlreadyExists)
		}
	}
	return nil
}

// checkUsers fails with ErrNotFound unless every ID names a user entry. The
// lookups run on the pool's connections side by side, because a new group
// may start with thousands of members.
func (s *Store) checkUsers(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	next := make(chan string)
	for range s.cfg.PoolSize {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range next {
				_, err := s.searchOne(ctx, id, ldapv3.ScopeBaseObject, s.userFilter(), []string{"1.1"})
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("member %q: %w", id, err)
						cancel()
					}
					mu.Unlock()
				}
			}
		}()
	}
feed:
	for _, id := range ids {
		select {
		case next <- id:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	return firstErr
}

// CreateGroup implements store.Store: one add with every member DN and the
// placeholder member.
func (s *Store) CreateGroup(ctx context.Context, g store.Group, members []string) (store.Group, error) {
	if g.Name == "" {
		return store.Group{}, errors.New("creating group: name is required")
	}
	for _, v := range []string{g.Name, g.DisplayName, g.ExternalID, g.Description} {
		if strings.ContainsRune(v, 0) {
			return store.Group{}, fmt.Errorf("creating group %q: a field holds a NUL character", g.Name)
		}
	}
	if err := s.checkExternalID(ctx, g.ExternalID, ""); err != nil {
		return store.Group{}, err
	}
	members = s.dedupe(members)
	if err := s.checkUsers(ctx, members); err != nil {
		return store.Group{}, fmt.Errorf("creating group %q: %w", g.Name, err)
	}
	dn := "cn=" + ldapv3.EscapeDN(g.Name) + "," + s.cfg.GroupsDN
	req := ldapv3.NewAddRequest(dn, nil)
	req.Attribute("objectClass", s.cfg.GroupObjectClasses)
	req.Attribute("cn", []string{g.Name})
	ga := s.cfg.GroupAttributes
	for _, f := range [][2]string{{ga.DisplayName, g.DisplayName}, {ga.ExternalID, g.ExternalID}, {ga.Description, g.Description}} {
		if f[1] != "" {
			req.Attribute(f[0], []string{f[1]})
		}
	}
	req.Attribute(s.cfg.MemberAttribute, append([]string{s.cfg.EmptyGroupMember}, members...))
	if err := s.do(ctx, false, func(conn *ldapv3.Conn) error { return conn.Add(req) }); err != nil {
		return store.Group{}, fmt.Errorf("adding group %q: %w", dn, err)
	}
	return s.GetGroup(ctx, dn)
}

// UpdateGroup implements store.Store.
func (s *Store) UpdateGroup(ctx context.Context, id string, update store.GroupUpdate) (store.Group, error) {
	cur, err := s.GetGroup(ctx, id)
	if err != nil {
		return store.Group{}, err
	}
	next := update.Apply(cur)
	if next.ExternalID != cur.ExternalID {
		if err := s.checkExternalID(ctx, next.ExternalID, id); err != nil {
			return store.Group{}, err
		}
	}
	req := ldapv3.NewModifyRequest(id, nil)
	ga := s.cfg.GroupAttributes
	for _, f := range [][3]string{
		{ga.DisplayName, cur.DisplayName, next.DisplayName},
		{ga.ExternalID, cur.ExternalID, next.ExternalID},
		{ga.Description, cur.Description, next.Description},
	} {
		if f[1] != f[2] {
			if strings.ContainsRune(f[2], 0) {
				return store.Group{}, fmt.Errorf("updating group %q: a field holds a NUL character", id)
			}
			req.Replace(f[0], nonEmpty(f[2]))
		}
	}
	if len(req.Changes) == 0 {
		return cur, nil
	}
	if err := s.do(ctx, false, func(conn *ldapv3.Conn) error { return conn.Modify(req) }); err != nil {
		return store.Group{}, fmt.Errorf("modifying group %q: %w", id, err)
	}
	return s.GetGroup(ctx, id)
}

// ListGroupMembers implements store.Store. Directories that cap the values
// returned (Active Directory) hand out member in ranges, read one after
// the other.
func (s *Store) ListGroupMembers(ctx context.Context, id string) ([]string, error) {
	if !under(id, s.cfg.GroupsDN) {
		return nil, outside("group", id, "groupsDN")
	}
	attr := s.cfg.MemberAttribute
	e, err := s.searchOne(ctx, id, ldapv3.ScopeBaseObject, s.groupFilter(), []string{attr})
	if err != nil {
		return nil, fmt.Errorf("group %q: %w", id, err)
	}
	values := slices.Clone(e.GetEqualFoldAttributeValues(attr))
	for {
		from, more := rangeNext(e, attr)
		if !more {
			break
		}
		ranged := fmt.Sprintf("%s;range=%d-*", attr, from)
		if e, err = s.searchOne(ctx, id, ldapv3.ScopeBaseObject, s.groupFilter(), []string{ranged}); err != nil {
			return nil, fmt.Errorf("group %q: %w", id, err)
		}
		for _, a := range e.Attributes {
			if strings.HasPrefix(strings.ToLower(a.Name), strings.ToLower(attr)+";range=") {
				values = append(values, a.Values...)
			}
		}
	}
	out := make([]string, 0, len(values))
	for _, v := range values {
		if !sameDN(v, s.cfg.EmptyGroupMember) {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return out, nil
}

// rangeNext finds a "member;range=N-M" attribute (not ending in "*") and
// returns M+1: more values are to be read from there.
func rangeNext(e *ldapv3.Entry, attr string) (int, bool) {
	prefix := strings.ToLower(attr) + ";range="
	for _, a := range e.Attributes {
		name := strings.ToLower(a.Name)
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		_, hi, ok := strings.Cut(strings.TrimPrefix(name, prefix), "-")
		if !ok || hi == "*" {
			return 0, false
		}
		n, err := strconv.Atoi(hi)
		if err != nil {
			return 0, false
		}
		return n + 1, true
	}
	return 0, false
}

// UpdateGroupMembers implements store.Store: one modify adding and deleting
// member values, so the directory applies all of it or none.
func (s *Store) UpdateGroupMembers(ctx context.Context, id string, diff store.MemberDiff) error {
	if !under(id, s.cfg.GroupsDN) {
		return outside("group", id, "groupsDN")
	}
	add, remove := s.dedupe(diff.Add), s.dedupe(diff.Remove)
	if len(add) == 0 && len(remove) == 0 {
		return nil
	}
	if err := s.checkUsers(ctx, add); err != nil {
		return fmt.Errorf("adding to group %q: %w", id, err)
	}
	modify := func(add, remove []string, placeholder bool) error {
		req := ldapv3.NewModifyRequest(id, []ldapv3.Control{permissiveModify})
		if placeholder {
			add = append(add, s.cfg.EmptyGroupMember)
		}
		if len(add) > 0 {
			req.Add(s.cfg.MemberAttribute, add)
		}
		if len(remove) > 0 {
			req.Delete(s.cfg.MemberAttribute, remove)
		}
		if len(req.Changes) == 0 {
			return nil
		}
		return s.do(ctx, false, func(conn *ldapv3.Conn) error { return conn.Modify(req) })
	}
	var err error
	for range 3 {
		err = modify(add, remove, false)
		if ldapv3.IsErrorWithCode(err, ldapv3.LDAPResultObjectClassViolation) && len(remove) > 0 {
			// The diff empties a group Roster did not create (it has no
			// placeholder member): the placeholder keeps it valid.
			err = modify(add, remove, true)
		}
		if !ldapv3.IsErrorAnyOf(err, ldapv3.LDAPResultAttributeOrValueExists, ldapv3.LDAPResultNoSuchAttribute) {
			break
		}
		// No permissive modify here: diff against the current members.
		// Another writer may change them in between, hence the retries.
		cur, lerr := s.ListGroupMembers(ctx, id)
		if lerr != nil {
			return lerr
		}
		add = slices.DeleteFunc(add, func(dn string) bool { return containsDN(cur, dn) })
		remove = slices.DeleteFunc(remove, func(dn string) bool { return !containsDN(cur, dn) })
	}
	if err != nil {
		return fmt.Errorf("modifying the members of group %q: %w", id, err)
	}
	return nil
}

// DeleteGroup implements store.Store.
func (s *Store) DeleteGroup(ctx context.Context, id string) error {
	if _, err := s.GetGroup(ctx, id); errors.Is(err, store.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	err := s.do(ctx, false, func(conn *ldapv3.Conn) error { return conn.Del(ldapv3.NewDelRequest(id, nil)) })
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("deleting group %q: %w", id, err)
	}
	return nil
}

// dedupe drops repeated DNs and the placeholder member, which is never
// added or removed on request.
func (s *Store) dedupe(dns []string) []string {
	seen := make(map[string]bool, len(dns))
	out := make([]string, 0, len(dns))
	for _, dn := range dns {
		k := normDN(dn)
		if seen[k] || k == normDN(s.cfg.EmptyGroupMember) {
			continue
		}
		seen[k] = true
		out = append(out, dn)
	}
	return out
}

// normDN is a DN in a form where equal DNs compare equal: attribute types
// and values in lower case, without the spacing and escaping differences.
// It assumes case-insensitive naming attributes, as uid, cn and mail are.
func normDN(dn string) string {
	parsed, err := ldapv3.ParseDN(dn)
	if err != nil {
		return strings.ToLower(dn)
	}
	var b strings.Builder
	for i, rdn := range parsed.RDNs {
		if i > 0 {
			b.WriteByte(',')
		}
		for j, a := range rdn.Attributes {
			if j > 0 {
				b.WriteByte('+')
			}
			b.WriteString(strings.ToLower(a.Type))
			b.WriteByte('=')
			b.WriteString(ldapv3.EscapeDN(strings.ToLower(a.Value)))
		}
	}
	return b.String()
}

func sameDN(a, b string) bool { return normDN(a) == normDN(b) }

func containsDN(list []string, dn string) bool {
	n := normDN(dn)
	return slices.ContainsFunc(list, func(v string) bool { return normDN(v) == n })
}
