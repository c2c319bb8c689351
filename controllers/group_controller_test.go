package controllers_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/controllers"
	"roster.dev/roster/internal/store"
)

// The counting tests come first in this file, so that they measure while
// the objects of other tests are few and settled.

func newGroup(ns, name string, spec v1alpha1.GroupSpec) *v1alpha1.Group {
	return &v1alpha1.Group{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
}

func getGroup(g Gomega, ctx context.Context, ns, name string) *v1alpha1.Group {
	grp := &v1alpha1.Group{}
	g.Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, grp)).To(Succeed())
	return grp
}

// waitForGroup polls the Group until cond holds and returns it.
func waitForGroup(t *testing.T, ns, name string, cond func(g Gomega, grp *v1alpha1.Group)) *v1alpha1.Group {
	t.Helper()
	return waitForGroupWithin(t, timeout, ns, name, cond)
}

func waitForGroupWithin(t *testing.T, deadline time.Duration, ns, name string, cond func(g Gomega, grp *v1alpha1.Group)) *v1alpha1.Group {
	t.Helper()
	var got *v1alpha1.Group
	NewWithT(t).Eventually(func(g Gomega) {
		got = getGroup(g, t.Context(), ns, name)
		cond(g, got)
	}, deadline, tick).Should(Succeed())
	return got
}

func updateGroup(t *testing.T, ns, name string, mutate func(grp *v1alpha1.Group)) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		grp := getGroup(g, t.Context(), ns, name)
		mutate(grp)
		g.Expect(k8s.Update(t.Context(), grp)).To(Succeed())
	}, timeout, tick).Should(Succeed())
}

// hasMembers holds when the Group is Ready at its generation with exactly
// these members.
func hasMembers(names ...string) func(Gomega, *v1alpha1.Group) {
	return func(g Gomega, grp *v1alpha1.Group) {
		g.Expect(grp.Status.ObservedGeneration).To(Equal(grp.Generation))
		g.Expect(meta.IsStatusConditionTrue(grp.Status.Conditions, v1alpha1.ConditionReady)).To(BeTrue(), "Ready")
		g.Expect(grp.Status.Members).To(Equal(nilIfEmpty(names)))
		g.Expect(grp.Status.MemberCount).To(BeEquivalentTo(len(names)))
	}
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

// storeMembers returns the store IDs of the store group's members.
func storeMembers(g Gomega, ctx context.Context, grp *v1alpha1.Group) []string {
	g.Expect(grp.Status.StoreID).NotTo(BeEmpty())
	ids, err := backend.ListGroupMembers(ctx, grp.Status.StoreID)
	g.Expect(err).NotTo(HaveOccurred())
	return ids
}

// storeIDs returns the sorted store IDs of the named Users.
func storeIDs(g Gomega, ctx context.Context, ns string, names ...string) []string {
	ids := []string{}
	for _, name := range names {
		u := get(g, ctx, ns, name)
		g.Expect(u.Status.StoreID).NotTo(BeEmpty(), "User %s has no store ID", name)
		ids = append(ids, u.Status.StoreID)
	}
	slices.Sort(ids)
	return ids
}

// inStore holds when the store group's members are exactly the named Users.
func inStore(t *testing.T, ns, group string, users ...string) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		grp := getGroup(g, t.Context(), ns, group)
		g.Expect(storeMembers(g, t.Context(), grp)).To(Equal(storeIDs(g, t.Context(), ns, users...)))
	}, timeout, tick).Should(Succeed())
}

// userGroups holds when the User's status.groups is exactly groups.
func userGroups(groups ...string) func(Gomega, *v1alpha1.User) {
	return func(g Gomega, u *v1alpha1.User) {
		g.Expect(u.Status.Groups).To(Equal(nilIfEmpty(groups)))
	}
}

func labelled(u *v1alpha1.User, labels map[string]string) *v1alpha1.User {
	u.Labels = labels
	return u
}

func storeCalls(op string) float64 { return storeMetrics.Calls("embedded", op) }

// largeGroupSize is the size of the large group test: ROSTER_LARGE_GROUP, or
// 1,000 to keep the suite quick on small machines.
func largeGroupSize(t *testing.T) int {
	if v := os.Getenv("ROSTER_LARGE_GROUP"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("ROSTER_LARGE_GROUP=%q is not a positive number", v)
		}
		return n
	}
	return 1000
}

