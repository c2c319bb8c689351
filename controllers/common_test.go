package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"roster.dev/roster/internal/status"
	"roster.dev/roster/internal/store"
)

func TestStoreFailed(t *testing.T) {
	for _, tc := range []struct {
		name       string
		err        error
		wantState  status.State
		wantReason string
		terminal   bool
	}{
		{"unreachable", fmt.Errorf("%w: dial tcp: connection refused", store.ErrUnavailable), status.Progressing, ReasonStoreUnavailable, false},
		{"unexplained", errors.New("scim POST /Users: 409 Conflict (mutability)"), status.Progressing, ReasonStoreError, false},
		{"rejected", fmt.Errorf("%w: scim POST /Users: 400 Bad Request (invalidValue): title is too long", store.ErrRejected),
			status.Stalled, ReasonStoreRejected, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var o outcome
			err := o.storeFailed("user", "corp", "creating", tc.err)
			if !errors.Is(err, tc.err) {
				t.Errorf("storeFailed = %v, does not wrap %v", err, tc.err)
			}
			if got := errors.Is(err, reconcile.TerminalError(nil)); got != tc.terminal {
				t.Errorf("terminal = %v, want %v", got, tc.terminal)
			}
			if o.summary == nil {
				t.Fatal("no outcome set")
			}
			if o.summary.State != tc.wantState || o.summary.Reason != tc.wantReason {
				t.Errorf("outcome = %v/%s, want %v/%s", o.summary.State, o.summary.Reason, tc.wantState, tc.wantReason)
			}
			if !strings.Contains(o.summary.Message, tc.err.Error()) || !strings.Contains(o.summary.Message, "corp store") {
				t.Errorf("message %q does not name the store and its answer", o.summary.Message)
			}
		})
	}
}

func TestRetryTriesUntilDone(t *testing.T) {
	calls := 0
	fn := func(context.Context) error {
		calls++
		if calls < 3 {
			return errors.New("namespace not found")
		}
		return nil
	}
	retry(t.Context(), time.Millisecond, 2*time.Millisecond, logr.Discard(), "trying", fn)
	if calls != 3 {
		t.Errorf("calls = %d, want 3: two failures, then the success", calls)
	}

	ctx, cancel := context.WithCancel(t.Context())
	calls = 0
	failing := func(context.Context) error {
		calls++
		cancel()
		return errors.New("unavailable")
	}
	retry(ctx, time.Hour, time.Hour, logr.Discard(), "trying", failing)
	if calls != 1 {
		t.Errorf("calls = %d, want 1: it stops once the context ends, without waiting", calls)
	}
}
