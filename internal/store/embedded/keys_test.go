package embedded_test

import (
	"errors"
	"testing"
	"time"

	"roster.dev/roster/internal/store"
	"roster.dev/roster/internal/store/embedded"
)

func TestAccessKeys(t *testing.T) {
	s, err := embedded.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	ctx := t.Context()
	u, err := s.CreateUser(ctx, store.User{Email: "keys@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	keyID, key := store.NewKey()
	if err := s.AddKey(ctx, u.ID, key, nil); err != nil {
		t.Fatalf("AddKey: %v", err)
	}
	if err := s.AddKey(ctx, u.ID, key, nil); err != nil {
		t.Fatalf("AddKey again: %v", err)
	}
	got, who, err := s.CheckKey(ctx, key)
	if err != nil || got.ID != keyID || who.Email != "keys@example.com" {
		t.Fatalf("CheckKey = %+v, %q, %v; want key %s of keys@example.com", got, who.Email, err, keyID)
	}
	if k, err := s.GetKey(ctx, u.ID, keyID); err != nil || k.LastUsedAt == nil {
		t.Errorf("GetKey after a check = %+v, %v; want its last use", k, err)
	}
	if _, _, err := s.CheckKey(ctx, key[:len(key)-1]+"x"); !errors.Is(err, store.ErrInvalidCredentials) {
		t.Errorf("CheckKey of a malformed key: %v", err)
	}
	wrong := []byte(key)
	if wrong[len(wrong)-1] = '0'; key[len(key)-1] == '0' {
		wrong[len(wrong)-1] = '1'
	}
	if _, _, err := s.CheckKey(ctx, string(wrong)); !errors.Is(err, store.ErrInvalidCredentials) {
		t.Errorf("CheckKey of a wrong secret: %v", err)
	}

	// A disabled user's key is refused.
	if _, err := s.UpdateUser(ctx, u.ID, store.UserUpdate{Disabled: ptr(true)}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CheckKey(ctx, key); !errors.Is(err, store.ErrInvalidCredentials) {
		t.Errorf("CheckKey of a disabled user's key: %v", err)
	}
	if _, err := s.UpdateUser(ctx, u.ID, store.UserUpdate{Disabled: ptr(false)}); err != nil {
		t.Fatal(err)
	}

	// An expired key is refused.
	past := time.Now().Add(-time.Minute)
	_, expiredKey := store.NewKey()
	if err := s.AddKey(ctx, u.ID, expiredKey, &past); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CheckKey(ctx, expiredKey); !errors.Is(err, store.ErrInvalidCredentials) {
		t.Errorf("CheckKey of an expired key: %v", err)
	}

	// Another user cannot remove or read the key.
	other, err := s.CreateUser(ctx, store.User{Email: "other@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveKey(ctx, other.ID, keyID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetKey(ctx, other.ID, keyID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetKey as another user: %v", err)
	}
	if err := s.AddKey(ctx, other.ID, key, nil); !errors.Is(err, store.ErrAlreadyExists) {
		t.Errorf("AddKey of the key to another user: %v", err)
	}
	if _, _, err := s.CheckKey(ctx, key); err != nil {
		t.Errorf("CheckKey after another user's attempts: %v", err)
	}

	// Deleting the user deletes its keys.
	if err := s.DeleteUser(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CheckKey(ctx, key); !errors.Is(err, store.ErrInvalidCredentials) {
		t.Errorf("CheckKey after DeleteUser: %v", err)
	}
	if err := s.RemoveKey(ctx, u.ID, keyID); err != nil {
		t.Errorf("RemoveKey of a gone user: %v", err)
	}
}
