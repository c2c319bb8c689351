// Package fetch downloads files that tenants name by URL, such as the file
// of a UserImport's url source, without letting that URL reach anything the
// tenant could not reach from the internet: HTTPS only, only to hosts an
// administrator listed, every redirect checked again, a few redirects at
// most, and no connection to loopback, link-local, private or otherwise
// non-global addresses. The address rule is enforced on the address being
// dialled, after name resolution, so a DNS answer (or a DNS rebinding
// between two lookups) cannot steer a request inside the cluster.
//
// A transfer is bounded in time as well as by the caller's size cap: a
// server that trickles its answer cannot hold the caller for long.
package fetch

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// Defaults of Options.
const (
	DefaultConnectTimeout = 10 * time.Second
	DefaultTimeout        = 2 * time.Minute
	DefaultMaxRedirects   = 3
)

// maxHeaderBytes bounds a response's headers; a file server needs few.
const maxHeaderBytes = 64 << 10

// Options say how to fetch. The zero value takes the defaults noted.
type Options struct {
	// AllowAddr says whether an address may be dialled. nil allows only
	// global unicast addresses (IsGlobal); tests serving on loopback widen it.
	AllowAddr func(netip.Addr) bool
	// RootCAs verifies servers' certificates; nil uses the system's roots.
	RootCAs *x509.CertPool
	// ConnectTimeout bounds each TCP connect and TLS handshake
	// (DefaultConnectTimeout when zero).
	ConnectTimeout time.Duration
	// Timeout bounds the whole transfer, from the first connect to the last
	// byte of the body, redirects included (DefaultTimeout when zero).
	Timeout time.Duration
	// MaxRedirects is the most redirects followed (DefaultMaxRedirects when
	// zero).
	MaxRedirects int
}

// RefusedError is a request that is not made: the URL, a redirect or an
// address the host resolves to breaks the rules. Trying again cannot help;
// the URL or the list of allowed hosts has to change.
type RefusedError struct {
	Reason string
}

func (e *RefusedError) Error() string { return e.Reason }

// TimeoutError is a transfer that went on longer than Options.Timeout.
type TimeoutError struct {
	Limit time.Duration
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("the transfer did not finish within %s", e.Limit)
}

// StatusError is an answer other than 200 OK.
type StatusError struct {
	Code int
	// Status is the code and its standard text, such as "404 Not Found".
	Status string
}

func (e *StatusError) Error() string { return "the server answered " + e.Status }

// Get fetches rawURL, which must be an https URL on one of hosts, and
// returns the body of a 200 answer; the caller closes it, and must read it
// within Options.Timeout of the call. hosts are host names or IP addresses,
// optionally with a port (files.example.com, files.example.com:8443,
// [2001:db8::1]:443); an entry without a port allows port 443 only, and
// "*.example.com" allows every name under example.com (not example.com
// itself). Names are compared without regard to case.
//
// Errors: *RefusedError for what the rules refuse, *TimeoutError when the
// transfer runs out of time (also from reading the body), *StatusError for
// an answer other than 200 OK, and any other error for a failure to
// connect or to read that may pass.
func Get(ctx context.Context, rawURL string, hosts []string, opts Options) (io.ReadCloser, error) {
	opts = opts.withDefaults()
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, &RefusedError{Reason: "the URL cannot be parsed"}
	}
	if err := check(u, hosts); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeoutCause(ctx, opts.Timeout, &TimeoutError{Limit: opts.Timeout})
	client := newClient(hosts, opts)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		cancel()
		return nil, &RefusedError{Reason: fmt.Sprintf("the request cannot be made: %v", err)}
	}
	resp, err := client.Do(req)
	if err != nil {
		cancel()
		return nil, classify(ctx, err)
	}
	if resp.StatusCode != http.StatusOK {
		_ = resp.Body.Close()
		cancel()
		// The status line's own text is the server's to choose: not echoed.
		return nil, &StatusError{Code: resp.StatusCode, Status: fmt.Sprintf("%d %s", resp.StatusCode, http.StatusText(resp.StatusCode))}
	}
	return &body{ReadCloser: resp.Body, ctx: ctx, cancel: cancel}, nil
}

