package storeintegration_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	"roster.dev/roster/internal/store/scim"
	"roster.dev/roster/internal/store/scim/scimtest"
	"roster.dev/roster/internal/testenv"
)

const (
	timeout = 30 * time.Second
	tick    = 50 * time.Millisecond
)

// scimSuite is a control plane and a manager running the User and Group
// reconcilers, with the store-wide drift pass, against the SCIMMY peer.
type scimSuite struct {
	k8s     client.Client
	peer    *scimtest.Server
	st      *scim.Store
	metrics *store.Metrics
	// invitations receives the emails and serves the invitation pages.
	invitations *controllerstest.Invitations
}

// TestSCIMStore runs the reconcilers against the SCIMMY peer.
func TestSCIMStore(t *testing.T) {
	g := NewWithT(t)
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(true)))
	s := &scimSuite{peer: scimtest.Start(t, scimtest.Options{ThrottleOnSignal: 12}), metrics: store.NewMetrics(prometheus.NewRegistry())}
	var err error
	s.st, err = scim.New(t.Context(), scim.Config{URL: s.peer.URL, Insecure: true, TokenFile: scimtest.TokenFile(t)}, scim.Options{})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = s.st.Close() })

	env, cfg, err := testenv.Start()
	if err != nil {
		t.Fatalf("starting the control plane: %v", err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	scheme := testenv.Scheme()
	s.k8s, err = client.New(cfg, client.Options{Scheme: scheme})
	g.Expect(err).NotTo(HaveOccurred())

	mgr, err := controllerstest.NewManager(cfg)
	g.Expect(err).NotTo(HaveOccurred())
	s.invitations, err = controllerstest.NewInvitations()
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(s.invitations.Close)
	// The service is an IdentityStore like any other: its token in a
	// Secret of the operator's namespace.
	const operatorNS = controllerstest.OperatorNamespace
	_, err = controllers.Setup(mgr, controllers.Deps{
		Namespace:        operatorNS,
		StoreMetrics:     s.metrics,
		StoreCheckPeriod: time.Second,
		Registry:         prometheus.NewRegistry(),
		DefaultRole:      "Member",
		ResyncPeriod:     time.Second,
		UserConcurrency:  2,
		GroupConcurrency: 1,
		MaxStatusMembers: 100,
		Invitations:      s.invitations.Config,
		Pages:            s.invitations.Pages,
	})
	g.Expect(err).NotTo(HaveOccurred())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})

	g.Expect(s.k8s.Create(t.Context(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: operatorNS, Name: "scim-token"},
		StringData: map[string]string{"token": scimtest.Token},
	})).To(Succeed())
	ids := controllerstest.EmbeddedDefault("scim")
	ids.Spec.Embedded = nil
	ids.Spec.SCIM = &v1alpha1.SCIMStoreSpec{
		URL: s.peer.URL, Insecure: true, TokenSecretRef: v1alpha1.SecretKeyReference{Name: "scim-token", Key: "token"},
	}
	g.Expect(controllerstest.CreateStore(t.Context(), s.k8s, ids, time.Minute)).To(Succeed())

	t.Run("Lifecycle", s.testLifecycle)
	t.Run("OutageAndThrottlingMidSync", s.testOutageAndThrottlingMidSync)
	t.Run("DriftIsCorrected", s.testDriftIsCorrected)
	t.Run("BesideLDAP", s.testBesideLDAP)
	t.Run("LockNotEnforced", s.testLockNotEnforced)
	t.Run("CoreSchemasOnly", s.testCoreSchemasOnly)
}

func (s *scimSuite) namespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "scim-"}}
	if err := s.k8s.Create(t.Context(), ns); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	return ns.Name
}

