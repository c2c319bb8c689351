package scim_test

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"roster.dev/roster/internal/store"
	"roster.dev/roster/internal/store/scim"
	"roster.dev/roster/internal/store/scim/scimtest"
	"roster.dev/roster/internal/store/storetest"
)

// recorder counts the answers a store receives by status, and the list
// pages it asks for.
type recorder struct {
	mu       sync.Mutex
	statuses map[int]int
	pages    int
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.statuses == nil {
		r.statuses = map[int]int{}
	}
	if err == nil {
		r.statuses[resp.StatusCode]++
	}
	if req.Method == http.MethodGet && req.URL.Query().Has("startIndex") {
		r.pages++
	}
	return resp, err
}

func (r *recorder) count(status int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.statuses[status]
}

func TestRetryAfterIsHonoured(t *testing.T) {
	peer := scimtest.Start(t, scimtest.Options{Throttle: 2, RetryAfter: "1"})
	rec := &recorder{}
	s := open(t, peer, scim.Options{Transport: rec})
	u, err := s.CreateUser(t.Context(), store.User{Email: "patient@example.com", FirstName: "Pat", LastName: "Ient"})
	if err != nil {
		t.Fatalf("CreateUser after 429s: %v", err)
	}
	if got := rec.count(http.StatusTooManyRequests); got != 2 {
		t.Errorf("the store saw %d answers with 429, want 2 (each retried)", got)
	}
	if _, err := s.GetUser(t.Context(), u.ID); err != nil {
		t.Errorf("GetUser: %v", err)
	}
}

// TestPeerStopsMidSync: a sync of ten users meets a service that goes
// away halfway; the calls fail as ErrUnavailable, and once the service is
// back the same sync finishes with every user there exactly once.
func TestPeerStopsMidSync(t *testing.T) {
	peer := scimtest.Start(t, scimtest.Options{})
	s := open(t, peer, scim.Options{})
	ctx := t.Context()
	addr := func(i int) string { return fmt.Sprintf("sync%d@example.com", i) }
	sync := func() (failed []error) {
		for i := range 10 {
			if _, err := s.FindUserByEmail(ctx, addr(i)); err == nil {
				continue
			} else if !errors.Is(err, store.ErrNotFound) {
				failed = append(failed, err)
				continue
			}
			if _, err := s.CreateUser(ctx, store.User{Email: addr(i), FirstName: "S", LastName: fmt.Sprint(i)}); err != nil {
				failed = append(failed, err)
			}
		}
		return failed
	}
	for i := range 5 {
		if _, err := s.CreateUser(ctx, store.User{Email: addr(i), FirstName: "S", LastName: fmt.Sprint(i)}); err != nil {
			t.Fatalf("CreateUser: %v", err)
		}
	}
	peer.Stop(t)
	failed := sync()
	if len(failed) != 10 {
		t.Errorf("a sync against a stopped service had %d failures, want 10", len(failed))
	}
	for _, err := range failed {
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("err = %v, want ErrUnavailable", err)
		}
	}
	peer.Resume(t)
	if failed := sync(); len(failed) > 0 {
		t.Fatalf("the sync after the service returned failed: %v", failed)
	}
	users, err := storetest.AllUsers(ctx, s)
	if err != nil {
		t.Fatalf("ListUsers: %v", err)
	}
	seen := map[string]int{}
	for _, u := range users {
		seen[u.Email]++
	}
	for i := range 10 {
		if seen[addr(i)] != 1 {
			t.Errorf("%s is in the store %d times, want once", addr(i), seen[addr(i)])
		}
	}
	if len(users) != 10 {
		t.Errorf("the store holds %d users, want 10", len(users))
	}
}

func TestFilterQuoting(t *testing.T) {
	peer := scimtest.Start(t, scimtest.Options{})
	s := open(t, peer, scim.Options{})
	ctx := t.Context()
	tricky := []string{`"quoted"@example.com`, `back\slash@example.com`, `both\"@example.com`, `or" or userName pr "@example.com`}
	ids := map[string]string{}
	for _, a := range tricky {
		u, err := s.CreateUser(ctx, store.User{Email: a, FirstName: "Q", LastName: "Uote"})
		if err != nil {
			t.Fatalf("CreateUser(%s): %v", a, err)
		}
		ids[a] = u.ID
	}
	for _, a := range tricky {
		for _, q := range []string{a, strings.ToUpper(a)} {
			u, err := s.FindUserByEmail(ctx, q)
			if err != nil {
				t.Errorf("FindUserByEmail(%s): %v", q, err)
				continue
			}
			if u.ID != ids[a] || u.Email != a {
				t.Errorf("FindUserByEmail(%s) = %s %s, want %s %s", q, u.ID, u.Email, ids[a], a)
			}
		}
	}
	if _, err := s.FindUserByEmail(ctx, `back\\slash@example.com`); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("FindUserByEmail of a near miss: err = %v, want ErrNotFound", err)
	}
}

func TestListUsersReadsEveryPage(t *testing.T) {
	peer := scimtest.Start(t, scimtest.Options{})
	rec := &recorder{}
	s := open(t, peer, scim.Options{Transport: rec}, func(c *scim.Config) { c.PageSize = 7 })
	const n = 20
	for i := range n {
		if _, err := s.CreateUser(t.Context(), store.User{Email: fmt.Sprintf("page%02d@example.com", i), FirstName: "P", LastName: "G"}); err != nil {
			t.Fatalf("CreateUser: %v", err)
		}
	}
	users, err := storetest.AllUsers(t.Context(), s)
	if err != nil {
		t.Fatalf("ListUsers: %v", err)
	}
	seen := map[string]bool{}
	for _, u := range users {
		seen[u.ID] = true
	}
	if len(users) != n || len(seen) != n {
		t.Errorf("ListUsers returned %d users (%d distinct), want %d", len(users), len(seen), n)
	}
	if rec.pages != 3 {
		t.Errorf("ListUsers read %d pages of 7, want 3", rec.pages)
	}
}

func TestPeerWithoutChangePassword(t *testing.T) {
	peer := scimtest.Start(t, scimtest.Options{NoChangePassword: true})
	s := open(t, peer, scim.Options{})
	if s.Capabilities().Passwords {
		t.Fatal("Capabilities().Passwords is true for a service without changePassword")
	}
	u, err := s.CreateUser(t.Context(), store.User{Email: "sso@example.com", FirstName: "S", LastName: "SO"})
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if err := s.SetPassword(t.Context(), u.ID, "Never-Sent-1"); !errors.Is(err, store.ErrPasswordsUnsupported) {
		t.Errorf("SetPassword: err = %v, want ErrPasswordsUnsupported", err)
	}
}
