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
	cfg := scim.Config{URL: peer.URL, Insecure: true, TokenFile: scimtest.TokenFile(t)} // the peer serves plain http on loopback
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

// TestConformanceWithPutAndETags runs the suite against a service without
// PATCH that offers ETags: updates and membership changes are read, edited
// and PUT back with If-Match, and concurrent writers retry on 412.
func TestConformanceWithPutAndETags(t *testing.T) {
	peer := scimtest.Start(t, scimtest.Options{NoPatch: true, ETag: true})
	storetest.Run(t, func(t *testing.T) store.Store {
		s := open(t, peer, scim.Options{})
		if patch, _, _, etag, _ := s.Features(); patch || !etag {
			t.Fatalf("discovery: patch=%v etag=%v, want false and true", patch, etag)
		}
		return s
	})
}
