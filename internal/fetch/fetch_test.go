package fetch

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestIsGlobal(t *testing.T) {
	cases := []struct {
		name string
		addr string
		want bool
	}{
		{"public IPv4", "93.184.215.14", true},
		{"public IPv4 next to CGNAT", "100.128.0.1", true},
		{"public IPv4 next to 172.16/12", "172.32.0.1", true},
		{"public IPv6", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", true},
		{"NAT64 of a public IPv4", "64:ff9b::5db8:d70e", true},
		{"loopback", "127.0.0.1", false},
		{"loopback elsewhere in 127/8", "127.1.2.3", false},
		{"IPv6 loopback", "::1", false},
		{"IPv4-mapped loopback", "::ffff:127.0.0.1", false},
		{"unspecified", "0.0.0.0", false},
		{"this network", "0.1.2.3", false},
		{"IPv6 unspecified", "::", false},
		{"cloud metadata (link-local)", "169.254.169.254", false},
		{"IPv6 link-local", "fe80::1", false},
		{"IPv6 link-local with zone", "fe80::1%eth0", false},
		{"RFC 1918 10/8", "10.0.0.1", false},
		{"RFC 1918 172.16/12", "172.31.255.255", false},
		{"RFC 1918 192.168/16", "192.168.1.1", false},
		{"IPv4-mapped private", "::ffff:10.1.2.3", false},
		{"carrier-grade NAT", "100.64.0.1", false},
		{"carrier-grade NAT top", "100.127.255.255", false},
		{"unique local fc00::/7", "fd00::1", false},
		{"unique local fc00::", "fc00::1", false},
		{"IPv4 multicast", "224.0.0.1", false},
		{"IPv6 multicast", "ff02::1", false},
		{"broadcast", "255.255.255.255", false},
		{"reserved 240/4", "240.0.0.1", false},
		{"documentation IPv4", "192.0.2.10", false},
		{"documentation IPv6", "2001:db8::1", false},
		{"benchmarking", "198.18.0.1", false},
		{"IETF protocol assignments", "192.0.0.170", false},
		{"6to4 embedding a private address", "2002:a00:1::1", false},
		{"Teredo", "2001:0:4136:e378::1", false},
		{"NAT64 of the metadata address", "64:ff9b::a9fe:a9fe", false},
		{"NAT64 of loopback", "64:ff9b::7f00:1", false},
		{"local-use NAT64", "64:ff9b:1::a00:1", false},
		{"IPv4-compatible (deprecated)", "::10.0.0.1", false},
		{"site-local (deprecated)", "fec0::1", false},
		{"invalid", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var a netip.Addr
			if tc.addr != "" {
				a = netip.MustParseAddr(tc.addr)
			}
			if diff := cmp.Diff(tc.want, IsGlobal(a)); diff != "" {
				t.Errorf("IsGlobal(%s) (-want +got):\n%s", tc.addr, diff)
			}
		})
	}
}

func TestHostAllowed(t *testing.T) {
	hosts := []string{"files.example.com", "Other.Example.org.", "alt.example.com:8443", "*.cdn.example.net", "192.0.2.7", "[2001:db8::1]:9443"}
	cases := []struct {
		name string
		url  string
		want bool
	}{
		{"listed name", "https://files.example.com/users.csv", true},
		{"listed name, explicit port 443", "https://files.example.com:443/users.csv", true},
		{"case and trailing dot do not matter", "https://FILES.example.com./users.csv", true},
		{"listed with a trailing dot and capitals", "https://other.example.org/x", true},
		{"an entry without a port allows 443 only", "https://files.example.com:8443/users.csv", false},
		{"an entry with a port allows that port", "https://alt.example.com:8443/x", true},
		{"an entry with a port does not allow 443", "https://alt.example.com/x", false},
		{"a subdomain of a listed name is not listed", "https://evil.files.example.com/x", false},
		{"a name that ends like a listed one", "https://evilfiles.example.com/x", false},
		{"a listed name as a subdomain elsewhere", "https://files.example.com.evil.example/x", false},
		{"wildcard matches a subdomain", "https://eu.cdn.example.net/x", true},
		{"wildcard matches deeper subdomains", "https://a.b.cdn.example.net/x", true},
		{"wildcard does not match its apex", "https://cdn.example.net/x", false},
		{"IP address by value", "https://192.0.2.7/x", true},
		{"another IP address", "https://192.0.2.8/x", false},
		{"IPv6 address with port", "https://[2001:db8::1]:9443/x", true},
		{"IPv6 address written differently", "https://[2001:0db8:0:0::1]:9443/x", true},
		{"unlisted", "https://example.com/x", false},
		{"userinfo does not change the host", "https://files.example.com@evil.example/x", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u, err := url.Parse(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, HostAllowed(u, hosts)); diff != "" {
				t.Errorf("HostAllowed(%s) (-want +got):\n%s", tc.url, diff)
			}
		})
	}
}

