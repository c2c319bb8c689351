package controllers_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/controllers"
	"roster.dev/roster/controllers/controllerstest"
	"roster.dev/roster/internal/invitation"
	"roster.dev/roster/internal/store"
	"roster.dev/roster/internal/testenv"
)

// tenant is someone with only the built-in edit role in one namespace (with
// roster-edit, which the install aggregates into it), acting through
// impersonation so that the API server's RBAC is the real one.
type tenant struct {
	ns string
	c  client.Client
}

// newTenant makes a namespace and a ServiceAccount with edit rights in it,
// and a client that acts as that ServiceAccount.
func newTenant(t *testing.T) tenant {
	t.Helper()
	g := NewWithT(t)
	ns := newNamespaceNamed(t, "tenant-")
	g.Expect(k8s.Create(t.Context(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "dev"}})).To(Succeed())
	ensureRosterEdit(t)
	// The built-in edit role is aggregated: without kube-controller-manager
	// it stays empty here, so the tenant is bound to what aggregation puts
	// into it (the API server's own aggregate-to-edit and aggregate-to-view
	// roles, and the install's roster-edit).
	for _, role := range []string{"system:aggregate-to-edit", "system:aggregate-to-view", "roster-edit"} {
		g.Expect(k8s.Create(t.Context(), &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "dev-" + strings.ReplaceAll(role, ":", "-")},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: ns, Name: "dev"}},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		})).To(Succeed())
	}
	cfg := rest.CopyConfig(restCfg)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + ns + ":dev"}
	c, err := client.New(cfg, client.Options{Scheme: testenv.Scheme()})
	g.Expect(err).NotTo(HaveOccurred())
	return tenant{ns: ns, c: c}
}

// ensureRosterEdit installs the roster-edit ClusterRole the install ships.
// Without kube-controller-manager nothing aggregates it into edit, so the
// tenant is bound to both, as aggregation would grant.
func ensureRosterEdit(t *testing.T) {
	t.Helper()
	g := NewWithT(t)
	raw, err := os.ReadFile("../config/rbac/edit_role.yaml")
	g.Expect(err).NotTo(HaveOccurred())
	var role rbacv1.ClusterRole
	g.Expect(yaml.Unmarshal(raw, &role)).To(Succeed())
	if err := k8s.Create(t.Context(), &role); err != nil {
		g.Expect(client.IgnoreAlreadyExists(err)).To(Succeed())
	}
}

// restrictedStore declares a store whose one rule admits the tenant's
// namespace with tenant.example.com addresses and the Member role only.
func restrictedStore(t *testing.T, ns string) string {
	t.Helper()
	ids := &v1alpha1.IdentityStore{
		ObjectMeta: metav1.ObjectMeta{Name: "restricted-" + ns},
		Spec: v1alpha1.IdentityStoreSpec{Embedded: &v1alpha1.EmbeddedStoreSpec{}, Tenants: []v1alpha1.TenantRule{{
			Namespaces: []string{ns}, EmailDomains: []string{ns + ".example.com"}, Roles: []string{"Member"},
		}}},
	}
	NewWithT(t).Expect(controllerstest.CreateStore(t.Context(), k8s, ids, timeout)).To(Succeed())
	return ids.Name
}

func notPermitted(g Gomega, u *v1alpha1.User, wants ...string) {
	ready := readyCondition(u)
	g.Expect(ready).NotTo(BeNil())
	g.Expect(ready.Reason).To(Equal(controllers.ReasonNotPermitted))
	g.Expect(meta.IsStatusConditionTrue(u.Status.Conditions, v1alpha1.ConditionStalled)).To(BeTrue())
	for _, w := range wants {
		g.Expect(ready.Message).To(ContainSubstring(w))
	}
	g.Expect(u.Status.StoreID).To(BeEmpty(), "nothing of a store user shows")
	g.Expect(u.Status.LastLoginAt).To(BeNil())
}

