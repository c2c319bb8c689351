package ldap

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	ldapv3 "github.com/go-ldap/ldap/v3"

	"roster.dev/roster/internal/store"
)

// ProbeDeactivation checks whether the directory really refuses a locked
// user: OpenLDAP enforces the lock attribute (pwdAccountLockedTime) only
// where a password policy with pwdLockout applies, and a directory without
// one accepts the locked user's password. It adds a throwaway user under
// usersDN with a random password, locks it, tries to bind as it, and
// removes it again.
func (s *Store) ProbeDeactivation(ctx context.Context) (bool, error) {
	id := make([]byte, 8)
	_, _ = rand.Read(id)
	pw := make([]byte, 18)
	_, _ = rand.Read(pw)
	password := "Pr0be-" + hex.EncodeToString(pw)
	probe, err := s.CreateUser(ctx, store.User{
		Email: "roster-lock-probe-" + hex.EncodeToString(id) + "@probe.invalid", FirstName: "Roster", LastName: "Lock probe",
		ExternalID: "roster-lock-probe",
	})
	if err != nil {
		return false, fmt.Errorf("adding the lock probe user: %w", err)
	}
	defer func() { _ = s.DeleteUser(context.WithoutCancel(ctx), probe.ID) }()
	if err := s.SetPassword(ctx, probe.ID, password); err != nil {
		return false, fmt.Errorf("setting the lock probe's password: %w", err)
	}
	locked := true
	if _, err := s.UpdateUser(ctx, probe.ID, store.UserUpdate{Disabled: &locked}); err != nil {
		return false, fmt.Errorf("locking the lock probe: %w", err)
	}
	conn, err := s.pool.dial()
	if err != nil {
		return false, err
	}
	defer conn.Close()
	err = conn.Bind(probe.ID, password)
	switch {
	case err == nil:
		return false, nil
	case ldapv3.IsErrorWithCode(err, ldapv3.LDAPResultInvalidCredentials):
		return true, nil
	default:
		return false, errors.Join(errors.New("binding as the locked lock probe"), mapError(err))
	}
}
