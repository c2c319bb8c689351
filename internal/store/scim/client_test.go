package scim

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"roster.dev/roster/internal/store"
)

func TestErrors(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   error
		msg    []string
	}{
		{"not found", 404, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"404","detail":"Resource 2819c223 not found"}`,
			store.ErrNotFound, []string{"404", "Resource 2819c223 not found"}},
		{"uniqueness", 409, `{"status":"409","scimType":"uniqueness","detail":"userName is already taken"}`,
			store.ErrAlreadyExists, []string{"(uniqueness)", "userName is already taken"}},
		{"numeric status", 409, `{"status":409,"detail":"taken"}`, store.ErrAlreadyExists, []string{"taken"}},
		{"bad filter", 400, `{"status":"400","scimType":"invalidFilter","detail":"Unexpected token"}`,
			store.ErrRejected, []string{"400 Bad Request (invalidFilter): Unexpected token"}},
		{"invalid value", 400, `{"status":"400","scimType":"invalidValue","detail":"title is too long"}`,
			store.ErrRejected, []string{"(invalidValue)", "title is too long"}},
		{"forbidden", 403, `{"status":"403","detail":"The token may not create users"}`,
			store.ErrRejected, []string{"403", "may not create users"}},
		{"mutability", 409, `{"status":"409","scimType":"mutability","detail":"id is read-only"}`,
			nil, []string{"(mutability)"}},
		{"precondition failed", 412, `{"status":"412","detail":"version mismatch"}`, nil, []string{"412"}},
		{"request timeout", 408, ``, store.ErrUnavailable, []string{"408"}},
		{"server error", 500, `oops, not JSON`, store.ErrUnavailable, []string{"500", "oops, not JSON"}},
		{"unauthorized", 401, `{"status":"401","detail":"Authorization failure"}`, store.ErrRejected, []string{"401", "Authorization failure"}},
		{"busy for too long", 503, ``, store.ErrUnavailable, []string{"503"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls++
				if r.Header.Get("Authorization") != "Bearer t0k3n-secret" {
					t.Errorf("Authorization header = %q", r.Header.Get("Authorization"))
				}
				w.Header().Set("Retry-After", "3600")
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			base, _ := url.Parse(srv.URL + "/scim/v2")
			c := &client{http: srv.Client(), base: base, token: "t0k3n-secret", maxRetries: 3, maxRetryWait: time.Minute, now: time.Now}
			_, err := c.do(t.Context(), request{method: http.MethodGet, path: "/Users?filter=userName%20eq%20%22a%40b%22"}, nil)
			if err == nil {
				t.Fatal("no error")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
			for _, known := range []error{store.ErrNotFound, store.ErrAlreadyExists, store.ErrUnavailable, store.ErrRejected} {
				if (tc.want == nil || tc.want != known) && errors.Is(err, known) {
					t.Errorf("err = %v is %v, want only %v", err, known, tc.want)
				}
			}
			for _, m := range tc.msg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("err %q does not say %q", err, m)
				}
			}
			if strings.Contains(err.Error(), "t0k3n-secret") || strings.Contains(err.Error(), "a@b") {
				t.Errorf("err %q shows the token or the filter", err)
			}
			if calls != 1 {
				t.Errorf("%d calls, want 1 (a Retry-After over maxRetryWait is not waited for)", calls)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	c := &client{maxRetryWait: time.Minute, now: func() time.Time { return now }}
	for _, tc := range []struct {
		header  string
		attempt int
		want    time.Duration
		ok      bool
	}{
		{"7", 0, 7 * time.Second, true},
		{"0", 0, 0, true},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 0, 30 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, 0, true},
		{"", 0, time.Second, true},
		{"", 3, 8 * time.Second, true},
		{"soon", 1, 2 * time.Second, true},
		{"3600", 0, time.Hour, false},
	} {
		got, ok := c.retryAfter(tc.header, tc.attempt)
		if got != tc.want || ok != tc.ok {
			t.Errorf("retryAfter(%q, %d) = %v, %v; want %v, %v", tc.header, tc.attempt, got, ok, tc.want, tc.ok)
		}
	}
}
