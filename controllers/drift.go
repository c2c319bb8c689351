package controllers

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/internal/store"
	"roster.dev/roster/internal/stores"
)

// UserDrift is the store-wide resync of Users. Every period (jittered) it
// reads each open store's users page by page, compares each with the User that
// holds it, and wakes the User reconciler for the Users whose store user
// differs from what they ask for or report; the reconciler then writes only
// what differs, with an event for each correction. A pass that finds nothing
// wakes nothing, so it writes nothing, to the store or to the API server, and
// costs one listing instead of a read per User.
//
// After a complete listing the Users whose store user was not listed are
// woken too, so that their reconciler looks them up (and recreates them
// when they are gone). A listing that fails part way wakes only the
// differences it saw: a user it did not reach is never taken for gone.
type UserDrift struct {
	// Client reads Users from the manager's cache, and Emails finds them
	// there by email.
	Client client.Reader
	Emails *EmailIndex
	// Stores are the open stores; each is compared in turn.
	Stores      *stores.Registry
	DefaultRole string
	// Period is the time between passes; each is jittered by up to a tenth.
	Period  time.Duration
	Metrics *DriftMetrics
	Log     logr.Logger

	wakeOnce sync.Once
	wake     chan event.GenericEvent
}

// DriftReport is what one pass found.
type DriftReport struct {
	// Read counts the store users listed.
	Read int
	// Differ counts the Users woken because their store user differs.
	Differ int
	// Missing counts the Users woken because their store user was not
	// listed; only a complete pass counts them.
	Missing int
	// Unmanaged counts the store users no User holds, left alone.
	Unmanaged int
	// Complete is false when the listing failed part way.
	Complete bool
}

// Events is the channel a pass sends the Users to wake to; the User
// controller watches it.
func (d *UserDrift) Events() chan event.GenericEvent {
	d.wakeOnce.Do(func() { d.wake = make(chan event.GenericEvent) })
	return d.wake
}

// wakeSoon asks the User controller to reconcile the User, without making
// the caller wait: the web pages call it after a sign-in. Only the leader
// runs the controller; on another replica nobody takes the event, which is
// dropped after a while, and the leader's next drift pass sees the login.
func (d *UserDrift) wakeSoon(key types.NamespacedName) {
	ref := &v1alpha1.User{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
	go func() {
		timer := time.NewTimer(5 * time.Second)
		defer timer.Stop()
		select {
		case d.Events() <- event.GenericEvent{Object: ref}:
		case <-timer.C:
		}
	}()
}

// NeedLeaderElection makes only the leader compare the store.
func (d *UserDrift) NeedLeaderElection() bool { return true }

// Start runs a pass every period until ctx ends. The first pass waits one
// period: every User was compared with the store when the manager started.
func (d *UserDrift) Start(ctx context.Context) error {
	for {
		timer := time.NewTimer(jittered(d.Period))
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-timer.C:
		}
		for _, h := range d.Stores.All() {
			d.passOver(ctx, h)
		}
	}
}

// passOver runs one pass over the store, with its metrics and log line.
func (d *UserDrift) passOver(ctx context.Context, h *stores.Handle) {
	start := time.Now()
	rep, err := d.Pass(ctx, h)
	d.Metrics.observe(h.Name, rep, time.Since(start))
	log := d.Log.WithValues("store", h.Name, "read", rep.Read, "differ", rep.Differ,
		"missing", rep.Missing, "unmanaged", rep.Unmanaged, "took", time.Since(start).Round(time.Millisecond))
	switch {
	case err != nil && ctx.Err() == nil:
		log.Error(err, "Comparing the store with the Users stopped part way; the users not read are compared at the next pass")
	case err == nil && rep.Differ+rep.Missing > 0:
		log.Info("Compared the store with the Users and woke those that differ")
	case err == nil:
		log.V(1).Info("Compared the store with the Users: no differences")
	}
}

