package controllers

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

func TestWakeupsKeepEachUserOncePerMinute(t *testing.T) {
	start := time.Date(2026, 12, 3, 10, 0, 30, 0, time.UTC)
	var now atomic.Pointer[time.Time]
	now.Store(&start)
	w := newWakeups()
	w.now = func() time.Time { return *now.Load() }

	ada := types.NamespacedName{Namespace: "team", Name: "ada"}
	bob := types.NamespacedName{Namespace: "team", Name: "bob"}
	w.after(ada, 7*24*time.Hour)
	w.after(ada, 7*24*time.Hour+time.Second) // the same minute
	w.after(bob, 10*time.Minute)
	if n := w.Len(); n != 2 {
		t.Fatalf("Len = %d, want 2 (ada once, bob)", n)
	}
	if due := w.due(); len(due) != 0 {
		t.Fatalf("due before their time: %v", due)
	}

	later := start.Add(11 * time.Minute)
	now.Store(&later)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Start(ctx) }()
	select {
	case ev := <-w.events:
		if got := (types.NamespacedName{Namespace: ev.Object.GetNamespace(), Name: ev.Object.GetName()}); got != bob {
			t.Errorf("woke %v, want %v", got, bob)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("bob was not woken after his time")
	}
	if n := w.Len(); n != 1 {
		t.Errorf("Len after bob's wakeup = %d, want 1 (ada's)", n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Start: %v", err)
	}
}