// A large group is built with one store call, a resync that finds nothing
// to change writes nothing to the store, and one more member costs one
// membership diff, not a call per member.
func TestLargeGroupStoreCalls(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	n := largeGroupSize(t)
	selector := &metav1.LabelSelector{MatchLabels: map[string]string{"org": "all"}}

	// Deadlines grow with the group: every User is provisioned first.
	deadline := time.Duration(max(10, n/100)) * timeout
	createUsers(t, ns, n, map[string]string{"org": "all"})
	g.Eventually(func(g Gomega) {
		var list v1alpha1.UserList
		g.Expect(k8s.List(t.Context(), &list, client.InNamespace(ns))).To(Succeed())
		inStore := 0
		for _, u := range list.Items {
			if u.Status.StoreID != "" {
				inStore++
			}
		}
		g.Expect(inStore).To(Equal(n))
	}, deadline, tick).Should(Succeed())
	t.Cleanup(func() { deleteAll(t, ns, deadline) })

	createsBefore, diffsBefore := storeCalls(store.OpCreateGroup), storeCalls(store.OpUpdateGroupMembers)
	g.Expect(k8s.Create(t.Context(), newGroup(ns, "everyone", v1alpha1.GroupSpec{MemberSelector: selector}))).To(Succeed())
	grp := waitForGroupWithin(t, deadline, ns, "everyone", func(g Gomega, grp *v1alpha1.Group) {
		g.Expect(grp.Status.MemberCount).To(BeEquivalentTo(n))
		g.Expect(meta.IsStatusConditionTrue(grp.Status.Conditions, v1alpha1.ConditionReady)).To(BeTrue())
	})
	g.Expect(storeMembers(g, t.Context(), grp)).To(HaveLen(n))
	t.Logf("building a group of %d: %v CreateGroup, %v UpdateGroupMembers", n,
		storeCalls(store.OpCreateGroup)-createsBefore, storeCalls(store.OpUpdateGroupMembers)-diffsBefore)
	g.Expect(storeCalls(store.OpCreateGroup)-createsBefore).To(BeEquivalentTo(1), "one CreateGroup with every member")

	// The status stays small: the suite caps the list low.
	if n > statusMembersLimit {
		g.Expect(grp.Status.Members).To(HaveLen(statusMembersLimit))
		truncated := meta.FindStatusCondition(grp.Status.Conditions, v1alpha1.ConditionMembersTruncated)
		g.Expect(truncated).NotTo(BeNil())
		g.Expect(truncated.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(truncated.Message).To(ContainSubstring(fmt.Sprint(n)))
	}

	// A no-op resync: passes run, nothing is written to the store.
	settled := groupPasses.get(ns) + 2
	g.Eventually(func() int { return groupPasses.get(ns) }, deadline, tick).Should(BeNumerically(">=", settled))
	writesBefore, passesBefore := storeWrites(), groupPasses.get(ns)
	readsBefore := storeCalls(store.OpGetGroup) + storeCalls(store.OpListGroupMembers)
	g.Eventually(func() int { return groupPasses.get(ns) }, deadline, tick).Should(BeNumerically(">=", passesBefore+3),
		"the periodic resync should run")
	passes := groupPasses.get(ns) - passesBefore
	t.Logf("no-op resync: %d passes of the group of %d, %v store writes, %v group reads (all groups of the suite)",
		passes, n, storeWrites()-writesBefore, storeCalls(store.OpGetGroup)+storeCalls(store.OpListGroupMembers)-readsBefore)
	g.Expect(storeWrites()).To(Equal(writesBefore), "store writes during a no-op resync")

	// One more member: one membership diff.
	diffsBefore, writesBefore = storeCalls(store.OpUpdateGroupMembers), storeWrites()
	g.Expect(k8s.Create(t.Context(), labelled(newUser(ns, "newcomer", "newcomer@"+ns+".example.com"), map[string]string{"org": "all"}))).To(Succeed())
	waitForGroupWithin(t, deadline, ns, "everyone", func(g Gomega, grp *v1alpha1.Group) {
		g.Expect(grp.Status.MemberCount).To(BeEquivalentTo(n + 1))
		g.Expect(meta.IsStatusConditionTrue(grp.Status.Conditions, v1alpha1.ConditionReady)).To(BeTrue())
	})
	g.Eventually(func(g Gomega) {
		g.Expect(storeMembers(g, t.Context(), getGroup(g, t.Context(), ns, "everyone"))).To(HaveLen(n + 1))
	}, deadline, tick).Should(Succeed())
	// Let a few more passes run: they must not add calls.
	passesBefore = groupPasses.get(ns)
	g.Eventually(func() int { return groupPasses.get(ns) }, deadline, tick).Should(BeNumerically(">=", passesBefore+2))
	t.Logf("adding one member to a group of %d: %v UpdateGroupMembers, %v store writes in all (CreateUser included)",
		n, storeCalls(store.OpUpdateGroupMembers)-diffsBefore, storeWrites()-writesBefore)
	g.Expect(storeCalls(store.OpUpdateGroupMembers)-diffsBefore).To(BeEquivalentTo(1), "membership diffs")
	g.Expect(storeWrites()-writesBefore).To(BeEquivalentTo(2), "store writes: CreateUser and one membership diff")
}

// createUsers creates n labelled Users named u-00000... with a few workers.
func createUsers(t *testing.T, ns string, n int, labels map[string]string) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	next := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				name := fmt.Sprintf("u-%05d", i)
				if err := k8s.Create(t.Context(), labelled(newUser(ns, name, name+"@"+ns+".example.com"), labels)); err != nil {
					errs <- err
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("creating Users: %v", err)
	}
}

