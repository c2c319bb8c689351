// Command manager runs the Roster operator: it reconciles Users, Groups and
// UserImports into an identity store.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net/http"
	netmail "net/mail"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	_ "time/tzdata" // IANA time zones for validating spec.timeZone in a minimal image.

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/controllers"
	"roster.dev/roster/internal/invitation"
	"roster.dev/roster/internal/mail"
	"roster.dev/roster/internal/password"
	"roster.dev/roster/internal/web"
)

// options are the manager's flags. They are part of the product contract.
type options struct {
	kubeconfig       string
	namespace        string
	dataDir          string
	outboxDir        string
	publicURL        string
	webBindAddress   string
	metricsAddress   string
	metricsSecure    bool
	probeAddress     string
	pprofAddress     string
	leaderElect      bool
	leaseDuration    time.Duration
	renewDeadline    time.Duration
	retryPeriod      time.Duration
	defaultRole      string
	resyncPeriod     time.Duration
	userConcurrency  int
	groupConcurrency int
	storeCheck       time.Duration
	kubeAPIQPS       float64
	kubeAPIBurst     int
	importMaxBytes   int64
	importWorkers    int
	importParallel   int

	smtpURL           string
	smtpPasswordFile  string
	smtpPasswordEnv   string
	smtpCAFile        string
	mailFrom          string
	productName       string
	mailTemplatesDir  string
	invitationTTL     time.Duration
	resetTTL          time.Duration
	passwordMinLength int
	passwordRequire   string
	webSubmissions    int
	linksPerHour      int
	webClientIPHeader string

	// Derived by validate.
	publicURLParsed *url.URL
	policy          password.Policy
	from            *netmail.Address

	zap zap.Options
}

