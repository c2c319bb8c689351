package storetest

import (
	"errors"
	"testing"

	"roster.dev/roster/internal/store"
)

// testAccessKeys checks a store that holds access keys: adding and
// removing are idempotent, a key is held by its user only, keys are told
// apart by ID, and a user's deletion takes its keys with it. A store
// without keys is skipped.
func testAccessKeys(t *testing.T, s store.Store) {
	ks, ok := store.AsKeyStore(s)
	if !ok {
		t.Skipf("the %s store holds no access keys", s.Kind())
	}
	ctx := t.Context()
	u, err := s.CreateUser(ctx, store.User{Email: email(t, "keys"), FirstName: "Key", LastName: "Holder"})
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	other, err := s.CreateUser(ctx, store.User{Email: email(t, "other"), FirstName: "Other", LastName: "User"})
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	id1, key1 := store.NewKey()
	id2, key2 := store.NewKey()
	for _, key := range []string{key1, key1, key2} {
		if err := ks.AddKey(ctx, u.ID, key, nil); err != nil {
			t.Fatalf("AddKey: %v", err)
		}
	}
	for _, id := range []string{id1, id2} {
		got, err := ks.GetKey(ctx, u.ID, id)
		if err != nil || got.ID != id || got.UserID != u.ID {
			t.Errorf("GetKey(%s) = %+v, %v; want the key of %s", id, got, err, u.ID)
		}
		if _, err := ks.GetKey(ctx, other.ID, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetKey(%s) of another user: err = %v, want ErrNotFound", id, err)
		}
	}
	if got, err := s.GetUser(ctx, u.ID); err != nil || got.Activated {
		t.Errorf("GetUser with keys only = %+v, %v; want a user not activated: a key is not a password the person set", got, err)
	}
	if err := ks.AddKey(ctx, u.ID, "not-a-key", nil); err == nil {
		t.Error("AddKey of a value that is not an access key: no error")
	}
	for range 2 {
		if err := ks.RemoveKey(ctx, u.ID, id1); err != nil {
			t.Fatalf("RemoveKey: %v", err)
		}
	}
	if _, err := ks.GetKey(ctx, u.ID, id1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetKey of a removed key: err = %v, want ErrNotFound", err)
	}
	if _, err := ks.GetKey(ctx, u.ID, id2); err != nil {
		t.Errorf("GetKey of the key left: %v", err)
	}
	if err := s.DeleteUser(ctx, u.ID); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	if _, err := ks.GetKey(ctx, u.ID, id2); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetKey after DeleteUser: err = %v, want ErrNotFound", err)
	}
	if err := ks.RemoveKey(ctx, u.ID, id2); err != nil {
		t.Errorf("RemoveKey of a deleted user's key: %v", err)
	}
}