func (o Options) withDefaults() Options {
	if o.AllowAddr == nil {
		o.AllowAddr = IsGlobal
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxRedirects <= 0 {
		o.MaxRedirects = DefaultMaxRedirects
	}
	return o
}

// newClient builds a client for one transfer: it keeps no connections
// between transfers and never goes through a proxy from the environment,
// which would turn the address check into a check of the proxy's address.
func newClient(hosts []string, opts Options) *http.Client {
	dialer := &net.Dialer{
		Timeout: opts.ConnectTimeout,
		// Control runs on the resolved address just before connect(2): a
		// refused address never sees a packet.
		Control: func(network, address string, _ syscall.RawConn) error {
			return checkAddr(network, address, opts.AllowAddr)
		},
	}
	transport := &http.Transport{
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		TLSClientConfig:        &tls.Config{RootCAs: opts.RootCAs, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    opts.ConnectTimeout,
		DisableKeepAlives:      true,
		MaxResponseHeaderBytes: maxHeaderBytes,
	}
	return &http.Client{
		Transport: transport,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > opts.MaxRedirects {
				return &RefusedError{Reason: fmt.Sprintf("the server redirected more than %d times", opts.MaxRedirects)}
			}
			if err := check(req.URL, hosts); err != nil {
				return &RefusedError{Reason: "the server redirected: " + err.Error()}
			}
			return nil
		},
	}
}

// check refuses a URL that is not https or whose host is not allowed.
func check(u *url.URL, hosts []string) error {
	if u.Scheme != "https" {
		return &RefusedError{Reason: fmt.Sprintf("%s is not an https URL", redacted(u))}
	}
	if u.Hostname() == "" {
		return &RefusedError{Reason: fmt.Sprintf("%s names no host", redacted(u))}
	}
	if !HostAllowed(u, hosts) {
		return &RefusedError{Reason: fmt.Sprintf("the host %s is not one of the allowed hosts", u.Host)}
	}
	return nil
}

// redacted shows a URL without its password, path or query, which may
// carry tokens.
func redacted(u *url.URL) string {
	return (&url.URL{Scheme: u.Scheme, Host: u.Host}).String()
}

// HostAllowed reports whether u's host and port match one of hosts; see Get
// for the form of the entries.
func HostAllowed(u *url.URL, hosts []string) bool {
	host := normalHost(u.Hostname())
	port := u.Port()
	if port == "" {
		port = "443"
	}
	for _, entry := range hosts {
		h, p := splitEntry(entry)
		if p == "" {
			p = "443"
		}
		if p == port && hostMatches(h, host) {
			return true
		}
	}
	return false
}

// splitEntry splits an allowed host into its host and port ("" when it
// names none).
func splitEntry(entry string) (host, port string) {
	entry = strings.TrimSpace(entry)
	if h, p, err := net.SplitHostPort(entry); err == nil {
		return normalHost(h), p
	}
	return normalHost(strings.TrimSuffix(strings.TrimPrefix(entry, "["), "]")), ""
}

func normalHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// hostMatches compares an allowed host with a URL's: IP addresses by value,
// names exactly or under a "*." wildcard.
func hostMatches(allowed, host string) bool {
	if allowed == "" || host == "" {
		return false
	}
	if a, err := netip.ParseAddr(allowed); err == nil {
		h, err := netip.ParseAddr(host)
		return err == nil && a.Unmap() == h.Unmap()
	}
	if suffix, ok := strings.CutPrefix(allowed, "*."); ok {
		return suffix != "" && strings.HasSuffix(host, "."+suffix)
	}
	return allowed == host
}

// checkAddr refuses to dial an address that allow does not accept.
func checkAddr(network, address string, allow func(netip.Addr) bool) error {
	switch network {
	case "tcp4", "tcp6":
	default:
		return &RefusedError{Reason: fmt.Sprintf("connecting over %s is not allowed", network)}
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return &RefusedError{Reason: fmt.Sprintf("the address %s cannot be checked", address)}
	}
	if addr := ap.Addr().Unmap(); !allow(addr) {
		return &RefusedError{Reason: fmt.Sprintf("the host resolves to %s, which is not a public address", addr)}
	}
	return nil
}

// classify turns the client's error into one of the package's when it is
// one of them.
func classify(ctx context.Context, err error) error {
	var refused *RefusedError
	if errors.As(err, &refused) {
		return refused
	}
	var timeout *TimeoutError
	if errors.As(context.Cause(ctx), &timeout) {
		return timeout
	}
	return err
}

// body ends the transfer's deadline when it is closed, and reports reads
// cut off by the deadline as a *TimeoutError.
type body struct {
	io.ReadCloser
	ctx    context.Context
	cancel context.CancelFunc
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = classify(b.ctx, err)
	}
	return n, err
}

func (b *body) Close() error {
	defer b.cancel()
	return b.ReadCloser.Close()
}
