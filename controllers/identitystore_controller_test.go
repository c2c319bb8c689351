package controllers_test

import (
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/controllers"
	"roster.dev/roster/controllers/controllerstest"
)

// A store that Users still use is not removed: its finalizer holds it and
// its Ready condition says how many use it; once they are gone, so is it.
// Until the store exists, a User that names it waits and says why.
func TestIdentityStoreInUseIsKept(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	name := "kept-" + ns
	u := newUser(ns, "early", "early@"+ns+".example.com")
	u.Spec.StoreRef = &v1alpha1.StoreReference{Name: name}
	g.Expect(k8s.Create(t.Context(), u)).To(Succeed())
	waitFor(t, ns, "early", func(g Gomega, u *v1alpha1.User) {
		ready := readyCondition(u)
		g.Expect(ready).NotTo(BeNil())
		g.Expect(ready.Reason).To(Equal(controllers.ReasonWaitingForStore))
		g.Expect(ready.Message).To(ContainSubstring("IdentityStore " + name))
		g.Expect(meta.IsStatusConditionTrue(u.Status.Conditions, v1alpha1.ConditionReconciling)).To(BeTrue())
	})

	ids := &v1alpha1.IdentityStore{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       v1alpha1.IdentityStoreSpec{Embedded: &v1alpha1.EmbeddedStoreSpec{}, Tenants: []v1alpha1.TenantRule{controllerstest.AnyTenant()}},
	}
	g.Expect(controllerstest.CreateStore(t.Context(), k8s, ids, timeout)).To(Succeed())
	waitFor(t, ns, "early", hasPhase(v1alpha1.UserInvited))

	g.Expect(k8s.Delete(t.Context(), ids)).To(Succeed())
	g.Eventually(func(g Gomega) {
		var got v1alpha1.IdentityStore
		g.Expect(k8s.Get(t.Context(), client.ObjectKeyFromObject(ids), &got)).To(Succeed())
		ready := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady)
		g.Expect(ready).NotTo(BeNil())
		g.Expect(ready.Reason).To(Equal(controllers.ReasonInUse))
		g.Expect(ready.Message).To(ContainSubstring("1 Users, Groups or UserImports"))
		g.Expect(got.Status.ReferencedBy).To(BeEquivalentTo(1))
	}, timeout, tick).Should(Succeed())

	g.Expect(k8s.Delete(t.Context(), u)).To(Succeed())
	g.Eventually(func() bool {
		err := k8s.Get(t.Context(), client.ObjectKeyFromObject(ids), &v1alpha1.IdentityStore{})
		return err != nil && client.IgnoreNotFound(err) == nil
	}, timeout, tick).Should(BeTrue(), "the store goes once nothing uses it")
}

// The API server refuses a store that is not exactly one kind, a tenancy
// rule with both selector kinds, and plaintext without insecure.
func TestIdentityStoreValidation(t *testing.T) {
	g := NewWithT(t)
	rule := controllerstest.AnyTenant()
	both := rule
	both.Namespaces = []string{"a"}
	cases := []struct {
		name string
		spec v1alpha1.IdentityStoreSpec
		want string
	}{
		{"no kind", v1alpha1.IdentityStoreSpec{}, "set exactly one of embedded, ldap and scim"},
		{"two kinds", v1alpha1.IdentityStoreSpec{Embedded: &v1alpha1.EmbeddedStoreSpec{}, SCIM: &v1alpha1.SCIMStoreSpec{
			URL: "https://scim.example.com", TokenSecretRef: v1alpha1.SecretKeyReference{Name: "s", Key: "k"}}}, "set exactly one of embedded, ldap and scim"},
		{"both selectors", v1alpha1.IdentityStoreSpec{Embedded: &v1alpha1.EmbeddedStoreSpec{}, Tenants: []v1alpha1.TenantRule{both}},
			"set exactly one of namespaceSelector and namespaces"},
		{"plaintext ldap", v1alpha1.IdentityStoreSpec{LDAP: &v1alpha1.LDAPStoreSpec{URL: "ldap://ldap.example.com", BindDN: "cn=a", UsersDN: "ou=u",
			GroupsDN: "ou=g", BindPasswordSecretRef: v1alpha1.SecretKeyReference{Name: "s", Key: "k"}}}, "needs startTLS: true, or insecure: true"},
		{"plaintext scim", v1alpha1.IdentityStoreSpec{SCIM: &v1alpha1.SCIMStoreSpec{URL: "http://scim.example.com",
			TokenSecretRef: v1alpha1.SecretKeyReference{Name: "s", Key: "k"}}}, "needs insecure: true"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ids := &v1alpha1.IdentityStore{ObjectMeta: metav1.ObjectMeta{GenerateName: "invalid-"}, Spec: tc.spec}
			g.Expect(k8s.Create(t.Context(), ids)).To(MatchError(ContainSubstring(tc.want)))
		})
	}
}
