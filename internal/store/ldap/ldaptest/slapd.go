// Package ldaptest starts a throwaway OpenLDAP slapd for tests: Debian's
// slapd binary, unprivileged, on a loopback port, with a generated
// slapd.conf (mdb backend, ppolicy and lastbind overlays) and its database
// under the test's temporary folder. Tests that need it skip when slapd is
// not installed, and fail instead under CI=true.
package ldaptest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	ldapv3 "github.com/go-ldap/ldap/v3"
)

// Names in the directory the server starts with.
const (
	BaseDN     = "dc=roster,dc=test"
	AdminDN    = "cn=admin," + BaseDN
	UsersDN    = "ou=people," + BaseDN
	GroupsDN   = "ou=groups," + BaseDN
	PoliciesDN = "ou=policies," + BaseDN
	// DefaultPolicyDN is the ppolicy default policy; the overlay enforces
	// pwdAccountLockedTime only for entries a policy applies to.
	DefaultPolicyDN = "cn=default," + PoliciesDN
)

// Server is a running slapd.
type Server struct {
	// URL is ldap://127.0.0.1:port.
	URL string
	// AdminPassword is the rootdn's password, random for each server.
	AdminPassword string
	// PasswordFile holds AdminPassword, for a store's bindPasswordFile.
	PasswordFile string
	// LDAPSURL is ldaps://127.0.0.1:port; the plain URL offers StartTLS.
	LDAPSURL string
	// CAFile is the PEM file of the CA that signed the server's
	// certificate (for 127.0.0.1 and localhost).
	CAFile string

	dir, bin, conf string
	// noPolicy leaves the ppolicy overlay out: the lock attribute is then
	// stored but not enforced, as in a directory with its stock settings.
	noPolicy bool

	mu     sync.Mutex // guards the fields below
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	done   chan struct{}
}

// Binary finds slapd: $SLAPD, then /usr/sbin/slapd, then $PATH.
func Binary() (string, error) {
	if p := os.Getenv("SLAPD"); p != "" {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/slapd"); err == nil {
		return "/usr/sbin/slapd", nil
	}
	return exec.LookPath("slapd")
}

// ModuleDir is where Debian installs slapd's modules.
const ModuleDir = "/usr/lib/ldap"

// Start starts a slapd for the test and stops it when the test ends.
func Start(t testing.TB) *Server { return startForTest(t, false) }

// StartWithoutPolicy starts a slapd without a password policy: a locked
// user's password still binds, as in a directory whose lock is not
// enforced.
func StartWithoutPolicy(t testing.TB) *Server { return startForTest(t, true) }

func startForTest(t testing.TB, noPolicy bool) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		if Required() {
			t.Fatalf("slapd is required under CI=true: %v (apt-get install slapd ldap-utils)", err)
		}
		t.Skipf("slapd is not installed (apt-get install slapd ldap-utils): %v", err)
	}
	s, err := start(bin, t.TempDir(), noPolicy)
	if err != nil {
		t.Fatalf("starting slapd: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Required reports whether a missing slapd fails the tests (CI=true)
// rather than skipping them.
func Required() bool { return os.Getenv("CI") == "true" }

// StartIn starts a slapd with its files in dir, for a TestMain that has no
// testing.T; the caller stops it. It returns an error wrapping
// exec.ErrNotFound when slapd is not installed.
func StartIn(dir string) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, fmt.Errorf("slapd is not installed (apt-get install slapd ldap-utils): %w", err)
	}
	return start(bin, dir, false)
}

func start(bin, dir string, noPolicy bool) (*Server, error) {
	pw := make([]byte, 16)
	_, _ = rand.Read(pw)
	s := &Server{AdminPassword: hex.EncodeToString(pw), dir: dir, PasswordFile: filepath.Join(dir, "admin-password"), noPolicy: noPolicy}
	if err := os.WriteFile(s.PasswordFile, []byte(s.AdminPassword+"\n"), 0o600); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "db"), 0o700); err != nil {
		return nil, err
	}
	if err := s.writeCerts(); err != nil {
		return nil, fmt.Errorf("making certificates: %w", err)
	}
	conf := filepath.Join(dir, "slapd.conf")
	if err := os.WriteFile(conf, []byte(s.config()), 0o600); err != nil {
		return nil, err
	}
	ldif := filepath.Join(dir, "base.ldif")
	if err := os.WriteFile(ldif, []byte(baseEntries), 0o600); err != nil {
		return nil, err
	}
	// Loading offline is quicker than over the wire and needs no running
	// server; -q skips checks the entries above do not need.
	if out, err := exec.Command(slapadd(bin), "-q", "-f", conf, "-l", ldif).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("loading the base entries: %w: %s", err, out)
	}
	// The port is found free and handed to slapd; another process may take
	// it in between, in which case slapd fails to start and says so.
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	tlsPort, err := freePort()
	if err != nil {
		return nil, err
	}
	s.URL = fmt.Sprintf("ldap://127.0.0.1:%d", port)
	s.LDAPSURL = fmt.Sprintf("ldaps://127.0.0.1:%d", tlsPort)
	s.bin, s.conf = bin, conf
	if err := s.launch(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Server) launch() error {
	s.stderr = &bytes.Buffer{}
	// -d 0 keeps slapd in the foreground, so it is this process's child
	// and stops with it.
	s.cmd = exec.Command(s.bin, "-f", s.conf, "-h", s.URL+"/ "+s.LDAPSURL+"/", "-d", "0")
	s.cmd.Stdout, s.cmd.Stderr = s.stderr, s.stderr
	if err := s.cmd.Start(); err != nil {
		return err
	}
	s.done = make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	if err := s.waitReady(20 * time.Second); err != nil {
		s.stop()
		return err
	}
	return nil
}

