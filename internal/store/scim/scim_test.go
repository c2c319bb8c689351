package scim_test

import (
	"testing"

	"roster.dev/roster/internal/store"
	"roster.dev/roster/internal/store/scim"
	"roster.dev/roster/internal/store/scim/scimtest"
	"roster.dev/roster/internal/store/storetest"
)

// open returns a store on the peer with the given config changes.
func open(t *testing.T, peer *scimtest.Server, opts scim.Options, edit ...func(*scim.Config)) *scim.Store {
	t.Helper()
	cfg := scim.Config{URL: peer.URL, TokenFile: scimtest.TokenFile(t)}
	for _, e := range edit {
		e(&cfg)
	}
	s, err := scim.New(t.Context(), cfg, opts)
	if err != nil {
		t.Fatalf("scim.New: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	peer := scimtest.Start(t, scimtest.Options{})
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, peer, scim.Options{}) })
}
