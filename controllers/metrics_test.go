package controllers_test

import (
	"testing"

	. "github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/controllers/controllerstest"
)

// gauge returns the value of the series of name whose labels include want,
// or -1 when there is none.
func gauge(g Gomega, name string, want map[string]string) float64 {
	families, err := registry.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if hasLabels(m, want) {
				return m.GetGauge().GetValue()
			}
		}
	}
	return -1
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	got := map[string]string{}
	for _, l := range m.GetLabel() {
		got[l.GetName()] = l.GetValue()
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// The state gauges count Users by namespace and phase, and the objects not
// Ready by kind and reason, from the cache.
func TestStateGauges(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	names := controllerstest.CreateUsers(t, k8s, ns, "counted", 3)
	for _, name := range names {
		waitFor(t, ns, name, hasPhase(v1alpha1.UserInvited))
	}
	dup := newUser(ns, "second", "counted-00@"+ns+".example.com")
	g.Expect(k8s.Create(t.Context(), dup)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(gauge(g, "roster_users", map[string]string{"namespace": ns, "phase": "Invited"})).To(BeEquivalentTo(3))
		g.Expect(gauge(g, "roster_users", map[string]string{"namespace": ns, "phase": "Pending"})).To(BeEquivalentTo(1))
		g.Expect(gauge(g, "roster_objects_not_ready", map[string]string{"kind": "User", "reason": "DuplicateEmail"})).To(BeNumerically(">=", 1))
		g.Expect(gauge(g, "roster_invitations", map[string]string{"state": "pending"})).To(BeNumerically(">=", 3))
	}, timeout, tick).Should(Succeed())
}
