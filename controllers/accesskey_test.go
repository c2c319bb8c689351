package controllers_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/controllers/controllerstest"
	"roster.dev/roster/internal/store"
	"roster.dev/roster/internal/web"
)

// The suite's store checks access keys as the embedded store under it
// does, unless it is down.
func (f *faultyStore) AddKey(ctx context.Context, userID, key string, expiresAt *time.Time) error {
	if err := f.err(); err != nil {
		return err
	}
	return emb.AddKey(ctx, userID, key, expiresAt)
}

func (f *faultyStore) GetKey(ctx context.Context, userID, keyID string) (store.Key, error) {
	if err := f.err(); err != nil {
		return store.Key{}, err
	}
	return emb.GetKey(ctx, userID, keyID)
}

func (f *faultyStore) RemoveKey(ctx context.Context, userID, keyID string) error {
	if err := f.err(); err != nil {
		return err
	}
	return emb.RemoveKey(ctx, userID, keyID)
}

func (f *faultyStore) CheckKey(ctx context.Context, key string) (store.Key, store.User, error) {
	if err := f.err(); err != nil {
		return store.Key{}, store.User{}, err
	}
	return emb.CheckKey(ctx, key)
}

func newAccessKey(ns, name, user string) *v1alpha1.AccessKey {
	return &v1alpha1.AccessKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       v1alpha1.AccessKeySpec{UserRef: v1alpha1.LocalUserReference{Name: user}, Description: "CI pipeline"},
	}
}

// waitForKey polls the AccessKey until cond holds and returns it.
func waitForKey(t *testing.T, ns, name string, cond func(g Gomega, ak *v1alpha1.AccessKey)) *v1alpha1.AccessKey {
	t.Helper()
	ak := &v1alpha1.AccessKey{}
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(k8s.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: name}, ak)).To(Succeed())
		cond(g, ak)
	}, timeout, tick).Should(Succeed())
	return ak
}

func keyCondition(typ, status, reason string) func(Gomega, *v1alpha1.AccessKey) {
	return func(g Gomega, ak *v1alpha1.AccessKey) {
		c := meta.FindStatusCondition(ak.Status.Conditions, typ)
		g.Expect(c).NotTo(BeNil())
		g.Expect(string(c.Status)).To(Equal(status))
		g.Expect(c.Reason).To(Equal(reason))
		g.Expect(ak.Status.ObservedGeneration).To(Equal(ak.Generation))
	}
}

// keyOf reads the key from the AccessKey's Secret.
func keyOf(t *testing.T, ns, secretName string) (string, *corev1.Secret) {
	t.Helper()
	s := &corev1.Secret{}
	NewWithT(t).Eventually(func() error {
		return k8s.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: secretName}, s)
	}, timeout, tick).Should(Succeed())
	return string(s.Data[v1alpha1.AccessKeySecretKey]), s
}

// introspectionClient reads the client credentials the manager created.
func introspectionClient(t *testing.T) (id, secret string) {
	t.Helper()
	s := &corev1.Secret{}
	NewWithT(t).Eventually(func() error {
		return k8s.Get(t.Context(), client.ObjectKey{Namespace: controllerstest.OperatorNamespace, Name: web.IntrospectionSecret}, s)
	}, timeout, tick).Should(Succeed())
	return string(s.Data[web.IntrospectionClientIDKey]), string(s.Data[web.IntrospectionClientSecretKey])
}

type introspection struct {
	status int
	header http.Header
	body   map[string]any
}