// testLifecycle provisions a User into the peer, has the invitee set a
// password through the emailed link (written to the peer, which then marks
// the user activated), makes it a member of a Group there, deactivates it
// (active: false there) and deletes it.
func (s *scimSuite) testLifecycle(t *testing.T) {
	g := NewWithT(t)
	k8s, st := s.k8s, s.st
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: s.namespace(t)}}
	user := &v1alpha1.User{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "ada"},
		Spec: v1alpha1.UserSpec{Email: "ada@" + ns.Name + ".example.com", FirstName: "Ada", LastName: "Lovelace",
			Country: "GB", Attributes: map[string]string{"team": "engines"}},
	}
	g.Expect(k8s.Create(t.Context(), user)).To(Succeed())

	get := func(g Gomega) *v1alpha1.User {
		var u v1alpha1.User
		g.Expect(k8s.Get(t.Context(), client.ObjectKeyFromObject(user), &u)).To(Succeed())
		return &u
	}
	var storeID string
	g.Eventually(func(g Gomega) {
		u := get(g)
		g.Expect(u.Status.Phase).To(Equal(v1alpha1.UserInvited), "conditions: %+v", u.Status.Conditions)
		storeID = u.Status.StoreID
	}, timeout, tick).Should(Succeed())
	su, err := st.GetUser(t.Context(), storeID)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(su.Email).To(Equal(user.Spec.Email))
	g.Expect(su.ExternalID).To(Equal(string(get(g).UID)))
	g.Expect([]string{su.FirstName, su.LastName, su.Country, su.Role}).To(Equal([]string{"Ada", "Lovelace", "GB", "Member"}))
	g.Expect(su.Attributes).To(HaveKeyWithValue("team", "engines"))
	g.Expect(su.Disabled).To(BeFalse())
	g.Expect(su.Activated).To(BeFalse())

	s.invitations.Accept(t, user.Spec.Email, "Analytical-Engine-1843", timeout)
	g.Eventually(func(g Gomega) {
		g.Expect(get(g).Status.Phase).To(Equal(v1alpha1.UserActive))
	}, timeout, tick).Should(Succeed())
	su, err = st.GetUser(t.Context(), storeID)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(su.Activated).To(BeTrue(), "the peer holds the user as activated")

	grp := &v1alpha1.Group{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "eng"},
		Spec:       v1alpha1.GroupSpec{DisplayName: "Engineering", Members: []string{"ada"}},
	}
	g.Expect(k8s.Create(t.Context(), grp)).To(Succeed())
	g.Eventually(func(g Gomega) {
		var got v1alpha1.Group
		g.Expect(k8s.Get(t.Context(), client.ObjectKeyFromObject(grp), &got)).To(Succeed())
		g.Expect(got.Status.StoreID).NotTo(BeEmpty(), "conditions: %+v", got.Status.Conditions)
		sg, err := st.GetGroup(t.Context(), got.Status.StoreID)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(sg.DisplayName).To(Equal("Engineering"))
		members, err := st.ListGroupMembers(t.Context(), got.Status.StoreID)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(members).To(Equal([]string{storeID}))
	}, timeout, tick).Should(Succeed())

	g.Eventually(func(g Gomega) {
		u := get(g)
		u.Spec.Deactivated = ptr.To(true)
		g.Expect(k8s.Update(t.Context(), u)).To(Succeed())
	}, timeout, tick).Should(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(get(g).Status.Phase).To(Equal(v1alpha1.UserInactive))
	}, timeout, tick).Should(Succeed())
	su, err = st.GetUser(t.Context(), storeID)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(su.Disabled).To(BeTrue(), "the SCIM user is still active")

	g.Expect(k8s.Delete(t.Context(), user)).To(Succeed())
	g.Eventually(func(g Gomega) {
		_, err := st.GetUser(t.Context(), storeID)
		g.Expect(errors.Is(err, store.ErrNotFound)).To(BeTrue(), "GetUser after delete: %v", err)
	}, timeout, tick).Should(Succeed())
}

