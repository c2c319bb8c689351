package ldap

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"

	ldapv3 "github.com/go-ldap/ldap/v3"

	"roster.dev/roster/internal/store"
)

// pool keeps up to size bound connections. A connection that failed with a
// network error is closed and dropped, and the next caller dials a new one,
// so the store reconnects by itself when the directory comes back.
type pool struct {
	cfg   *Config
	tls   *tls.Config
	slots chan struct{}     // one token per connection allowed to exist
	idle  chan *ldapv3.Conn // bound connections not in use
}

func newPool(cfg *Config) (*pool, error) {
	tlsConfig, err := cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	p := &pool{cfg: cfg, tls: tlsConfig, slots: make(chan struct{}, cfg.PoolSize), idle: make(chan *ldapv3.Conn, cfg.PoolSize)}
	for range cfg.PoolSize {
		p.slots <- struct{}{}
	}
	return p, nil
}

func (c *Config) tlsConfig() (*tls.Config, error) {
	u, _ := url.Parse(c.URL) // checked by complete
	host := u.Hostname()
	if c.ServerName != "" {
		host = c.ServerName
	}
	t := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	pem := c.CAPEM
	if pem == nil && c.CAFile != "" {
		var err error
		if pem, err = os.ReadFile(c.CAFile); err != nil {
			return nil, fmt.Errorf("caFile: %w", err)
		}
	}
	if pem != nil {
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("caBundle: holds no PEM certificate")
		}
		t.RootCAs = roots
	}
	return t, nil
}

// get returns a bound connection, dialing one when none is idle and the
// pool has room, or waiting for one otherwise.
func (p *pool) get(ctx context.Context) (*ldapv3.Conn, error) {
	for {
		select {
		case conn := <-p.idle:
			if conn.IsClosing() {
				p.discard(conn)
				continue
			}
			return conn, nil
		default:
		}
		select {
		case conn := <-p.idle:
			if conn.IsClosing() {
				p.discard(conn)
				continue
			}
			return conn, nil
		case <-p.slots:
			conn, err := p.dial()
			if err != nil {
				p.slots <- struct{}{}
				return nil, err
			}
			return conn, nil
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for an ldap connection: %w: %w", store.ErrUnavailable, ctx.Err())
		}
	}
}

// put returns a connection after use; broken ones are dropped.
func (p *pool) put(conn *ldapv3.Conn, err error) {
	if conn.IsClosing() || isNetworkError(err) {
		p.discard(conn)
		return
	}
	p.idle <- conn
}

func (p *pool) discard(conn *ldapv3.Conn) {
	_ = conn.Close()
	p.slots <- struct{}{}
}

func (p *pool) close() {
	for {
		select {
		case conn := <-p.idle:
			_ = conn.Close()
		default:
			return
		}
	}
}

// verifying returns a TLS configuration that checks the server's
// certificate exactly as crypto/tls does by default, and keeps the
// verification error: go-ldap's StartTLS reports a failed handshake as a
// network error without it, and an untrusted certificate is a configuration
// to fix rather than an outage to wait out.
func (p *pool) verifying() (*tls.Config, *error) {
	var verifyErr error
	t := p.tls.Clone()
	// Verification is not skipped: VerifyConnection does it below.
	t.InsecureSkipVerify = true
	t.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			verifyErr = errors.New("the server sent no certificate")
			return verifyErr
		}
		opts := x509.VerifyOptions{DNSName: p.tls.ServerName, Roots: p.tls.RootCAs, Intermediates: x509.NewCertPool()}
		for _, c := range cs.PeerCertificates[1:] {
			opts.Intermediates.AddCert(c)
		}
		_, verifyErr = cs.PeerCertificates[0].Verify(opts)
		return verifyErr
	}
	return t, &verifyErr
}

// dial returns a new connection bound as Roster's bind DN.
func (p *pool) dial() (*ldapv3.Conn, error) {
	cfg := p.cfg
	conn, err := p.dialAnonymous()
	if err != nil {
		return nil, err
	}
	if err := conn.Bind(cfg.BindDN, cfg.bindPassword); err != nil {
		_ = conn.Close()
		if ldapv3.IsErrorWithCode(err, ldapv3.LDAPResultInvalidCredentials) {
			return nil, fmt.Errorf("binding to %s as %s: the directory refused the bind DN or password: %w", cfg.URL, cfg.BindDN, err)
		}
		return nil, fmt.Errorf("binding to %s as %s: %w", cfg.URL, cfg.BindDN, mapError(err))
	}
	return conn, nil
}