func parseFlags(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("roster", flag.ContinueOnError)
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, ~/.kube/config or the in-cluster service account)")
	fs.StringVar(&o.namespace, "namespace", defaultNamespace(), "the operator's own namespace, where store credentials, token records, session keys and the leader-election Lease live (default $POD_NAMESPACE, else roster-system)")
	fs.StringVar(&o.dataDir, "data-dir", "/var/lib/roster", "folder of the embedded store (and the outbox's default parent)")
	fs.StringVar(&o.outboxDir, "outbox-dir", "", "folder where messages are written as .eml files when no SMTP server is configured (default <data-dir>/outbox)")
	fs.StringVar(&o.publicURL, "public-url", "http://localhost:8082", "base URL that links in emails start with")
	fs.StringVar(&o.webBindAddress, "web-bind-address", ":8082", "address the invitation, password and account pages listen on")
	fs.StringVar(&o.metricsAddress, "metrics-bind-address", ":8443", "address the metrics endpoint listens on; 0 turns metrics off")
	fs.BoolVar(&o.metricsSecure, "metrics-secure", true, "serve metrics over HTTPS to clients the Kubernetes API authenticates and authorizes (get on /metrics); false serves plain HTTP to anyone, for local runs")
	fs.StringVar(&o.probeAddress, "health-probe-bind-address", ":8081", "address the health and readiness probes listen on")
	fs.StringVar(&o.pprofAddress, "pprof-bind-address", "0", "address of the Go profiling endpoint (/debug/pprof); 0 turns it off")
	fs.BoolVar(&o.leaderElect, "leader-elect", false, "elect a leader so that only one replica reconciles at a time")
	fs.DurationVar(&o.leaseDuration, "leader-elect-lease-duration", 15*time.Second, "how long a standby waits after the leader's last renewal before taking the lease: the longest a dead leader leaves the controllers idle")
	fs.DurationVar(&o.renewDeadline, "leader-elect-renew-deadline", 10*time.Second, "how long the leader keeps trying to renew the lease before it stops leading and exits; shorter than the lease duration")
	fs.DurationVar(&o.retryPeriod, "leader-elect-retry-period", 2*time.Second, "how often the leader renews the lease and a standby tries to take it; shorter than the renew deadline")
	fs.StringVar(&o.defaultRole, "default-role", "Member", "role of Users that set none; keep it the least privileged role")
	fs.DurationVar(&o.resyncPeriod, "resync-period", 10*time.Minute, "how often the store is compared with the Users (one paged listing) and each Group with its store group (jittered by up to 10%)")
	fs.IntVar(&o.userConcurrency, "user-concurrency", 8, "Users reconciled at once")
	fs.IntVar(&o.groupConcurrency, "group-concurrency", 2, "Groups reconciled at once")
	fs.DurationVar(&o.storeCheck, "store-check-period", time.Minute, "how often each IdentityStore's store is checked for reachability and its Secrets for changes")
	fs.Float64Var(&o.kubeAPIQPS, "kube-api-qps", 500, "requests per second to the Kubernetes API before client-side throttling (the API server's priority and fairness still applies)")
	fs.IntVar(&o.kubeAPIBurst, "kube-api-burst", 1000, "requests to the Kubernetes API allowed in a burst")
	fs.Int64Var(&o.importMaxBytes, "import-max-bytes", 64<<20, "largest import file accepted, before and after decompression")
	fs.IntVar(&o.importWorkers, "import-workers", 16, "rows of one import applied at once")
	fs.IntVar(&o.importParallel, "import-concurrency", 2, "imports run at once")
	fs.StringVar(&o.smtpURL, "smtp-url", "", "SMTP server: smtp://[user@]host[:587] (STARTTLS) or smtps://[user@]host[:465] (TLS); without it, messages go to --outbox-dir")
	fs.StringVar(&o.smtpPasswordFile, "smtp-password-file", "", "file holding the SMTP user's password (for example a mounted Secret)")
	fs.StringVar(&o.smtpPasswordEnv, "smtp-password-env", "", "environment variable holding the SMTP user's password")
	fs.StringVar(&o.smtpCAFile, "smtp-ca-file", "", "PEM bundle of CAs trusted, besides the system's, for the SMTP server's certificate")
	fs.StringVar(&o.mailFrom, "mail-from", "Roster <roster@localhost>", "sender of invitation and password reset emails")
	fs.StringVar(&o.productName, "product-name", "Roster", "the platform's name, used in emails and on the password pages")
	fs.StringVar(&o.mailTemplatesDir, "mail-templates-dir", "", "folder of email templates replacing the built-in ones file by file (see docs/invitations.md)")
	fs.DurationVar(&o.invitationTTL, "invitation-ttl", 7*24*time.Hour, "how long an invitation link works")
	fs.DurationVar(&o.resetTTL, "password-reset-ttl", time.Hour, "how long a password reset link works")
	fs.IntVar(&o.passwordMinLength, "password-min-length", 10, "password policy: minimum number of characters")
	fs.StringVar(&o.passwordRequire, "password-require", "lower,upper,digit,special", "password policy: character classes a password must contain (lower, upper, digit, special; none for none)")
	fs.IntVar(&o.linksPerHour, "link-requests-per-hour", 5, "emails of one kind (invitation, password reset) per User and hour beyond which a request annotation waits for the hour to end; 0 for no limit")
	fs.IntVar(&o.webSubmissions, "web-submissions-per-minute", 10, "password forms one client address may submit per minute")
	fs.StringVar(&o.webClientIPHeader, "web-client-ip-header", "", "header a trusted proxy sets to the client's address (such as X-Forwarded-For); empty uses the connection's address")
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
	if errs := validation.IsDNS1123Label(o.namespace); len(errs) > 0 {
		return fmt.Errorf("--namespace: %q is not a namespace name: %s", o.namespace, strings.Join(errs, "; "))
	}
	if o.outboxDir == "" {
		o.outboxDir = filepath.Join(o.dataDir, "outbox")
	}
	u, err := url.Parse(o.publicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--public-url: %q is not an http or https URL", o.publicURL)
	}
	o.publicURLParsed = u
	if o.resyncPeriod < time.Minute {
		return fmt.Errorf("--resync-period: %s is shorter than the minimum of 1m", o.resyncPeriod)
	}
	if o.userConcurrency < 1 {
		return fmt.Errorf("--user-concurrency: must be at least 1, got %d", o.userConcurrency)
	}
	if o.importMaxBytes < 1 || o.importWorkers < 1 || o.importParallel < 1 {
		return fmt.Errorf("--import-max-bytes, --import-workers and --import-concurrency must be at least 1")
	}
	if o.groupConcurrency < 1 {
		return fmt.Errorf("--group-concurrency: must be at least 1, got %d", o.groupConcurrency)
	}
	if o.retryPeriod <= 0 || o.retryPeriod >= o.renewDeadline || o.renewDeadline >= o.leaseDuration {
		return fmt.Errorf("--leader-elect-retry-period (%s) < --leader-elect-renew-deadline (%s) < --leader-elect-lease-duration (%s) must hold",
			o.retryPeriod, o.renewDeadline, o.leaseDuration)
	}
	if o.storeCheck < time.Second {
		return fmt.Errorf("--store-check-period: %s is shorter than the minimum of 1s", o.storeCheck)
	}
	return o.validateMail()
}

