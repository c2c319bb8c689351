package mail

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	netmail "net/mail"
	"net/url"
	"os"
	"strconv"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// SMTPConfig configures the SMTP sender.
type SMTPConfig struct {
	// URL is smtp://[user@]host[:port] (STARTTLS required, port 587 by
	// default) or smtps://[user@]host[:port] (TLS from the first byte, port
	// 465 by default). The user, if any, logs in with Password. A password in
	// the URL is refused: flags show in process lists and manifests.
	URL string
	// Password is the SMTP password, read from a file or an environment
	// variable by the caller.
	Password string
	// From is the sender.
	From *netmail.Address
	// CAFile is a PEM bundle of certificate authorities trusted in addition
	// to the system's, for a mail server with a certificate from a private
	// CA.
	CAFile string
	// TLSConfig overrides the TLS settings; nil verifies the server against
	// the system's roots and CAFile's.
	TLSConfig *tls.Config
	// Timeout bounds connecting and each command; 0 means 30 seconds.
	Timeout time.Duration
}

// SMTP sends messages through an SMTP server, opening a connection per
// message: invitations are few and far between, and a fresh connection
// recovers by itself from a server restart.
type SMTP struct {
	opts []gomail.Option
	host string
	from *netmail.Address
}

// ParseSMTPURL checks an --smtp-url value and returns its scheme, host, port
// and user.
func ParseSMTPURL(raw string) (u *url.URL, port int, err error) {
	u, err = url.Parse(raw)
	if err != nil {
		return nil, 0, fmt.Errorf("SMTP URL: %w", err)
	}
	switch u.Scheme {
	case "smtp":
		port = 587
	case "smtps":
		port = 465
	default:
		return nil, 0, fmt.Errorf("SMTP URL: scheme %q is neither smtp (STARTTLS) nor smtps (TLS)", u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, 0, errors.New("SMTP URL: no host")
	}
	if _, set := u.User.Password(); set {
		return nil, 0, errors.New("SMTP URL: holds a password; give it in a file or an environment variable instead")
	}
	if p := u.Port(); p != "" {
		if port, err = strconv.Atoi(p); err != nil || port < 1 || port > 65535 {
			return nil, 0, fmt.Errorf("SMTP URL: bad port %q", p)
		}
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" {
		return nil, 0, errors.New("SMTP URL: takes no path or query")
	}
	return u, port, nil
}

// NewSMTP returns an SMTP sender. It does not connect: a mail server that is
// down when the operator starts delays emails, not the operator.
func NewSMTP(cfg SMTPConfig) (*SMTP, error) {
	u, port, err := ParseSMTPURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	if cfg.From == nil {
		return nil, errors.New("SMTP: no sender address")
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.TLSConfig != nil {
		tlsConfig = cfg.TLSConfig.Clone()
	}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("SMTP CA file: %w", err)
		}
		pool, _ := x509.SystemCertPool()
		if pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("SMTP CA file: %s holds no PEM certificate", cfg.CAFile)
		}
		tlsConfig.RootCAs = pool
	}
	tlsConfig.ServerName = u.Hostname()
	opts := []gomail.Option{
		gomail.WithPort(port),
		gomail.WithTimeout(timeout),
		gomail.WithTLSConfig(tlsConfig),
	}
	if u.Scheme == "smtps" {
		opts = append(opts, gomail.WithSSL())
	} else {
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	}
	if user := u.User.Username(); user != "" {
		if cfg.Password == "" {
			return nil, fmt.Errorf("SMTP: user %q has no password", user)
		}
		// Discover the strongest mechanism the server offers; the connection
		// is encrypted before any is tried.
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(user), gomail.WithPassword(cfg.Password))
	}
	return &SMTP{opts: opts, host: u.Hostname(), from: cfg.From}, nil
}

// Send implements Sender.
func (s *SMTP) Send(ctx context.Context, m Message) error {
	msg, err := build(s.from, m)
	if err != nil {
		return err
	}
	client, err := gomail.NewClient(s.host, s.opts...)
	if err != nil {
		return fmt.Errorf("SMTP client: %w", err)
	}
	if err := client.DialAndSendWithContext(ctx, msg); err != nil {
		return fmt.Errorf("sending the %s email through %s: %w", m.Kind, s.host, err)
	}
	return nil
}
