package ldap_test

import (
	"errors"
	"testing"

	ldapv3 "github.com/go-ldap/ldap/v3"

	"roster.dev/roster/internal/store"
	"roster.dev/roster/internal/store/ldap/ldaptest"
)

// The probe tells a directory that enforces the lock from one that only
// stores it, and leaves no entry behind.
func TestProbeDeactivation(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start func(testing.TB) *ldaptest.Server
		want  bool
	}{
		{"with a password policy", ldaptest.Start, true},
		{"without one", ldaptest.StartWithoutPolicy, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := tc.start(t)
			s := open(t, srv)
			got, err := s.ProbeDeactivation(t.Context())
			if err != nil {
				t.Fatalf("ProbeDeactivation: %v", err)
			}
			if got != tc.want {
				t.Errorf("ProbeDeactivation = %v, want %v", got, tc.want)
			}
			res, err := srv.Dial(t).Search(ldapv3.NewSearchRequest(ldaptest.UsersDN, ldapv3.ScopeWholeSubtree, 0, 0, 0, false,
				"(mail=roster-lock-probe-*)", []string{"1.1"}, nil))
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Entries) != 0 {
				t.Errorf("the probe left %d entries behind", len(res.Entries))
			}
		})
	}
}

// IDs outside usersDN and groupsDN name nothing of Roster's: reading or
// writing them is not found, whatever the directory holds there.
func TestIDsOutsideTheManagedSubtreesAreNotFound(t *testing.T) {
	srv := ldaptest.Start(t)
	s := open(t, srv)
	for name, call := range map[string]func() error{
		"get the admin":       func() error { _, err := s.GetUser(t.Context(), ldaptest.AdminDN); return err },
		"update the admin":    func() error { _, err := s.UpdateUser(t.Context(), ldaptest.AdminDN, store.UserUpdate{}); return err },
		"password of a group": func() error { return s.SetPassword(t.Context(), ldaptest.GroupsDN, "Secret-Pass-1") },
		"a user as a group":   func() error { _, err := s.GetGroup(t.Context(), "uid=x,"+ldaptest.UsersDN); return err },
		"members of policies": func() error { _, err := s.ListGroupMembers(t.Context(), ldaptest.DefaultPolicyDN); return err },
		"fill the policies": func() error {
			return s.UpdateGroupMembers(t.Context(), ldaptest.PoliciesDN, store.MemberDiff{Remove: []string{"x"}})
		},
	} {
		if err := call(); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: %v, want not found", name, err)
		}
	}
	// Deleting counts a user not found as gone, and touches nothing.
	if err := s.DeleteUser(t.Context(), ldaptest.UsersDN); err != nil {
		t.Errorf("DeleteUser(usersDN) = %v", err)
	}
	res, err := srv.Dial(t).Search(ldapv3.NewSearchRequest(ldaptest.UsersDN, ldapv3.ScopeBaseObject, 0, 0, 0, false, "(objectClass=*)", []string{"1.1"}, nil))
	if err != nil || len(res.Entries) != 1 {
		t.Errorf("usersDN is gone after DeleteUser(usersDN): %v", err)
	}
}
