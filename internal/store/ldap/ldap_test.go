package ldap_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	ldapv3 "github.com/go-ldap/ldap/v3"
	"github.com/google/go-cmp/cmp"

	"roster.dev/roster/internal/store"
	"roster.dev/roster/internal/store/ldap"
	"roster.dev/roster/internal/store/ldap/ldaptest"
	"roster.dev/roster/internal/store/storetest"
)

// open returns a store on the server, configured with extra YAML lines.
func open(t *testing.T, srv *ldaptest.Server, extra ...string) *ldap.Store {
	t.Helper()
	cfg, err := ldap.ParseConfig([]byte(srv.StoreConfig(extra...)))
	if err != nil {
		t.Fatalf("ParseConfig: %v", err)
	}
	s, err := ldap.Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	srv := ldaptest.Start(t)
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, srv) })
}

// bind tries a user's password the way a platform's login does.
func bind(t *testing.T, srv *ldaptest.Server, dn, password string) error {
	t.Helper()
	conn, err := ldapv3.DialURL(srv.URL)
	if err != nil {
		t.Fatalf("dialing slapd: %v", err)
	}
	defer conn.Close()
	return conn.Bind(dn, password)
}

func TestBindWithPasswordAndLock(t *testing.T) {
	srv := ldaptest.Start(t)
	s := open(t, srv)
	ctx := t.Context()
	u, err := s.CreateUser(ctx, store.User{Email: "ada@example.com", FirstName: "Ada", LastName: "Lovelace"})
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	const password = "Analytical-Engine-1843"
	if err := bind(t, srv, u.ID, password); !ldapv3.IsErrorWithCode(err, ldapv3.LDAPResultInvalidCredentials) {
		t.Fatalf("bind before SetPassword: err = %v, want invalid credentials", err)
	}
	if err := s.SetPassword(ctx, u.ID, password); err != nil {
		t.Fatalf("SetPassword: %v", err)
	}
	if err := bind(t, srv, u.ID, password); err != nil {
		t.Fatalf("bind with the password set through SetPassword: %v", err)
	}
	if err := bind(t, srv, u.ID, password+"x"); !ldapv3.IsErrorWithCode(err, ldapv3.LDAPResultInvalidCredentials) {
		t.Errorf("bind with a wrong password: err = %v, want invalid credentials", err)
	}

	// The lastbind overlay recorded the bind.
	got, err := s.GetUser(ctx, u.ID)
	if err != nil {
		t.Fatalf("GetUser: %v", err)
	}
	if got.LastLoginAt == nil || got.LastLoginAt.IsZero() {
		t.Errorf("LastLoginAt = %v after a bind, want the bind's time", got.LastLoginAt)
	}
	if !got.Activated {
		t.Error("Activated = false after SetPassword and a bind")
	}

	if _, err := s.UpdateUser(ctx, u.ID, store.UserUpdate{Disabled: ptr(true)}); err != nil {
		t.Fatalf("UpdateUser(Disabled=true): %v", err)
	}
	if err := bind(t, srv, u.ID, password); !ldapv3.IsErrorWithCode(err, ldapv3.LDAPResultInvalidCredentials) {
		t.Errorf("bind once deactivated: err = %v, want invalid credentials", err)
	}
	if _, err := s.UpdateUser(ctx, u.ID, store.UserUpdate{Disabled: ptr(false)}); err != nil {
		t.Fatalf("UpdateUser(Disabled=false): %v", err)
	}
	if err := bind(t, srv, u.ID, password); err != nil {
		t.Errorf("bind once reactivated: %v", err)
	}
}