// introspect asks the introspection endpoint about the token, with the
// client credentials unless id is empty.
func introspect(t *testing.T, id, secret, token string) introspection {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, strings.TrimSuffix(webURL, "/")+"/introspect",
		strings.NewReader(url.Values{"token": {token}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id != "" {
		req.SetBasicAuth(id, secret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := introspection{status: resp.StatusCode, header: resp.Header}
	_ = json.NewDecoder(resp.Body).Decode(&out.body)
	return out
}

func active(t *testing.T, id, secret, token string) func() any {
	return func() any { return introspect(t, id, secret, token).body["active"] }
}

func TestAccessKeyIntrospection(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	ns := newNamespace(t)
	u := newUser(ns, "ada", "ada.keys@example.com")
	u.Spec.Invite = ptr.To(false)
	g.Expect(k8s.Create(ctx, u)).To(Succeed())
	g.Expect(k8s.Create(ctx, newAccessKey(ns, "ci", "ada"))).To(Succeed())

	ak := waitForKey(t, ns, "ci", keyCondition(v1alpha1.ConditionReady, "True", "KeyReady"))
	key, secret := keyOf(t, ns, "ci")
	keyID, ok := store.ParseKey(key)
	g.Expect(ok).To(BeTrue(), "the Secret holds a key")
	g.Expect(ak.Status.KeyID).To(Equal(keyID))
	g.Expect(secret.Type).To(Equal(corev1.SecretTypeOpaque))
	g.Expect(metav1.IsControlledBy(secret, ak)).To(BeTrue(), "the Secret is owned by the AccessKey")

	id, clientSecret := introspectionClient(t)
	got := introspect(t, id, clientSecret, key)
	g.Expect(got.status).To(Equal(http.StatusOK))
	g.Expect(got.body).To(Equal(map[string]any{
		"active": true, "sub": "ada.keys@example.com", "username": "ada.keys@example.com",
		"client_id": id, "token_type": "access_key",
	}))

	// Without client credentials, or with wrong ones: 401.
	none := introspect(t, "", "", key)
	g.Expect(none.status).To(Equal(http.StatusUnauthorized))
	g.Expect(none.header.Get("WWW-Authenticate")).To(HavePrefix("Basic "))
	g.Expect(introspect(t, id, clientSecret+"x", key).status).To(Equal(http.StatusUnauthorized))

	// A wrong key of the same ID, and a key that is no key: inactive.
	wrong := key[:len(key)-4] + "0000"
	if wrong == key {
		wrong = key[:len(key)-4] + "1111"
	}
	g.Expect(introspect(t, id, clientSecret, wrong).body).To(Equal(map[string]any{"active": false}))
	g.Expect(introspect(t, id, clientSecret, "rak_nope").body).To(Equal(map[string]any{"active": false}))

	// Its use is recorded in the store; the status shows it at the next
	// comparison.
	waitForKey(t, ns, "ci", func(g Gomega, ak *v1alpha1.AccessKey) { g.Expect(ak.Status.LastUsedAt).NotTo(BeNil()) })

	// The key is written once: a later pass leaves the Secret as it is.
	_, again := keyOf(t, ns, "ci")
	g.Expect(again.ResourceVersion).To(Equal(secret.ResourceVersion))

	// kubectl delete accesskey revokes it.
	g.Expect(k8s.Delete(ctx, ak)).To(Succeed())
	g.Eventually(active(t, id, clientSecret, key), timeout, tick).Should(Equal(false))
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKeyFromObject(ak), &v1alpha1.AccessKey{}))
	}, timeout, tick).Should(BeTrue())

	// Nothing secret is in the logs or the events.
	g.Expect(logs.String()).NotTo(ContainSubstring(key))
	g.Expect(logs.String()).NotTo(ContainSubstring(clientSecret))
	assertNoSecretInEvents(t, ns, key)
}