// Restart starts the server again after Stop, on the same port and with
// the same data, as a directory coming back after an outage.
func (s *Server) Restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stop()
	return s.launch()
}

// slapadd is slapd under another name, as Debian installs it.
func slapadd(slapd string) string {
	if p, err := exec.LookPath("slapadd"); err == nil {
		return p
	}
	return filepath.Join(filepath.Dir(slapd), "slapadd")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitReady polls until the server accepts a bind, it exits, or the
// deadline passes.
func (s *Server) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for delay := 5 * time.Millisecond; ; delay = min(2*delay, 200*time.Millisecond) {
		conn, err := ldapv3.DialURL(s.URL)
		if err == nil {
			err = conn.Bind(AdminDN, s.AdminPassword)
			_ = conn.Close()
			if err == nil {
				return nil
			}
		}
		select {
		case <-s.done:
			return fmt.Errorf("slapd exited: %s", s.stderr.String())
		case <-time.After(delay):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("slapd did not accept connections within %s: %w", timeout, err)
		}
	}
}

// Stop stops the server and waits for it to exit. Stopping a stopped
// server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stop()
}

func (s *Server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// Dial returns a connection bound as the rootdn, for tests that look at
// the directory behind the store's back.
func (s *Server) Dial(t testing.TB) *ldapv3.Conn {
	t.Helper()
	conn, err := ldapv3.DialURL(s.URL)
	if err != nil {
		t.Fatalf("dialing slapd: %v", err)
	}
	if err := conn.Bind(AdminDN, s.AdminPassword); err != nil {
		t.Fatalf("binding to slapd: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// StoreConfig returns an LDAP store configuration document for the server, with extra
// YAML lines appended.
func (s *Server) StoreConfig(extra ...string) string {
	return strings.Join(append([]string{
		"url: " + s.URL,
		"insecure: true", // slapd listens in plain text on loopback
		"bindDN: " + AdminDN,
		"bindPasswordFile: " + s.PasswordFile,
		"usersDN: " + UsersDN,
		"groupsDN: " + GroupsDN,
	}, extra...), "\n") + "\n"
}

func (s *Server) config() string {
	return fmt.Sprintf(`# Generated for a test; thrown away with it.
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema

TLSCACertificateFile %[1]s/ca.pem
TLSCertificateFile %[1]s/cert.pem
TLSCertificateKeyFile %[1]s/key.pem

pidfile  %[1]s/slapd.pid
argsfile %[1]s/slapd.args

modulepath %[2]s
moduleload back_mdb
moduleload ppolicy
moduleload lastbind

database mdb
suffix   "%[3]s"
rootdn   "%[4]s"
rootpw   %[5]s
directory %[1]s/db
maxsize  1073741824
# A test database need not survive a crash; skipping fsync keeps the
# 10,000-member group case quick.
dbnosync
index objectClass eq
index uid,mail,cn,member,uniqueIdentifier,employeeNumber eq

%[7]s

overlay lastbind
`, s.dir, ModuleDir, BaseDN, AdminDN, s.AdminPassword, DefaultPolicyDN, s.policyOverlay())
}

const baseEntries = `dn: ` + BaseDN + `
objectClass: dcObject
objectClass: organization
dc: roster
o: Roster tests

dn: ` + UsersDN + `
objectClass: organizationalUnit
ou: people

dn: ` + GroupsDN + `
objectClass: organizationalUnit
ou: groups

dn: ` + PoliciesDN + `
objectClass: organizationalUnit
ou: policies

dn: ` + DefaultPolicyDN + `
objectClass: device
objectClass: pwdPolicy
cn: default
pwdAttribute: userPassword
pwdLockout: TRUE
pwdMaxFailure: 0
pwdMustChange: FALSE
pwdAllowUserChange: TRUE
`

// policyOverlay is the ppolicy overlay's configuration, or nothing for a
// server without a password policy.
func (s *Server) policyOverlay() string {
	if s.noPolicy {
		return "# No password policy: the lock attribute is not enforced."
	}
	return "overlay ppolicy\nppolicy_default \"" + DefaultPolicyDN + "\""
}
