package store

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/time/rate"
)

// Metrics counts store calls, their latency and their errors by store (the
// IdentityStore's name) and operation. Register it once with the manager's registry.
type Metrics struct {
	calls    *prometheus.CounterVec
	errors   *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewMetrics returns store metrics registered with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "roster_store_calls_total",
			Help: "Calls to the identity store by store and operation.",
		}, []string{"store", "operation"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "roster_store_errors_total",
			Help: "Failed calls to the identity store by store and operation (not-found answers are not failures).",
		}, []string{"store", "operation"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "roster_store_call_duration_seconds",
			Help:    "Latency of identity store calls by store and operation.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"store", "operation"}),
	}
	if reg != nil {
		reg.MustRegister(m.calls, m.errors, m.duration)
	}
	return m
}

// Calls returns how many calls to the operation were made, for tests.
func (m *Metrics) Calls(store, operation string) float64 {
	return counterValue(m.calls.WithLabelValues(store, operation))
}

// Operation names used in metrics.
const (
	OpGetUser         = "GetUser"
	OpFindUserByEmail = "FindUserByEmail"
	OpCreateUser      = "CreateUser"
	OpUpdateUser      = "UpdateUser"
	OpDeleteUser      = "DeleteUser"
	OpSetPassword     = "SetPassword"
	OpListUsers       = "ListUsers"
	OpAuthenticate    = "Authenticate"

	OpGetGroup           = "GetGroup"
	OpFindGroupByName    = "FindGroupByName"
	OpCreateGroup        = "CreateGroup"
	OpUpdateGroup        = "UpdateGroup"
	OpListGroupMembers   = "ListGroupMembers"
	OpUpdateGroupMembers = "UpdateGroupMembers"
	OpDeleteGroup        = "DeleteGroup"
)

// WriteOperations are the operations that change the store.
var WriteOperations = []string{
	OpCreateUser, OpUpdateUser, OpDeleteUser, OpSetPassword,
	OpCreateGroup, OpUpdateGroup, OpUpdateGroupMembers, OpDeleteGroup,
}

// Instrument wraps s so that every call is rate limited by limiter (nil for
// no limit) and counted in m under the store's name.
func Instrument(name string, s Store, m *Metrics, limiter *rate.Limiter) Store {
	return &instrumented{Store: s, name: name, m: m, limiter: limiter}
}

type instrumented struct {
	Store
	name    string
	m       *Metrics
	limiter *rate.Limiter
}

func (i *instrumented) observe(ctx context.Context, op string, call func() error) error {
	if i.limiter != nil {
		if err := i.limiter.Wait(ctx); err != nil {
			return err
		}
	}
	start := time.Now()
	err := call()
	i.m.calls.WithLabelValues(i.name, op).Inc()
	i.m.duration.WithLabelValues(i.name, op).Observe(time.Since(start).Seconds())
	if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrInvalidCredentials) {
		i.m.errors.WithLabelValues(i.name, op).Inc()
	}
	return err
}

func (i *instrumented) GetUser(ctx context.Context, id string) (u User, err error) {
	err = i.observe(ctx, OpGetUser, func() error { u, err = i.Store.GetUser(ctx, id); return err })
	return u, err
}

func (i *instrumented) FindUserByEmail(ctx context.Context, email string) (u User, err error) {
	err = i.observe(ctx, OpFindUserByEmail, func() error { u, err = i.Store.FindUserByEmail(ctx, email); return err })
	return u, err
}

func (i *instrumented) CreateUser(ctx context.Context, user User) (u User, err error) {
	err = i.observe(ctx, OpCreateUser, func() error { u, err = i.Store.CreateUser(ctx, user); return err })
	return u, err
}

func (i *instrumented) UpdateUser(ctx context.Context, id string, update UserUpdate) (u User, err error) {
	err = i.observe(ctx, OpUpdateUser, func() error { u, err = i.Store.UpdateUser(ctx, id, update); return err })
	return u, err
}

func (i *instrumented) DeleteUser(ctx context.Context, id string) error {
	return i.observe(ctx, OpDeleteUser, func() error { return i.Store.DeleteUser(ctx, id) })
}

func (i *instrumented) SetPassword(ctx context.Context, id, password string) error {
	return i.observe(ctx, OpSetPassword, func() error { return i.Store.SetPassword(ctx, id, password) })
}

// ListUsers counts a listing as one call and rate limits each page's request.
func (i *instrumented) ListUsers(ctx context.Context, page func([]User) error) error {
	return i.observe(ctx, OpListUsers, func() error {
		return i.Store.ListUsers(ctx, func(users []User) error {
			if err := page(users); err != nil {
				return err
			}
			if i.limiter != nil {
				return i.limiter.Wait(ctx)
			}
			return nil
		})
	})
}

func (i *instrumented) GetGroup(ctx context.Context, id string) (g Group, err error) {
	err = i.observe(ctx, OpGetGroup, func() error { g, err = i.Store.GetGroup(ctx, id); return err })
	return g, err
}

func (i *instrumented) FindGroupByName(ctx context.Context, name string) (g Group, err error) {
	err = i.observe(ctx, OpFindGroupByName, func() error { g, err = i.Store.FindGroupByName(ctx, name); return err })
	return g, err
}

func (i *instrumented) CreateGroup(ctx context.Context, group Group, members []string) (g Group, err error) {
	err = i.observe(ctx, OpCreateGroup, func() error { g, err = i.Store.CreateGroup(ctx, group, members); return err })
	return g, err
}

func (i *instrumented) UpdateGroup(ctx context.Context, id string, update GroupUpdate) (g Group, err error) {
	err = i.observe(ctx, OpUpdateGroup, func() error { g, err = i.Store.UpdateGroup(ctx, id, update); return err })
	return g, err
}

func (i *instrumented) ListGroupMembers(ctx context.Context, id string) (ids []string, err error) {
	err = i.observe(ctx, OpListGroupMembers, func() error { ids, err = i.Store.ListGroupMembers(ctx, id); return err })
	return ids, err
}

func (i *instrumented) UpdateGroupMembers(ctx context.Context, id string, diff MemberDiff) error {
	return i.observe(ctx, OpUpdateGroupMembers, func() error { return i.Store.UpdateGroupMembers(ctx, id, diff) })
}

func (i *instrumented) DeleteGroup(ctx context.Context, id string) error {
	return i.observe(ctx, OpDeleteGroup, func() error { return i.Store.DeleteGroup(ctx, id) })
}

type instrumentedAuthenticator struct {
	i     *instrumented
	inner Authenticator
}

// Authenticate counts the check; a refused password is an answer, not a
// failure of the store.
func (a instrumentedAuthenticator) Authenticate(ctx context.Context, email, password string) (u User, err error) {
	err = a.i.observe(ctx, OpAuthenticate, func() error { u, err = a.inner.Authenticate(ctx, email, password); return err })
	return u, err
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return 0
	}
	return m.GetCounter().GetValue()
}