// A tenant cannot provision an address outside its domains, a role outside
// its roles, or into a store whose rules do not select its namespace; each
// is refused by name and nothing reaches the store.
func TestTenantRulesRefuse(t *testing.T) {
	g := NewWithT(t)
	ten := newTenant(t)
	storeName := restrictedStore(t, ten.ns)
	ref := &v1alpha1.StoreReference{Name: storeName}

	outside := newUser(ten.ns, "outside", "someone@corp.example.com")
	outside.Spec.StoreRef = ref
	admin := newUser(ten.ns, "admin", "admin@"+ten.ns+".example.com")
	admin.Spec.StoreRef, admin.Spec.Role = ref, "Admin"
	fine := newUser(ten.ns, "fine", "fine@"+ten.ns+".example.com")
	fine.Spec.StoreRef = ref
	for _, u := range []*v1alpha1.User{outside, admin, fine} {
		g.Expect(ten.c.Create(t.Context(), u)).To(Succeed())
	}
	waitFor(t, ten.ns, "outside", func(g Gomega, u *v1alpha1.User) {
		notPermitted(g, u, storeName, "addresses at corp.example.com")
	})
	waitFor(t, ten.ns, "admin", func(g Gomega, u *v1alpha1.User) {
		notPermitted(g, u, storeName, "the role Admin")
	})
	waitFor(t, ten.ns, "fine", hasPhase(v1alpha1.UserInvited))
	for _, email := range []string{outside.Spec.Email, admin.Spec.Email} {
		_, err := backend.FindUserByEmail(t.Context(), email)
		g.Expect(errors.Is(err, store.ErrNotFound)).To(BeTrue(), "%s reached the store", email)
	}

	// Another tenant's namespace is not selected by this store's rules.
	other := newTenant(t)
	stray := newUser(other.ns, "stray", "stray@"+ten.ns+".example.com")
	stray.Spec.StoreRef = ref
	g.Expect(other.c.Create(t.Context(), stray)).To(Succeed())
	waitFor(t, other.ns, "stray", func(g Gomega, u *v1alpha1.User) {
		notPermitted(g, u, storeName, "admits no resources from namespace "+other.ns)
	})
	_, err := backend.FindUserByEmail(t.Context(), stray.Spec.Email)
	g.Expect(errors.Is(err, store.ErrNotFound)).To(BeTrue())
}

// A store user Roster did not create is not adopted where the rule does
// not allow it: its role, its lock and its existence in the store stay as
// they were, whatever the tenant's User asks, and deleting the User leaves
// it.
func TestTenantCannotAdoptAnAccount(t *testing.T) {
	g := NewWithT(t)
	ten := newTenant(t)
	storeName := restrictedStore(t, ten.ns)
	email := "boss@" + ten.ns + ".example.com"
	victim, err := emb.CreateUser(t.Context(), store.User{Email: email, FirstName: "The", LastName: "Boss", Role: "Member", Disabled: true, ExternalID: "hr-system-42"})
	g.Expect(err).NotTo(HaveOccurred())

	u := newUser(ten.ns, "takeover", email)
	u.Spec.StoreRef = &v1alpha1.StoreReference{Name: storeName}
	u.Spec.FirstName, u.Spec.Deactivated = "Mallory", ptr.To(false)
	u.Spec.DeletionPolicy = v1alpha1.DeletionPolicyDelete
	g.Expect(ten.c.Create(t.Context(), u)).To(Succeed())
	waitFor(t, ten.ns, "takeover", func(g Gomega, u *v1alpha1.User) {
		notPermitted(g, u, storeName, "does not allow adoption")
		g.Expect(u.Status.Phase).To(Equal(v1alpha1.UserPending))
	})
	settle(t, ten.ns)

	got, err := emb.GetUser(t.Context(), victim.ID)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got.FirstName).To(Equal("The"))
	g.Expect(got.Disabled).To(BeTrue(), "the account stays locked")

	g.Expect(ten.c.Delete(t.Context(), u)).To(Succeed())
	g.Eventually(func() bool {
		err := k8s.Get(t.Context(), client.ObjectKeyFromObject(u), &v1alpha1.User{})
		return client.IgnoreNotFound(err) == nil && err != nil
	}, timeout, tick).Should(BeTrue())
	_, err = emb.GetUser(t.Context(), victim.ID)
	g.Expect(err).NotTo(HaveOccurred(), "the account is still in the store")
}

