package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"roster.dev/roster/internal/store"
)

// groupName returns a group name unique to the running test.
func groupName(t *testing.T, local string) string {
	return strings.ReplaceAll(t.Name(), "/", ".") + "/" + local
}

// users creates n users for the running test and returns their IDs, sorted.
func users(t *testing.T, s store.Store, prefix string, n int) []string {
	t.Helper()
	ids := make([]string, 0, n)
	for i := range n {
		u, err := s.CreateUser(context.Background(), store.User{Email: email(t, fmt.Sprintf("%s%d", prefix, i)), FirstName: "M", LastName: fmt.Sprint(i)})
		if err != nil {
			t.Fatalf("CreateUser: %v", err)
		}
		ids = append(ids, u.ID)
	}
	slices.Sort(ids)
	return ids
}

func members(t *testing.T, s store.Store, groupID string) []string {
	t.Helper()
	got, err := s.ListGroupMembers(context.Background(), groupID)
	if err != nil {
		t.Fatalf("ListGroupMembers: %v", err)
	}
	return got
}

func sorted(ids ...string) []string {
	out := slices.Clone(ids)
	slices.Sort(out)
	return out
}

var equateEmpty = cmpopts.EquateEmpty()

func testGroupCreateAndGet(t *testing.T, s store.Store) {
	ctx := context.Background()
	ids := users(t, s, "m", 3)
	want := store.Group{Name: groupName(t, "eng"), DisplayName: "Engineering", ExternalID: "ext-" + groupName(t, "eng"), Description: "People who build"}
	created, err := s.CreateGroup(ctx, want, []string{ids[2], ids[0]})
	if err != nil {
		t.Fatalf("CreateGroup: %v", err)
	}
	if created.ID == "" {
		t.Fatal("CreateGroup returned no ID")
	}
	if diff := cmp.Diff(want, created, cmpopts.IgnoreFields(store.Group{}, "ID")); diff != "" {
		t.Errorf("created group mismatch (-want +got):\n%s", diff)
	}
	got, err := s.GetGroup(ctx, created.ID)
	if err != nil {
		t.Fatalf("GetGroup: %v", err)
	}
	if diff := cmp.Diff(created, got); diff != "" {
		t.Errorf("GetGroup mismatch (-created +got):\n%s", diff)
	}
	found, err := s.FindGroupByName(ctx, want.Name)
	if err != nil {
		t.Fatalf("FindGroupByName: %v", err)
	}
	if found.ID != created.ID {
		t.Errorf("FindGroupByName ID = %q, want %q", found.ID, created.ID)
	}
	if diff := cmp.Diff(sorted(ids[0], ids[2]), members(t, s, created.ID)); diff != "" {
		t.Errorf("members mismatch (-want +got):\n%s", diff)
	}
	empty, err := s.CreateGroup(ctx, store.Group{Name: groupName(t, "empty")}, nil)
	if err != nil {
		t.Fatalf("CreateGroup without members: %v", err)
	}
	if diff := cmp.Diff([]string(nil), members(t, s, empty.ID), equateEmpty); diff != "" {
		t.Errorf("members of an empty group (-want +got):\n%s", diff)
	}
}

func testGroupNotFound(t *testing.T, s store.Store) {
	ctx := context.Background()
	notFound := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: err = %v, want ErrNotFound", what, err)
		}
	}
	_, err := s.FindGroupByName(ctx, groupName(t, "nobody"))
	notFound("FindGroupByName of a missing group", err)

	g, err := s.CreateGroup(ctx, store.Group{Name: groupName(t, "gone")}, nil)
	if err != nil {
		t.Fatalf("CreateGroup: %v", err)
	}
	if err := s.DeleteGroup(ctx, g.ID); err != nil {
		t.Fatalf("DeleteGroup: %v", err)
	}
	_, err = s.GetGroup(ctx, g.ID)
	notFound("GetGroup of a deleted group", err)
	_, err = s.UpdateGroup(ctx, g.ID, store.GroupUpdate{DisplayName: ptr("X")})
	notFound("UpdateGroup of a deleted group", err)
	_, err = s.ListGroupMembers(ctx, g.ID)
	notFound("ListGroupMembers of a deleted group", err)
	ids := users(t, s, "m", 1)
	notFound("UpdateGroupMembers of a deleted group", s.UpdateGroupMembers(ctx, g.ID, store.MemberDiff{Add: ids}))
}

