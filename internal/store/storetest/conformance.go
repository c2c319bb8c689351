// Package storetest is the conformance suite every store.Store backend
// passes against a real server: the same behaviour, whatever the backend.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"roster.dev/roster/internal/store"
)

// Factory returns a store to test, empty or holding only what earlier
// subtests of the same run created (each subtest uses addresses of its own).
type Factory func(t *testing.T) store.Store

// Run runs the conformance suite against the stores newStore returns.
func Run(t *testing.T, newStore Factory) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"CreateAndGet", testCreateAndGet},
		{"FindByEmailIgnoresCase", testFindByEmailIgnoresCase},
		{"NotFound", testNotFound},
		{"DuplicateEmail", testDuplicateEmail},
		{"UpdateOnlyNamedFields", testUpdateOnlyNamedFields},
		{"DeactivateAndReactivate", testDeactivateAndReactivate},
		{"DeleteIsIdempotent", testDeleteIsIdempotent},
		{"ConcurrentUse", testConcurrentUse},
		{"SetPasswordActivates", testSetPasswordActivates},
		{"SetPasswordOfMissingUser", testSetPasswordOfMissingUser},
		{"ListUsers", testListUsers},
		{"ListUsersStopsAtPageError", testListUsersStopsAtPageError},
		{"GroupCreateAndGet", testGroupCreateAndGet},
		{"GroupNotFound", testGroupNotFound},
		{"GroupDuplicateNameAndExternalID", testGroupDuplicates},
		{"GroupUpdateOnlyNamedFields", testGroupUpdateOnlyNamedFields},
		{"GroupMembershipDiff", testGroupMembershipDiff},
		{"GroupMembershipDiffIsAtomic", testGroupMembershipDiffIsAtomic},
		{"GroupDeleteIsIdempotent", testGroupDeleteIsIdempotent},
		{"DeleteUserLeavesGroups", testDeleteUserLeavesGroups},
		{"GroupConcurrentUse", testGroupConcurrentUse},
		{"LargeGroup", testLargeGroup},
		{"AccessKeys", testAccessKeys},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

// email returns an address unique to the running test.
func email(t *testing.T, local string) string {
	name := strings.ToLower(strings.NewReplacer("/", ".", "_", "-").Replace(t.Name()))
	return fmt.Sprintf("%s@%s.example.com", local, name)
}

var ignoreID = cmpopts.IgnoreFields(store.User{}, "ID", "LastLoginAt")

func testCreateAndGet(t *testing.T, s store.Store) {
	ctx := context.Background()
	want := store.User{
		Email: email(t, "ada"), ExternalID: "uid-1", FirstName: "Ada", LastName: "Lovelace",
		Role: "Admin", Mobile: "+4915123456789", TimeZone: "Europe/London", Country: "GB", Locale: "en-GB",
		Attributes: map[string]string{"team": "engines"},
	}
	created, err := s.CreateUser(ctx, want)
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if created.ID == "" {
		t.Fatal("CreateUser returned no ID")
	}
	if diff := cmp.Diff(want, created, ignoreID); diff != "" {
		t.Errorf("created user mismatch (-want +got):\n%s", diff)
	}
	got, err := s.GetUser(ctx, created.ID)
	if err != nil {
		t.Fatalf("GetUser: %v", err)
	}
	if diff := cmp.Diff(created, got, cmpopts.IgnoreFields(store.User{}, "LastLoginAt")); diff != "" {
		t.Errorf("GetUser mismatch (-created +got):\n%s", diff)
	}
	if got.Disabled || got.Activated {
		t.Errorf("new user: Disabled=%v Activated=%v, want both false", got.Disabled, got.Activated)
	}
}

func testFindByEmailIgnoresCase(t *testing.T, s store.Store) {
	ctx := context.Background()
	addr := email(t, "grace")
	created, err := s.CreateUser(ctx, store.User{Email: addr, FirstName: "Grace", LastName: "Hopper"})
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	got, err := s.FindUserByEmail(ctx, strings.ToUpper(addr))
	if err != nil {
		t.Fatalf("FindUserByEmail: %v", err)
	}
	if got.ID != created.ID {
		t.Errorf("FindUserByEmail ID = %q, want %q", got.ID, created.ID)
	}
}

func testNotFound(t *testing.T, s store.Store) {
	ctx := context.Background()
	if _, err := s.FindUserByEmail(ctx, email(t, "nobody")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("FindUserByEmail of a missing user: err = %v, want ErrNotFound", err)
	}
	created, err := s.CreateUser(ctx, store.User{Email: email(t, "gone"), FirstName: "Gone", LastName: "Soon"})
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if err := s.DeleteUser(ctx, created.ID); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	if _, err := s.GetUser(ctx, created.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetUser of a deleted user: err = %v, want ErrNotFound", err)
	}
	if _, err := s.UpdateUser(ctx, created.ID, store.UserUpdate{FirstName: ptr("X")}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateUser of a deleted user: err = %v, want ErrNotFound", err)
	}
}

