package ldap_test

import (
	"testing"

	ldapv3 "github.com/go-ldap/ldap/v3"

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
