package controllers

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"roster.dev/roster/internal/cachetrim"
	"roster.dev/roster/internal/eventrec"
	"roster.dev/roster/internal/invitation"
	"roster.dev/roster/internal/store"
	"roster.dev/roster/internal/stores"
	"roster.dev/roster/internal/web"
)

// CacheOptions is the manager's cache: fields no controller reads are
// dropped, which keeps it small at 100,000 Users, and of the cluster's
// Secrets only Roster's token records, in the operator's namespace, are
// held.
func CacheOptions(namespace string) cache.Options {
	return cache.Options{
		DefaultTransform: cachetrim.Transform,
		ByObject: map[client.Object]cache.ByObject{&corev1.Secret{}: {
			Namespaces: map[string]cache.Config{namespace: {}},
			Label:      invitation.SecretSelector(),
		}},
	}
}

// Deps are what the reconcilers get from outside the controllers: main
// builds them from its flags, the tests around real servers. Zero values
// take the defaults noted.
type Deps struct {
	// Namespace is the operator's own namespace: credential Secrets of
	// IdentityStores live there.
	Namespace string
	// DataDir holds the embedded stores' files.
	DataDir string
	// OpenStore opens the store of an IdentityStore; a stores.Opener reading
	// Secrets with the manager's API reader when nil.
	OpenStore StoreOpener
	// StoreMetrics counts store calls; registered with Registry when nil.
	StoreMetrics *store.Metrics
	// StoreCheckPeriod is how often each store is checked for reachability
	// and changed Secrets (a minute when zero).
	StoreCheckPeriod time.Duration
	// Clock tells the time; the real clock when nil.
	Clock clock.PassiveClock
	// Client, when set, replaces the manager's client for the reconcilers
	// (tests count API writes through it); reads still come from the cache.
	Client client.Client
	// Registry receives the controllers' metrics; controller-runtime's when
	// nil.
	Registry prometheus.Registerer

	// DefaultRole applies to Users that set no role.
	DefaultRole string
	// ResyncPeriod is the time between store-wide drift passes over Users
	// and between comparisons of each Group with its store group.
	ResyncPeriod time.Duration
	// UserConcurrency, GroupConcurrency and ImportConcurrency bound each
	// controller's workers; ImportWorkers bounds the rows of one import
	// applied at once. At least 1 each.
	UserConcurrency, GroupConcurrency, ImportConcurrency, ImportWorkers int
	// MaxStatusMembers caps a Group's status.members (MaxStatusMembers when
	// zero).
	MaxStatusMembers int

	// Invitations sends invitation and password reset emails; nil sends
	// none.
	Invitations *Invitations
	// ImportSource fetches import files. Its Reader defaults to the
	// manager's API reader and its TempDir to the system's; its other zero
	// values take the defaults SourceLoader notes (url sources refused,
	// public addresses only, two minutes per download, 1,000,000 rows).
	ImportSource SourceLoader
	// Pages, when set, serves the invitation and password pages on every
	// replica. Setup fills in its client, API reader and store.
	Pages *Pages

	// Only, when set, narrows the objects each controller reconciles, on
	// top of its own predicates; tests keep objects to themselves with it.
	Only predicate.Predicate
}

// Pages is where the web pages listen and how they behave.
type Pages struct {
	// Addr is the address to listen on, unless Listener is set.
	Addr     string
	Listener net.Listener
	Config   web.Config
}

// Reconcilers are the reconcilers Setup registered, and the stores they
// share.
type Reconcilers struct {
	Stores *stores.Registry
	Store  *IdentityStoreReconciler
	User   *UserReconciler
	Group  *GroupReconciler
	Import *UserImportReconciler
	Drift  *UserDrift
	Keys   *AccessKeyReconciler
}

