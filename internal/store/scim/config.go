package scim

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"time"

	"golang.org/x/time/rate"
	"sigs.k8s.io/yaml"

	"roster.dev/roster/internal/store"
)

// Config is the scim store's --store-config file.
type Config struct {
	// URL is the service's SCIM base URL, the one /Users and /Groups are
	// relative to, for example https://scim.example.com/scim/v2.
	URL string `json:"url"`
	// Insecure allows an http:// URL, which sends the bearer token and
	// every user unencrypted. It is for a service on the same host or in
	// tests; it never turns off certificate checks.
	Insecure bool `json:"insecure,omitempty"`
	// TokenFile and TokenEnv name where the bearer token is: a file (a
	// mounted Secret) or an environment variable. Exactly one is set; the
	// token is never written inline.
	TokenFile string `json:"tokenFile,omitempty"`
	TokenEnv  string `json:"tokenEnv,omitempty"`
	// CAFile is a PEM bundle of certificate authorities trusted in addition
	// to the system's, for services with a private CA.
	CAFile string `json:"caFile,omitempty"`
	// Timeout bounds each HTTP request (default 30s).
	Timeout string `json:"timeout,omitempty"`
	// RateLimit caps the requests Roster sends, retries included.
	RateLimit *RateLimit `json:"rateLimit,omitempty"`
	// MaxRetries is how many times a request answered with 429 or 503 is
	// sent again (default 5); MaxRetryWait is the longest Retry-After
	// honoured before giving up (default 2m).
	MaxRetries   *int   `json:"maxRetries,omitempty"`
	MaxRetryWait string `json:"maxRetryWait,omitempty"`
	// PageSize is the count asked for per page of a list (default 100).
	PageSize int `json:"pageSize,omitempty"`
	// EnterpriseExtension writes the attributes named like the enterprise
	// extension's (employeeNumber, costCenter, organization, division,
	// department) into urn:ietf:params:scim:schemas:extension:enterprise:2.0:User.
	EnterpriseExtension bool `json:"enterpriseExtension,omitempty"`
	// RosterExtension keeps what the core schemas have no place for in
	// Roster's own schema extensions: further attributes, the activated flag,
	// a group's Roster name and description. Unset, each extension is used
	// only when the service declares it under /Schemas; true sends them to
	// a service that accepts them without declaring them; false never does.
	RosterExtension *bool `json:"rosterExtension,omitempty"`

	// Token and CAPEM, when set, are the token and the CA bundle
	// themselves, as an IdentityStore gives them (from a Secret and from its
	// spec); they are never read from YAML.
	Token string `json:"-"`
	CAPEM []byte `json:"-"`
}

// RateLimit is a token bucket: a steady rate and a burst.
type RateLimit struct {
	RequestsPerMinute float64 `json:"requestsPerMinute,omitempty"`
	RequestsPerSecond float64 `json:"requestsPerSecond,omitempty"`
	Burst             int     `json:"burst,omitempty"`
}

// settings is a checked Config with its defaults filled in.
type settings struct {
	base         *url.URL
	token        string
	tls          *tls.Config
	timeout      time.Duration
	limiter      *rate.Limiter
	maxRetries   int
	maxRetryWait time.Duration
	pageSize     int
	enterprise   bool
	// rosterExtension is the config's choice: nil to follow what the
	// service declares.
	rosterExtension *bool
}

// ParseConfig reads a --store-config file's content. Unknown and invalid
// fields are errors that name the field.
func ParseConfig(data []byte) (Config, error) {
	var c Config
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return Config{}, fmt.Errorf("scim store config: %w", err)
	}
	return c, nil
}

// LoadConfig reads and parses the --store-config file at path.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("scim store config: %w", err)
	}
	return ParseConfig(data)
}

// settings checks the config, reads the token and fills in defaults. Every
// error names the field at fault.
func (c Config) settings() (settings, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	s := settings{timeout: 30 * time.Second, maxRetries: 5, maxRetryWait: 2 * time.Minute, pageSize: 100, enterprise: c.EnterpriseExtension, rosterExtension: c.RosterExtension}

	switch u, err := url.Parse(c.URL); {
	case c.URL == "":
		bad("url is required")
	case err != nil:
		bad("url: %w", err)
	case u.Scheme != "https" && u.Scheme != "http" || u.Host == "":
		bad("url: %q is not an http:// or https:// URL", c.URL)
	case u.Scheme == "http" && !c.Insecure:
		bad("url: http:// sends the bearer token unencrypted: use https://, or set insecure: true to allow plaintext")
	default:
		s.base = u
	}
	s.token = c.Token
	if s.token == "" {
		token, err := store.ReadSecret("token", c.TokenFile, c.TokenEnv)
		if err != nil {
			bad("%w", err)
		}
		s.token = token
	}
	if c.CAFile != "" || c.CAPEM != nil {
		pem, err := c.CAPEM, error(nil)
		if pem == nil {
			pem, err = os.ReadFile(c.CAFile)
		}
		pool, _ := x509.SystemCertPool()
		if pool == nil {
			pool = x509.NewCertPool()
		}
		switch {
		case err != nil:
			bad("caFile: %w", err)
		case !pool.AppendCertsFromPEM(pem):
			bad("caFile: %s holds no PEM certificate", c.CAFile)
		default:
			s.tls = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		}
	}
	duration := func(field, v string, dst *time.Duration) {
		if v == "" {
			return
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			bad("%s: %q is not a positive duration such as 30s", field, v)
			return
		}
		*dst = d
	}
	duration("timeout", c.Timeout, &s.timeout)
	duration("maxRetryWait", c.MaxRetryWait, &s.maxRetryWait)
	if c.MaxRetries != nil {
		if *c.MaxRetries < 0 {
			bad("maxRetries: must not be negative")
		}
		s.maxRetries = *c.MaxRetries
	}
	if c.PageSize < 0 {
		bad("pageSize: must not be negative")
	} else if c.PageSize > 0 {
		s.pageSize = c.PageSize
	}
	if r := c.RateLimit; r != nil {
		var limit rate.Limit
		switch {
		case r.RequestsPerMinute < 0 || r.RequestsPerSecond < 0:
			bad("rateLimit: rates must not be negative")
		case r.RequestsPerMinute > 0 && r.RequestsPerSecond > 0:
			bad("rateLimit: requestsPerMinute and requestsPerSecond are both set; set one")
		case r.RequestsPerMinute > 0:
			limit = rate.Limit(r.RequestsPerMinute / 60)
		case r.RequestsPerSecond > 0:
			limit = rate.Limit(r.RequestsPerSecond)
		default:
			bad("rateLimit: requestsPerMinute or requestsPerSecond is required")
		}
		burst := r.Burst
		if burst < 0 {
			bad("rateLimit.burst: must not be negative")
		}
		if burst == 0 {
			burst = 1
		}
		if limit > 0 {
			s.limiter = rate.NewLimiter(limit, burst)
		}
	}
	return s, errors.Join(errs...)
}