// testBesideLDAP serves two stores from one manager: a directory for one
// namespace, the SCIM service for another, each User into its own store.
func (s *scimSuite) testBesideLDAP(t *testing.T) {
	g := NewWithT(t)
	slapd := ldaptest.Start(t)
	ldapNS, scimNS := s.namespace(t), s.namespace(t)
	s.declareLDAP(t, "directory", slapd, ldapNS)

	inLDAP := &v1alpha1.User{
		ObjectMeta: metav1.ObjectMeta{Namespace: ldapNS, Name: "lin"},
		Spec: v1alpha1.UserSpec{Email: "lin@" + ldapNS + ".example.com", FirstName: "Lin", LastName: "Directory",
			StoreRef: &v1alpha1.StoreReference{Name: "directory"}},
	}
	inSCIM := &v1alpha1.User{
		ObjectMeta: metav1.ObjectMeta{Namespace: scimNS, Name: "sam"},
		Spec:       v1alpha1.UserSpec{Email: "sam@" + scimNS + ".example.com", FirstName: "Sam", LastName: "Service"},
	}
	for _, u := range []*v1alpha1.User{inLDAP, inSCIM} {
		g.Expect(s.k8s.Create(t.Context(), u)).To(Succeed())
	}
	for _, u := range []*v1alpha1.User{inLDAP, inSCIM} {
		g.Eventually(func(g Gomega) {
			var got v1alpha1.User
			g.Expect(s.k8s.Get(t.Context(), client.ObjectKeyFromObject(u), &got)).To(Succeed())
			g.Expect(got.Status.Phase).To(Equal(v1alpha1.UserInvited))
		}, timeout, tick).Should(Succeed())
	}

	cfg, err := ldap.ParseConfig([]byte(slapd.StoreConfig()))
	g.Expect(err).NotTo(HaveOccurred())
	dir, err := ldap.Open(cfg)
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = dir.Close() })
	_, err = dir.FindUserByEmail(t.Context(), inLDAP.Spec.Email)
	g.Expect(err).NotTo(HaveOccurred(), "the directory holds the directory's User")
	_, err = dir.FindUserByEmail(t.Context(), inSCIM.Spec.Email)
	g.Expect(errors.Is(err, store.ErrNotFound)).To(BeTrue(), "and not the service's")
	_, err = s.st.FindUserByEmail(t.Context(), inSCIM.Spec.Email)
	g.Expect(err).NotTo(HaveOccurred(), "the service holds the service's User")
	_, err = s.st.FindUserByEmail(t.Context(), inLDAP.Spec.Email)
	g.Expect(errors.Is(err, store.ErrNotFound)).To(BeTrue(), "and not the directory's")

	g.Expect(s.k8s.Delete(t.Context(), inLDAP)).To(Succeed())
	g.Eventually(func() error {
		_, err := dir.FindUserByEmail(t.Context(), inLDAP.Spec.Email)
		return err
	}, timeout, tick).Should(MatchError(store.ErrNotFound))
}

// testLockNotEnforced declares a directory whose lock is stored but not
// enforced (no password policy): the IdentityStore finds it out by trying,
// and a deactivated User says it can still log in.
func (s *scimSuite) testLockNotEnforced(t *testing.T) {
	g := NewWithT(t)
	slapd := ldaptest.StartWithoutPolicy(t)
	ns := s.namespace(t)
	lax := s.declareLDAP(t, "lax", slapd, ns)
	var got v1alpha1.IdentityStore
	g.Expect(s.k8s.Get(t.Context(), client.ObjectKeyFromObject(lax), &got)).To(Succeed())
	g.Expect(got.Status.Capabilities).NotTo(BeNil())
	g.Expect(got.Status.Capabilities.Deactivation).To(BeFalse())
	g.Expect(meta.IsStatusConditionFalse(got.Status.Conditions, v1alpha1.ConditionDeactivationEnforced)).To(BeTrue())

	u := &v1alpha1.User{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "locked"},
		Spec: v1alpha1.UserSpec{Email: "locked@" + ns + ".example.com", FirstName: "Still", LastName: "Able",
			StoreRef: &v1alpha1.StoreReference{Name: "lax"}, Deactivated: ptr.To(true)},
	}
	g.Expect(s.k8s.Create(t.Context(), u)).To(Succeed())
	g.Eventually(func(g Gomega) {
		var cur v1alpha1.User
		g.Expect(s.k8s.Get(t.Context(), client.ObjectKeyFromObject(u), &cur)).To(Succeed())
		g.Expect(cur.Status.Phase).To(Equal(v1alpha1.UserInactive))
		c := meta.FindStatusCondition(cur.Status.Conditions, v1alpha1.ConditionDeactivationEnforced)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(c.Message).To(ContainSubstring("can still log in"))
	}, timeout, tick).Should(Succeed())
}

// declareLDAP declares the slapd as an IdentityStore named name, its bind
// password in a Secret, admitting the namespace, and waits until it is
// Ready.
func (s *scimSuite) declareLDAP(t *testing.T, name string, slapd *ldaptest.Server, ns string) *v1alpha1.IdentityStore {
	t.Helper()
	g := NewWithT(t)
	g.Expect(s.k8s.Create(t.Context(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: controllerstest.OperatorNamespace, Name: name + "-bind"},
		StringData: map[string]string{"password": slapd.AdminPassword},
	})).To(Succeed())
	ids := &v1alpha1.IdentityStore{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.IdentityStoreSpec{
			LDAP: &v1alpha1.LDAPStoreSpec{
				URL: slapd.URL, Insecure: true, BindDN: ldaptest.AdminDN, UsersDN: ldaptest.UsersDN, GroupsDN: ldaptest.GroupsDN,
				BindPasswordSecretRef: v1alpha1.SecretKeyReference{Name: name + "-bind", Key: "password"},
			},
			Tenants: []v1alpha1.TenantRule{{Namespaces: []string{ns}, EmailDomains: []string{"*"}, Roles: []string{"*"}}},
		},
	}
	g.Expect(controllerstest.CreateStore(t.Context(), s.k8s, ids, timeout)).To(Succeed())
	return ids
}

