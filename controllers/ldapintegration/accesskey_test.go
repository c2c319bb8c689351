package ldapintegration_test

import (
	"testing"

	ldapv3 "github.com/go-ldap/ldap/v3"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"roster.dev/roster/api/v1alpha1"
)

func keyReady(t *testing.T, ns, name string) *v1alpha1.AccessKey {
	t.Helper()
	ak := &v1alpha1.AccessKey{}
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(k8s.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: name}, ak)).To(Succeed())
		g.Expect(meta.IsStatusConditionTrue(ak.Status.Conditions, v1alpha1.ConditionReady)).To(BeTrue())
	}, timeout, tick).Should(Succeed())
	return ak
}

func isInvalidCredentials(err error) bool {
	return ldapv3.IsErrorWithCode(err, ldapv3.LDAPResultInvalidCredentials)
}

// An AccessKey's key binds as its User: a service checks it as it checks
// a password.
func TestAccessKeyBindsAsTheUser(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	ns := newNamespace(t)
	email := "grace@" + ns + ".example.com"
	u := &v1alpha1.User{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "grace"},
		Spec:       v1alpha1.UserSpec{Email: email, FirstName: "Grace", LastName: "Hopper", Invite: ptr.To(false)},
	}
	g.Expect(k8s.Create(ctx, u)).To(Succeed())
	dn := waitForUser(t, ns, "grace", hasPhase(v1alpha1.UserInvited)).Status.StoreID

	ak := &v1alpha1.AccessKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "deploy"},
		Spec:       v1alpha1.AccessKeySpec{UserRef: v1alpha1.LocalUserReference{Name: "grace"}},
	}
	g.Expect(k8s.Create(ctx, ak)).To(Succeed())
	keyReady(t, ns, "deploy")
	secret := &corev1.Secret{}
	g.Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "deploy"}, secret)).To(Succeed())
	key := string(secret.Data[v1alpha1.AccessKeySecretKey])
	g.Expect(bind(dn, key)).To(Succeed(), "the key binds as the user")
	g.Expect(isInvalidCredentials(bind(dn, key+"x"))).To(BeTrue())

	// A password change replaces every userPassword value; the key is
	// added again at the next comparison, and the password works too.
	const password = "Compiler-A0-1952"
	g.Expect(st.SetPassword(ctx, dn, password)).To(Succeed())
	g.Eventually(func() error { return bind(dn, key) }, timeout, tick).Should(Succeed())
	g.Expect(bind(dn, password)).To(Succeed())

	// Deactivated: the key no longer binds.
	updateUser(t, ns, "grace", func(u *v1alpha1.User) { u.Spec.Deactivated = ptr.To(true) })
	g.Eventually(func() bool { return isInvalidCredentials(bind(dn, key)) }, timeout, tick).Should(BeTrue())
	updateUser(t, ns, "grace", func(u *v1alpha1.User) { u.Spec.Deactivated = ptr.To(false) })
	g.Eventually(func() error { return bind(dn, key) }, timeout, tick).Should(Succeed())

	// Deleting the AccessKey deletes exactly its value: the key fails,
	// the password still binds.
	g.Expect(k8s.Delete(ctx, ak)).To(Succeed())
	g.Eventually(func() bool { return isInvalidCredentials(bind(dn, key)) }, timeout, tick).Should(BeTrue())
	g.Expect(bind(dn, password)).To(Succeed())
}