// deleteAll deletes the namespace's Groups and Users and waits until they
// are gone, so that later tests see a quiet store.
func deleteAll(t *testing.T, ns string, deadline time.Duration) {
	g := NewWithT(t)
	ctx := context.Background()
	g.Expect(k8s.DeleteAllOf(ctx, &v1alpha1.Group{}, client.InNamespace(ns))).To(Succeed())
	g.Eventually(func() int {
		var list v1alpha1.GroupList
		g.Expect(k8s.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
		return len(list.Items)
	}, deadline, tick).Should(BeZero())
	// The API server may cut a collection delete of thousands short; a
	// retry carries on from where it stopped.
	g.Eventually(func() error {
		return k8s.DeleteAllOf(ctx, &v1alpha1.User{}, client.InNamespace(ns))
	}, deadline, tick).Should(Succeed())
	g.Eventually(func() int {
		var list v1alpha1.UserList
		g.Expect(k8s.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
		return len(list.Items)
	}, deadline, tick).Should(BeZero())
}

// Members come from spec.members, the selector and the Users' spec.groups;
// each User shows its groups; drift in the store is corrected.
func TestGroupMembershipUnion(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	eng := map[string]string{"team": "eng"}
	for _, u := range []*v1alpha1.User{
		labelled(newUser(ns, "ada", "ada@"+ns+".example.com"), eng),
		newUser(ns, "alan", "alan@"+ns+".example.com"),
		newUser(ns, "linus", "linus@"+ns+".example.com"),
	} {
		g.Expect(k8s.Create(t.Context(), u)).To(Succeed())
	}
	grace := newUser(ns, "grace", "grace@"+ns+".example.com")
	grace.Spec.Groups = []string{"eng", "not-yet"}
	g.Expect(k8s.Create(t.Context(), grace)).To(Succeed())

	g.Expect(k8s.Create(t.Context(), newGroup(ns, "eng", v1alpha1.GroupSpec{
		DisplayName: "Engineering", ExternalID: "eng-" + ns, Description: "People who build",
		Members: []string{"alan"}, MemberSelector: &metav1.LabelSelector{MatchLabels: eng},
	}))).To(Succeed())

	grp := waitForGroup(t, ns, "eng", func(g Gomega, grp *v1alpha1.Group) {
		hasMembers("ada", "alan", "grace")(g, grp)
		g.Expect(meta.IsStatusConditionTrue(grp.Status.Conditions, v1alpha1.ConditionMembersResolved)).To(BeTrue())
	})
	g.Expect(grp.Finalizers).To(ContainElement(v1alpha1.Finalizer))
	inStore(t, ns, "eng", "ada", "alan", "grace")
	sg, err := backend.GetGroup(t.Context(), grp.Status.StoreID)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(sg).To(Equal(store.Group{ID: grp.Status.StoreID, Name: ns + "/eng", DisplayName: "Engineering",
		ExternalID: "eng-" + ns, Description: "People who build"}))

	for _, name := range []string{"ada", "alan", "grace"} {
		waitFor(t, ns, name, userGroups("eng"))
	}
	waitFor(t, ns, "linus", userGroups())

	// A Group that grace names appears later: her status picks it up.
	g.Expect(k8s.Create(t.Context(), newGroup(ns, "not-yet", v1alpha1.GroupSpec{}))).To(Succeed())
	waitFor(t, ns, "grace", userGroups("eng", "not-yet"))
	waitForGroup(t, ns, "not-yet", hasMembers("grace"))

	// Someone adds linus to the store group by hand: the resync takes him out.
	linus := waitFor(t, ns, "linus", hasPhase(v1alpha1.UserInvited))
	g.Expect(backend.UpdateGroupMembers(t.Context(), grp.Status.StoreID, store.MemberDiff{Add: []string{linus.Status.StoreID}})).To(Succeed())
	inStore(t, ns, "eng", "ada", "alan", "grace")

	// Display name changes reach the store.
	updateGroup(t, ns, "eng", func(grp *v1alpha1.Group) { grp.Spec.DisplayName = "Engines" })
	g.Eventually(func(g Gomega) {
		sg, err := backend.GetGroup(t.Context(), grp.Status.StoreID)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(sg.DisplayName).To(Equal("Engines"))
	}, timeout, tick).Should(Succeed())
}

// Relabelling a User or editing its spec.groups moves it in and out.
func TestGroupFollowsLabelsAndUserGroups(t *testing.T) {
	ns := newNamespace(t)
	g := NewWithT(t)
	g.Expect(k8s.Create(t.Context(), labelled(newUser(ns, "ada", "ada@"+ns+".example.com"), map[string]string{"team": "eng"}))).To(Succeed())
	g.Expect(k8s.Create(t.Context(), newUser(ns, "grace", "grace@"+ns+".example.com"))).To(Succeed())
	g.Expect(k8s.Create(t.Context(), newGroup(ns, "eng", v1alpha1.GroupSpec{
		MemberSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "eng"}},
	}))).To(Succeed())
	waitForGroup(t, ns, "eng", hasMembers("ada"))
	inStore(t, ns, "eng", "ada")

	update(t, ns, "ada", func(u *v1alpha1.User) { u.Labels = map[string]string{"team": "ops"} })
	waitForGroup(t, ns, "eng", hasMembers())
	inStore(t, ns, "eng")
	waitFor(t, ns, "ada", userGroups())

	update(t, ns, "grace", func(u *v1alpha1.User) { u.Labels = map[string]string{"team": "eng"} })
	update(t, ns, "ada", func(u *v1alpha1.User) { u.Spec.Groups = []string{"eng"} })
	waitForGroup(t, ns, "eng", hasMembers("ada", "grace"))
	inStore(t, ns, "eng", "ada", "grace")
	waitFor(t, ns, "ada", userGroups("eng"))
	waitFor(t, ns, "grace", userGroups("eng"))

	// Changing the selector moves members too, and the Users see it.
	updateGroup(t, ns, "eng", func(grp *v1alpha1.Group) {
		grp.Spec.MemberSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"team": "nobody"}}
	})
	waitForGroup(t, ns, "eng", hasMembers("ada"))
	inStore(t, ns, "eng", "ada")
	waitFor(t, ns, "grace", userGroups())
}

