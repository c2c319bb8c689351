package ldapintegration_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	ldapv3 "github.com/go-ldap/ldap/v3"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/controllers"
	"roster.dev/roster/controllers/controllerstest"
	"roster.dev/roster/internal/store"
	"roster.dev/roster/internal/store/ldap"
	"roster.dev/roster/internal/store/ldap/ldaptest"
	"roster.dev/roster/internal/testenv"
)

const (
	timeout = 30 * time.Second
	tick    = 50 * time.Millisecond
)

var (
	k8s   client.Client
	slapd *ldaptest.Server
	st    *ldap.Store
	// cached reads through the manager's cache, with its indexes.
	cached       client.Client
	storeMetrics = store.NewMetrics(prometheus.NewRegistry())
	// invitations sends the invitations over a real SMTP conversation and
	// serves the pages.
	invitations  *controllerstest.Invitations
	driftMetrics *controllers.DriftMetrics
	reconcilers  *controllers.Reconcilers
	// kubeconfig is the control plane's, for the kubectl plugin.
	kubeconfig string
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	ctrl.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	dir, err := os.MkdirTemp("", "roster-slapd-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if slapd, err = ldaptest.StartIn(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if _, missing := ldaptest.Binary(); missing != nil && !ldaptest.Required() {
			fmt.Fprintln(os.Stderr, "skipping the LDAP integration tests")
			return 0
		}
		return 1
	}
	defer slapd.Stop()
	cfg, err := ldap.ParseConfig([]byte(slapd.StoreConfig()))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if st, err = ldap.Open(cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer st.Close()

	env, restCfg, err := testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, env.KubeConfig, 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	scheme := testenv.Scheme()
	if k8s, err = client.New(restCfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	mgr, err := controllerstest.NewManager(restCfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if invitations, err = controllerstest.NewInvitations(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer invitations.Close()
	// As the manager runs them: Users are compared with the directory by
	// the store-wide drift pass (every second here), not one by one.
	cached = mgr.GetClient()
	// The directory is an IdentityStore like any other: its bind password
	// in a Secret of the operator's namespace.
	const operatorNS = controllerstest.OperatorNamespace
	if reconcilers, err = controllers.Setup(mgr, controllers.Deps{
		Namespace:        operatorNS,
		StoreMetrics:     storeMetrics,
		StoreCheckPeriod: time.Second,
		Registry:         prometheus.NewRegistry(),
		DefaultRole:      "Member",
		ResyncPeriod:     time.Second,
		UserConcurrency:  2,
		GroupConcurrency: 2,
		Invitations:      invitations.Config,
		Pages:            invitations.Pages,
	}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	driftMetrics = reconcilers.Drift.Metrics
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
			os.Exit(1)
		}
	}()
	if err := createLDAPStore(ctx, operatorNS); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// createLDAPStore declares the directory as the default IdentityStore,
// named after its kind, with its bind password in a Secret.
func createLDAPStore(ctx context.Context, ns string) error {
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ldap-bind"},
		StringData: map[string]string{"password": slapd.AdminPassword},
	}
	if err := k8s.Create(ctx, secret); err != nil {
		return err
	}
	ids := controllerstest.EmbeddedDefault("ldap")
	ids.Spec.Embedded = nil
	ids.Spec.LDAP = &v1alpha1.LDAPStoreSpec{
		URL: slapd.URL, Insecure: true, BindDN: ldaptest.AdminDN,
		BindPasswordSecretRef: v1alpha1.SecretKeyReference{Name: "ldap-bind", Key: "password"},
		UsersDN:               ldaptest.UsersDN, GroupsDN: ldaptest.GroupsDN,
	}
	return controllerstest.CreateStore(ctx, k8s, ids, time.Minute)
}

func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "ldap-"}}
	if err := k8s.Create(t.Context(), ns); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	return ns.Name
}

