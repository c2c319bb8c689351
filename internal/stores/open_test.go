package stores_test

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/internal/store"
	"roster.dev/roster/internal/store/ldap/ldaptest"
	"roster.dev/roster/internal/store/scim/scimtest"
	"roster.dev/roster/internal/store/storetest"
	"roster.dev/roster/internal/stores"
)

const operatorNS = "roster-system"

// opener reads Secrets from a fake API (the Secret's plumbing is all that is
// faked); the stores it opens are real.
func opener(t *testing.T, secrets map[string]string) *stores.Opener {
	var objs []*corev1.Secret
	for name, v := range secrets {
		objs = append(objs, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: operatorNS, Name: name}, Data: map[string][]byte{"secret": []byte(v)}})
	}
	b := fake.NewClientBuilder().WithScheme(scheme.Scheme)
	for _, o := range objs {
		b = b.WithObjects(o)
	}
	return &stores.Opener{Secrets: b.Build(), Namespace: operatorNS, DataDir: t.TempDir()}
}

var stored atomic.Int32

// conformance runs the store conformance suite on stores opened from the
// IdentityStore spec, as the manager opens them.
func conformance(t *testing.T, o *stores.Opener, spec v1alpha1.IdentityStoreSpec) {
	storetest.Run(t, func(t *testing.T) store.Store {
		ids := &v1alpha1.IdentityStore{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("conformance-%d", stored.Add(1))}, Spec: spec}
		s, err := o.Open(t.Context(), ids)
		if err != nil {
			t.Fatalf("opening the store of an IdentityStore: %v", err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

func TestConformanceThroughIdentityStores(t *testing.T) {
	t.Run("embedded", func(t *testing.T) {
		conformance(t, opener(t, nil), v1alpha1.IdentityStoreSpec{Embedded: &v1alpha1.EmbeddedStoreSpec{}})
	})
	t.Run("ldap", func(t *testing.T) {
		srv := ldaptest.Start(t)
		conformance(t, opener(t, map[string]string{"bind": srv.AdminPassword}), v1alpha1.IdentityStoreSpec{LDAP: &v1alpha1.LDAPStoreSpec{
			URL: srv.URL, Insecure: true, BindDN: ldaptest.AdminDN, UsersDN: ldaptest.UsersDN, GroupsDN: ldaptest.GroupsDN,
			BindPasswordSecretRef: v1alpha1.SecretKeyReference{Name: "bind", Key: "secret"},
			Settings:              &runtime.RawExtension{Raw: []byte(`{"poolSize": 2, "pageSize": 3}`)},
		}})
	})
	t.Run("scim", func(t *testing.T) {
		peer := scimtest.Start(t, scimtest.Options{})
		conformance(t, opener(t, map[string]string{"token": scimtest.Token}), v1alpha1.IdentityStoreSpec{SCIM: &v1alpha1.SCIMStoreSpec{
			URL: peer.URL, Insecure: true, TokenSecretRef: v1alpha1.SecretKeyReference{Name: "token", Key: "secret"},
			Settings: &runtime.RawExtension{Raw: []byte(`{"pageSize": 3}`)},
		}})
	})
}

// A spec that cannot work is a ConfigError naming the field; a missing
// Secret is not (it may yet be created).
func TestOpenRefusesBadSpecs(t *testing.T) {
	ldapSpec := func(settings string) v1alpha1.IdentityStoreSpec {
		spec := v1alpha1.IdentityStoreSpec{LDAP: &v1alpha1.LDAPStoreSpec{
			URL: "ldaps://ldap.example.com", BindDN: "cn=roster,dc=example", UsersDN: "ou=people,dc=example", GroupsDN: "ou=groups,dc=example",
			BindPasswordSecretRef: v1alpha1.SecretKeyReference{Name: "bind", Key: "secret"},
		}}
		if settings != "" {
			spec.LDAP.Settings = &runtime.RawExtension{Raw: []byte(settings)}
		}
		return spec
	}
	cases := []struct {
		name    string
		secrets map[string]string
		spec    v1alpha1.IdentityStoreSpec
		config  bool
		want    string
	}{
		{"unknown setting", map[string]string{"bind": "pw"}, ldapSpec(`{"poolSise": 2}`), true, "poolSise"},
		{"a credential file as a setting", map[string]string{"bind": "pw"}, ldapSpec(`{"bindPasswordFile": "/x"}`), true, "bindPasswordFile is not a setting"},
		{"a spec field as a setting", map[string]string{"bind": "pw"}, ldapSpec(`{"url": "ldap://elsewhere"}`), true, "url is a field of the spec"},
		{"missing Secret", nil, ldapSpec(""), false, "Secret roster-system/bind does not exist"},
		{"missing key", map[string]string{"other": "pw"}, func() v1alpha1.IdentityStoreSpec {
			s := ldapSpec("")
			s.LDAP.BindPasswordSecretRef.Name = "other"
			s.LDAP.BindPasswordSecretRef.Key = "password"
			return s
		}(), true, `has no key "password"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := opener(t, tc.secrets).Open(t.Context(), &v1alpha1.IdentityStore{ObjectMeta: metav1.ObjectMeta{Name: "bad"}, Spec: tc.spec})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open = %v, want an error containing %q", err, tc.want)
			}
			if got := stores.IsConfigError(err); got != tc.config {
				t.Errorf("IsConfigError = %v, want %v (%v)", got, tc.config, err)
			}
		})
	}
}