// Setup registers every cache index and every reconciler of Roster with
// the manager, and the web pages when deps asks for them. main and every
// test suite build the manager through it, so that what is tested is what
// runs.
func Setup(mgr ctrl.Manager, deps Deps) (*Reconcilers, error) {
	ctx := context.Background()
	if deps.Namespace == "" {
		return nil, fmt.Errorf("setting up the controllers: no operator namespace")
	}
	if err := setupIndexes(ctx, mgr.GetFieldIndexer()); err != nil {
		return nil, fmt.Errorf("setting up cache indexes: %w", err)
	}
	emails, err := NewEmailIndex(ctx, mgr.GetCache())
	if err != nil {
		return nil, fmt.Errorf("setting up cache indexes: %w", err)
	}
	c := deps.Client
	if c == nil {
		c = mgr.GetClient()
	}
	if deps.Clock == nil {
		deps.Clock = clock.RealClock{}
	}
	if deps.Registry == nil {
		deps.Registry = metrics.Registry
	}
	if deps.OpenStore == nil {
		deps.OpenStore = &stores.Opener{Secrets: mgr.GetAPIReader(), Namespace: deps.Namespace, DataDir: deps.DataDir}
	}
	if deps.StoreMetrics == nil {
		deps.StoreMetrics = store.NewMetrics(deps.Registry)
	}
	if deps.StoreCheckPeriod <= 0 {
		deps.StoreCheckPeriod = time.Minute
	}
	recorder := eventrec.New(mgr.GetClient(), mgr.GetScheme(), "roster", mgr.GetLogger().WithName("events"), deps.Registry)
	if err := mgr.Add(recorder); err != nil {
		return nil, fmt.Errorf("setting up the event recorder: %w", err)
	}
	reg := stores.NewRegistry()
	r := &Reconcilers{
		Stores: reg,
		Store: &IdentityStoreReconciler{
			Client: c, Stores: reg, Opener: deps.OpenStore, Metrics: deps.StoreMetrics, Recorder: recorder,
			CheckPeriod: deps.StoreCheckPeriod, Elected: mgr.Elected(),
		},
		Drift: &UserDrift{
			Client: mgr.GetClient(), Emails: emails, Stores: reg, DefaultRole: deps.DefaultRole, Period: deps.ResyncPeriod,
			Metrics: newDriftMetrics(deps.Registry), Log: ctrl.Log.WithName("drift"),
		},
	}
	r.Store.Drift = r.Drift
	r.User = &UserReconciler{
		Client: c, Stores: reg, Recorder: recorder, Clock: deps.Clock, Namespace: deps.Namespace,
		DefaultRole: deps.DefaultRole, Invitations: deps.Invitations, Drift: r.Drift, Emails: emails,
		MaxConcurrentReconciles: deps.UserConcurrency, only: deps.Only,
	}
	r.Group = &GroupReconciler{
		Client: c, Stores: reg, Recorder: recorder,
		ResyncPeriod: deps.ResyncPeriod, MaxConcurrentReconciles: deps.GroupConcurrency,
		MaxStatusMembers: deps.MaxStatusMembers, only: deps.Only,
	}
	r.Store.Groups = r.Group
	source := deps.ImportSource
	if source.Reader == nil {
		source.Reader = mgr.GetAPIReader()
	}
	if source.TempDir == "" {
		source.TempDir = os.TempDir()
	}
	r.Import = &UserImportReconciler{
		Client: c, Stores: reg, Source: &source, DefaultRole: deps.DefaultRole, Recorder: recorder, Clock: deps.Clock,
		Workers: deps.ImportWorkers, MaxConcurrentReconciles: deps.ImportConcurrency, only: deps.Only,
		Backlog: r.User.Backlog, Emails: emails,
	}
	r.Keys = &AccessKeyReconciler{
		Client: c, APIReader: mgr.GetAPIReader(), Stores: reg, Recorder: recorder, Clock: deps.Clock,
		ResyncPeriod: deps.ResyncPeriod, only: deps.Only,
	}
	if source.AllowedHosts == nil {
		source.AllowedHosts = r.Import.importURLHosts
	}
	for name, setup := range map[string]func(ctrl.Manager) error{
		"IdentityStore": r.Store.SetupWithManager,
		"User":          r.User.SetupWithManager, "Group": r.Group.SetupWithManager, "UserImport": r.Import.SetupWithManager,
		"AccessKey": r.Keys.SetupWithManager,
	} {
		if err := setup(mgr); err != nil {
			return nil, fmt.Errorf("setting up the %s controller: %w", name, err)
		}
	}
	// Gauges of the objects' state, read from the cache at each scrape.
	if err := deps.Registry.Register(newStateCollector(mgr.GetClient(), deps.Clock)); err != nil {
		return nil, fmt.Errorf("registering the state gauges: %w", err)
	}
	if deps.Pages != nil {
		pages := *deps.Pages
		pages.Config.FindUsers = emails.byEmail
		pages.Config.Wake = r.Drift.wakeSoon
		if inv := deps.Invitations; inv != nil && pages.Config.Mail == nil {
			pages.Config.Mail = &web.Mailer{Templates: inv.Templates, Sender: inv.Sender}
		}
		if err := addPages(mgr, reg, deps.Namespace, pages); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// addPages serves the pages on every replica: a runnable that needs no
// leader, reading from the manager's cache.
func addPages(mgr ctrl.Manager, reg *stores.Registry, namespace string, p Pages) error {
	p.Config.Client, p.Config.APIReader, p.Config.Stores = mgr.GetClient(), mgr.GetAPIReader(), reg
	p.Config.Namespace = namespace
	pages, err := web.New(p.Config)
	if err != nil {
		return err
	}
	if err := mgr.Add(&web.Runnable{Addr: p.Addr, Listener: p.Listener, Handler: pages}); err != nil {
		return err
	}
	// The introspection credentials exist from the start, for an
	// administrator to hand to services; a failure (the API server not
	// answering yet, the namespace not there yet) is tried again.
	return mgr.Add(everyReplica(func(ctx context.Context) error {
		retry(ctx, time.Second, time.Minute, ctrl.Log.WithName("web"), "Creating the introspection client credentials",
			pages.EnsureIntrospectionCredentials)
		return nil
	}))
}

// retry calls fn until it succeeds or ctx ends, waiting first after the
// first failure and twice as long after each further one, at most most,
// and logs each failure with what.
func retry(ctx context.Context, first, most time.Duration, log logr.Logger, what string, fn func(context.Context) error) {
	wait := first
	for {
		err := fn(ctx)
		if err == nil {
			return
		}
		log.Error(err, what+"; trying again", "in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, most)
	}
}

// everyReplica is a runnable that needs no leader.
type everyReplica func(context.Context) error

func (f everyReplica) Start(ctx context.Context) error { return f(ctx) }
func (f everyReplica) NeedLeaderElection() bool        { return false }

// setupIndexes registers every field index the controllers and the web
// pages read. Each index is defined beside the watch mappings that use it.
func setupIndexes(ctx context.Context, indexer client.FieldIndexer) error {
	indexes := membershipIndexes()
	indexes = append(indexes, externalIDIndexes()...)
	indexes = append(indexes, storeRefIndexes()...)
	indexes = append(indexes, accessKeyIndexes()...)
	for _, ix := range indexes {
		if err := indexer.IndexField(ctx, ix.obj, ix.field, ix.fn); err != nil {
			return fmt.Errorf("indexing %s: %w", ix.field, err)
		}
	}
	return nil
}

// fieldIndex is one field index of the manager's cache.
type fieldIndex struct {
	obj   client.Object
	field string
	fn    client.IndexerFunc
}

// forPredicates adds only to a controller's own predicates.
func forPredicates(only predicate.Predicate, own ...predicate.Predicate) []predicate.Predicate {
	if only != nil {
		own = append(own, only)
	}
	return own
}
