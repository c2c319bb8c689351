// Command manager runs the Roster operator: it reconciles Users, Groups and
// UserImports into an identity store.
package main

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	_ "time/tzdata" // IANA time zones for validating spec.timeZone in a minimal image.

	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/controllers"
	"roster.dev/roster/internal/store"
	"roster.dev/roster/internal/store/embedded"
)

// options are the manager's flags. They are part of the product contract.
type options struct {
	storeKind        string
	storeConfig      string
	dataDir          string
	outboxDir        string
	publicURL        string
	webBindAddress   string
	metricsAddress   string
	probeAddress     string
	leaderElect      bool
	defaultRole      string
	resyncPeriod     time.Duration
	userConcurrency  int
	groupConcurrency int
	storeQPS         float64
	storeBurst       int
	kubeAPIQPS       float64
	kubeAPIBurst     int
	zap              zap.Options
}

func parseFlags(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("roster", flag.ContinueOnError)
	fs.StringVar(&o.storeKind, "store", embedded.Kind, "identity store: embedded, ldap or scim")
	fs.StringVar(&o.storeConfig, "store-config", "", "YAML file configuring the ldap or scim store")
	fs.StringVar(&o.dataDir, "data-dir", "/var/lib/roster", "folder of the embedded store (and the outbox's default parent)")
	fs.StringVar(&o.outboxDir, "outbox-dir", "", "folder where messages are written as .eml files when no SMTP server is configured (default <data-dir>/outbox)")
	fs.StringVar(&o.publicURL, "public-url", "http://localhost:8082", "base URL that links in emails start with")
	fs.StringVar(&o.webBindAddress, "web-bind-address", ":8082", "address the invitation and password pages listen on")
	fs.StringVar(&o.metricsAddress, "metrics-bind-address", ":8080", "address the metrics endpoint listens on; 0 turns metrics off")
	fs.StringVar(&o.probeAddress, "health-probe-bind-address", ":8081", "address the health and readiness probes listen on")
	fs.BoolVar(&o.leaderElect, "leader-elect", false, "elect a leader so that only one replica reconciles at a time")
	fs.StringVar(&o.defaultRole, "default-role", "Member", "role of Users that set none; keep it the least privileged role")
	fs.DurationVar(&o.resyncPeriod, "resync-period", 10*time.Minute, "how often unchanged objects are compared with the store (jittered by up to 10%)")
	fs.IntVar(&o.userConcurrency, "user-concurrency", 8, "Users reconciled at once")
	fs.IntVar(&o.groupConcurrency, "group-concurrency", 2, "Groups reconciled at once")
	fs.Float64Var(&o.storeQPS, "store-qps", 0, "store calls per second, across all controllers; 0 for no limit")
	fs.IntVar(&o.storeBurst, "store-burst", 20, "store calls allowed in a burst above --store-qps")
	fs.Float64Var(&o.kubeAPIQPS, "kube-api-qps", 100, "requests per second to the Kubernetes API before client-side throttling")
	fs.IntVar(&o.kubeAPIBurst, "kube-api-burst", 200, "requests to the Kubernetes API allowed in a burst")
	o.zap = zap.Options{Development: false}
	o.zap.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	return o, o.validate()
}

func (o *options) validate() error {
	switch o.storeKind {
	case embedded.Kind:
	case "ldap", "scim":
		if o.storeConfig == "" {
			return fmt.Errorf("--store=%s needs --store-config", o.storeKind)
		}
	default:
		return fmt.Errorf("--store: unknown store %q (want embedded, ldap or scim)", o.storeKind)
	}
	if o.outboxDir == "" {
		o.outboxDir = filepath.Join(o.dataDir, "outbox")
	}
	u, err := url.Parse(o.publicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--public-url: %q is not an http or https URL", o.publicURL)
	}
	if o.resyncPeriod < time.Minute {
		return fmt.Errorf("--resync-period: %s is shorter than the minimum of 1m", o.resyncPeriod)
	}
	if o.userConcurrency < 1 {
		return fmt.Errorf("--user-concurrency: must be at least 1, got %d", o.userConcurrency)
	}
	if o.groupConcurrency < 1 {
		return fmt.Errorf("--group-concurrency: must be at least 1, got %d", o.groupConcurrency)
	}
	if o.storeQPS < 0 || o.storeBurst < 1 {
		return fmt.Errorf("--store-qps must not be negative and --store-burst must be at least 1")
	}
	return nil
}

// openStore builds the store the flags ask for.
func openStore(o *options) (store.Store, error) {
	switch o.storeKind {
	case embedded.Kind:
		return embedded.Open(o.dataDir)
	default:
		if _, err := os.Stat(o.storeConfig); err != nil {
			return nil, fmt.Errorf("--store-config: %w", err)
		}
		return nil, fmt.Errorf("--store=%s is not available in this version of Roster", o.storeKind)
	}
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "roster: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&o.zap)))
	setupLog := ctrl.Log.WithName("setup")

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return err
	}

	backend, err := openStore(o)
	if err != nil {
		return fmt.Errorf("opening the %s store: %w", o.storeKind, err)
	}
	defer func() { _ = backend.Close() }()
	var limiter *rate.Limiter
	if o.storeQPS > 0 {
		limiter = rate.NewLimiter(rate.Limit(o.storeQPS), o.storeBurst)
	}
	st := store.Instrument(backend, store.NewMetrics(metrics.Registry), limiter)

	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	cfg.QPS, cfg.Burst = float32(o.kubeAPIQPS), o.kubeAPIBurst
	cfg.UserAgent = "roster-manager"

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: o.metricsAddress},
		HealthProbeBindAddress: o.probeAddress,
		LeaderElection:         o.leaderElect,
		LeaderElectionID:       "roster.iam.roster.dev",
		Cache: cache.Options{
			// managedFields are never read; dropping them keeps the cache
			// small at 100,000 Users.
			DefaultTransform: cache.TransformStripManagedFields(),
		},
	})
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}

	if err := (&controllers.UserReconciler{
		Client:                  mgr.GetClient(),
		Store:                   st,
		Recorder:                mgr.GetEventRecorder("roster"),
		Clock:                   clock.RealClock{},
		DefaultRole:             o.defaultRole,
		ResyncPeriod:            o.resyncPeriod,
		MaxConcurrentReconciles: o.userConcurrency,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the User controller: %w", err)
	}
	// The Group controller also registers the indexes the User controller
	// reads to show each User's groups.
	if err := (&controllers.GroupReconciler{
		Client:                  mgr.GetClient(),
		Store:                   st,
		Recorder:                mgr.GetEventRecorder("roster"),
		ResyncPeriod:            o.resyncPeriod,
		MaxConcurrentReconciles: o.groupConcurrency,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the Group controller: %w", err)
	}

	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}

	setupLog.Info("Starting manager", "store", o.storeKind, "dataDir", o.dataDir)
	return mgr.Start(ctrl.SetupSignalHandler())
}