func waitForUser(t *testing.T, ns, name string, cond func(g Gomega, u *v1alpha1.User)) *v1alpha1.User {
	t.Helper()
	u := &v1alpha1.User{}
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(k8s.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: name}, u)).To(Succeed())
		cond(g, u)
	}, timeout, tick).Should(Succeed())
	return u
}

func hasPhase(phase v1alpha1.UserPhase) func(Gomega, *v1alpha1.User) {
	return func(g Gomega, u *v1alpha1.User) {
		g.Expect(u.Status.Phase).To(Equal(phase))
		g.Expect(u.Status.ObservedGeneration).To(Equal(u.Generation))
	}
}

func updateUser(t *testing.T, ns, name string, mutate func(*v1alpha1.User)) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		u := &v1alpha1.User{}
		g.Expect(k8s.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: name}, u)).To(Succeed())
		mutate(u)
		g.Expect(k8s.Update(t.Context(), u)).To(Succeed())
	}, timeout, tick).Should(Succeed())
}

// bind logs in as a platform would.
func bind(dn, password string) error {
	conn, err := ldapv3.DialURL(slapd.URL)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Bind(dn, password)
}

// entry reads an entry as the directory holds it.
func entry(t *testing.T, dn string, attrs ...string) *ldapv3.Entry {
	t.Helper()
	res, err := slapd.Dial(t).Search(ldapv3.NewSearchRequest(dn, ldapv3.ScopeBaseObject, 0, 0, 0, false, "(objectClass=*)", attrs, nil))
	if err != nil {
		t.Fatalf("reading %s: %v", dn, err)
	}
	return res.Entries[0]
}

func TestUserLifecycleInLDAP(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	email := "ada@" + ns + ".example.com"
	u := &v1alpha1.User{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ada"},
		Spec:       v1alpha1.UserSpec{Email: email, FirstName: "Ada", LastName: "Lovelace", Role: "Admin", Country: "GB"},
	}
	g.Expect(k8s.Create(t.Context(), u)).To(Succeed())
	got := waitForUser(t, ns, "ada", hasPhase(v1alpha1.UserInvited))
	dn := got.Status.StoreID
	g.Expect(dn).To(Equal("uid=" + email + "," + ldaptest.UsersDN))
	e := entry(t, dn, "mail", "givenName", "sn", "employeeType", "employeeNumber")
	g.Expect(e.GetAttributeValue("mail")).To(Equal(email))
	g.Expect(e.GetAttributeValue("employeeType")).To(Equal("Admin"))
	g.Expect(e.GetAttributeValue("employeeNumber")).To(Equal(string(got.UID)), "the User's UID marks the entry as created by Roster")

	// The invitee sets a password through the emailed link and binds with
	// it; the User shows as Active with the login.
	const password = "Analytical-Engine-1843"
	invitations.Accept(t, email, password, timeout)
	g.Expect(bind(dn, password)).To(Succeed())
	waitForUser(t, ns, "ada", func(g Gomega, u *v1alpha1.User) {
		g.Expect(u.Status.Phase).To(Equal(v1alpha1.UserActive))
		g.Expect(u.Status.LastLoginAt).NotTo(BeNil())
	})

	updateUser(t, ns, "ada", func(u *v1alpha1.User) { u.Spec.Deactivated = ptr.To(true) })
	waitForUser(t, ns, "ada", hasPhase(v1alpha1.UserInactive))
	g.Expect(ldapv3.IsErrorWithCode(bind(dn, password), ldapv3.LDAPResultInvalidCredentials)).To(BeTrue(), "a deactivated user cannot bind")

	updateUser(t, ns, "ada", func(u *v1alpha1.User) { u.Spec.Deactivated = ptr.To(false) })
	waitForUser(t, ns, "ada", hasPhase(v1alpha1.UserActive))
	g.Expect(bind(dn, password)).To(Succeed(), "a reactivated user can bind again")
}

