package controllers

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"roster.dev/roster/api/v1alpha1"
)

// queueHorizon is the longest delay a reconciler leaves to its work queue.
// A User to be looked at later (when its invitation expires, a week on) is
// kept by wakeups instead: the queue spends a few hundred bytes on each
// item it delays, some 40 MiB at 100,000 invited Users, and wakeups about
// fifty.
const queueHorizon = 5 * time.Minute

// wakeups holds the Users to be reconciled again at a later time, each as
// its key in the bucket of the minute it is due. A minute after its time is
// soon enough for what waits this long, and a key is kept once however
// often its User asks for the same minute. A User that asks again for a
// later time keeps its earlier wakeup too, which costs one reconcile that
// finds nothing to do.
type wakeups struct {
	now    func() time.Time
	events chan event.GenericEvent

	mu      sync.Mutex
	buckets map[int64]map[types.NamespacedName]struct{} // by Unix minute
	changed chan struct{}                               // an earlier bucket was added
}

func newWakeups() *wakeups {
	return &wakeups{
		now:     time.Now,
		events:  make(chan event.GenericEvent),
		buckets: map[int64]map[types.NamespacedName]struct{}{},
		changed: make(chan struct{}, 1),
	}
}

// after asks for key to be reconciled again after d.
func (w *wakeups) after(key types.NamespacedName, d time.Duration) {
	at := w.now().Add(d)
	minute := (at.Unix() + 59) / 60 // the first whole minute at or after at
	w.mu.Lock()
	defer w.mu.Unlock()
	b, ok := w.buckets[minute]
	if !ok {
		b = map[types.NamespacedName]struct{}{}
		w.buckets[minute] = b
		select {
		case w.changed <- struct{}{}:
		default:
		}
	}
	b[key] = struct{}{}
}

// Len is how many wakeups are held.
func (w *wakeups) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, b := range w.buckets {
		n += len(b)
	}
	return n
}

// NeedLeaderElection: the wakeups feed the leader's User controller; a new
// leader fills its own as it reconciles every User at start.
func (w *wakeups) NeedLeaderElection() bool { return true }

// Start sends each bucket's Users to the controller once its minute has
// come, until ctx ends.
func (w *wakeups) Start(ctx context.Context) error {
	for {
		wait := time.Hour
		if next, ok := w.first(); ok {
			wait = max(0, time.Unix(next*60, 0).Sub(w.now()))
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-w.changed:
			timer.Stop()
			continue
		case <-timer.C:
		}
		for _, key := range w.due() {
			ref := &v1alpha1.User{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
			select {
			case w.events <- event.GenericEvent{Object: ref}:
			case <-ctx.Done():
				return nil
			}
		}
	}
}

// first is the earliest bucket's minute.
func (w *wakeups) first() (int64, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buckets) == 0 {
		return 0, false
	}
	return slices.Min(slices.Collect(maps.Keys(w.buckets))), true
}

// due takes out the keys of every bucket whose minute has come.
func (w *wakeups) due() []types.NamespacedName {
	now := w.now().Unix()
	w.mu.Lock()
	defer w.mu.Unlock()
	var keys []types.NamespacedName
	for minute, b := range w.buckets {
		if minute*60 > now {
			continue
		}
		for key := range b {
			keys = append(keys, key)
		}
		delete(w.buckets, minute)
	}
	return keys
}