func TestAccessKeyDeactivatedUser(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	ns := newNamespace(t)
	u := newUser(ns, "bob", "bob.keys@example.com")
	u.Spec.Invite = ptr.To(false)
	g.Expect(k8s.Create(ctx, u)).To(Succeed())
	g.Expect(k8s.Create(ctx, newAccessKey(ns, "bot", "bob"))).To(Succeed())
	waitForKey(t, ns, "bot", keyCondition(v1alpha1.ConditionReady, "True", "KeyReady"))
	key, _ := keyOf(t, ns, "bot")
	id, clientSecret := introspectionClient(t)
	g.Expect(active(t, id, clientSecret, key)()).To(Equal(true))

	u = waitFor(t, ns, "bob", hasPhase(v1alpha1.UserInvited))
	u.Spec.Deactivated = ptr.To(true)
	g.Expect(k8s.Update(ctx, u)).To(Succeed())
	g.Eventually(active(t, id, clientSecret, key), timeout, tick).Should(Equal(false))
	waitForKey(t, ns, "bot", keyCondition(v1alpha1.ConditionReady, "False", "UserDeactivated"))

	// Reactivated, the same key works again.
	u = waitFor(t, ns, "bob", hasPhase(v1alpha1.UserInactive))
	u.Spec.Deactivated = ptr.To(false)
	g.Expect(k8s.Update(ctx, u)).To(Succeed())
	g.Eventually(active(t, id, clientSecret, key), timeout, tick).Should(Equal(true))

	// Deleting the User revokes its keys.
	g.Expect(k8s.Delete(ctx, u)).To(Succeed())
	g.Eventually(active(t, id, clientSecret, key), timeout, tick).Should(Equal(false))
	waitForKey(t, ns, "bot", keyCondition(v1alpha1.ConditionReady, "False", "WaitingForUser"))
}

func TestAccessKeyExpiry(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	ns := newNamespace(t)
	u := newUser(ns, "eve", "eve.keys@example.com")
	u.Spec.Invite = ptr.To(false)
	g.Expect(k8s.Create(ctx, u)).To(Succeed())
	ak := newAccessKey(ns, "short", "eve")
	ak.Spec.ExpiresAfter = &metav1.Duration{Duration: 4 * time.Second}
	ak.Spec.SecretName = "short-key"
	g.Expect(k8s.Create(ctx, ak)).To(Succeed())
	got := waitForKey(t, ns, "short", keyCondition(v1alpha1.ConditionReady, "True", "KeyReady"))
	g.Expect(got.Status.ExpiresAt).NotTo(BeNil())
	g.Expect(got.Status.ExpiresAt.Time).To(Equal(got.CreationTimestamp.Add(4 * time.Second)))
	key, _ := keyOf(t, ns, "short-key")
	id, clientSecret := introspectionClient(t)

	// The expiry cannot be pushed back: a longer life is a new key.
	longer := got.DeepCopy()
	longer.Spec.ExpiresAfter = &metav1.Duration{Duration: time.Hour}
	err := k8s.Update(ctx, longer)
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
	g.Expect(err.Error()).To(ContainSubstring("expiresAfter is immutable"))

	if time.Now().Before(got.Status.ExpiresAt.Add(-time.Second)) {
		g.Expect(active(t, id, clientSecret, key)()).To(Equal(true))
	}
	g.Eventually(active(t, id, clientSecret, key), timeout, tick).Should(Equal(false))
	waitForKey(t, ns, "short", keyCondition(v1alpha1.ConditionStalled, "True", "Expired"))
	keyID, _ := store.ParseKey(key)
	storeUserID := got.Status.StoreUserID
	g.Eventually(func() error { _, err := emb.GetKey(ctx, storeUserID, keyID); return err }, timeout, tick).
		Should(MatchError(store.ErrNotFound), "the expired key's hash is removed from the store")
}