func TestGroupMembersAsMemberDNs(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	var dns []string
	for _, name := range []string{"grace", "linus"} {
		u := &v1alpha1.User{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec:       v1alpha1.UserSpec{Email: name + "@" + ns + ".example.com", FirstName: name, LastName: "X"},
		}
		g.Expect(k8s.Create(t.Context(), u)).To(Succeed())
		dns = append(dns, waitForUser(t, ns, name, hasPhase(v1alpha1.UserInvited)).Status.StoreID)
	}
	grp := &v1alpha1.Group{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "eng"},
		Spec:       v1alpha1.GroupSpec{DisplayName: "Engineering", Members: []string{"grace", "linus"}},
	}
	g.Expect(k8s.Create(t.Context(), grp)).To(Succeed())
	var storeID string
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(t.Context(), client.ObjectKeyFromObject(grp), grp)).To(Succeed())
		g.Expect(meta.IsStatusConditionTrue(grp.Status.Conditions, v1alpha1.ConditionReady)).To(BeTrue())
		g.Expect(grp.Status.Members).To(ConsistOf("grace", "linus"))
		storeID = grp.Status.StoreID
	}, timeout, tick).Should(Succeed())
	g.Expect(entry(t, storeID, "member").GetAttributeValues("member")).To(ConsistOf(append(dns, ldaptest.GroupsDN)))

	// Deleting a User takes its DN out of the group.
	g.Expect(k8s.Delete(t.Context(), &v1alpha1.User{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "linus"}})).To(Succeed())
	g.Eventually(func(g Gomega) {
		_, err := st.GetUser(t.Context(), dns[1])
		g.Expect(errors.Is(err, store.ErrNotFound)).To(BeTrue())
		g.Expect(entry(t, storeID, "member").GetAttributeValues("member")).To(ConsistOf(dns[0], ldaptest.GroupsDN))
	}, timeout, tick).Should(Succeed())
}

// A changed bind password in the store's Secret is used without a restart:
// a wrong one shows on the IdentityStore, and the right one again brings it
// back, and the Users with it.
func TestChangedSecretIsUsedWithoutRestart(t *testing.T) {
	g := NewWithT(t)
	// The helpers also run in the cleanup, after t.Context() has ended.
	ctx := context.Background()
	setPassword := func(pw string) {
		g.Eventually(func(g Gomega) {
			var s corev1.Secret
			g.Expect(k8s.Get(ctx, types.NamespacedName{Namespace: controllerstest.OperatorNamespace, Name: "ldap-bind"}, &s)).To(Succeed())
			s.Data = map[string][]byte{"password": []byte(pw)}
			g.Expect(k8s.Update(ctx, &s)).To(Succeed())
		}, timeout, tick).Should(Succeed())
	}
	storeReady := func(want metav1.ConditionStatus, message string) {
		g.Eventually(func(g Gomega) {
			var ids v1alpha1.IdentityStore
			g.Expect(k8s.Get(ctx, types.NamespacedName{Name: "ldap"}, &ids)).To(Succeed())
			ready := meta.FindStatusCondition(ids.Status.Conditions, v1alpha1.ConditionReady)
			g.Expect(ready).NotTo(BeNil())
			g.Expect(ready.Status).To(Equal(want))
			g.Expect(ready.Message).To(ContainSubstring(message))
		}, timeout, tick).Should(Succeed())
	}
	t.Cleanup(func() { setPassword(slapd.AdminPassword); storeReady(metav1.ConditionTrue, "answers") })

	setPassword("not-the-password")
	storeReady(metav1.ConditionFalse, "Invalid Credentials")

	setPassword(slapd.AdminPassword)
	storeReady(metav1.ConditionTrue, "answers")
	ns := newNamespace(t)
	name := controllerstest.CreateUsers(t, k8s, ns, "rotated", 1)[0]
	waitForUser(t, ns, name, hasPhase(v1alpha1.UserInvited))
}