// Deleting a User takes it out of its groups first; a retained store user
// stays in the store but leaves the group.
func TestGroupMemberDeleted(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	kept := newUser(ns, "kept", "kept@"+ns+".example.com")
	kept.Spec.DeletionPolicy = v1alpha1.DeletionPolicyRetain
	for _, u := range []*v1alpha1.User{newUser(ns, "ada", "ada@"+ns+".example.com"), newUser(ns, "gone", "gone@"+ns+".example.com"), kept} {
		g.Expect(k8s.Create(t.Context(), u)).To(Succeed())
	}
	g.Expect(k8s.Create(t.Context(), newGroup(ns, "eng", v1alpha1.GroupSpec{Members: []string{"ada", "gone", "kept"}}))).To(Succeed())
	waitForGroup(t, ns, "eng", hasMembers("ada", "gone", "kept"))
	inStore(t, ns, "eng", "ada", "gone", "kept")
	keptID := get(g, t.Context(), ns, "kept").Status.StoreID

	for _, name := range []string{"gone", "kept"} {
		g.Expect(k8s.Delete(t.Context(), get(g, t.Context(), ns, name))).To(Succeed())
	}
	grp := waitForGroup(t, ns, "eng", func(g Gomega, grp *v1alpha1.Group) {
		g.Expect(grp.Status.Members).To(Equal([]string{"ada"}))
		resolved := meta.FindStatusCondition(grp.Status.Conditions, v1alpha1.ConditionMembersResolved)
		g.Expect(resolved).NotTo(BeNil())
		g.Expect(resolved.Reason).To(Equal(controllers.ReasonMembersMissing))
		g.Expect(resolved.Message).To(And(ContainSubstring("gone"), ContainSubstring("kept")))
	})
	inStore(t, ns, "eng", "ada")
	_, err := backend.GetUser(t.Context(), keptID)
	g.Expect(err).NotTo(HaveOccurred(), "a retained user stays in the store")
	g.Expect(storeMembers(g, t.Context(), grp)).NotTo(ContainElement(keptID))
}