// assertNoSecretInEvents checks that no event in the namespace carries the
// value.
func assertNoSecretInEvents(t *testing.T, ns, value string) {
	t.Helper()
	var list eventsv1.EventList
	if err := k8s.List(t.Context(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, e := range list.Items {
		if strings.Contains(e.Note, value) {
			t.Errorf("event %s carries a secret", e.Name)
		}
	}
}

// A store that cannot check keys (one without passwords, as most SCIM
// services) says so, and no key is issued.
func TestAccessKeyStoreWithoutKeys(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	ns := newNamespace(t)
	u := newUser(ns, "sso", "sso.keys@example.com")
	u.Spec.Invite = ptr.To(false)
	g.Expect(k8s.Create(ctx, u)).To(Succeed())
	waitFor(t, ns, "sso", hasPhase(v1alpha1.UserInvited))
	backend.setNoPasswords(true)
	t.Cleanup(func() { backend.setNoPasswords(false) })
	g.Expect(k8s.Create(ctx, newAccessKey(ns, "api", "sso"))).To(Succeed())
	got := waitForKey(t, ns, "api", keyCondition(v1alpha1.ConditionStalled, "True", "KeysUnsupported"))
	g.Expect(meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady).Message).To(ContainSubstring("cannot check access keys"))
	g.Expect(got.Status.KeyID).To(BeEmpty())
	g.Expect(apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "api"}, &corev1.Secret{}))).To(BeTrue())
}

// The account page lists a person's own keys, and revoking one there
// deletes its AccessKey, which revokes the key; another User's key in the
// same namespace is neither listed nor revoked.
func TestAccessKeysOnTheAccountPage(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	ns := newNamespace(t)
	addr := "keys.page@" + ns + ".example.com"
	pw := choose("Revoke-From-Page-77")
	activeUser(t, ns, "owner", addr, pw)
	other := newUser(ns, "other", "other.page@"+ns+".example.com")
	other.Spec.Invite = ptr.To(false)
	g.Expect(k8s.Create(ctx, other)).To(Succeed())
	mine := newAccessKey(ns, "mine", "owner")
	mine.Spec.Description = "CI pipeline"
	g.Expect(k8s.Create(ctx, mine)).To(Succeed())
	g.Expect(k8s.Create(ctx, newAccessKey(ns, "theirs", "other"))).To(Succeed())
	ak := waitForKey(t, ns, "mine", keyCondition(v1alpha1.ConditionReady, "True", "KeyReady"))
	theirs := waitForKey(t, ns, "theirs", keyCondition(v1alpha1.ConditionReady, "True", "KeyReady"))
	key, _ := keyOf(t, ns, "mine")
	id, clientSecret := introspectionClient(t)

	b := visitor(t)
	status, _ := b.SignIn(addr, pw)
	g.Expect(status).To(Equal(http.StatusSeeOther))
	var body string
	g.Eventually(func() string { _, body = b.Get("/account"); return body }, timeout, tick).Should(ContainSubstring(ak.Status.KeyID))
	g.Expect(body).To(ContainSubstring("CI pipeline"))
	g.Expect(body).NotTo(ContainSubstring(theirs.Status.KeyID), "another User's key is listed")
	g.Expect(body).NotTo(ContainSubstring(key), "the page shows the key itself")

	// Without the form's CSRF token nothing is revoked; nor is a key that
	// is not the person's.
	status, _ = b.Post("/account/keys/revoke", url.Values{"key": {"mine"}, "csrf": {"forged"}})
	g.Expect(status).To(Equal(http.StatusForbidden))
	b.Get("/account")
	b.Post("/account/keys/revoke", url.Values{"key": {"theirs"}})
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(theirs), &v1alpha1.AccessKey{})).To(Succeed())
	g.Expect(introspect(t, id, clientSecret, key).body).To(HaveKeyWithValue("active", true))

	b.Get("/account")
	status, _ = b.Post("/account/keys/revoke", url.Values{"key": {"mine"}})
	g.Expect(status).To(Equal(http.StatusSeeOther))
	g.Eventually(active(t, id, clientSecret, key), timeout, tick).Should(Equal(false))
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKeyFromObject(ak), &v1alpha1.AccessKey{}))
	}, timeout, tick).Should(BeTrue())
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(theirs), &v1alpha1.AccessKey{})).To(Succeed())
}