// validateMail checks the flags of emails and the password pages.
func (o *options) validateMail() error {
	var err error
	if o.from, err = mail.ParseFrom(o.mailFrom); err != nil {
		return fmt.Errorf("--mail-from: %w", err)
	}
	if o.smtpURL != "" {
		u, _, err := mail.ParseSMTPURL(o.smtpURL)
		if err != nil {
			return fmt.Errorf("--smtp-url: %w", err)
		}
		if u.User.Username() != "" && o.smtpPasswordFile == "" && o.smtpPasswordEnv == "" {
			return fmt.Errorf("--smtp-url names a user: give the password with --smtp-password-file or --smtp-password-env")
		}
	}
	if o.smtpPasswordFile != "" && o.smtpPasswordEnv != "" {
		return fmt.Errorf("--smtp-password-file and --smtp-password-env: give one, not both")
	}
	if o.smtpCAFile != "" && o.smtpURL == "" {
		return fmt.Errorf("--smtp-ca-file is given but --smtp-url is not")
	}
	if (o.smtpPasswordFile != "" || o.smtpPasswordEnv != "") && o.smtpURL == "" {
		return fmt.Errorf("an SMTP password is given but --smtp-url is not")
	}
	if o.invitationTTL < time.Minute || o.resetTTL < time.Minute {
		return fmt.Errorf("--invitation-ttl and --password-reset-ttl must be at least 1m")
	}
	if o.policy, err = password.Parse(o.passwordMinLength, o.passwordRequire); err != nil {
		return fmt.Errorf("--password-min-length/--password-require: %w", err)
	}
	if o.linksPerHour < 0 {
		return fmt.Errorf("--link-requests-per-hour: must not be negative, got %d", o.linksPerHour)
	}
	if o.webSubmissions < 1 {
		return fmt.Errorf("--web-submissions-per-minute: must be at least 1, got %d", o.webSubmissions)
	}
	if strings.TrimSpace(o.productName) == "" {
		return fmt.Errorf("--product-name: must not be empty")
	}
	return nil
}

// smtpPassword reads the SMTP password from where the flags say. It is
// never a flag's value: flags show in process lists and manifests.
func (o *options) smtpPassword() (string, error) {
	switch {
	case o.smtpPasswordFile != "":
		b, err := os.ReadFile(o.smtpPasswordFile)
		if err != nil {
			return "", fmt.Errorf("--smtp-password-file: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	case o.smtpPasswordEnv != "":
		v, ok := os.LookupEnv(o.smtpPasswordEnv)
		if !ok || v == "" {
			return "", fmt.Errorf("--smtp-password-env: %s is not set", o.smtpPasswordEnv)
		}
		return v, nil
	}
	return "", nil
}

// mailSender is SMTP when --smtp-url is set, else the outbox.
func (o *options) mailSender() (mail.Sender, string, error) {
	if o.smtpURL == "" {
		box, err := mail.NewOutbox(o.outboxDir, o.from)
		if err != nil {
			return nil, "", err
		}
		return box, "outbox " + box.Dir(), nil
	}
	pw, err := o.smtpPassword()
	if err != nil {
		return nil, "", err
	}
	s, err := mail.NewSMTP(mail.SMTPConfig{URL: o.smtpURL, Password: pw, From: o.from, CAFile: o.smtpCAFile})
	if err != nil {
		return nil, "", fmt.Errorf("--smtp-url: %w", err)
	}
	u, _, _ := mail.ParseSMTPURL(o.smtpURL)
	return s, "SMTP server " + u.Host, nil
}

// restConfig loads the kubeconfig the flag names, or finds one the usual way.
func restConfig(path string) (*rest.Config, error) {
	if path != "" {
		return clientcmd.BuildConfigFromFlags("", path)
	}
	return ctrl.GetConfig()
}

// defaultNamespace is the operator's namespace when --namespace is not
// given: the pod's, else roster-system.
func defaultNamespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	return "roster-system"
}

// invitations builds what the User controller needs to email links.
func (o *options) invitations() (*controllers.Invitations, error) {
	templates, err := mail.LoadTemplates(o.mailTemplatesDir)
	if err != nil {
		return nil, fmt.Errorf("--mail-templates-dir: %w", err)
	}
	sender, where, err := o.mailSender()
	if err != nil {
		return nil, err
	}
	ctrl.Log.WithName("setup").Info("Emails go to the " + where)
	return &controllers.Invitations{
		Templates: templates, Sender: sender, PublicURL: o.publicURLParsed, ProductName: o.productName,
		InvitationTTL: o.invitationTTL, ResetTTL: o.resetTTL, Metrics: invitation.NewMetrics(metrics.Registry),
		RequestsPerHour: int32(o.linksPerHour),
	}, nil
}

// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// metricsServer serves /metrics as kubebuilder scaffolds it: over HTTPS,
// to callers whose bearer token the API server accepts (a TokenReview) and
// who may get the non-resource URL /metrics (a SubjectAccessReview; the
// roster-metrics-reader ClusterRole grants it), with a self-signed
// certificate made at start. --metrics-secure=false serves plain HTTP
// without either check, for a manager on a workstation.
func (o *options) metricsServer() metricsserver.Options {
	if !o.metricsSecure {
		return metricsserver.Options{BindAddress: o.metricsAddress}
	}
	return metricsserver.Options{
		BindAddress:    o.metricsAddress,
		SecureServing:  true,
		FilterProvider: filters.WithAuthenticationAndAuthorization,
		// HTTP/1.1 only: a scraper needs nothing more, and it keeps the
		// endpoint out of reach of HTTP/2 stream floods (CVE-2023-44487,
		// CVE-2023-39325).
		TLSOpts: []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }},
	}
}