func testDuplicateEmail(t *testing.T, s store.Store) {
	ctx := context.Background()
	addr := email(t, "dup")
	if _, err := s.CreateUser(ctx, store.User{Email: addr, FirstName: "One", LastName: "First"}); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	_, err := s.CreateUser(ctx, store.User{Email: strings.ToUpper(addr), FirstName: "Two", LastName: "Second"})
	if !errors.Is(err, store.ErrAlreadyExists) {
		t.Errorf("second CreateUser with the same email: err = %v, want ErrAlreadyExists", err)
	}
	got, err := s.FindUserByEmail(ctx, addr)
	if err != nil {
		t.Fatalf("FindUserByEmail: %v", err)
	}
	if got.FirstName != "One" {
		t.Errorf("the first user was changed: FirstName = %q", got.FirstName)
	}
}

func testUpdateOnlyNamedFields(t *testing.T, s store.Store) {
	ctx := context.Background()
	created, err := s.CreateUser(ctx, store.User{
		Email: email(t, "ken"), FirstName: "Ken", LastName: "Thompson", Role: "Member",
		Country: "US", Attributes: map[string]string{"shell": "sh", "editor": "ed"},
	})
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	update := store.UserUpdate{LastName: ptr("Thompson Jr"), Role: ptr("Admin"), Attributes: map[string]string{"editor": "sam"}}
	updated, err := s.UpdateUser(ctx, created.ID, update)
	if err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	want := update.Apply(created)
	if diff := cmp.Diff(want, updated, cmpopts.IgnoreFields(store.User{}, "LastLoginAt")); diff != "" {
		t.Errorf("UpdateUser result mismatch (-want +got):\n%s", diff)
	}
	got, err := s.GetUser(ctx, created.ID)
	if err != nil {
		t.Fatalf("GetUser: %v", err)
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(store.User{}, "LastLoginAt")); diff != "" {
		t.Errorf("stored user mismatch (-want +got):\n%s", diff)
	}
	if diff := store.UserDiff(want, got); !diff.IsEmpty() {
		t.Errorf("UserDiff after update is not empty: %+v", diff)
	}
}

func testDeactivateAndReactivate(t *testing.T, s store.Store) {
	ctx := context.Background()
	created, err := s.CreateUser(ctx, store.User{Email: email(t, "linus"), FirstName: "Linus", LastName: "T"})
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	for _, disabled := range []bool{true, false, true} {
		if _, err := s.UpdateUser(ctx, created.ID, store.UserUpdate{Disabled: ptr(disabled)}); err != nil {
			t.Fatalf("UpdateUser(Disabled=%v): %v", disabled, err)
		}
		got, err := s.GetUser(ctx, created.ID)
		if err != nil {
			t.Fatalf("GetUser: %v", err)
		}
		if got.Disabled != disabled {
			t.Errorf("Disabled = %v, want %v", got.Disabled, disabled)
		}
		if got.FirstName != "Linus" {
			t.Errorf("deactivation changed FirstName to %q", got.FirstName)
		}
	}
}

func testDeleteIsIdempotent(t *testing.T, s store.Store) {
	ctx := context.Background()
	addr := email(t, "del")
	created, err := s.CreateUser(ctx, store.User{Email: addr, FirstName: "Del", LastName: "Ete"})
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	for i := range 2 {
		if err := s.DeleteUser(ctx, created.ID); err != nil {
			t.Fatalf("DeleteUser #%d: %v", i+1, err)
		}
	}
	if _, err := s.FindUserByEmail(ctx, addr); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("FindUserByEmail after delete: err = %v, want ErrNotFound", err)
	}
	// The address is free again.
	if _, err := s.CreateUser(ctx, store.User{Email: addr, FirstName: "Del", LastName: "Again"}); err != nil {
		t.Errorf("CreateUser after delete: %v", err)
	}
}