// Pass compares one store with its Users once.
func (d *UserDrift) Pass(ctx context.Context, h *stores.Handle) (DriftReport, error) {
	var rep DriftReport
	keys := storeKeys(h.Name, d.Stores.IsDefault(h.Name))
	listed := map[string]struct{}{} // UIDs of the Users whose store user was listed
	err := h.ListUsers(ctx, func(page []store.User) error {
		for i := range page {
			rep.Read++
			user, err := d.holder(ctx, keys, &page[i])
			if err != nil {
				return err
			}
			if user == nil {
				rep.Unmanaged++
				continue
			}
			listed[string(user.UID)] = struct{}{}
			if fields := storeDrift(user, &page[i], d.DefaultRole); len(fields) > 0 {
				rep.Differ++
				d.Log.V(1).Info("Store user differs", "user", client.ObjectKeyFromObject(user), "fields", fields)
				if err := d.send(ctx, user); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("reading the %s store's users: %w", h.Name, err)
	}
	rep.Complete = true

	for _, key := range keys {
		var users v1alpha1.UserList
		if err := d.Client.List(ctx, &users, client.MatchingFields{storeRefIndex: key}, client.UnsafeDisableDeepCopy); err != nil {
			return rep, fmt.Errorf("listing Users: %w", err)
		}
		for i := range users.Items {
			user := &users.Items[i]
			if _, ok := listed[string(user.UID)]; ok || user.Status.StoreID == "" || !user.DeletionTimestamp.IsZero() {
				continue
			}
			rep.Missing++
			if err := d.send(ctx, user); err != nil {
				return rep, err
			}
		}
	}
	return rep, nil
}

// holder is the User that holds the store user: the one with its email whose
// status records a store ID, preferring the one recording exactly this ID
// (directories may spell a DN differently from how it was created), or the
// one whose UID the store user carries (Roster created it for that User,
// whose status was lost). It returns nil for a store user no User holds.
func (d *UserDrift) holder(ctx context.Context, keys []string, got *store.User) (*v1alpha1.User, error) {
	var found *v1alpha1.User
	rank := func(u *v1alpha1.User) int {
		switch {
		case u == nil || !u.DeletionTimestamp.IsZero():
			return 0
		case u.Status.StoreID == got.ID, got.ExternalID != "" && string(u.UID) == got.ExternalID:
			return 3
		case u.Status.StoreID != "":
			return 2
		}
		return 0
	}
	err := d.Emails.eachInStore(keys, got.Email, func(u *v1alpha1.User) {
		if rank(u) > rank(found) {
			found = u
		}
	})
	return found, err
}

// wakeNotReady wakes the Users of the store (by its storeKeys) that are not
// Ready, waiting while their queue catches up.
func (d *UserDrift) wakeNotReady(ctx context.Context, keys []string) {
	woken := 0
	for _, key := range keys {
		var users v1alpha1.UserList
		if err := d.Client.List(ctx, &users, client.MatchingFields{storeRefIndex: key}, client.UnsafeDisableDeepCopy); err != nil {
			d.Log.Error(err, "Could not list the Users to wake after the store came back")
			return
		}
		for i := range users.Items {
			u := &users.Items[i]
			if !u.DeletionTimestamp.IsZero() || meta.IsStatusConditionTrue(u.Status.Conditions, v1alpha1.ConditionReady) {
				continue
			}
			if err := d.send(ctx, u); err != nil {
				return
			}
			woken++
		}
	}
	d.Log.Info("The store answers again: woke the Users that are not Ready", "users", woken)
}

// send wakes the User's reconciler, waiting while its queue catches up.
func (d *UserDrift) send(ctx context.Context, user *v1alpha1.User) error {
	ref := &v1alpha1.User{ObjectMeta: metav1.ObjectMeta{Namespace: user.Namespace, Name: user.Name}}
	select {
	case d.Events() <- event.GenericEvent{Object: ref}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// DriftMetrics counts the passes of UserDrift and what they found.
type DriftMetrics struct {
	passes   *prometheus.CounterVec
	found    *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewDriftMetrics registers the drift metrics with reg.
func newDriftMetrics(reg prometheus.Registerer) *DriftMetrics {
	m := &DriftMetrics{
		passes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "roster_drift_passes_total",
			Help: "Store-wide comparisons of the store's users with the Users, by whether the store listing completed.",
		}, []string{"store", "result"}),
		found: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "roster_drift_users_total",
			Help: "Users found by the store-wide comparison: differ and missing were woken for correction, unmanaged were left alone.",
		}, []string{"store", "finding"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "roster_drift_pass_duration_seconds",
			Help:    "How long a store-wide comparison took.",
			Buckets: prometheus.ExponentialBuckets(0.1, 4, 8),
		}, []string{"store"}),
	}
	reg.MustRegister(m.passes, m.found, m.duration)
	return m
}

func (m *DriftMetrics) observe(kind string, rep DriftReport, took time.Duration) {
	if m == nil {
		return
	}
	result := "complete"
	if !rep.Complete {
		result = "partial"
	}
	m.passes.WithLabelValues(kind, result).Inc()
	m.found.WithLabelValues(kind, "differ").Add(float64(rep.Differ))
	m.found.WithLabelValues(kind, "missing").Add(float64(rep.Missing))
	m.found.WithLabelValues(kind, "unmanaged").Add(float64(rep.Unmanaged))
	m.duration.WithLabelValues(kind).Observe(took.Seconds())
}

// Passes returns how many passes over the named store ended with the
// result ("complete" or "partial"), for tests.
func (m *DriftMetrics) Passes(storeName, result string) float64 {
	var out dto.Metric
	if err := m.passes.WithLabelValues(storeName, result).Write(&out); err != nil {
		return 0
	}
	return out.GetCounter().GetValue()
}
