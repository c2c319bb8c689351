package scim

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"roster.dev/roster/internal/store"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares v, as indented JSON, with testdata/name.json.
func golden(t *testing.T, name string, v any) {
	t.Helper()
	got, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", name+".json")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if d := cmp.Diff(string(want), string(got)); d != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", path, d)
	}
}

func testStore(enterprise, roster bool) *Store {
	return &Store{cfg: settings{enterprise: enterprise}, userExt: roster, groupExt: roster}
}

func ptr[T any](v T) *T { return &v }

var ada = store.User{
	Email: "ada@example.com", ExternalID: "0b5f-uid", FirstName: "Ada", LastName: "Lovelace",
	Role: "Admin", Mobile: "+4915123456789", TimeZone: "Europe/London", Country: "GB", Locale: "en-GB",
	Attributes: map[string]string{"team": "engines", "department": "Analytical"},
}

func TestEncodeUser(t *testing.T) {
	for _, tc := range []struct {
		name             string
		enterprise, ext  bool
		user             store.User
		wantAttributeErr bool
	}{
		{name: "user-create", enterprise: true, ext: true, user: ada},
		{name: "user-create-core-only", user: store.User{Email: "bob@example.com", FirstName: "Bob", Disabled: true}},
		{name: "user-create-no-place", user: ada, wantAttributeErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := testStore(tc.enterprise, tc.ext)
			r, err := s.newUser(tc.user)
			if tc.wantAttributeErr {
				if _, ok := err.(*attributeError); !ok {
					t.Fatalf("err = %v, want an attribute error", err)
				}
				if !errors.Is(err, store.ErrRejected) {
					t.Errorf("err = %v is not store.ErrRejected: the schema refuses it until a person acts", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tc.name, r)
			// What is written reads back the same.
			back := s.decodeUser(roundTrip(t, r))
			if d := cmp.Diff(tc.user, back); d != "" {
				t.Errorf("decoded user (-want +got):\n%s", d)
			}
		})
	}
}

func TestDecodeUser(t *testing.T) {
	var r resource
	data, err := os.ReadFile(filepath.Join("testdata", "user-from-service.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	got := testStore(true, true).decodeUser(r)
	want := store.User{
		ID: "2819c223", Email: "bjensen@example.com", ExternalID: "bjensen", FirstName: "Barbara", LastName: "Jensen",
		Role: "Member", Mobile: "+1 555 555 4444", Country: "US", TimeZone: "America/Los_Angeles", Locale: "en-US",
		Disabled: true, Activated: true, Attributes: map[string]string{"department": "Tour Operations", "shell": "zsh"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("decoded user (-want +got):\n%s", d)
	}
}

func TestUserPatch(t *testing.T) {
	s := testStore(true, true)
	var before resource
	data, _ := os.ReadFile(filepath.Join("testdata", "user-from-service.json"))
	if err := json.Unmarshal(data, &before); err != nil {
		t.Fatal(err)
	}
	after := before.clone()
	if err := s.userFields(after, store.UserUpdate{
		FirstName: ptr("Babs"), Mobile: ptr("+1 555 555 0000"), Country: ptr("CA"), Locale: ptr(""),
		Disabled: ptr(false), Attributes: map[string]string{"shell": "fish", "costCenter": "42"},
	}); err != nil {
		t.Fatal(err)
	}
	golden(t, "user-patch", newPatch(changedOps(before, after)))
	if ops := changedOps(before, before.clone()); len(ops) != 0 {
		t.Errorf("no change made %d operations", len(ops))
	}
}

func TestEncodeGroup(t *testing.T) {
	s := testStore(false, true)
	r, err := s.newGroup(store.Group{Name: "ns/eng", DisplayName: "Engineering", ExternalID: "ext-eng", Description: "People who build"}, []string{"u1", "u2"})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "group-create", r)
	if d := cmp.Diff([]string{"u1", "u2"}, memberIDs(roundTrip(t, r))); d != "" {
		t.Errorf("members (-want +got):\n%s", d)
	}
	bare, err := s.newGroup(store.Group{Name: "ns/bare"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "group-create-bare", bare)

	core := testStore(false, false)
	r, err = core.newGroup(store.Group{Name: "ns/eng", DisplayName: "Engineering", Description: "People who build"}, []string{"u1"})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "group-create-core-only", r)
	if g := core.decodeGroup(r); g.Name != "ns/eng" || g.DisplayName != "Engineering" || g.ExternalID != "" {
		t.Errorf("decoded core-only group = %+v", g)
	}
	if _, err := core.newGroup(store.Group{Name: "ns/eng", ExternalID: "ext-eng"}, nil); !errors.Is(err, store.ErrRejected) || !strings.Contains(err.Error(), "spec.externalID") {
		t.Errorf("an external ID without the extension: err = %v, want ErrRejected naming spec.externalID", err)
	}
}

func TestMemberPatch(t *testing.T) {
	// UpdateGroupMembers sends removes by filter and one add, never a replace.
	var ops []patchOp
	diff := store.MemberDiff{Add: []string{"u3", "u4"}, Remove: []string{`u"1`}}
	for _, m := range diff.Remove {
		ops = append(ops, patchOp{Op: "remove", Path: "members[value eq " + quote(m) + "]"})
	}
	ops = append(ops, patchOp{Op: "add", Path: "members", Value: memberValues(diff.Add)})
	golden(t, "group-members-patch", newPatch(ops))
}

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		"ada@example.com":    `"ada@example.com"`,
		`a"b@example.com`:    `"a\"b@example.com"`,
		`a\b@example.com`:    `"a\\b@example.com"`,
		"tab\there@x":        `"tab\u0009here@x"`,
		`" or userName pr "`: `"\" or userName pr \""`,
	} {
		if got := quote(in); got != want {
			t.Errorf("quote(%q) = %s, want %s", in, got, want)
		}
		var back string
		if err := json.Unmarshal([]byte(quote(in)), &back); err != nil || back != in {
			t.Errorf("quote(%q) is not the JSON string of it: %v %q", in, err, back)
		}
	}
}

func roundTrip(t *testing.T, r resource) resource {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var out resource
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}
