package ldap

import (
	"errors"
	"fmt"
	"testing"

	ldapv3 "github.com/go-ldap/ldap/v3"

	"roster.dev/roster/internal/store"
)

func TestMapError(t *testing.T) {
	known := []error{store.ErrNotFound, store.ErrAlreadyExists, store.ErrUnavailable, store.ErrRejected}
	for _, tc := range []struct {
		code uint16
		want error // nil: none of the store's errors
	}{
		{ldapv3.LDAPResultNoSuchObject, store.ErrNotFound},
		{ldapv3.LDAPResultInvalidDNSyntax, store.ErrNotFound},
		{ldapv3.LDAPResultEntryAlreadyExists, store.ErrAlreadyExists},
		{ldapv3.LDAPResultBusy, store.ErrUnavailable},
		{ldapv3.LDAPResultUnavailable, store.ErrUnavailable},
		{ldapv3.LDAPResultTimeLimitExceeded, store.ErrUnavailable},
		{ldapv3.LDAPResultAdminLimitExceeded, store.ErrUnavailable},
		{ldapv3.LDAPResultConfidentialityRequired, store.ErrRejected},
		{ldapv3.LDAPResultUndefinedAttributeType, store.ErrRejected},
		{ldapv3.LDAPResultConstraintViolation, store.ErrRejected},
		{ldapv3.LDAPResultInvalidAttributeSyntax, store.ErrRejected},
		{ldapv3.LDAPResultInsufficientAccessRights, store.ErrRejected},
		{ldapv3.LDAPResultUnwillingToPerform, store.ErrRejected},
		{ldapv3.LDAPResultNamingViolation, store.ErrRejected},
		{ldapv3.LDAPResultObjectClassViolation, store.ErrRejected},
		{ldapv3.LDAPResultNotAllowedOnRDN, store.ErrRejected},
		{ldapv3.LDAPResultObjectClassModsProhibited, store.ErrRejected},
		{ldapv3.LDAPResultInvalidCredentials, nil},
		{ldapv3.LDAPResultOther, nil},
	} {
		t.Run(ldapv3.LDAPResultCodeMap[tc.code], func(t *testing.T) {
			in := ldapv3.NewError(tc.code, fmt.Errorf("the directory's answer"))
			err := mapError(in)
			if !errors.Is(err, in) {
				t.Errorf("mapError(%d) = %v, lost the LDAP result", tc.code, err)
			}
			for _, k := range known {
				if got := errors.Is(err, k); got != (k == tc.want) {
					t.Errorf("mapError(%d) = %v: errors.Is %v = %v", tc.code, err, k, got)
				}
			}
		})
	}
}