// server is an https server on loopback that counts the connections it
// accepts.
type server struct {
	*httptest.Server
	conns atomic.Int32
}

func newServer(t *testing.T, h http.Handler) *server {
	t.Helper()
	s := &server{Server: httptest.NewUnstartedServer(h)}
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

// hostPort is the server's address as an allowed-host entry.
func (s *server) hostPort() string { return strings.TrimPrefix(s.URL, "https://") }

func (s *server) roots() *x509.CertPool {
	return s.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
}

// loopbackOnly lets the tests reach their own servers and nothing else,
// even if a check under test were broken.
func loopbackOnly(a netip.Addr) bool { return a.IsLoopback() }

func files(t *testing.T) *server {
	return newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/users.csv":
			_, _ = io.WriteString(w, "add-user,a@example.com,A,B\n")
		default:
			http.NotFound(w, r)
		}
	}))
}

func TestGet(t *testing.T) {
	s := files(t)
	body, err := Get(t.Context(), s.URL+"/users.csv", []string{s.hostPort()}, Options{AllowAddr: loopbackOnly, RootCAs: s.roots()})
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	defer body.Close()
	b, err := io.ReadAll(body)
	if err != nil {
		t.Fatalf("reading the body: %v", err)
	}
	if diff := cmp.Diff("add-user,a@example.com,A,B\n", string(b)); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}

	_, err = Get(t.Context(), s.URL+"/missing.csv", []string{s.hostPort()}, Options{AllowAddr: loopbackOnly, RootCAs: s.roots()})
	var status *StatusError
	if !errors.As(err, &status) || status.Code != http.StatusNotFound {
		t.Errorf("Get of a missing file: %v, want a *StatusError with 404", err)
	}
}

// TestDefaultRefusesInternalAddresses dials through the real dialer with
// the default address rule. The refusal happens before connect(2), so none
// of these sends a packet: the test server on loopback sees no connection.
func TestDefaultRefusesInternalAddresses(t *testing.T) {
	s := files(t)
	_, port, err := net.SplitHostPort(s.hostPort())
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		host string // host:port, listed as allowed so that only the address rule decides
	}{
		{"loopback", "127.0.0.1:" + port},
		{"a name that resolves to loopback", "localhost:" + port},
		{"cloud metadata", "169.254.169.254:443"},
		{"RFC 1918", "10.0.0.1:443"},
		{"carrier-grade NAT", "100.64.0.1:443"},
		{"unspecified", "0.0.0.0:" + port},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Get(t.Context(), "https://"+tc.host+"/users.csv", []string{tc.host}, Options{RootCAs: s.roots()})
			var refused *RefusedError
			if !errors.As(err, &refused) {
				t.Fatalf("Get: %v, want a *RefusedError", err)
			}
			if !strings.Contains(refused.Error(), "not a public address") {
				t.Errorf("the refusal %q does not say the address is not public", refused)
			}
		})
	}
	if n := s.conns.Load(); n != 0 {
		t.Errorf("the loopback server accepted %d connections, want none", n)
	}
}

func TestRefusedURLs(t *testing.T) {
	s := files(t)
	cases := []struct {
		name  string
		url   string
		hosts []string
	}{
		{"plain http", "http://" + s.hostPort() + "/users.csv", []string{s.hostPort()}},
		{"a host not on the list", s.URL + "/users.csv", []string{"files.example.com"}},
		{"an empty list", s.URL + "/users.csv", nil},
		{"the same host on another port", s.URL + "/users.csv", []string{"127.0.0.1"}},
		{"no host", "https:///users.csv", []string{s.hostPort()}},
		{"not a URL", "https://%zz/", []string{s.hostPort()}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Get(t.Context(), tc.url, tc.hosts, Options{AllowAddr: loopbackOnly, RootCAs: s.roots()})
			var refused *RefusedError
			if !errors.As(err, &refused) {
				t.Errorf("Get(%s): %v, want a *RefusedError", tc.url, err)
			}
		})
	}
	if n := s.conns.Load(); n != 0 {
		t.Errorf("the server accepted %d connections, want none", n)
	}
}