// A store ID written into a User's status by whoever may write status does
// not point Roster at another account.
func TestForgedStoreIDIsNotTrusted(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	victim, err := emb.CreateUser(t.Context(), store.User{Email: "victim@" + ns + ".example.com", FirstName: "Vic", Role: "Member", ExternalID: "elsewhere"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(k8s.Create(t.Context(), newUser(ns, "mallory", "mallory@"+ns+".example.com"))).To(Succeed())
	got := waitFor(t, ns, "mallory", hasPhase(v1alpha1.UserInvited))
	own := got.Status.StoreID

	got.Status.StoreID = victim.ID
	g.Expect(k8s.Status().Update(t.Context(), got)).To(Succeed())
	update(t, ns, "mallory", func(u *v1alpha1.User) { u.Spec.FirstName = "Mallory"; u.Spec.Deactivated = ptr.To(true) })
	waitFor(t, ns, "mallory", func(g Gomega, u *v1alpha1.User) {
		g.Expect(u.Status.StoreID).To(Equal(own))
		g.Expect(u.Status.Phase).To(Equal(v1alpha1.UserInactive))
	})
	after, err := emb.GetUser(t.Context(), victim.ID)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(after.FirstName).To(Equal("Vic"))
	g.Expect(after.Disabled).To(BeFalse())
}

// An import row that breaks the store's rules fails with its row number;
// the other rows are applied.
func TestTenantImportRowsAreChecked(t *testing.T) {
	g := NewWithT(t)
	ten := newTenant(t)
	storeName := restrictedStore(t, ten.ns)
	imp := newImport(ten.ns, "hires", v1alpha1.UserImportSpec{
		StoreRef: &v1alpha1.StoreReference{Name: storeName},
		Source: inline("add-user,ok@" + ten.ns + ".example.com,Ok,Person\n" +
			"add-user,ceo@corp.example.com,Not,Ours\n"),
	})
	got := importAsTenant(t, ten, imp)
	g.Expect(got.Status.Failures).To(HaveLen(1))
	g.Expect(got.Status.Failures[0].Row).To(BeEquivalentTo(2))
	g.Expect(got.Status.Failures[0].Message).To(ContainSubstring("addresses at corp.example.com"))
	g.Expect(usersIn(g, t.Context(), ten.ns)).To(HaveKey("ok@" + ten.ns + ".example.com"))
	g.Expect(usersIn(g, t.Context(), ten.ns)).NotTo(HaveKey("ceo@corp.example.com"))
}

// importAsTenant creates the import as the tenant and waits until some of
// its rows were applied and some refused.
func importAsTenant(t *testing.T, ten tenant, imp *v1alpha1.UserImport) *v1alpha1.UserImport {
	t.Helper()
	g := NewWithT(t)
	g.Expect(ten.c.Create(t.Context(), imp)).To(Succeed())
	got := &v1alpha1.UserImport{}
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(t.Context(), client.ObjectKeyFromObject(imp), got)).To(Succeed())
		g.Expect(got.Status.Phase).To(Equal(v1alpha1.ImportPartiallySucceeded))
	}, timeout, tick).Should(Succeed())
	return got
}

// A Secret a tenant writes in its own namespace, labelled as a token record
// with a hash of its choosing, opens no page, and does not stop the genuine
// link from working.
func TestForgedTokenRecordIsIgnored(t *testing.T) {
	g := NewWithT(t)
	ten := newTenant(t)
	addr := "target@" + ten.ns + ".example.com"
	g.Expect(ten.c.Create(t.Context(), newUser(ten.ns, "target", addr))).To(Succeed())
	u := waitFor(t, ten.ns, "target", hasPhase(v1alpha1.UserInvited))
	genuine := waitForEmails(t, addr, "invitation", 1)[0].link

	tok, err := invitation.New(string(u.UID))
	g.Expect(err).NotTo(HaveOccurred())
	var rec invitation.Record
	rec.Issue(tok, time.Now(), time.Hour)
	for _, p := range invitation.Purposes {
		forged := invitation.NewSecret(ten.ns, u, p)
		rec.WriteTo(forged)
		g.Expect(ten.c.Create(t.Context(), forged)).To(Succeed(), "the edit role may write Secrets in its namespace")
	}
	public, err := url.Parse(webURL)
	g.Expect(err).NotTo(HaveOccurred())
	for _, p := range invitation.Purposes {
		// Only the record in the operator's namespace counts: the forged
		// token matches none (404, or 410 where a genuine record exists).
		status, body := newPage(t).get(invitation.Link(public, p, tok))
		g.Expect(status).To(BeElementOf(http.StatusNotFound, http.StatusGone), "a forged %s record opened the page", p)
		g.Expect(body).NotTo(ContainSubstring(`name="password"`))
	}
	status, _ := newPage(t).get(genuine)
	g.Expect(status).To(Equal(http.StatusOK), "the genuine link still works")
}

