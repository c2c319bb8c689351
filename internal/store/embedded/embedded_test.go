package embedded_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
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

func TestPasswordIsKeptOnlyAsAHash(t *testing.T) {
	dir := t.TempDir()
	s, err := embedded.Open(dir)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	u, err := s.CreateUser(t.Context(), store.User{Email: "hash@example.com", FirstName: "Hash", LastName: "Only"})
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	const password = "Correct-Horse-Battery-9"
	if err := s.SetPassword(t.Context(), u.ID, password); err != nil {
		t.Fatalf("SetPassword: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, embedded.FileName))
	if err != nil {
		t.Fatalf("reading the database file: %v", err)
	}
	if bytes.Contains(raw, []byte(password)) {
		t.Error("the database file holds the password in plain text")
	}
	if !bytes.Contains(raw, []byte("$argon2id$")) {
		t.Error("the database file holds no argon2id hash")
	}
}

func TestAuthenticateRecordsLogin(t *testing.T) {
	s, err := embedded.Open(t.TempDir())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	ctx := t.Context()
	u, err := s.CreateUser(ctx, store.User{Email: "login@example.com", FirstName: "Log", LastName: "In"})
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if _, err := s.Authenticate(ctx, "login@example.com", "anything"); !errors.Is(err, embedded.ErrInvalidCredentials) {
		t.Errorf("Authenticate without a password set: err = %v, want ErrInvalidCredentials", err)
	}
	if err := s.SetPassword(ctx, u.ID, "Right-Password-42"); err != nil {
		t.Fatalf("SetPassword: %v", err)
	}
	if _, err := s.Authenticate(ctx, "login@example.com", "Wrong-Password-42"); !errors.Is(err, embedded.ErrInvalidCredentials) {
		t.Errorf("Authenticate with a wrong password: err = %v, want ErrInvalidCredentials", err)
	}
	got, err := s.Authenticate(ctx, "LOGIN@example.com", "Right-Password-42")
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	if got.LastLoginAt == nil || !got.Activated {
		t.Errorf("after a login: LastLoginAt = %v, Activated = %v; want a time and true", got.LastLoginAt, got.Activated)
	}
	if _, err := s.UpdateUser(ctx, u.ID, store.UserUpdate{Disabled: ptr(true)}); err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	if _, err := s.Authenticate(ctx, "login@example.com", "Right-Password-42"); !errors.Is(err, embedded.ErrInvalidCredentials) {
		t.Errorf("Authenticate of a deactivated user: err = %v, want ErrInvalidCredentials", err)
	}
}

func ptr[T any](v T) *T { return &v }
