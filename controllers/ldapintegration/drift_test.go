package ldapintegration_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	ldapv3 "github.com/go-ldap/ldap/v3"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/controllers"
	"roster.dev/roster/controllers/controllerstest"
	"roster.dev/roster/internal/store"
	"roster.dev/roster/internal/store/ldap"
	"roster.dev/roster/internal/store/ldap/ldaptest"
	"roster.dev/roster/internal/stores"
	"roster.dev/roster/internal/testenv"
)

func createUsers(t *testing.T, ns, prefix string, n int) []string {
	return controllerstest.CreateUsers(t, k8s, ns, prefix, n)
}

func isReady(g Gomega, u *v1alpha1.User) {
	g.Expect(meta.IsStatusConditionTrue(u.Status.Conditions, v1alpha1.ConditionReady)).To(BeTrue(), "Ready")
	g.Expect(u.Status.ObservedGeneration).To(Equal(u.Generation))
}

// entriesWithMail counts the directory's entries holding the address.
func entriesWithMail(t *testing.T, email string) int {
	t.Helper()
	res, err := slapd.Dial(t).Search(ldapv3.NewSearchRequest(ldaptest.UsersDN, ldapv3.ScopeWholeSubtree, 0, 0, 0, false,
		"(mail="+ldapv3.EscapeFilter(email)+")", []string{"dn"}, nil))
	if err != nil {
		t.Fatalf("searching for %s: %v", email, err)
	}
	return len(res.Entries)
}

func eventReasons(g Gomega, ns, name string) []string {
	reasons, err := testenv.EventReasons(context.Background(), k8s, ns, name)
	g.Expect(err).NotTo(HaveOccurred())
	return reasons
}

func storeWrites() float64 {
	var n float64
	for _, op := range store.WriteOperations {
		n += storeMetrics.Calls(ldap.Kind, op)
	}
	return n
}

// waitForDriftPasses waits until n more complete drift passes ran.
func waitForDriftPasses(t *testing.T, n int) {
	t.Helper()
	want := driftMetrics.Passes(ldap.Kind, "complete") + float64(n)
	NewWithT(t).Eventually(func() float64 { return driftMetrics.Passes(ldap.Kind, "complete") }, timeout, tick).
		Should(BeNumerically(">=", want))
}

// Changes made in the directory behind Roster's back are found by the
// store-wide pass and corrected, each with an event; a deleted entry is
// recreated; entries and attributes Roster does not manage are left alone.
func TestDriftInTheDirectoryIsCorrected(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	createUsers(t, ns, "drift", 2)
	drifted := waitForUser(t, ns, "drift-00", hasPhase(v1alpha1.UserInvited))
	gone := waitForUser(t, ns, "drift-01", hasPhase(v1alpha1.UserInvited))

	conn := slapd.Dial(t)
	edit := ldapv3.NewModifyRequest(drifted.Status.StoreID, nil)
	edit.Replace("givenName", []string{"Mallory"})
	edit.Replace("employeeType", []string{"Admin"})
	edit.Replace("title", []string{"set by hand"})
	g.Expect(conn.Modify(edit)).To(Succeed())
	g.Expect(conn.Del(ldapv3.NewDelRequest(gone.Status.StoreID, nil))).To(Succeed())
	stranger := "uid=stranger@" + ns + ".example.com," + ldaptest.UsersDN
	add := ldapv3.NewAddRequest(stranger, nil)
	add.Attribute("objectClass", []string{"inetOrgPerson"})
	add.Attribute("cn", []string{"Stranger"})
	add.Attribute("sn", []string{"Stranger"})
	add.Attribute("mail", []string{"stranger@" + ns + ".example.com"})
	g.Expect(conn.Add(add)).To(Succeed())

	g.Eventually(func(g Gomega) {
		e := entry(t, drifted.Status.StoreID, "givenName", "employeeType", "title")
		g.Expect(e.GetAttributeValue("givenName")).To(Equal("First"))
		g.Expect(e.GetAttributeValue("employeeType")).To(Equal("Member"))
		g.Expect(e.GetAttributeValue("title")).To(Equal("set by hand"), "an attribute Roster does not manage")
		g.Expect(eventReasons(g, ns, "drift-00")).To(ContainElement(controllers.ReasonUpdated))
	}, timeout, tick).Should(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(entriesWithMail(t, "drift-01@"+ns+".example.com")).To(Equal(1))
		created := 0
		for _, r := range eventReasons(g, ns, "drift-01") {
			if r == controllers.ReasonCreated {
				created++
			}
		}
		g.Expect(created).To(BeNumerically(">=", 2), "a Created event when first provisioned and one when provisioned again")
	}, timeout, tick).Should(Succeed())
	waitForUser(t, ns, "drift-01", hasPhase(v1alpha1.UserInvited))

	waitForDriftPasses(t, 2)
	e := entry(t, stranger, "givenName", "employeeType", "sn")
	g.Expect(e.GetAttributeValue("sn")).To(Equal("Stranger"), "an entry no User holds is left alone")
	g.Expect(e.GetAttributeValue("employeeType")).To(BeEmpty())
}