func TestRedirects(t *testing.T) {
	var target atomic.Pointer[string] // where /away redirects
	s := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/users.csv":
			_, _ = io.WriteString(w, "ok")
		case "/away":
			http.Redirect(w, r, *target.Load(), http.StatusFound)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		}
	}))
	_, port, err := net.SplitHostPort(s.hostPort())
	if err != nil {
		t.Fatal(err)
	}
	hosts := []string{s.hostPort()}
	cases := []struct {
		name    string
		path    string
		target  string
		refused bool
	}{
		{"to https on an allowed host", "/away", s.URL + "/users.csv", false},
		{"to plain http on the same host", "/away", "http://" + s.hostPort() + "/users.csv", true},
		// The host is loopback too, so a broken check would reach only
		// this server.
		{"to https on a host not on the list", "/away", "https://localhost:" + port + "/users.csv", true},
		{"in a loop", "/loop", "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			target.Store(&tc.target)
			body, err := Get(t.Context(), s.URL+tc.path, hosts, Options{AllowAddr: loopbackOnly, RootCAs: s.roots()})
			var refused *RefusedError
			switch {
			case tc.refused && !errors.As(err, &refused):
				t.Errorf("Get: %v, want a *RefusedError", err)
			case !tc.refused && err != nil:
				t.Errorf("Get: %v", err)
			case !tc.refused:
				b, err := io.ReadAll(body)
				_ = body.Close()
				if err != nil || string(b) != "ok" {
					t.Errorf("body %q, %v; want \"ok\"", b, err)
				}
			}
			if tc.refused && err != nil && !strings.Contains(err.Error(), "redirect") {
				t.Errorf("the refusal %q does not mention the redirect", err)
			}
		})
	}
}

// TestTimeout checks that the total deadline cuts off a server that sends
// its headers and then trickles the body, and one that never answers.
// The server stops when the client goes away; the test itself gives up
// only after a generous deadline, and asserts nothing about how long the
// transfer took.
func TestTimeout(t *testing.T) {
	s := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/silent" {
			<-r.Context().Done()
			return
		}
		w.Header().Set("Content-Length", "1000000")
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			if _, err := io.WriteString(w, "a"); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-tick.C:
			}
		}
	}))
	opts := Options{AllowAddr: loopbackOnly, RootCAs: s.roots(), Timeout: 300 * time.Millisecond}

	for _, path := range []string{"/trickle", "/silent"} {
		t.Run(path, func(t *testing.T) {
			done := make(chan error, 1)
			go func() {
				body, err := Get(t.Context(), s.URL+path, []string{s.hostPort()}, opts)
				if err == nil {
					_, err = io.Copy(io.Discard, body)
					_ = body.Close()
				}
				done <- err
			}()
			select {
			case err := <-done:
				var timeout *TimeoutError
				if !errors.As(err, &timeout) {
					t.Fatalf("the transfer ended with %v, want a *TimeoutError", err)
				}
				if timeout.Limit != opts.Timeout {
					t.Errorf("the error names the limit %s, want %s", timeout.Limit, opts.Timeout)
				}
			case <-time.After(time.Minute):
				t.Fatal("the transfer was not cut off")
			}
		})
	}
}

// TestParentContext checks that a cancelled caller is not reported as a
// timeout: the caller stopped, the server did nothing wrong.
func TestParentContext(t *testing.T) {
	s := files(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := Get(ctx, s.URL+"/users.csv", []string{s.hostPort()}, Options{AllowAddr: loopbackOnly, RootCAs: s.roots()})
	var timeout *TimeoutError
	if err == nil || errors.As(err, &timeout) || !errors.Is(err, context.Canceled) {
		t.Errorf("Get with a cancelled context: %v, want context.Canceled", err)
	}
}