func testGroupDuplicates(t *testing.T, s store.Store) {
	ctx := context.Background()
	ext := "ext-" + groupName(t, "a")
	first, err := s.CreateGroup(ctx, store.Group{Name: groupName(t, "a"), DisplayName: "First", ExternalID: ext}, nil)
	if err != nil {
		t.Fatalf("CreateGroup: %v", err)
	}
	if _, err := s.CreateGroup(ctx, store.Group{Name: groupName(t, "a"), DisplayName: "Second"}, nil); !errors.Is(err, store.ErrAlreadyExists) {
		t.Errorf("CreateGroup with a taken name: err = %v, want ErrAlreadyExists", err)
	}
	if _, err := s.CreateGroup(ctx, store.Group{Name: groupName(t, "b"), ExternalID: ext}, nil); !errors.Is(err, store.ErrAlreadyExists) {
		t.Errorf("CreateGroup with a taken external ID: err = %v, want ErrAlreadyExists", err)
	}
	if _, err := s.FindGroupByName(ctx, groupName(t, "b")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refused CreateGroup left a group behind: err = %v", err)
	}
	second, err := s.CreateGroup(ctx, store.Group{Name: groupName(t, "b"), ExternalID: ext + "-2"}, nil)
	if err != nil {
		t.Fatalf("CreateGroup: %v", err)
	}
	if _, err := s.UpdateGroup(ctx, second.ID, store.GroupUpdate{ExternalID: ptr(ext)}); !errors.Is(err, store.ErrAlreadyExists) {
		t.Errorf("UpdateGroup to a taken external ID: err = %v, want ErrAlreadyExists", err)
	}
	if got, _ := s.GetGroup(ctx, second.ID); got.ExternalID != ext+"-2" {
		t.Errorf("a refused UpdateGroup changed the external ID to %q", got.ExternalID)
	}
	// Once the first group lets go of the external ID, it is free.
	if _, err := s.UpdateGroup(ctx, first.ID, store.GroupUpdate{ExternalID: ptr(ext + "-1")}); err != nil {
		t.Fatalf("UpdateGroup: %v", err)
	}
	if _, err := s.UpdateGroup(ctx, second.ID, store.GroupUpdate{ExternalID: ptr(ext)}); err != nil {
		t.Errorf("UpdateGroup to a freed external ID: %v", err)
	}
}

func testGroupUpdateOnlyNamedFields(t *testing.T, s store.Store) {
	ctx := context.Background()
	ids := users(t, s, "m", 2)
	created, err := s.CreateGroup(ctx, store.Group{Name: groupName(t, "ops"), DisplayName: "Ops", ExternalID: "ext-" + groupName(t, "ops"), Description: "Runs things"}, ids)
	if err != nil {
		t.Fatalf("CreateGroup: %v", err)
	}
	update := store.GroupUpdate{DisplayName: ptr("Operations")}
	updated, err := s.UpdateGroup(ctx, created.ID, update)
	if err != nil {
		t.Fatalf("UpdateGroup: %v", err)
	}
	want := update.Apply(created)
	if diff := cmp.Diff(want, updated); diff != "" {
		t.Errorf("UpdateGroup result mismatch (-want +got):\n%s", diff)
	}
	got, err := s.GetGroup(ctx, created.ID)
	if err != nil {
		t.Fatalf("GetGroup: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stored group mismatch (-want +got):\n%s", diff)
	}
	if diff := store.GroupDiff(want, got); !diff.IsEmpty() {
		t.Errorf("GroupDiff after update is not empty: %+v", diff)
	}
	if diff := cmp.Diff(ids, members(t, s, created.ID)); diff != "" {
		t.Errorf("UpdateGroup changed the members (-want +got):\n%s", diff)
	}
}