// The shipped ValidatingAdmissionPolicy refuses at admission what the rules
// refuse, so that kubectl apply shows it. The suite binds it only in
// namespaces labelled for this test, so that the other tests see the
// controllers' own refusals.
func TestAdmissionPolicyRefusesWhatTheRulesRefuse(t *testing.T) {
	g := NewWithT(t)
	raw, err := os.ReadFile("../config/policy/tenancy.yaml")
	g.Expect(err).NotTo(HaveOccurred())
	docs := strings.Split(string(raw), "\n---\n")
	var policy admissionv1.ValidatingAdmissionPolicy
	var binding admissionv1.ValidatingAdmissionPolicyBinding
	g.Expect(yaml.Unmarshal([]byte(docs[0]), &policy)).To(Succeed())
	g.Expect(yaml.Unmarshal([]byte(docs[1]), &binding)).To(Succeed())
	binding.Spec.MatchResources = &admissionv1.MatchResources{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"roster.dev/admission-test": "true"}},
	}
	for _, obj := range []client.Object{&policy, &binding} {
		g.Expect(k8s.Create(t.Context(), obj)).To(Succeed())
		t.Cleanup(func() { _ = k8s.Delete(context.Background(), obj) })
	}

	ten := newTenant(t)
	storeName := restrictedStore(t, ten.ns)
	var ns corev1.Namespace
	g.Expect(k8s.Get(t.Context(), client.ObjectKey{Name: ten.ns}, &ns)).To(Succeed())
	ns.Labels["roster.dev/admission-test"] = "true"
	g.Expect(k8s.Update(t.Context(), &ns)).To(Succeed())
	ref := &v1alpha1.StoreReference{Name: storeName}

	user := func(name, email, role string) *v1alpha1.User {
		u := newUser(ten.ns, name, email)
		u.Spec.StoreRef, u.Spec.Role = ref, role
		return u
	}
	// The API server compiles the policy and starts using it shortly after
	// it is created: retry until a refusal shows.
	g.Eventually(func() error {
		return ten.c.Create(t.Context(), user("outside", "someone@corp.example.com", ""), client.DryRunAll)
	}, timeout, tick).Should(MatchError(ContainSubstring("does not allow namespace " + ten.ns + " addresses at corp.example.com")))
	g.Expect(ten.c.Create(t.Context(), user("admin", "admin@"+ten.ns+".example.com", "Admin"))).
		To(MatchError(ContainSubstring("the role Admin (spec.role)")))
	g.Expect(ten.c.Create(t.Context(), user("fine", "fine@"+ten.ns+".example.com", "Member"))).To(Succeed())

	// A namespace the store's rules do not select.
	other := newTenant(t)
	g.Expect(k8s.Get(t.Context(), client.ObjectKey{Name: other.ns}, &ns)).To(Succeed())
	ns.Labels["roster.dev/admission-test"] = "true"
	g.Expect(k8s.Update(t.Context(), &ns)).To(Succeed())
	stray := newUser(other.ns, "stray", "stray@"+ten.ns+".example.com")
	stray.Spec.StoreRef = ref
	g.Eventually(func() error { return other.c.Create(t.Context(), stray, client.DryRunAll) }, timeout, tick).
		Should(MatchError(ContainSubstring("admits no resources from namespace " + other.ns)))
}

// The User queue and the stores are shared by every tenant; what bounds one
// tenant's share is a ResourceQuota on count/users.iam.roster.dev in its
// namespace, which the cluster's admins set and the edit role cannot
// change. An import runs with the operator's rights, yet its rows count
// against the tenant's quota like the tenant's own Users: the rows beyond
// it fail by row number, and the rows within it are kept.
func TestTenantQuotaBoundsImportedUsers(t *testing.T) {
	g := NewWithT(t)
	ten := newTenant(t)
	quota := &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Namespace: ten.ns, Name: "users"},
		Spec:       corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{"count/users.iam.roster.dev": resource.MustParse("3")}},
	}
	g.Expect(k8s.Create(t.Context(), quota)).To(Succeed())
	// kube-controller-manager, which would fill in the quota's status, does
	// not run here; the admission plugin counts from this status onwards.
	quota.Status = corev1.ResourceQuotaStatus{Hard: quota.Spec.Hard, Used: corev1.ResourceList{"count/users.iam.roster.dev": resource.MustParse("0")}}
	g.Expect(k8s.Status().Update(t.Context(), quota)).To(Succeed())

	raise := quota.DeepCopy()
	raise.Spec.Hard["count/users.iam.roster.dev"] = resource.MustParse("1000")
	err := ten.c.Update(t.Context(), raise)
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "the tenant raised its own quota: %v", err)

	var rows strings.Builder
	for i := range 5 {
		fmt.Fprintf(&rows, "add-user,hire%d@%s.example.com,Hire,Number%d\n", i, ten.ns, i)
	}
	imp := newImport(ten.ns, "many", v1alpha1.UserImportSpec{Source: inline(rows.String())})
	got := importAsTenant(t, ten, imp)
	g.Expect(got.Status.Rows.Added).To(BeEquivalentTo(3))
	g.Expect(got.Status.Failures).To(HaveLen(2))
	for _, f := range got.Status.Failures {
		g.Expect(f.Row).To(BeNumerically(">=", 1))
		g.Expect(f.Message).To(ContainSubstring("exceeded quota"))
	}
	g.Expect(usersIn(g, t.Context(), ten.ns)).To(HaveLen(3))

	extra := newUser(ten.ns, "one-more", "one-more@"+ten.ns+".example.com")
	err = ten.c.Create(t.Context(), extra)
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "a fourth User beside the quota: %v", err)
}
