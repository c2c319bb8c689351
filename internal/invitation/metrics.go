package invitation

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Metrics counts invitations sent, accepted and expired, and password resets
// sent and completed. A nil *Metrics counts nothing.
type Metrics struct {
	sent      *prometheus.CounterVec
	completed *prometheus.CounterVec
	expired   prometheus.Counter
}

// NewMetrics returns the metrics registered with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "roster_links_sent_total",
			Help: "Emails with a single-use link handed to the mail server or outbox, by purpose (invitation or reset).",
		}, []string{"purpose"}),
		completed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "roster_links_completed_total",
			Help: "Single-use links with which a person chose a password the store accepted, by purpose: accepted invitations and completed resets.",
		}, []string{"purpose"}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "roster_invitations_expired_total",
			Help: "Invitations seen to expire before they were accepted.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.sent, m.completed, m.expired)
	}
	return m
}

// Sent counts an email sent.
func (m *Metrics) Sent(p Purpose) {
	if m != nil {
		m.sent.WithLabelValues(string(p)).Inc()
	}
}

// Completed counts a link used to set a password.
func (m *Metrics) Completed(p Purpose) {
	if m != nil {
		m.completed.WithLabelValues(string(p)).Inc()
	}
}

// Expired counts an invitation that expired.
func (m *Metrics) Expired() {
	if m != nil {
		m.expired.Inc()
	}
}

// SentCount returns how many emails of the purpose were sent, for tests.
func (m *Metrics) SentCount(p Purpose) float64 {
	var d dto.Metric
	if m == nil || m.sent.WithLabelValues(string(p)).Write(&d) != nil {
		return 0
	}
	return d.GetCounter().GetValue()
}