func testGroupMembershipDiff(t *testing.T, s store.Store) {
	ctx := context.Background()
	ids := users(t, s, "m", 5)
	g, err := s.CreateGroup(ctx, store.Group{Name: groupName(t, "g")}, ids[:3])
	if err != nil {
		t.Fatalf("CreateGroup: %v", err)
	}
	// Members the diff does not name stay; adding a member already in and
	// removing one not in are no-ops.
	diff := store.MemberDiff{Add: []string{ids[3], ids[0]}, Remove: []string{ids[1], ids[4]}}
	if err := s.UpdateGroupMembers(ctx, g.ID, diff); err != nil {
		t.Fatalf("UpdateGroupMembers: %v", err)
	}
	want := sorted(ids[0], ids[2], ids[3])
	if d := cmp.Diff(want, members(t, s, g.ID)); d != "" {
		t.Errorf("members mismatch (-want +got):\n%s", d)
	}
	// The same diff again changes nothing.
	if err := s.UpdateGroupMembers(ctx, g.ID, diff); err != nil {
		t.Fatalf("UpdateGroupMembers again: %v", err)
	}
	if d := cmp.Diff(want, members(t, s, g.ID)); d != "" {
		t.Errorf("members after a repeated diff (-want +got):\n%s", d)
	}
	if d := store.MembershipDiff(want, members(t, s, g.ID)); !d.IsEmpty() {
		t.Errorf("MembershipDiff after the update is not empty: %+v", d)
	}
	// Membership of one group does not leak into another.
	other, err := s.CreateGroup(ctx, store.Group{Name: groupName(t, "other")}, ids[3:])
	if err != nil {
		t.Fatalf("CreateGroup: %v", err)
	}
	if err := s.UpdateGroupMembers(ctx, g.ID, store.MemberDiff{Remove: []string{ids[3]}}); err != nil {
		t.Fatalf("UpdateGroupMembers: %v", err)
	}
	if d := cmp.Diff(ids[3:], members(t, s, other.ID)); d != "" {
		t.Errorf("other group's members changed (-want +got):\n%s", d)
	}
}

func testGroupMembershipDiffIsAtomic(t *testing.T, s store.Store) {
	ctx := context.Background()
	ids := users(t, s, "m", 3)
	g, err := s.CreateGroup(ctx, store.Group{Name: groupName(t, "g")}, ids[:1])
	if err != nil {
		t.Fatalf("CreateGroup: %v", err)
	}
	gone := users(t, s, "gone", 1)[0]
	if err := s.DeleteUser(ctx, gone); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	err = s.UpdateGroupMembers(ctx, g.ID, store.MemberDiff{Add: []string{ids[1], gone}, Remove: ids[:1]})
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateGroupMembers adding a missing user: err = %v, want ErrNotFound", err)
	}
	if d := cmp.Diff(ids[:1], members(t, s, g.ID)); d != "" {
		t.Errorf("a refused diff changed the members (-want +got):\n%s", d)
	}
	if _, err := s.CreateGroup(ctx, store.Group{Name: groupName(t, "h")}, []string{ids[2], gone}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("CreateGroup with a missing member: err = %v, want ErrNotFound", err)
	}
	if _, err := s.FindGroupByName(ctx, groupName(t, "h")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refused CreateGroup left a group behind: err = %v", err)
	}
}

func testGroupDeleteIsIdempotent(t *testing.T, s store.Store) {
	ctx := context.Background()
	ids := users(t, s, "m", 2)
	name := groupName(t, "del")
	g, err := s.CreateGroup(ctx, store.Group{Name: name, ExternalID: "ext-" + name}, ids)
	if err != nil {
		t.Fatalf("CreateGroup: %v", err)
	}
	keep, err := s.CreateGroup(ctx, store.Group{Name: groupName(t, "keep")}, ids)
	if err != nil {
		t.Fatalf("CreateGroup: %v", err)
	}
	for i := range 2 {
		if err := s.DeleteGroup(ctx, g.ID); err != nil {
			t.Fatalf("DeleteGroup #%d: %v", i+1, err)
		}
	}
	// The members and the other group are untouched.
	for _, id := range ids {
		if _, err := s.GetUser(ctx, id); err != nil {
			t.Errorf("member %s after DeleteGroup: %v", id, err)
		}
	}
	if d := cmp.Diff(ids, members(t, s, keep.ID)); d != "" {
		t.Errorf("another group's members changed (-want +got):\n%s", d)
	}
	// The name and the external ID are free again.
	if _, err := s.CreateGroup(ctx, store.Group{Name: name, ExternalID: "ext-" + name}, nil); err != nil {
		t.Errorf("CreateGroup after delete: %v", err)
	}
}

