package store_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"roster.dev/roster/internal/store"
	"roster.dev/roster/internal/store/embedded"
)

// The instrumented store keeps the key operations of the store it wraps,
// and counts them.
func TestInstrumentedKeys(t *testing.T) {
	emb, err := embedded.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emb.Close() })
	m := store.NewMetrics(prometheus.NewRegistry())
	s := store.Instrument("main", emb, m, nil)
	ks, ok := store.AsKeyStore(s)
	if !ok {
		t.Fatal("AsKeyStore of an instrumented embedded store: false")
	}
	kc, ok := store.AsKeyChecker(s)
	if !ok {
		t.Fatal("AsKeyChecker of an instrumented embedded store: false")
	}
	u, err := s.CreateUser(t.Context(), store.User{Email: "keys@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	id, key := store.NewKey()
	if err := ks.AddKey(t.Context(), u.ID, key, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := kc.CheckKey(t.Context(), key); err != nil {
		t.Fatal(err)
	}
	if err := ks.RemoveKey(t.Context(), u.ID, id); err != nil {
		t.Fatal(err)
	}
	for _, op := range []string{store.OpAddKey, store.OpCheckKey, store.OpRemoveKey} {
		if got := m.Calls("main", op); got != 1 {
			t.Errorf("calls of %s = %v, want 1", op, got)
		}
	}
}
