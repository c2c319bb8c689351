// Package mailtest runs a real SMTP server in the test process, built on
// github.com/emersion/go-smtp, so that tests hold a whole SMTP conversation:
// STARTTLS or implicit TLS with a certificate made up for the run, AUTH
// PLAIN, and the received messages kept for the test to read.
package mailtest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	netmail "net/mail"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Credentials the server accepts.
const (
	Username = "roster"
	Password = "smtp-test-password"
)

// Server is an SMTP server for tests.
type Server struct {
	// Addr is where it listens; URL is the --smtp-url that reaches it.
	Addr string
	URL  string
	// ClientTLS trusts the server's certificate; CAPEM is that certificate,
	// the CA a client is told to trust, in PEM.
	ClientTLS *tls.Config
	CAPEM     []byte

	srv *smtp.Server
	ln  net.Listener

	mu         sync.Mutex
	received   []Received
	refuseAuth bool
	refuseData bool
	logins     int
}

// Received is a message as the server got it.
type Received struct {
	From string
	To   []string
	Raw  []byte
	// AuthUser is who logged in to send it; TLS says whether the
	// connection was encrypted when the message was sent.
	AuthUser string
	TLS      bool
}

// Start starts a server on a free local port. implicitTLS chooses smtps
// (TLS from the first byte) over smtp with STARTTLS.
func Start(implicitTLS bool) (*Server, error) {
	cert, pool, err := selfSigned()
	if err != nil {
		return nil, err
	}
	s := &Server{ClientTLS: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		CAPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Leaf.Raw})}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) { return &session{s: s, conn: c}, nil }))
	srv.Domain = "localhost"
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	srv.ReadTimeout, srv.WriteTimeout = 30*time.Second, 30*time.Second
	srv.MaxMessageBytes = 1 << 20
	// Only accept a login once the connection is encrypted, as a real
	// submission server does.
	srv.AllowInsecureAuth = false
	var ln net.Listener
	if implicitTLS {
		ln, err = tls.Listen("tcp", "127.0.0.1:0", srv.TLSConfig)
	} else {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		return nil, err
	}
	s.srv, s.ln, s.Addr = srv, ln, ln.Addr().String()
	scheme := "smtp"
	if implicitTLS {
		scheme = "smtps"
	}
	_, port, _ := net.SplitHostPort(s.Addr)
	// "localhost" rather than the IP: the certificate names localhost.
	s.URL = fmt.Sprintf("%s://%s@localhost:%s", scheme, Username, port)
	go func() { _ = srv.Serve(ln) }()
	return s, nil
}

// Close stops the server.
func (s *Server) Close() error { return s.srv.Close() }

// RefuseAuth makes the server refuse every login while on is true.
func (s *Server) RefuseAuth(on bool) {
	s.mu.Lock()
	s.refuseAuth = on
	s.mu.Unlock()
}

// RefuseData makes the server refuse every message with a temporary error
// while on is true, as a full or overloaded server would.
func (s *Server) RefuseData(on bool) {
	s.mu.Lock()
	s.refuseData = on
	s.mu.Unlock()
}

// Logins is how many times a client tried to log in, refused or not: one
// per attempt to send.
func (s *Server) Logins() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logins
}

// Messages returns the messages received so far.
func (s *Server) Messages() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Received(nil), s.received...)
}

// MessagesTo returns the messages received for the address (compared
// without regard to case).
func (s *Server) MessagesTo(addr string) []Received {
	var out []Received
	for _, m := range s.Messages() {
		for _, to := range m.To {
			if strings.EqualFold(to, addr) {
				out = append(out, m)
				break
			}
		}
	}
	return out
}

type session struct {
	s    *Server
	conn *smtp.Conn
	user string
	from string
	to   []string
}

var _ smtp.AuthSession = (*session)(nil)

func (ss *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (ss *session) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		ss.s.mu.Lock()
		refuse := ss.s.refuseAuth
		ss.s.logins++
		ss.s.mu.Unlock()
		if refuse || username != Username || password != Password {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Authentication credentials invalid"}
		}
		ss.user = username
		return nil
	}), nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.user == "" {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	}
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	if ss.s.refuseData {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Try again later"}
	}
	_, isTLS := ss.conn.TLSConnectionState()
	ss.s.received = append(ss.s.received, Received{From: ss.from, To: ss.to, Raw: raw, AuthUser: ss.user, TLS: isTLS})
	return nil
}

func (ss *session) Reset()        { ss.from, ss.to = "", nil }
func (ss *session) Logout() error { return nil }

// selfSigned makes a certificate for localhost and a pool that trusts it.
func selfSigned() (tls.Certificate, *x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "localhost"},
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool, nil
}

// Parsed is a received message taken apart.
type Parsed struct {
	Header  netmail.Header
	Subject string
	Text    string
	HTML    string
}

// Parse reads an RFC 5322 message with a text part and an optional HTML
// alternative, decoding transfer encodings and encoded words.
func Parse(raw []byte) (Parsed, error) {
	msg, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return Parsed{}, fmt.Errorf("reading the message: %w", err)
	}
	p := Parsed{Header: msg.Header}
	dec := new(mime.WordDecoder)
	if p.Subject, err = dec.DecodeHeader(msg.Header.Get("Subject")); err != nil {
		return p, fmt.Errorf("decoding the subject: %w", err)
	}
	media, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		return p, fmt.Errorf("content type: %w", err)
	}
	if !strings.HasPrefix(media, "multipart/") {
		body, err := decodePart(msg.Header.Get("Content-Transfer-Encoding"), msg.Body)
		p.Text = body
		return p, err
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		part, err := mr.NextRawPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return p, fmt.Errorf("reading a part: %w", err)
		}
		body, err := decodePart(part.Header.Get("Content-Transfer-Encoding"), part)
		if err != nil {
			return p, err
		}
		switch ct, _, _ := mime.ParseMediaType(part.Header.Get("Content-Type")); ct {
		case "text/plain":
			p.Text = body
		case "text/html":
			p.HTML = body
		}
	}
	return p, nil
}

func decodePart(encoding string, r io.Reader) (string, error) {
	switch strings.ToLower(encoding) {
	case "quoted-printable":
		r = quotedprintable.NewReader(r)
	case "base64":
		b, err := io.ReadAll(r)
		if err != nil {
			return "", err
		}
		dec, err := decodeBase64(b)
		return string(dec), err
	}
	b, err := io.ReadAll(r)
	return string(b), err
}

var linkRE = regexp.MustCompile(`https?://[^\s"<>]+`)

// Links returns the links in a text, in order.
func Links(text string) []string { return linkRE.FindAllString(text, -1) }