// testCoreSchemasOnly declares a second service that knows only RFC 7643's
// schemas: a Group there holds its members, people in the service read its
// display name, and it is Ready; adding a member later is one more PATCH
// the service accepts.
func (s *scimSuite) testCoreSchemasOnly(t *testing.T) {
	g := NewWithT(t)
	peer := scimtest.Start(t, scimtest.Options{CoreSchemas: true})
	ns := s.namespace(t)
	ids := &v1alpha1.IdentityStore{
		ObjectMeta: metav1.ObjectMeta{Name: "core-scim"},
		Spec: v1alpha1.IdentityStoreSpec{
			SCIM:    &v1alpha1.SCIMStoreSpec{URL: peer.URL, Insecure: true, TokenSecretRef: v1alpha1.SecretKeyReference{Name: "scim-token", Key: "token"}},
			Tenants: []v1alpha1.TenantRule{{Namespaces: []string{ns}, EmailDomains: []string{"*"}, Roles: []string{"*"}}},
		},
	}
	g.Expect(controllerstest.CreateStore(t.Context(), s.k8s, ids, timeout)).To(Succeed())
	st, err := scim.New(t.Context(), scim.Config{URL: peer.URL, Insecure: true, TokenFile: scimtest.TokenFile(t)}, scim.Options{})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = st.Close() })

	ref := &v1alpha1.StoreReference{Name: ids.Name}
	var users []*v1alpha1.User
	for _, name := range []string{"ken", "dennis"} {
		u := &v1alpha1.User{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec:       v1alpha1.UserSpec{Email: name + "@" + ns + ".example.com", FirstName: name, LastName: "Bell", StoreRef: ref},
		}
		g.Expect(s.k8s.Create(t.Context(), u)).To(Succeed())
		users = append(users, u)
	}
	storeIDs := map[string]string{}
	for _, u := range users {
		g.Eventually(func(g Gomega) {
			var got v1alpha1.User
			g.Expect(s.k8s.Get(t.Context(), client.ObjectKeyFromObject(u), &got)).To(Succeed())
			g.Expect(got.Status.Phase).To(Equal(v1alpha1.UserInvited), "conditions: %+v", got.Status.Conditions)
			storeIDs[u.Name] = got.Status.StoreID
		}, timeout, tick).Should(Succeed())
	}

	grp := &v1alpha1.Group{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "unix"},
		Spec:       v1alpha1.GroupSpec{DisplayName: "Unix", Members: []string{"ken"}, StoreRef: ref},
	}
	g.Expect(s.k8s.Create(t.Context(), grp)).To(Succeed())
	ready := func(want ...string) {
		g.Eventually(func(g Gomega) {
			var got v1alpha1.Group
			g.Expect(s.k8s.Get(t.Context(), client.ObjectKeyFromObject(grp), &got)).To(Succeed())
			g.Expect(meta.IsStatusConditionTrue(got.Status.Conditions, v1alpha1.ConditionReady)).To(BeTrue(), "conditions: %+v", got.Status.Conditions)
			g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
			sg, err := st.GetGroup(t.Context(), got.Status.StoreID)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(sg.DisplayName).To(Equal("Unix"), "people in the service read the display name")
			g.Expect(sg.Name).To(Equal(ns+"/unix"), "Roster knows the group by its externalId")
			members, err := st.ListGroupMembers(t.Context(), got.Status.StoreID)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(members).To(ConsistOf(want))
		}, timeout, tick).Should(Succeed())
	}
	ready(storeIDs["ken"])

	g.Eventually(func(g Gomega) {
		var got v1alpha1.Group
		g.Expect(s.k8s.Get(t.Context(), client.ObjectKeyFromObject(grp), &got)).To(Succeed())
		got.Spec.Members = append(got.Spec.Members, "dennis")
		g.Expect(s.k8s.Update(t.Context(), &got)).To(Succeed())
	}, timeout, tick).Should(Succeed())
	ready(storeIDs["ken"], storeIDs["dennis"])
}