// pages serves the invitation and password pages on every replica;
// --web-bind-address=0 turns them off here (another replica or deployment
// serves them).
func (o *options) pages(m *invitation.Metrics) *controllers.Pages {
	if o.webBindAddress == "0" {
		return nil
	}
	return &controllers.Pages{Addr: o.webBindAddress, Config: web.Config{
		Policy: o.policy, ProductName: o.productName, PublicURL: o.publicURLParsed,
		SubmissionsPerMinute: o.webSubmissions, ClientIPHeader: o.webClientIPHeader,
		Metrics: m, Log: ctrl.Log.WithName("web"),
	}}
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

	cfg, err := restConfig(o.kubeconfig)
	if err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	cfg.QPS, cfg.Burst = float32(o.kubeAPIQPS), o.kubeAPIBurst
	cfg.UserAgent = "roster-manager"

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                o.metricsServer(),
		HealthProbeBindAddress: o.probeAddress,
		PprofBindAddress:       o.pprofAddress,
		LeaderElection:         o.leaderElect,
		LeaderElectionID:       "roster.iam.roster.dev",
		// The Lease lives in the operator's namespace, so that a manager
		// run outside the cluster elects a leader too.
		LeaderElectionNamespace: o.namespace,
		LeaseDuration:           &o.leaseDuration,
		RenewDeadline:           &o.renewDeadline,
		RetryPeriod:             &o.retryPeriod,
		// A leader stopped gracefully (a rolling update) hands the Lease
		// over at once: main returns as soon as the manager has stopped, so
		// nothing runs after the release.
		LeaderElectionReleaseOnCancel: true,
		Cache:                         controllers.CacheOptions(o.namespace),
	})
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}

	invitations, err := o.invitations()
	if err != nil {
		return err
	}
	_, err = controllers.Setup(mgr, controllers.Deps{
		Namespace:         o.namespace,
		DataDir:           o.dataDir,
		StoreCheckPeriod:  o.storeCheck,
		DefaultRole:       o.defaultRole,
		ResyncPeriod:      o.resyncPeriod,
		UserConcurrency:   o.userConcurrency,
		GroupConcurrency:  o.groupConcurrency,
		ImportConcurrency: o.importParallel,
		ImportWorkers:     o.importWorkers,
		Invitations:       invitations,
		ImportSource:      controllers.SourceLoader{MaxBytes: o.importMaxBytes},
		Pages:             o.pages(invitations.Metrics),
	})
	if err != nil {
		return err
	}

	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	// Ready once the cache holds every object: the pages and the
	// reconcilers read from it.
	if err := mgr.AddReadyzCheck("cache", func(*http.Request) error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		defer cancel()
		if !mgr.GetCache().WaitForCacheSync(ctx) {
			return errors.New("the cache has not synced yet")
		}
		return nil
	}); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}

	setupLog.Info("Starting manager", "namespace", o.namespace, "dataDir", o.dataDir,
		"publicURL", o.publicURL, "webBindAddress", o.webBindAddress, "passwordPolicy", o.policy.String())
	return mgr.Start(ctrl.SetupSignalHandler())
}
