package eventrec

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/internal/testenv"
)

// Against the real API server: an Event is created once, a repeat within
// the window becomes its series, another reason is an Event of its own, and
// a note longer than the API allows is cut rather than refused.
func TestEventsAndSeries(t *testing.T) {
	c, _ := testenv.StartWithNamespace(t, "ev")
	ctx := t.Context()
	user := &v1alpha1.User{ObjectMeta: metav1.ObjectMeta{Namespace: "ev", Name: "ada"}, Spec: v1alpha1.UserSpec{Email: "ada@example.com"}}
	if err := c.Create(ctx, user); err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	r := New(c, testenv.Scheme(), "roster", testr.New(t), reg)
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Start(runCtx) }()
	t.Cleanup(func() { stop(); <-done })

	for range 3 {
		r.Eventf(user, nil, corev1.EventTypeNormal, "Updated", "Update", "Updated %s in the store.", "firstName")
	}
	long := fmt.Sprintf("%02000d", 7)
	r.Eventf(user, nil, corev1.EventTypeWarning, "StoreError", "Create", "%s", long)

	deadline := time.Now().Add(30 * time.Second)
	for {
		var list eventsv1.EventList
		if err := c.List(ctx, &list, client.InNamespace("ev")); err != nil {
			t.Fatal(err)
		}
		byReason := map[string]eventsv1.Event{}
		for _, e := range list.Items {
			byReason[e.Reason] = e
		}
		updated, okU := byReason["Updated"]
		failed, okF := byReason["StoreError"]
		if len(list.Items) == 2 && okU && okF && updated.Series != nil && updated.Series.Count == 3 {
			if updated.Regarding.UID != user.UID || updated.Regarding.Kind != "User" || updated.ReportingController != "roster" {
				t.Errorf("the Event regards %+v, reported by %q", updated.Regarding, updated.ReportingController)
			}
			if len(failed.Note) != maxNote || failed.Type != corev1.EventTypeWarning {
				t.Errorf("the long note is %d bytes of type %s; want %d, Warning", len(failed.Note), failed.Type, maxNote)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30s the Events are %+v; want one Updated with a series of 3 and one StoreError", list.Items)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := testutil.ToFloat64(r.dropped); got != 0 {
		t.Errorf("dropped %v Events", got)
	}
}

// A full queue holds the caller back for a while, then drops and counts;
// the table of recent Events stays bounded.
func TestFullQueueDropsAndTheTableIsBounded(t *testing.T) {
	r := New(nil, testenv.Scheme(), "roster", logr.Discard(), nil)
	r.wait = time.Millisecond
	for i := range queueSize + recentSize {
		u := &v1alpha1.User{ObjectMeta: metav1.ObjectMeta{Namespace: "ev", Name: fmt.Sprintf("u%d", i), UID: k8stypes.UID(fmt.Sprint("uid-", i))}}
		r.Eventf(u, nil, corev1.EventTypeNormal, "Created", "Create", "Created the user.")
	}
	if got := testutil.ToFloat64(r.dropped); got != recentSize {
		t.Errorf("dropped %v Events; want the %d beyond the queue", got, recentSize)
	}
	if len(r.recent) > recentSize || len(r.order) > recentSize {
		t.Errorf("the recent table holds %d (%d in order); want at most %d", len(r.recent), len(r.order), recentSize)
	}
}