// A Group naming a User that does not exist yet says so and picks the User
// up when it appears; a member that is not in the store yet is added once it
// is.
func TestGroupMissingAndPendingMembers(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	stuck := newUser(ns, "stuck", "stuck@"+ns+".example.com")
	stuck.Spec.TimeZone = "Mars/Olympus_Mons" // Stalled, so never in the store
	g.Expect(k8s.Create(t.Context(), stuck)).To(Succeed())
	g.Expect(k8s.Create(t.Context(), newGroup(ns, "eng", v1alpha1.GroupSpec{Members: []string{"ghost", "stuck"}}))).To(Succeed())

	waitForGroup(t, ns, "eng", func(g Gomega, grp *v1alpha1.Group) {
		g.Expect(meta.IsStatusConditionTrue(grp.Status.Conditions, v1alpha1.ConditionReady)).To(BeTrue())
		g.Expect(grp.Status.Members).To(Equal([]string{"stuck"}))
		resolved := meta.FindStatusCondition(grp.Status.Conditions, v1alpha1.ConditionMembersResolved)
		g.Expect(resolved).NotTo(BeNil())
		g.Expect(resolved.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(resolved.Reason).To(Equal(controllers.ReasonMembersMissing))
		g.Expect(resolved.Message).To(And(ContainSubstring("ghost"), ContainSubstring("stuck")))
	})
	inStore(t, ns, "eng")

	g.Expect(k8s.Create(t.Context(), newUser(ns, "ghost", "ghost@"+ns+".example.com"))).To(Succeed())
	update(t, ns, "stuck", func(u *v1alpha1.User) { u.Spec.TimeZone = "Europe/Berlin" })
	waitForGroup(t, ns, "eng", func(g Gomega, grp *v1alpha1.Group) {
		hasMembers("ghost", "stuck")(g, grp)
		g.Expect(meta.IsStatusConditionTrue(grp.Status.Conditions, v1alpha1.ConditionMembersResolved)).To(BeTrue(),
			"MembersResolved once stuck is in the store")
	})
	inStore(t, ns, "eng", "ghost", "stuck")
}

// Deleting a Group removes its store group and only it; a store group that
// is already gone does not hold the finalizer.
func TestGroupDeleted(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	g.Expect(k8s.Create(t.Context(), newUser(ns, "ada", "ada@"+ns+".example.com"))).To(Succeed())
	for _, name := range []string{"a", "b", "c"} {
		g.Expect(k8s.Create(t.Context(), newGroup(ns, name, v1alpha1.GroupSpec{Members: []string{"ada"}}))).To(Succeed())
	}
	a := waitForGroup(t, ns, "a", hasMembers("ada"))
	b := waitForGroup(t, ns, "b", hasMembers("ada"))
	c := waitForGroup(t, ns, "c", hasMembers("ada"))
	waitFor(t, ns, "ada", userGroups("a", "b", "c"))
	// A store group Roster does not manage, holding ada too.
	ada := get(g, t.Context(), ns, "ada")
	foreign, err := backend.CreateGroup(t.Context(), store.Group{Name: "foreign-" + ns}, []string{ada.Status.StoreID})
	g.Expect(err).NotTo(HaveOccurred())

	g.Expect(k8s.Delete(t.Context(), a)).To(Succeed())
	g.Eventually(func() error { return k8s.Get(t.Context(), client.ObjectKeyFromObject(a), &v1alpha1.Group{}) }, timeout, tick).
		Should(MatchError(ContainSubstring("not found")))
	_, err = backend.GetGroup(t.Context(), a.Status.StoreID)
	g.Expect(errors.Is(err, store.ErrNotFound)).To(BeTrue(), "the store group should be deleted, got %v", err)
	waitFor(t, ns, "ada", userGroups("b", "c"))
	_, err = backend.GetUser(t.Context(), ada.Status.StoreID)
	g.Expect(err).NotTo(HaveOccurred(), "members stay in the store")
	inStore(t, ns, "b", "ada")

	// The store group of c is already gone: the Group goes anyway.
	g.Expect(backend.DeleteGroup(t.Context(), c.Status.StoreID)).To(Succeed())
	g.Expect(k8s.Delete(t.Context(), c)).To(Succeed())
	g.Eventually(func() error { return k8s.Get(t.Context(), client.ObjectKeyFromObject(c), &v1alpha1.Group{}) }, timeout, tick).
		Should(MatchError(ContainSubstring("not found")))

	// Deleting ada removes her from b, and never touches the foreign group
	// until her store user goes.
	g.Expect(k8s.Delete(t.Context(), ada)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(storeMembers(g, t.Context(), getGroup(g, t.Context(), ns, "b"))).To(BeEmpty())
	}, timeout, tick).Should(Succeed())
	waitForGroup(t, ns, "b", func(g Gomega, grp *v1alpha1.Group) { g.Expect(grp.Status.Members).To(BeEmpty()) })
	_, err = backend.GetGroup(t.Context(), foreign.ID)
	g.Expect(err).NotTo(HaveOccurred(), "a store group without a Group is never deleted")
	_, err = backend.GetGroup(t.Context(), b.Status.StoreID)
	g.Expect(err).NotTo(HaveOccurred())
}