func testDeleteUserLeavesGroups(t *testing.T, s store.Store) {
	ctx := context.Background()
	ids := users(t, s, "m", 3)
	a, err := s.CreateGroup(ctx, store.Group{Name: groupName(t, "a")}, ids)
	if err != nil {
		t.Fatalf("CreateGroup: %v", err)
	}
	b, err := s.CreateGroup(ctx, store.Group{Name: groupName(t, "b")}, ids[1:])
	if err != nil {
		t.Fatalf("CreateGroup: %v", err)
	}
	if err := s.DeleteUser(ctx, ids[1]); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	if d := cmp.Diff(sorted(ids[0], ids[2]), members(t, s, a.ID)); d != "" {
		t.Errorf("group a after DeleteUser (-want +got):\n%s", d)
	}
	if d := cmp.Diff(ids[2:], members(t, s, b.ID)); d != "" {
		t.Errorf("group b after DeleteUser (-want +got):\n%s", d)
	}
}

func testGroupConcurrentUse(t *testing.T, s store.Store) {
	ctx := context.Background()
	const workers, perWorker = 8, 5
	ids := users(t, s, "m", workers*perWorker)
	g, err := s.CreateGroup(ctx, store.Group{Name: groupName(t, "busy")}, ids)
	if err != nil {
		t.Fatalf("CreateGroup: %v", err)
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created int
		exists  int
	)
	errs := make(chan error, workers*(perWorker+1))
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Everyone races for one name; exactly one wins.
			switch _, err := s.CreateGroup(ctx, store.Group{Name: groupName(t, "race")}, nil); {
			case err == nil:
				mu.Lock()
				created++
				mu.Unlock()
			case errors.Is(err, store.ErrAlreadyExists):
				mu.Lock()
				exists++
				mu.Unlock()
			default:
				errs <- err
			}
			// Each worker removes its own members from the shared group, one
			// diff at a time, except the last one, which it keeps.
			mine := ids[w*perWorker : (w+1)*perWorker]
			for _, id := range mine[:perWorker-1] {
				if err := s.UpdateGroupMembers(ctx, g.ID, store.MemberDiff{Remove: []string{id}}); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent call failed: %v", err)
	}
	if created != 1 || exists != workers-1 {
		t.Errorf("racing creates: %d succeeded and %d found the name taken, want 1 and %d", created, exists, workers-1)
	}
	var want []string
	for w := range workers {
		want = append(want, ids[(w+1)*perWorker-1])
	}
	if d := cmp.Diff(sorted(want...), members(t, s, g.ID)); d != "" {
		t.Errorf("members after concurrent diffs (-want +got):\n%s", d)
	}
}

// LargeGroupSize is the size of the group testLargeGroup builds.
const LargeGroupSize = 10000

// testLargeGroup builds a group of LargeGroupSize members in one call and
// changes it with small diffs: a backend must not need a call per member.
func testLargeGroup(t *testing.T, s store.Store) {
	if testing.Short() {
		t.Skip("builds a group of 10,000 users")
	}
	ctx := context.Background()
	ids := users(t, s, "m", LargeGroupSize+1)
	extra, ids := ids[LargeGroupSize], ids[:LargeGroupSize]
	g, err := s.CreateGroup(ctx, store.Group{Name: groupName(t, "everyone")}, ids)
	if err != nil {
		t.Fatalf("CreateGroup: %v", err)
	}
	got := members(t, s, g.ID)
	if d := cmp.Diff(ids, got); d != "" {
		t.Fatalf("members of the large group (-want +got):\n%s", d)
	}
	if err := s.UpdateGroupMembers(ctx, g.ID, store.MembershipDiff(append(slices.Clone(ids[1:]), extra), got)); err != nil {
		t.Fatalf("UpdateGroupMembers: %v", err)
	}
	if d := cmp.Diff(sorted(append(slices.Clone(ids[1:]), extra)...), members(t, s, g.ID)); d != "" {
		t.Errorf("members after the diff (-want +got):\n%s", d)
	}
}
