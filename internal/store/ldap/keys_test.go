package ldap_test

import (
	"errors"
	"testing"

	ldapv3 "github.com/go-ldap/ldap/v3"

	"roster.dev/roster/internal/store"
	"roster.dev/roster/internal/store/ldap/ldaptest"
)

func TestAccessKeysBind(t *testing.T) {
	srv := ldaptest.Start(t)
	s := open(t, srv)
	ctx := t.Context()
	u, err := s.CreateUser(ctx, store.User{Email: "keys@example.com", FirstName: "Key", LastName: "Holder"})
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	keyID, key := store.NewKey()
	if err := s.AddKey(ctx, u.ID, key, nil); err != nil {
		t.Fatalf("AddKey: %v", err)
	}
	if err := s.AddKey(ctx, u.ID, key, nil); err != nil {
		t.Fatalf("AddKey again: %v", err)
	}
	if got, _ := s.GetUser(ctx, u.ID); got.Activated {
		t.Error("Activated = true with only a key: a key is not a password the person set")
	}
	if err := bind(t, srv, u.ID, key); err != nil {
		t.Fatalf("bind with the key: %v", err)
	}
	if _, err := s.Authenticate(ctx, "keys@example.com", key); !errors.Is(err, store.ErrInvalidCredentials) {
		t.Errorf("Authenticate with the key: err = %v, want ErrInvalidCredentials: a key signs no one in to Roster", err)
	}

	// The person's password and the key live side by side; a second key
	// too.
	const password = "Analytical-Engine-1843"
	if err := s.SetPassword(ctx, u.ID, password); err != nil {
		t.Fatalf("SetPassword: %v", err)
	}
	// The Password Modify operation replaces every value; the store adds
	// the keys back.
	if _, err := s.GetKey(ctx, u.ID, keyID); err != nil {
		t.Fatalf("GetKey after SetPassword: %v, want the key kept", err)
	}
	if err := bind(t, srv, u.ID, key); err != nil {
		t.Fatalf("bind with the key after SetPassword: %v", err)
	}
	otherID, other := store.NewKey()
	if err := s.AddKey(ctx, u.ID, other, nil); err != nil {
		t.Fatalf("AddKey of a second key: %v", err)
	}
	for name, pw := range map[string]string{"password": password, "key": key, "second key": other} {
		if err := bind(t, srv, u.ID, pw); err != nil {
			t.Errorf("bind with the %s: %v", name, err)
		}
	}

	// A deactivated user's key is refused by the directory's password
	// policy, while its value is still there.
	if _, err := s.UpdateUser(ctx, u.ID, store.UserUpdate{Disabled: ptr(true)}); err != nil {
		t.Fatalf("UpdateUser(Disabled=true): %v", err)
	}
	if _, err := s.GetKey(ctx, u.ID, keyID); err != nil {
		t.Fatalf("GetKey while deactivated: %v", err)
	}
	if err := bind(t, srv, u.ID, key); !ldapv3.IsErrorWithCode(err, ldapv3.LDAPResultInvalidCredentials) {
		t.Errorf("bind with the key once deactivated: err = %v, want invalid credentials", err)
	}
	if _, err := s.UpdateUser(ctx, u.ID, store.UserUpdate{Disabled: ptr(false)}); err != nil {
		t.Fatalf("UpdateUser(Disabled=false): %v", err)
	}

	// Removing a key deletes exactly its value.
	if err := s.RemoveKey(ctx, u.ID, keyID); err != nil {
		t.Fatalf("RemoveKey: %v", err)
	}
	if err := s.RemoveKey(ctx, u.ID, keyID); err != nil {
		t.Fatalf("RemoveKey again: %v", err)
	}
	if err := bind(t, srv, u.ID, key); !ldapv3.IsErrorWithCode(err, ldapv3.LDAPResultInvalidCredentials) {
		t.Errorf("bind with the removed key: err = %v, want invalid credentials", err)
	}
	for name, pw := range map[string]string{"password": password, "second key": other} {
		if err := bind(t, srv, u.ID, pw); err != nil {
			t.Errorf("bind with the %s after removing the first key: %v", name, err)
		}
	}
	if _, err := s.GetKey(ctx, u.ID, otherID); err != nil {
		t.Errorf("GetKey of the second key: %v", err)
	}
}
