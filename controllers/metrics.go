package controllers

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"roster.dev/roster/api/v1alpha1"
)

// stateCollector reports gauges for dashboards and alerts, computed from
// the manager's cache at each scrape: Users by namespace and phase, objects
// not Ready by kind and reason, and invitations outstanding or expired. No
// series is kept per User, so a scrape costs one pass over the cache and
// the series stay few at 100,000 Users.
type stateCollector struct {
	reader client.Reader
	clock  clock.PassiveClock

	users       *prometheus.Desc
	notReady    *prometheus.Desc
	invitations *prometheus.Desc
}

func newStateCollector(reader client.Reader, clk clock.PassiveClock) *stateCollector {
	return &stateCollector{
		reader: reader, clock: clk,
		users: prometheus.NewDesc("roster_users",
			"Users by namespace and phase (Pending, Invited, Active, Inactive).", []string{"namespace", "phase"}, nil),
		notReady: prometheus.NewDesc("roster_objects_not_ready",
			"Roster objects whose Ready condition is not True, by kind and reason.", []string{"kind", "reason"}, nil),
		invitations: prometheus.NewDesc("roster_invitations",
			"Invitations by state: pending (sent, not yet accepted, not expired) or expired.", []string{"state"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.users
	ch <- c.notReady
	ch <- c.invitations
}

// Collect implements prometheus.Collector. A cache that cannot be read
// (not started yet) reports nothing rather than zeros.
func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var users v1alpha1.UserList
	if err := c.reader.List(ctx, &users, client.UnsafeDisableDeepCopy); err != nil {
		ctrl.Log.WithName("metrics").V(1).Info("Cannot read Users for the state gauges", "error", err.Error())
		return
	}
	type nsPhase struct{ ns, phase string }
	phases := map[nsPhase]int{}
	notReady := map[[2]string]int{}
	pending, expired := 0, 0
	now := c.clock.Now()
	for i := range users.Items {
		u := &users.Items[i]
		phase := string(u.Status.Phase)
		if phase == "" {
			phase = string(v1alpha1.UserPending)
		}
		phases[nsPhase{u.Namespace, phase}]++
		countNotReady(notReady, "User", u.Status.Conditions)
		if inv := u.Status.Invitation; inv != nil && inv.SentAt != nil && inv.AcceptedAt == nil && u.Status.Phase == v1alpha1.UserInvited {
			if inv.ExpiresAt != nil && !now.Before(inv.ExpiresAt.Time) {
				expired++
			} else {
				pending++
			}
		}
	}
	for key, n := range phases {
		ch <- prometheus.MustNewConstMetric(c.users, prometheus.GaugeValue, float64(n), key.ns, key.phase)
	}
	c.collectNotReady(ctx, notReady)
	for key, n := range notReady {
		ch <- prometheus.MustNewConstMetric(c.notReady, prometheus.GaugeValue, float64(n), key[0], key[1])
	}
	ch <- prometheus.MustNewConstMetric(c.invitations, prometheus.GaugeValue, float64(pending), "pending")
	ch <- prometheus.MustNewConstMetric(c.invitations, prometheus.GaugeValue, float64(expired), "expired")
}

// collectNotReady counts the other kinds' objects that are not Ready.
func (c *stateCollector) collectNotReady(ctx context.Context, into map[[2]string]int) {
	var groups v1alpha1.GroupList
	if c.reader.List(ctx, &groups, client.UnsafeDisableDeepCopy) == nil {
		for i := range groups.Items {
			countNotReady(into, "Group", groups.Items[i].Status.Conditions)
		}
	}
	var imports v1alpha1.UserImportList
	if c.reader.List(ctx, &imports, client.UnsafeDisableDeepCopy) == nil {
		for i := range imports.Items {
			countNotReady(into, "UserImport", imports.Items[i].Status.Conditions)
		}
	}
	var keys v1alpha1.AccessKeyList
	if c.reader.List(ctx, &keys, client.UnsafeDisableDeepCopy) == nil {
		for i := range keys.Items {
			countNotReady(into, "AccessKey", keys.Items[i].Status.Conditions)
		}
	}
	var idStores v1alpha1.IdentityStoreList
	if c.reader.List(ctx, &idStores, client.UnsafeDisableDeepCopy) == nil {
		for i := range idStores.Items {
			countNotReady(into, "IdentityStore", idStores.Items[i].Status.Conditions)
		}
	}
}

// countNotReady counts an object whose Ready condition is not True, by its
// reason ("Unknown" while it has none yet).
func countNotReady(into map[[2]string]int, kind string, conds []metav1.Condition) {
	ready := meta.FindStatusCondition(conds, v1alpha1.ConditionReady)
	switch {
	case ready == nil:
		into[[2]string{kind, "Unknown"}]++
	case ready.Status != metav1.ConditionTrue:
		into[[2]string{kind, ready.Reason}]++
	}
}
