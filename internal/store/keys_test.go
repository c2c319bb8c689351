package store_test

import (
	"strings"
	"testing"

	"roster.dev/roster/internal/store"
)

func TestNewKeyParses(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		id, key := store.NewKey()
		if !strings.HasPrefix(key, "rak_"+id+"_") {
			t.Fatalf("key %q does not start with its key ID %q", key, id)
		}
		got, ok := store.ParseKey(key)
		if !ok || got != id {
			t.Fatalf("ParseKey(new key) = %q, %t; want %q, true", got, ok, id)
		}
		if seen[id] {
			t.Fatalf("key ID %q generated twice", id)
		}
		seen[id] = true
		if !store.KeyHashMatches(store.HashKey(key), key) || store.KeyHashMatches(store.HashKey(key), key+"0") {
			t.Fatal("KeyHashMatches disagrees with HashKey")
		}
	}
}

func TestParseKeyRefuses(t *testing.T) {
	_, key := store.NewKey()
	for _, tc := range []struct{ name, value string }{
		{"empty", ""},
		{"a password", "Analytical-Engine-1843"},
		{"another prefix", "xak" + key[3:]},
		{"short secret", key[:len(key)-2]},
		{"not hex", key[:len(key)-1] + "z"},
		{"extra part", key + "_00"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if id, ok := store.ParseKey(tc.value); ok {
				t.Errorf("ParseKey(%q) = %q, true; want false", tc.value, id)
			}
		})
	}
}
