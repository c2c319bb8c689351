package scim_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
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

// TestServiceWithCoreSchemasOnly runs against a peer that declares only
// RFC 7643's schemas, as most services do: Roster discovers that, sends
// none of its extensions, keeps a group's Roster name in externalId and its
// display name in displayName, and membership changes go through.
func TestServiceWithCoreSchemasOnly(t *testing.T) {
	ctx := t.Context()
	peer := scimtest.Start(t, scimtest.Options{CoreSchemas: true})
	s := open(t, peer, scim.Options{})

	ada, err := s.CreateUser(ctx, store.User{Email: "ada@example.com", FirstName: "Ada", LastName: "Lovelace", Role: "Member"})
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if err := s.SetPassword(ctx, ada.ID, "Analytical-Engine-1843"); err != nil {
		t.Fatalf("SetPassword: %v", err)
	}
	grace, err := s.CreateUser(ctx, store.User{Email: "grace@example.com", FirstName: "Grace", LastName: "Hopper"})
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	_, err = s.CreateUser(ctx, store.User{Email: "alan@example.com", Attributes: map[string]string{"team": "bombe"}})
	if !errors.Is(err, store.ErrRejected) || !strings.Contains(err.Error(), "attribute team") {
		t.Errorf("CreateUser with an attribute: err = %v, want ErrRejected naming the attribute", err)
	}

	g, err := s.CreateGroup(ctx, store.Group{Name: "t/unix", DisplayName: "Unix", Description: "not kept"}, []string{ada.ID})
	if err != nil {
		t.Fatalf("CreateGroup: %v", err)
	}
	want := store.Group{ID: g.ID, Name: "t/unix", DisplayName: "Unix"}
	if g != want {
		t.Errorf("created group = %+v, want %+v", g, want)
	}
	raw := peerGroup(t, peer, g.ID)
	if raw["displayName"] != "Unix" || raw["externalId"] != "t/unix" {
		t.Errorf("the service shows displayName %v and externalId %v, want Unix and t/unix", raw["displayName"], raw["externalId"])
	}
	if _, err := s.CreateGroup(ctx, store.Group{Name: "t/unix", DisplayName: "Other"}, nil); !errors.Is(err, store.ErrAlreadyExists) {
		t.Errorf("CreateGroup with a taken name: err = %v, want ErrAlreadyExists", err)
	}
	// Another namespace's group may read the same.
	if _, err := s.CreateGroup(ctx, store.Group{Name: "u/unix", DisplayName: "Unix"}, nil); err != nil {
		t.Errorf("CreateGroup with a display name another group has: %v", err)
	}
	found, err := s.FindGroupByName(ctx, "t/unix")
	if err != nil || found.ID != g.ID {
		t.Fatalf("FindGroupByName = %+v, %v; want the group %s", found, err, g.ID)
	}

	if err := s.UpdateGroupMembers(ctx, g.ID, store.MemberDiff{Add: []string{grace.ID}, Remove: []string{ada.ID}}); err != nil {
		t.Fatalf("UpdateGroupMembers: %v", err)
	}
	members, err := s.ListGroupMembers(ctx, g.ID)
	if err != nil || len(members) != 1 || members[0] != grace.ID {
		t.Errorf("members = %v, %v; want [%s]", members, err, grace.ID)
	}
	updated, err := s.UpdateGroup(ctx, g.ID, store.GroupUpdate{DisplayName: ptr("Unix people")})
	if err != nil || updated.DisplayName != "Unix people" || updated.Name != "t/unix" {
		t.Errorf("UpdateGroup = %+v, %v", updated, err)
	}
	_, err = s.UpdateGroup(ctx, g.ID, store.GroupUpdate{ExternalID: ptr("cn=unix")})
	if !errors.Is(err, store.ErrRejected) || !strings.Contains(err.Error(), "spec.externalID") {
		t.Errorf("UpdateGroup with an external ID: err = %v, want ErrRejected naming spec.externalID", err)
	}
	if got := peerGroup(t, peer, g.ID); got["externalId"] != "t/unix" {
		t.Errorf("a refused update changed externalId to %v", got["externalId"])
	}
}

// peerGroup reads a group as the service holds it, past Roster's decoding.
func peerGroup(t *testing.T, peer *scimtest.Server, id string) map[string]any {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, peer.URL+"/Groups/"+id, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+scimtest.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("decoding the group: %v", err)
	}
	for _, urn := range out["schemas"].([]any) {
		if strings.Contains(urn.(string), "roster") {
			t.Errorf("the service holds Roster's schema %s", urn)
		}
	}
	return out
}

func ptr[T any](v T) *T { return &v }
