package embedded_test

import (
	"testing"

	"roster.dev/roster/internal/store"
	"roster.dev/roster/internal/store/embedded"
	"roster.dev/roster/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := embedded.Open(t.TempDir())
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

func TestReopenKeepsUsers(t *testing.T) {
	dir := t.TempDir()
	s, err := embedded.Open(dir)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	created, err := s.CreateUser(t.Context(), store.User{Email: "keep@example.com", FirstName: "Keep", LastName: "Me"})
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s, err = embedded.Open(dir)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	got, err := s.FindUserByEmail(t.Context(), "keep@example.com")
	if err != nil {
		t.Fatalf("FindUserByEmail after reopen: %v", err)
	}
	if got.ID != created.ID {
		t.Errorf("ID after reopen = %q, want %q", got.ID, created.ID)
	}
}

func TestOpenFailsWhenHeld(t *testing.T) {
	dir := t.TempDir()
	s, err := embedded.Open(dir)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	if _, err := embedded.Open(dir); err == nil {
		t.Fatal("second Open of a held store succeeded, want an error")
	}
}
