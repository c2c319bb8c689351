package web

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"roster.dev/roster/internal/password"
	"roster.dev/roster/internal/stores"
)

func TestIPLimiter(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	l := newIPLimiter(3, clk)
	for i := range 3 {
		if !l.allow("192.0.2.1") {
			t.Fatalf("submission %d refused, want the first 3 allowed", i+1)
		}
	}
	if l.allow("192.0.2.1") {
		t.Error("a fourth submission within the minute was allowed")
	}
	if !l.allow("192.0.2.2") {
		t.Error("another address was refused: limits are per address")
	}
	clk.SetTime(clk.Now().Add(20 * time.Second))
	if !l.allow("192.0.2.1") {
		t.Error("no submission allowed after a third of a minute")
	}
	clk.SetTime(clk.Now().Add(11 * time.Minute))
	l.allow("192.0.2.3")
	if _, ok := l.buckets["192.0.2.1"]; ok {
		t.Error("an address idle for ten minutes is still remembered")
	}
}

func TestClientIP(t *testing.T) {
	pub, _ := url.Parse("https://id.example.com")
	cases := []struct {
		reason string
		header string
		remote string
		xff    string
		want   string
	}{
		{"the connection's address", "", "198.51.100.7:51234", "203.0.113.9", "198.51.100.7"},
		{"the last hop a trusted proxy added", "X-Forwarded-For", "10.0.0.2:443", "203.0.113.9, 198.51.100.1", "198.51.100.1"},
		{"a header that is not an address", "X-Forwarded-For", "10.0.0.2:443", "unknown", "10.0.0.2"},
	}
	for _, tc := range cases {
		t.Run(tc.reason, func(t *testing.T) {
			s := &Server{cfg: Config{PublicURL: pub, ClientIPHeader: tc.header}}
			r := httptest.NewRequest("POST", "/invitation/x", nil)
			r.RemoteAddr = tc.remote
			r.Header.Set("X-Forwarded-For", tc.xff)
			if got := s.clientIP(r); got != tc.want {
				t.Errorf("clientIP = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSubmissionsAreRateLimited(t *testing.T) {
	pub, _ := url.Parse("http://127.0.0.1:8082")
	c := fake.NewClientBuilder().Build()
	s, err := New(Config{Client: c, APIReader: c, Stores: stores.NewRegistry(), PublicURL: pub, Policy: password.Default(), ProductName: "Acme", SubmissionsPerMinute: 2})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	var codes []int
	for range 3 {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("POST", "/invitation/whatever", strings.NewReader("password=x"))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		s.ServeHTTP(w, r)
		codes = append(codes, w.Code)
		if w.Code == http.StatusTooManyRequests && w.Header().Get("Retry-After") == "" {
			t.Error("a refused submission does not say when to retry")
		}
	}
	// The first two are refused for their missing CSRF token; the third is
	// not even looked at.
	want := []int{http.StatusForbidden, http.StatusForbidden, http.StatusTooManyRequests}
	if diff := cmp.Diff(want, codes); diff != "" {
		t.Errorf("status codes (-want +got):\n%s", diff)
	}
}

func TestFailureLimiterBlocksWithoutTakingATurn(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	l := newLimiter(2, 15*time.Minute, clk)
	for range 5 {
		if l.blocked("ada@example.com") {
			t.Fatal("an address without failures is blocked, or asking took a turn")
		}
	}
	l.fail("ada@example.com")
	l.fail("ada@example.com")
	if !l.blocked("ada@example.com") {
		t.Error("an address with two failures of two is not blocked")
	}
	if l.blocked("grace@example.com") {
		t.Error("another address is blocked: limits are per key")
	}
	clk.SetTime(clk.Now().Add(8 * time.Minute))
	if l.blocked("ada@example.com") {
		t.Error("still blocked once a failure's share of the period passed")
	}
}