func TestSpecialCharacters(t *testing.T) {
	srv := ldaptest.Start(t)
	s := open(t, srv)
	ctx := t.Context()
	for _, tc := range []struct {
		name  string
		email string
	}{
		{"comma", `"a,b"@example.com`},
		{"plus", "a+tag@example.com"},
		{"quote and backslash", `"a\"b\\c"@example.com`},
		{"filter characters", "a*(b)@example.com"},
		{"leading hash and space", "#a b@example.com"},
		{"angle brackets and semicolon", `"<a>;b="@example.com`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := store.User{Email: tc.email, FirstName: `Fi,rst+"\`, LastName: "La*(st)", Attributes: map[string]string{"note": `x=y,z*(\)`}}
			created, err := s.CreateUser(ctx, u)
			if err != nil {
				t.Fatalf("CreateUser: %v", err)
			}
			found, err := s.FindUserByEmail(ctx, strings.ToUpper(tc.email))
			if err != nil {
				t.Fatalf("FindUserByEmail: %v", err)
			}
			if found.ID != created.ID || found.Email != tc.email || found.FirstName != u.FirstName || found.LastName != u.LastName {
				t.Errorf("found %+v, want the user created as %+v", found, created)
			}
			if diff := cmp.Diff(u.Attributes, found.Attributes); diff != "" {
				t.Errorf("attributes (-want +got):\n%s", diff)
			}
			g, err := s.CreateGroup(ctx, store.Group{Name: "g " + tc.email, DisplayName: tc.email}, []string{created.ID})
			if err != nil {
				t.Fatalf("CreateGroup: %v", err)
			}
			if got, err := s.FindGroupByName(ctx, "g "+tc.email); err != nil || got.ID != g.ID || got.Name != "g "+tc.email {
				t.Errorf("FindGroupByName = %+v, %v; want %+v", got, err, g)
			}
			if err := s.DeleteUser(ctx, created.ID); err != nil {
				t.Fatalf("DeleteUser: %v", err)
			}
			members, err := s.ListGroupMembers(ctx, g.ID)
			if err != nil || len(members) != 0 {
				t.Errorf("members after DeleteUser = %v, %v; want none", members, err)
			}
		})
	}
	// A filter made of the characters must not match other users.
	if _, err := s.FindUserByEmail(ctx, "*"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf(`FindUserByEmail("*"): err = %v, want ErrNotFound`, err)
	}
	for _, bad := range []store.User{
		{Email: "nul\x00@example.com", FirstName: "N", LastName: "U"},
		{Email: "nul@example.com", FirstName: "N\x00", LastName: "U"},
		{Email: "key@example.com", LastName: "U", Attributes: map[string]string{"a=b": "c"}},
	} {
		if _, err := s.CreateUser(ctx, bad); err == nil {
			t.Errorf("CreateUser(%q) accepted a NUL character or a bad attribute key", bad.Email)
		}
	}
	if _, err := s.FindUserByEmail(ctx, "nul\x00@example.com"); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Errorf("FindUserByEmail with a NUL: err = %v, want a refusal", err)
	}
}

func TestAdoptionLeavesUnmanagedAttributes(t *testing.T) {
	srv := ldaptest.Start(t)
	s := open(t, srv)
	ctx := t.Context()
	conn := srv.Dial(t)
	// An entry another tool made: named by cn, with attributes Roster does
	// not manage and a description of its own.
	dn := "cn=Grace Hopper," + ldaptest.UsersDN
	add := ldapv3.NewAddRequest(dn, nil)
	add.Attribute("objectClass", []string{"inetOrgPerson"})
	add.Attribute("cn", []string{"Grace Hopper", "Amazing Grace"})
	add.Attribute("sn", []string{"Hopper"})
	add.Attribute("givenName", []string{"Grace"})
	add.Attribute("mail", []string{"Grace@Example.com"})
	add.Attribute("title", []string{"Rear Admiral"})
	add.Attribute("telephoneNumber", []string{"+1 555 0100"})
	add.Attribute("description", []string{"Wrote the first compiler", "team=navy"})
	if err := conn.Add(add); err != nil {
		t.Fatalf("adding the entry: %v", err)
	}

	u, err := s.FindUserByEmail(ctx, "grace@example.com")
	if err != nil {
		t.Fatalf("FindUserByEmail: %v", err)
	}
	want := store.User{ID: dn, Email: "Grace@Example.com", FirstName: "Grace", LastName: "Hopper", Attributes: map[string]string{"team": "navy"}}
	if diff := cmp.Diff(want, u); diff != "" {
		t.Errorf("adopted user (-want +got):\n%s", diff)
	}
	if _, err := s.CreateUser(ctx, store.User{Email: "grace@example.com", LastName: "H"}); !errors.Is(err, store.ErrAlreadyExists) {
		t.Errorf("CreateUser over the adopted entry: err = %v, want ErrAlreadyExists", err)
	}
	if _, err := s.UpdateUser(ctx, dn, store.UserUpdate{
		Role: ptr("Admin"), FirstName: ptr("Grace B."), Attributes: map[string]string{"team": "cobol", "shell": "sh"}, Disabled: ptr(false),
	}); err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	res, err := conn.Search(ldapv3.NewSearchRequest(dn, ldapv3.ScopeBaseObject, 0, 0, 0, false, "(objectClass=*)",
		[]string{"cn", "title", "telephoneNumber", "description", "employeeType", "givenName", "sn", "mail"}, nil))
	if err != nil {
		t.Fatalf("reading the entry: %v", err)
	}
	e := res.Entries[0]
	for attr, want := range map[string][]string{
		"cn":              {"Grace Hopper", "Amazing Grace"}, // not Roster's cn: left alone
		"title":           {"Rear Admiral"},
		"telephoneNumber": {"+1 555 0100"},
		"description":     {"Wrote the first compiler", "shell=sh", "team=cobol"},
		"employeeType":    {"Admin"},
		"givenName":       {"Grace B."},
		"sn":              {"Hopper"},
		"mail":            {"Grace@Example.com"},
	} {
		if diff := cmp.Diff(sortedCopy(want), sortedCopy(e.GetAttributeValues(attr))); diff != "" {
			t.Errorf("%s after UpdateUser (-want +got):\n%s", attr, diff)
		}
	}
}

func TestWrongCredentials(t *testing.T) {
	srv := ldaptest.Start(t)
	pwFile := t.TempDir() + "/wrong"
	if err := writeFile(pwFile, "not-the-password"); err != nil {
		t.Fatal(err)
	}
	cfg, err := ldap.ParseConfig([]byte(strings.Replace(srv.StoreConfig(), srv.PasswordFile, pwFile, 1)))
	if err != nil {
		t.Fatalf("ParseConfig: %v", err)
	}
	s, err := ldap.Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	_, err = s.FindUserByEmail(t.Context(), "anyone@example.com")
	if err == nil || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("FindUserByEmail with a wrong bind password: err = %v, want a credentials error", err)
	}
	for _, want := range []string{ldaptest.AdminDN, "refused the bind DN or password"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "not-the-password") {
		t.Error("the error shows the password")
	}
}

func TestUnreachable(t *testing.T) {
	srv := ldaptest.Start(t)
	s := open(t, srv, "dialTimeout: 2s")
	ctx := t.Context()
	u, err := s.CreateUser(ctx, store.User{Email: "back@example.com", LastName: "Back"})
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	srv.Stop()
	if _, err := s.GetUser(ctx, u.ID); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("GetUser with slapd stopped: err = %v, want ErrUnavailable", err)
	}
	if _, err := s.CreateUser(ctx, store.User{Email: "new@example.com", LastName: "New"}); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("CreateUser with slapd stopped: err = %v, want ErrUnavailable", err)
	}
	if err := srv.Restart(); err != nil {
		t.Fatalf("restarting slapd: %v", err)
	}
	// The pool dials again by itself.
	if got, err := s.GetUser(ctx, u.ID); err != nil || got.Email != "back@example.com" {
		t.Errorf("GetUser after slapd is back = %+v, %v", got, err)
	}
}

func TestPaging(t *testing.T) {
	srv := ldaptest.Start(t)
	// Far more groups hold the user than fit in a page: deleting the user
	// finds them all page by page.
	s := open(t, srv, "pageSize: 3")
	ctx := t.Context()
	u, err := s.CreateUser(ctx, store.User{Email: "pages@example.com", LastName: "Pages"})
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	var groups []string
	for i := range 11 {
		g, err := s.CreateGroup(ctx, store.Group{Name: fmt.Sprintf("paged-%02d", i), ExternalID: fmt.Sprintf("ext-%d", i)}, []string{u.ID})
		if err != nil {
			t.Fatalf("CreateGroup: %v", err)
		}
		groups = append(groups, g.ID)
	}
	if _, err := s.CreateGroup(ctx, store.Group{Name: "dup", ExternalID: "ext-10"}, nil); !errors.Is(err, store.ErrAlreadyExists) {
		t.Errorf("CreateGroup with the last page's external ID: err = %v, want ErrAlreadyExists", err)
	}
	if err := s.DeleteUser(ctx, u.ID); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	for _, id := range groups {
		if m, err := s.ListGroupMembers(ctx, id); err != nil || len(m) != 0 {
			t.Errorf("group %s after DeleteUser: members %v, %v; want none", id, m, err)
		}
	}
}

func TestListUsersInPages(t *testing.T) {
	srv := ldaptest.Start(t)
	s := open(t, srv, "pageSize: 4")
	ctx := t.Context()
	const n = 10
	for i := range n {
		if _, err := s.CreateUser(ctx, store.User{Email: fmt.Sprintf("listed%02d@example.com", i), LastName: "Listed"}); err != nil {
			t.Fatalf("CreateUser: %v", err)
		}
	}
	var sizes []int
	seen := map[string]bool{}
	err := s.ListUsers(ctx, func(page []store.User) error {
		sizes = append(sizes, len(page))
		for _, u := range page {
			seen[u.Email] = true
		}
		return nil
	})
	if err != nil {
		t.Fatalf("ListUsers: %v", err)
	}
	if len(seen) != n || !slices.Equal(sizes, []int{4, 4, 2}) {
		t.Errorf("ListUsers saw %d users in pages of %v, want %d in pages of [4 4 2]", len(seen), sizes, n)
	}
}

func TestEmptyGroupPlaceholder(t *testing.T) {
	srv := ldaptest.Start(t)
	s := open(t, srv)
	ctx := t.Context()
	g, err := s.CreateGroup(ctx, store.Group{Name: "empty"}, nil)
	if err != nil {
		t.Fatalf("CreateGroup: %v", err)
	}
	res, err := srv.Dial(t).Search(ldapv3.NewSearchRequest(g.ID, ldapv3.ScopeBaseObject, 0, 0, 0, false, "(objectClass=*)", []string{"member"}, nil))
	if err != nil {
		t.Fatalf("reading the group: %v", err)
	}
	if got := res.Entries[0].GetAttributeValues("member"); !cmp.Equal(got, []string{ldaptest.GroupsDN}) {
		t.Errorf("member of an empty group = %v, want the placeholder %s", got, ldaptest.GroupsDN)
	}
}

func ptr[T any](v T) *T { return &v }

func TestTLS(t *testing.T) {
	srv := ldaptest.Start(t)
	// The TLS settings alone, without the insecure: true that the plaintext
	// test configuration carries.
	plain := strings.Replace(srv.StoreConfig(), "insecure: true\n", "", 1)
	ldaps := strings.Replace(plain, srv.URL, srv.LDAPSURL, 1)
	for _, tc := range []struct {
		name      string
		config    string
		untrusted bool
	}{
		{"ldaps", ldaps + "caFile: " + srv.CAFile + "\n", false},
		{"StartTLS", plain + "startTLS: true\ncaFile: " + srv.CAFile + "\n", false},
		{"ldaps with an unknown CA", ldaps, true},
		{"StartTLS with an unknown CA", plain + "startTLS: true\n", true},
		{"ldaps with another name", ldaps + "caFile: " + srv.CAFile + "\nserverName: ldap.example.com\n", true},
		{"insecure does not trust an unknown CA", ldaps + "insecure: true\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ldap.ParseConfig([]byte(tc.config))
			if err != nil {
				t.Fatalf("ParseConfig: %v", err)
			}
			s, err := ldap.Open(cfg)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer s.Close()
			_, err = s.FindUserByEmail(t.Context(), "tls@example.com")
			if !tc.untrusted {
				if !errors.Is(err, store.ErrNotFound) {
					t.Errorf("FindUserByEmail over TLS: err = %v, want ErrNotFound", err)
				}
				return
			}
			if err == nil || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrUnavailable) {
				t.Fatalf("FindUserByEmail with an untrusted certificate: err = %v, want a certificate error", err)
			}
			if !strings.Contains(err.Error(), "certificate") {
				t.Errorf("error %q does not mention the certificate", err)
			}
		})
	}
}

func TestEmptyingAnAdoptedGroup(t *testing.T) {
	srv := ldaptest.Start(t)
	s := open(t, srv)
	ctx := t.Context()
	u, err := s.CreateUser(ctx, store.User{Email: "only@example.com", LastName: "Only"})
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	// A group another tool made, without the placeholder member.
	dn := "cn=legacy," + ldaptest.GroupsDN
	add := ldapv3.NewAddRequest(dn, nil)
	add.Attribute("objectClass", []string{"groupOfNames"})
	add.Attribute("cn", []string{"legacy"})
	add.Attribute("member", []string{u.ID})
	conn := srv.Dial(t)
	if err := conn.Add(add); err != nil {
		t.Fatalf("adding the group: %v", err)
	}
	if err := s.UpdateGroupMembers(ctx, dn, store.MemberDiff{Remove: []string{u.ID}}); err != nil {
		t.Fatalf("UpdateGroupMembers removing the last member: %v", err)
	}
	if m, err := s.ListGroupMembers(ctx, dn); err != nil || len(m) != 0 {
		t.Errorf("members = %v, %v; want none", m, err)
	}
	res, err := conn.Search(ldapv3.NewSearchRequest(dn, ldapv3.ScopeBaseObject, 0, 0, 0, false, "(objectClass=*)", []string{"member"}, nil))
	if err != nil {
		t.Fatalf("reading the group: %v", err)
	}
	if got := res.Entries[0].GetAttributeValues("member"); !cmp.Equal(got, []string{ldaptest.GroupsDN}) {
		t.Errorf("member = %v, want only the placeholder", got)
	}
}

func TestAuthenticateBindsAsTheUser(t *testing.T) {
	srv := ldaptest.Start(t)
	s := open(t, srv)
	ctx := t.Context()
	u, err := s.CreateUser(ctx, store.User{Email: "grace@example.com", FirstName: "Grace", LastName: "Hopper"})
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	const password = "Compiler-A0-1952"
	if _, err := s.Authenticate(ctx, "grace@example.com", password); !errors.Is(err, store.ErrInvalidCredentials) {
		t.Errorf("Authenticate before a password is set: err = %v, want ErrInvalidCredentials", err)
	}
	if err := s.SetPassword(ctx, u.ID, password); err != nil {
		t.Fatalf("SetPassword: %v", err)
	}
	got, err := s.Authenticate(ctx, "GRACE@example.com", password)
	if err != nil {
		t.Fatalf("Authenticate with the right password: %v", err)
	}
	if got.ID != u.ID {
		t.Errorf("Authenticate returned %q, want %q", got.ID, u.ID)
	}
	for name, c := range map[string]struct{ email, password string }{
		"wrong password":  {"grace@example.com", password + "x"},
		"empty password":  {"grace@example.com", ""},
		"unknown address": {"nobody@example.com", password},
	} {
		if _, err := s.Authenticate(ctx, c.email, c.password); !errors.Is(err, store.ErrInvalidCredentials) {
			t.Errorf("%s: err = %v, want ErrInvalidCredentials", name, err)
		}
	}
	// A locked user is refused with the same answer.
	if _, err := s.UpdateUser(ctx, u.ID, store.UserUpdate{Disabled: ptr(true)}); err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	if _, err := s.Authenticate(ctx, "grace@example.com", password); !errors.Is(err, store.ErrInvalidCredentials) {
		t.Errorf("Authenticate of a locked user: err = %v, want ErrInvalidCredentials", err)
	}
	// Through the wrapper the controllers use, the check is still found.
	wrapped := store.Instrument("ldap", s, store.NewMetrics(nil), nil)
	if _, ok := store.AsAuthenticator(wrapped); !ok {
		t.Error("AsAuthenticator does not see through Instrument")
	}
}
