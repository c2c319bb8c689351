package stores

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/internal/store"
	"roster.dev/roster/internal/store/embedded"
	"roster.dev/roster/internal/store/ldap"
	"roster.dev/roster/internal/store/scim"
)

// ConfigError is a spec a person must fix: the store is Stalled until the
// IdentityStore or its Secret changes.
type ConfigError struct{ Msg string }

func (e *ConfigError) Error() string { return e.Msg }

// IsConfigError reports whether err is a ConfigError.
func IsConfigError(err error) bool {
	var ce *ConfigError
	return errors.As(err, &ce)
}

// Opener opens the store an IdentityStore declares.
type Opener struct {
	// Secrets reads the credential Secrets, in Namespace (the operator's).
	Secrets   client.Reader
	Namespace string
	// DataDir holds the embedded stores' files, one folder per store.
	DataDir string
}

// SecretRefs are the Secrets an IdentityStore's store is opened with.
func SecretRefs(ids *v1alpha1.IdentityStore) []v1alpha1.SecretKeyReference {
	switch {
	case ids.Spec.LDAP != nil:
		return []v1alpha1.SecretKeyReference{ids.Spec.LDAP.BindPasswordSecretRef}
	case ids.Spec.SCIM != nil:
		return []v1alpha1.SecretKeyReference{ids.Spec.SCIM.TokenSecretRef}
	}
	return nil
}

// Fingerprint names what the store would be opened from: the spec's
// generation and the resource versions of its Secrets. A store opened from
// the same fingerprint needs no reopening.
func (o *Opener) Fingerprint(ctx context.Context, ids *v1alpha1.IdentityStore) (string, error) {
	parts := []string{fmt.Sprint(ids.Generation)}
	for _, ref := range SecretRefs(ids) {
		var s corev1.Secret
		if err := o.Secrets.Get(ctx, client.ObjectKey{Namespace: o.Namespace, Name: ref.Name}, &s); err != nil {
			if apierrors.IsNotFound(err) {
				return "", fmt.Errorf("the Secret %s/%s does not exist", o.Namespace, ref.Name)
			}
			return "", fmt.Errorf("reading Secret %s/%s: %w", o.Namespace, ref.Name, err)
		}
		parts = append(parts, s.Name+"@"+s.ResourceVersion)
	}
	return strings.Join(parts, ","), nil
}

// Open connects to the store. A spec that cannot work is a ConfigError;
// other errors (a Secret not there yet, a server down) may pass.
func (o *Opener) Open(ctx context.Context, ids *v1alpha1.IdentityStore) (store.Store, error) {
	switch spec := ids.Spec; {
	case spec.Embedded != nil:
		return embedded.Open(filepath.Join(o.DataDir, ids.Name))
	case spec.LDAP != nil:
		pw, err := o.secret(ctx, spec.LDAP.BindPasswordSecretRef, "spec.ldap.bindPasswordSecretRef")
		if err != nil {
			return nil, err
		}
		doc, err := settingsDocument(spec.LDAP.Settings, "spec.ldap.settings", map[string]any{
			"url": spec.LDAP.URL, "startTLS": spec.LDAP.StartTLS, "insecure": spec.LDAP.Insecure, "serverName": spec.LDAP.ServerName,
			"bindDN": spec.LDAP.BindDN, "usersDN": spec.LDAP.UsersDN, "groupsDN": spec.LDAP.GroupsDN,
		})
		if err != nil {
			return nil, err
		}
		cfg, err := ldap.ParseConfigWithSecrets(doc, pw, pemOrNil(spec.LDAP.CABundle))
		if err != nil {
			return nil, &ConfigError{Msg: err.Error()}
		}
		return ldap.Open(cfg)
	case spec.SCIM != nil:
		token, err := o.secret(ctx, spec.SCIM.TokenSecretRef, "spec.scim.tokenSecretRef")
		if err != nil {
			return nil, err
		}
		doc, err := settingsDocument(spec.SCIM.Settings, "spec.scim.settings", map[string]any{"url": spec.SCIM.URL, "insecure": spec.SCIM.Insecure})
		if err != nil {
			return nil, err
		}
		cfg, err := scim.ParseConfig(doc)
		if err != nil {
			return nil, &ConfigError{Msg: err.Error()}
		}
		cfg.Token, cfg.CAPEM = token, pemOrNil(spec.SCIM.CABundle)
		return scim.New(ctx, cfg, scim.Options{})
	}
	return nil, &ConfigError{Msg: "spec: set exactly one of embedded, ldap and scim"}
}

// settingsDocument merges the spec's settings object under the fields the
// spec types, which win, into the store package's configuration document.
// Keys the store does not know are refused by its strict parser.
func settingsDocument(raw *runtime.RawExtension, field string, typed map[string]any) ([]byte, error) {
	doc := map[string]any{}
	if raw != nil && len(raw.Raw) > 0 && string(raw.Raw) != "null" {
		if err := json.Unmarshal(raw.Raw, &doc); err != nil {
			return nil, &ConfigError{Msg: fmt.Sprintf("%s: not an object: %v", field, err)}
		}
	}
	for k := range typed {
		if _, ok := doc[k]; ok {
			return nil, &ConfigError{Msg: fmt.Sprintf("%s: %s is a field of the spec, not a setting", field, k)}
		}
	}
	for _, k := range []string{"bindPasswordFile", "bindPasswordEnv", "caFile", "tokenFile", "tokenEnv"} {
		if _, ok := doc[k]; ok {
			return nil, &ConfigError{Msg: fmt.Sprintf("%s: %s is not a setting of an IdentityStore: credentials come from a Secret and CAs from caBundle", field, k)}
		}
	}
	for k, v := range typed {
		doc[k] = v
	}
	return json.Marshal(doc)
}

func (o *Opener) secret(ctx context.Context, ref v1alpha1.SecretKeyReference, field string) (string, error) {
	var s corev1.Secret
	if err := o.Secrets.Get(ctx, client.ObjectKey{Namespace: o.Namespace, Name: ref.Name}, &s); err != nil {
		if apierrors.IsNotFound(err) {
			return "", fmt.Errorf("%s: Secret %s/%s does not exist", field, o.Namespace, ref.Name)
		}
		return "", fmt.Errorf("%s: reading Secret %s/%s: %w", field, o.Namespace, ref.Name, err)
	}
	v, ok := s.Data[ref.Key]
	if !ok || len(v) == 0 {
		return "", &ConfigError{Msg: fmt.Sprintf("%s: Secret %s/%s has no key %q", field, o.Namespace, ref.Name, ref.Key)}
	}
	return strings.TrimRight(string(v), "\r\n"), nil
}

func pemOrNil(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}