func testConcurrentUse(t *testing.T, s store.Store) {
	ctx := context.Background()
	const workers, perWorker = 8, 5
	addr := email(t, "race")
	var wg sync.WaitGroup
	var mu sync.Mutex
	created, exists := 0, 0
	errs := make(chan error, workers*perWorker*2)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Everyone races for one address; exactly one wins.
			switch _, err := s.CreateUser(ctx, store.User{Email: addr, FirstName: "Racer", LastName: fmt.Sprint(w)}); {
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
			for i := range perWorker {
				u, err := s.CreateUser(ctx, store.User{Email: email(t, fmt.Sprintf("w%d-%d", w, i)), FirstName: "W", LastName: "I"})
				if err != nil {
					errs <- err
					continue
				}
				if _, err := s.UpdateUser(ctx, u.ID, store.UserUpdate{Role: ptr("Member")}); err != nil {
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
		t.Errorf("racing creates: %d succeeded and %d found the address taken, want 1 and %d", created, exists, workers-1)
	}
	for w := range workers {
		for i := range perWorker {
			u, err := s.FindUserByEmail(ctx, email(t, fmt.Sprintf("w%d-%d", w, i)))
			if err != nil {
				t.Errorf("FindUserByEmail w%d-%d: %v", w, i, err)
				continue
			}
			if u.Role != "Member" {
				t.Errorf("w%d-%d Role = %q, want Member", w, i, u.Role)
			}
		}
	}
}

func testSetPasswordActivates(t *testing.T, s store.Store) {
	ctx := context.Background()
	created, err := s.CreateUser(ctx, store.User{Email: email(t, "barbara"), FirstName: "Barbara", LastName: "Liskov", Role: "Member"})
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	const password = "Substitution-1987"
	err = s.SetPassword(ctx, created.ID, password)
	if !s.Capabilities().Passwords {
		if !errors.Is(err, store.ErrPasswordsUnsupported) {
			t.Errorf("SetPassword on a store without passwords: err = %v, want ErrPasswordsUnsupported", err)
		}
		return
	}
	if err != nil {
		t.Fatalf("SetPassword: %v", err)
	}
	got, err := s.GetUser(ctx, created.ID)
	if err != nil {
		t.Fatalf("GetUser: %v", err)
	}
	if !got.Activated {
		t.Error("user is not activated after SetPassword")
	}
	want := created
	want.Activated = true
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(store.User{}, "LastLoginAt")); diff != "" {
		t.Errorf("SetPassword changed other fields (-want +got):\n%s", diff)
	}
	if strings.Contains(fmt.Sprintf("%+v", got), password) {
		t.Error("the password shows in the user the store returns")
	}
	// Setting it again (a reset) works the same way.
	if err := s.SetPassword(ctx, created.ID, password+"!"); err != nil {
		t.Errorf("second SetPassword: %v", err)
	}
}

func testSetPasswordOfMissingUser(t *testing.T, s store.Store) {
	ctx := context.Background()
	created, err := s.CreateUser(ctx, store.User{Email: email(t, "ghost"), FirstName: "Ghost", LastName: "User"})
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if err := s.DeleteUser(ctx, created.ID); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	err = s.SetPassword(ctx, created.ID, "Vanished-Without-Trace-1")
	want := store.ErrNotFound
	if !s.Capabilities().Passwords {
		want = store.ErrPasswordsUnsupported
	}
	if !errors.Is(err, want) {
		t.Errorf("SetPassword of a deleted user: err = %v, want %v", err, want)
	}
}

// AllUsers collects every page of s.ListUsers.
func AllUsers(ctx context.Context, s store.Store) ([]store.User, error) {
	var all []store.User
	err := s.ListUsers(ctx, func(page []store.User) error {
		all = append(all, page...)
		return nil
	})
	return all, err
}

func testListUsers(t *testing.T, s store.Store) {
	ctx := t.Context()
	want := map[string]store.User{}
	for i := range 3 {
		u, err := s.CreateUser(ctx, store.User{Email: email(t, fmt.Sprintf("listed%d", i)), FirstName: "Listed", LastName: fmt.Sprint(i), Role: "Member"})
		if err != nil {
			t.Fatalf("CreateUser: %v", err)
		}
		want[u.ID] = u
	}
	all, err := AllUsers(ctx, s)
	if err != nil {
		t.Fatalf("ListUsers: %v", err)
	}
	seen := map[string]int{}
	for _, u := range all {
		if u.ID == "" || u.Email == "" {
			t.Errorf("ListUsers returned a user without an ID or email: %+v", u)
		}
		seen[u.ID]++
		if w, ok := want[u.ID]; ok {
			if diff := cmp.Diff(w, u, cmpopts.IgnoreFields(store.User{}, "LastLoginAt")); diff != "" {
				t.Errorf("listed user differs from the created one (-created +listed):\n%s", diff)
			}
		}
	}
	for id, u := range want {
		if seen[id] != 1 {
			t.Errorf("%s listed %d times, want once", u.Email, seen[id])
		}
	}
}

func testListUsersStopsAtPageError(t *testing.T, s store.Store) {
	ctx := t.Context()
	if _, err := s.CreateUser(ctx, store.User{Email: email(t, "one"), FirstName: "One", LastName: "Page"}); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	stop := errors.New("stop here")
	calls := 0
	err := s.ListUsers(ctx, func([]store.User) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) {
		t.Errorf("ListUsers returned %v, want the page's error", err)
	}
	if calls != 1 {
		t.Errorf("page was called %d times after it failed, want once", calls)
	}
}

func ptr[T any](v T) *T { return &v }