// dialAnonymous returns a new connection, encrypted as configured, that
// has not bound yet.
func (p *pool) dialAnonymous() (*ldapv3.Conn, error) {
	cfg := p.cfg
	tlsConfig, verifyErr := p.verifying()
	conn, err := ldapv3.DialURL(cfg.URL,
		ldapv3.DialWithDialer(&net.Dialer{Timeout: cfg.dialTimeout}),
		ldapv3.DialWithTLSConfig(tlsConfig))
	if err != nil {
		if *verifyErr != nil {
			err = *verifyErr
		}
		if untrusted(err) {
			return nil, fmt.Errorf("connecting to %s: the server's certificate is not trusted (see caFile, serverName): %w", cfg.URL, err)
		}
		return nil, fmt.Errorf("connecting to %s: %w: %w", cfg.URL, store.ErrUnavailable, err)
	}
	conn.SetTimeout(cfg.dialTimeout)
	if cfg.StartTLS {
		if err := conn.StartTLS(tlsConfig); err != nil {
			_ = conn.Close()
			if *verifyErr != nil {
				err = *verifyErr
			}
			if untrusted(err) {
				return nil, fmt.Errorf("starting TLS with %s: the server's certificate is not trusted (see caFile, serverName): %w", cfg.URL, err)
			}
			if isNetworkError(err) {
				return nil, fmt.Errorf("starting TLS with %s: %w: %w", cfg.URL, store.ErrUnavailable, err)
			}
			return nil, fmt.Errorf("starting TLS with %s: %w", cfg.URL, err)
		}
	}
	conn.SetTimeout(cfg.requestTimeout)
	return conn, nil
}

// untrusted reports whether err is a certificate the configured CAs do not
// vouch for: a configuration to fix, not an outage to wait out.
func untrusted(err error) bool {
	var verify *tls.CertificateVerificationError
	var unknown x509.UnknownAuthorityError
	var hostname x509.HostnameError
	return errors.As(err, &verify) || errors.As(err, &unknown) || errors.As(err, &hostname)
}

// isNetworkError reports whether err means the connection is unusable.
func isNetworkError(err error) bool {
	return err != nil && ldapv3.IsErrorAnyOf(err, ldapv3.ErrorNetwork, ldapv3.LDAPResultServerDown,
		ldapv3.LDAPResultConnectError, ldapv3.LDAPResultTimeout)
}

// mapError turns LDAP results into the store's errors, keeping the LDAP
// error in the chain for its message.
func mapError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrAlreadyExists):
		return err
	case isNetworkError(err), ldapv3.IsErrorAnyOf(err, ldapv3.LDAPResultBusy, ldapv3.LDAPResultUnavailable,
		ldapv3.LDAPResultTimeLimitExceeded, ldapv3.LDAPResultAdminLimitExceeded):
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	case ldapv3.IsErrorAnyOf(err, ldapv3.LDAPResultNoSuchObject, ldapv3.LDAPResultInvalidDNSyntax):
		// A malformed DN cannot name an entry: it is one the store never
		// handed out (an ID from another store, say).
		return fmt.Errorf("%w: %w", store.ErrNotFound, err)
	case ldapv3.IsErrorWithCode(err, ldapv3.LDAPResultEntryAlreadyExists):
		return fmt.Errorf("%w: %w", store.ErrAlreadyExists, err)
	case ldapv3.IsErrorAnyOf(err, rejectedResults...):
		return fmt.Errorf("%w: %w", store.ErrRejected, err)
	}
	return err
}

// rejectedResults are the LDAP results that sending the same operation
// again cannot change: the directory's schema, constraints, access rules or
// security policy refuse it until a person changes the entry or the
// directory.
var rejectedResults = []uint16{
	ldapv3.LDAPResultConfidentialityRequired,
	ldapv3.LDAPResultUndefinedAttributeType,
	ldapv3.LDAPResultConstraintViolation,
	ldapv3.LDAPResultInvalidAttributeSyntax,
	ldapv3.LDAPResultInsufficientAccessRights,
	ldapv3.LDAPResultUnwillingToPerform,
	ldapv3.LDAPResultNamingViolation,
	ldapv3.LDAPResultObjectClassViolation,
	ldapv3.LDAPResultNotAllowedOnRDN,
	ldapv3.LDAPResultObjectClassModsProhibited,
}

// do runs fn on a pooled connection. Reads are retried once on a fresh
// connection when the pooled one turns out to be broken (the directory
// restarted since it was last used); writes are not, because a write may
// have been applied before the connection broke.
func (s *Store) do(ctx context.Context, read bool, fn func(*ldapv3.Conn) error) error {
	attempts := 1
	if read {
		attempts = 2
	}
	var err error
	for range attempts {
		var conn *ldapv3.Conn
		if conn, err = s.pool.get(ctx); err != nil {
			return err
		}
		err = fn(conn)
		s.pool.put(conn, err)
		if !isNetworkError(err) {
			break
		}
	}
	return mapError(err)
}