// A drift pass that finds nothing writes nothing, to the directory or to
// the API server.
func TestDriftPassWithoutDifferencesWritesNothing(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	names := createUsers(t, ns, "calm", 3)
	for _, name := range names {
		waitForUser(t, ns, name, hasPhase(v1alpha1.UserInvited))
	}
	waitForDriftPasses(t, 1)
	versions := func() map[string]string {
		var list v1alpha1.UserList
		g.Expect(k8s.List(t.Context(), &list, client.InNamespace(ns))).To(Succeed())
		out := map[string]string{}
		for _, u := range list.Items {
			out[u.Name] = u.ResourceVersion
		}
		return out
	}
	before, writes := versions(), storeWrites()
	waitForDriftPasses(t, 3)
	g.Expect(storeWrites()).To(Equal(writes), "store writes during drift passes that found nothing")
	g.Expect(versions()).To(Equal(before), "API writes during drift passes that found nothing")
}

// listing wraps a store so that a test decides what ListUsers delivers.
type listing struct {
	store.Store
	pages int // fail after this many pages (0: never)
	hide  func(store.User) bool
}

var errListingBroke = errors.New("the listing broke off")

func (l listing) ListUsers(ctx context.Context, page func([]store.User) error) error {
	n := 0
	return l.Store.ListUsers(ctx, func(users []store.User) error {
		if l.pages > 0 && n == l.pages {
			return errListingBroke
		}
		n++
		if l.hide != nil {
			users = slices.DeleteFunc(slices.Clone(users), l.hide)
		}
		return page(users)
	})
}

// woken runs a drift pass and returns what it found and the Users it woke.
func woken(t *testing.T, d *controllers.UserDrift, s store.Store) (controllers.DriftReport, []string, error) {
	t.Helper()
	var (
		mu    sync.Mutex
		names []string
		done  = make(chan struct{})
	)
	go func() {
		defer close(done)
		for ev := range d.Events() {
			mu.Lock()
			names = append(names, ev.Object.GetName())
			mu.Unlock()
		}
	}()
	rep, err := d.Pass(t.Context(), &stores.Handle{Name: "ldap", Store: s})
	close(d.Events())
	<-done
	return rep, names, err
}

// A user missing from a complete listing is woken; a listing that breaks off
// wakes none of the users it did not reach.
func TestDriftNeverActsOnAPartialListing(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	names := createUsers(t, ns, "paged", 5)
	for _, name := range names {
		waitForUser(t, ns, name, hasPhase(v1alpha1.UserInvited))
	}
	cfg, err := ldap.ParseConfig([]byte(slapd.StoreConfig("pageSize: 2")))
	g.Expect(err).NotTo(HaveOccurred())
	paged, err := ldap.Open(cfg)
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = paged.Close() })
	hidden := func(u store.User) bool { return u.Email == "paged-03@"+ns+".example.com" }
	drift := func() *controllers.UserDrift {
		return &controllers.UserDrift{Client: cached, Emails: reconcilers.Drift.Emails, Stores: reconcilers.Stores, DefaultRole: "Member", Log: ctrl.Log.WithName("drift-test")}
	}

	rep, woke, err := woken(t, drift(), listing{Store: paged, hide: hidden})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(rep.Complete).To(BeTrue())
	g.Expect(woke).To(ContainElement("paged-03"), "a user missing from a complete listing is looked up")

	rep, woke, err = woken(t, drift(), listing{Store: paged, hide: hidden, pages: 1})
	g.Expect(err).To(MatchError(errListingBroke))
	g.Expect(rep.Complete).To(BeFalse())
	g.Expect(rep.Read).To(Equal(2))
	g.Expect(rep.Missing).To(BeZero())
	g.Expect(woke).NotTo(ContainElement("paged-03"), "nothing is taken for gone after a partial listing")
}

// The directory stops while Users are being provisioned and changed, and
// comes back: every User ends Ready, every change is applied and no entry
// is duplicated.
func TestDirectoryOutageMidSync(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	first := createUsers(t, ns, "early", 5)
	for _, name := range first {
		waitForUser(t, ns, name, hasPhase(v1alpha1.UserInvited))
	}

	slapd.Stop()
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			_ = slapd.Restart()
		}
	})
	late := createUsers(t, ns, "late", 5)
	updateUser(t, ns, "early-00", func(u *v1alpha1.User) { u.Spec.FirstName = "Renamed" })
	waitForUser(t, ns, "late-00", func(g Gomega, u *v1alpha1.User) {
		ready := meta.FindStatusCondition(u.Status.Conditions, v1alpha1.ConditionReady)
		g.Expect(ready).NotTo(BeNil())
		g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(ready.Reason).To(Equal(controllers.ReasonStoreUnavailable))
	})
	g.Expect(slapd.Restart()).To(Succeed())
	restarted = true

	for _, name := range append(first, late...) {
		u := waitForUser(t, ns, name, func(g Gomega, u *v1alpha1.User) {
			isReady(g, u)
			g.Expect(u.Status.Phase).To(Equal(v1alpha1.UserInvited))
		})
		g.Expect(entriesWithMail(t, u.Spec.Email)).To(Equal(1), "entries for %s", u.Spec.Email)
	}
	early := waitForUser(t, ns, "early-00", isReady)
	g.Expect(entry(t, early.Status.StoreID, "givenName").GetAttributeValue("givenName")).To(Equal("Renamed"))
}
