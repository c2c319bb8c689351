package ldap_test

import (
	"testing"

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