func TestGroupStoreOutageAndRecovery(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	g.Expect(k8s.Create(t.Context(), newUser(ns, "ada", "ada@"+ns+".example.com"))).To(Succeed())
	g.Expect(k8s.Create(t.Context(), newGroup(ns, "eng", v1alpha1.GroupSpec{Members: []string{"ada"}}))).To(Succeed())
	waitForGroup(t, ns, "eng", hasMembers("ada"))
	inStore(t, ns, "eng", "ada")

	backend.setDown(true)
	t.Cleanup(func() { backend.setDown(false) })
	g.Expect(k8s.Create(t.Context(), newUser(ns, "grace", "grace@"+ns+".example.com"))).To(Succeed())
	updateGroup(t, ns, "eng", func(grp *v1alpha1.Group) { grp.Spec.Members = []string{"ada", "grace"} })
	waitForGroup(t, ns, "eng", func(g Gomega, grp *v1alpha1.Group) {
		ready := meta.FindStatusCondition(grp.Status.Conditions, v1alpha1.ConditionReady)
		g.Expect(ready).NotTo(BeNil())
		g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(ready.Reason).To(Equal(controllers.ReasonStoreUnavailable))
		g.Expect(meta.IsStatusConditionTrue(grp.Status.Conditions, v1alpha1.ConditionReconciling)).To(BeTrue())
		g.Expect(grp.Status.StoreID).NotTo(BeEmpty(), "the store ID is kept while the store is away")
	})

	backend.setDown(false)
	grp := waitForGroup(t, ns, "eng", hasMembers("ada", "grace"))
	g.Expect(meta.FindStatusCondition(grp.Status.Conditions, v1alpha1.ConditionReconciling)).To(BeNil())
	inStore(t, ns, "eng", "ada", "grace")
}

// Bad input is refused by the API server or reported in a condition naming
// the field, and changes nothing in the store.
func TestGroupBadInput(t *testing.T) {
	ns := newNamespace(t)
	refused := []struct {
		name  string
		spec  v1alpha1.GroupSpec
		field string
	}{
		{"member name", v1alpha1.GroupSpec{Members: []string{"Not A Name"}}, "spec.members[0]"},
		{"selector operator", v1alpha1.GroupSpec{MemberSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "team", Operator: "Near", Values: []string{"eng"}},
		}}}, "spec.memberSelector"},
		{"selector without values", v1alpha1.GroupSpec{MemberSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "team", Operator: metav1.LabelSelectorOpIn},
		}}}, "spec.memberSelector"},
	}
	for i, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			err := k8s.Create(t.Context(), newGroup(ns, fmt.Sprintf("bad-%d", i), tc.spec))
			if err == nil {
				t.Fatalf("Create succeeded, want a validation error naming %s", tc.field)
			}
			t.Logf("refused: %v", err)
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error %q does not name %s", err, tc.field)
			}
		})
	}

	t.Run("selector with an invalid label key", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(k8s.Create(t.Context(), newGroup(ns, "badkey", v1alpha1.GroupSpec{
			MemberSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"not a key!": "x"}},
		}))).To(Succeed())
		waitForGroup(t, ns, "badkey", func(g Gomega, grp *v1alpha1.Group) {
			ready := meta.FindStatusCondition(grp.Status.Conditions, v1alpha1.ConditionReady)
			g.Expect(ready).NotTo(BeNil())
			g.Expect(ready.Reason).To(Equal(controllers.ReasonInvalidSpec))
			g.Expect(ready.Message).To(ContainSubstring("spec.memberSelector"))
			g.Expect(meta.IsStatusConditionTrue(grp.Status.Conditions, v1alpha1.ConditionStalled)).To(BeTrue())
			g.Expect(grp.Status.StoreID).To(BeEmpty())
		})
		_, err := backend.FindGroupByName(t.Context(), ns+"/badkey")
		g.Expect(errors.Is(err, store.ErrNotFound)).To(BeTrue(), "nothing in the store, got %v", err)
	})

	t.Run("duplicate external ID", func(t *testing.T) {
		g := NewWithT(t)
		other := newNamespace(t)
		ext := "shared-" + ns
		g.Expect(k8s.Create(t.Context(), newGroup(ns, "first", v1alpha1.GroupSpec{ExternalID: ext}))).To(Succeed())
		first := waitForGroup(t, ns, "first", hasMembers())
		g.Expect(k8s.Create(t.Context(), newGroup(other, "second", v1alpha1.GroupSpec{ExternalID: ext}))).To(Succeed())
		waitForGroup(t, other, "second", func(g Gomega, grp *v1alpha1.Group) {
			ready := meta.FindStatusCondition(grp.Status.Conditions, v1alpha1.ConditionReady)
			g.Expect(ready).NotTo(BeNil())
			g.Expect(ready.Reason).To(Equal(controllers.ReasonDuplicateExternalID))
			g.Expect(ready.Message).To(And(ContainSubstring("spec.externalID"), ContainSubstring(ns+"/first")))
			g.Expect(meta.IsStatusConditionTrue(grp.Status.Conditions, v1alpha1.ConditionStalled)).To(BeTrue())
		})
		_, err := backend.FindGroupByName(t.Context(), other+"/second")
		g.Expect(errors.Is(err, store.ErrNotFound)).To(BeTrue(), "nothing in the store, got %v", err)

		// A store group without a Group holding the external ID blocks too.
		_, err = backend.CreateGroup(t.Context(), store.Group{Name: "foreign-" + ns, ExternalID: "foreign-" + ns}, nil)
		g.Expect(err).NotTo(HaveOccurred())
		third := newGroup(ns, "third", v1alpha1.GroupSpec{ExternalID: "foreign-" + ns})
		g.Expect(k8s.Create(t.Context(), third)).To(Succeed())
		// The store refuses it at every resync: remove it so that it does
		// not count as store writes in later tests.
		t.Cleanup(func() {
			g.Expect(k8s.Delete(context.Background(), third)).To(Succeed())
			g.Eventually(func() error {
				return k8s.Get(context.Background(), client.ObjectKeyFromObject(third), &v1alpha1.Group{})
			}, timeout, tick).Should(MatchError(ContainSubstring("not found")))
		})
		waitForGroup(t, ns, "third", func(g Gomega, grp *v1alpha1.Group) {
			ready := meta.FindStatusCondition(grp.Status.Conditions, v1alpha1.ConditionReady)
			g.Expect(ready).NotTo(BeNil())
			g.Expect(ready.Reason).To(Equal(controllers.ReasonDuplicateExternalID))
			g.Expect(ready.Message).To(ContainSubstring("spec.externalID"))
		})

		// Once the first Group is deleted, the second is provisioned by itself.
		g.Expect(k8s.Delete(t.Context(), first)).To(Succeed())
		second := waitForGroup(t, other, "second", hasMembers())
		sg, err := backend.GetGroup(t.Context(), second.Status.StoreID)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(sg.ExternalID).To(Equal(ext))
	})
}
