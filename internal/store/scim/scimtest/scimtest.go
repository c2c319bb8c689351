// Package scimtest runs the SCIM peer that Roster's SCIM store is tested
// against: hack/scim-server, an in-memory service built on SCIMMY, a SCIM
// 2.0 implementation this project did not write. It needs Node.js; without
// it tests are skipped, or fail when CI=true.
package scimtest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Token is the bearer token the peer accepts.
const Token = "test-token"

// Options change how the peer behaves, for fault tests.
type Options struct {
	// NoChangePassword makes the peer advertise changePassword unsupported
	// and refuse passwords.
	NoChangePassword bool
	// NoPatch makes the peer advertise PATCH unsupported and refuse it.
	NoPatch bool
	// ETag makes the peer advertise ETags and check If-Match.
	ETag bool
	// Throttle is how many requests the peer answers with 429 first, with
	// RetryAfter (default "1") as the Retry-After header.
	Throttle   int
	RetryAfter string
	// ThrottleOnSignal is how many requests each Server.Throttle call makes
	// the peer answer with 429.
	ThrottleOnSignal int
	// RateLimit, when set, is the requests per second the peer serves, with
	// a bucket of RateBurst; beyond it the answer is 429 with Retry-After.
	RateLimit float64
	RateBurst int
	// CoreSchemas makes the peer declare only RFC 7643's schemas, not
	// Roster's extensions, as most real services do.
	CoreSchemas bool
}

// Server is a running peer.
type Server struct {
	// URL is the SCIM base URL.
	URL   string
	cmd   *exec.Cmd
	lines chan string
}

var listening = regexp.MustCompile(`listening on port (\d+)`)

// Start runs the peer on a free loopback port until the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("node is not installed; the SCIM store tests need Node.js")
		}
		t.Skip("node is not installed; skipping the SCIM store tests")
	}
	s, err := Launch(opts, &logWriter{t: t})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// Launch runs the peer on a free loopback port, for programs that are not
// tests (the benchmark); the caller closes it. The peer's stderr goes to
// logs.
func Launch(opts Options, logs io.Writer) (*Server, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, errors.New("node is not installed; the SCIM peer needs Node.js")
	}
	dir, err := serverDir()
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules")); err != nil {
		npm := exec.Command("npm", "ci", "--no-audit", "--no-fund")
		npm.Dir = dir
		if out, err := npm.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("npm ci in %s: %w\n%s", dir, err, out)
		}
	}
	cmd := exec.Command(node, "server.js", "0")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "SCIM_TOKEN="+Token, fmt.Sprintf("SCIM_THROTTLE=%d", opts.Throttle))
	if opts.NoChangePassword {
		cmd.Env = append(cmd.Env, "SCIM_CHANGE_PASSWORD=false")
	}
	if opts.NoPatch {
		cmd.Env = append(cmd.Env, "SCIM_PATCH=false")
	}
	if opts.ETag {
		cmd.Env = append(cmd.Env, "SCIM_ETAG=true")
	}
	if opts.CoreSchemas {
		cmd.Env = append(cmd.Env, "SCIM_ROSTER_SCHEMAS=false")
	}
	if opts.ThrottleOnSignal > 0 {
		cmd.Env = append(cmd.Env, fmt.Sprintf("SCIM_THROTTLE_ON_HUP=%d", opts.ThrottleOnSignal))
	}
	if opts.RetryAfter != "" {
		cmd.Env = append(cmd.Env, "SCIM_RETRY_AFTER="+opts.RetryAfter)
	}
	if opts.RateLimit > 0 {
		cmd.Env = append(cmd.Env, fmt.Sprintf("SCIM_RATE_LIMIT=%g", opts.RateLimit), fmt.Sprintf("SCIM_RATE_BURST=%d", max(1, opts.RateBurst)))
	}
	cmd.Stderr = logs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("scim peer stdout: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the scim peer: %w", err)
	}
	s := &Server{cmd: cmd, lines: make(chan string, 16)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		close(s.lines)
	}()
	line, err := s.await(listening)
	if err == nil {
		s.URL = "http://127.0.0.1:" + listening.FindStringSubmatch(line)[1]
		err = s.ready()
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close stops the peer.
func (s *Server) Close() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	_ = s.cmd.Wait()
}

// Stats is what the peer served: requests that carried a token and the 429
// answers among them.
type Stats struct {
	Requests  int `json:"requests"`
	Throttled int `json:"throttled"`
}

// Stats reads the peer's counts.
func (s *Server) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/_stats", nil)
	if err != nil {
		return st, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, fmt.Errorf("reading the scim peer's stats: %w", err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("reading the scim peer's stats: %w", err)
	}
	return st, nil
}

// Stop makes the peer stop listening and drop its connections, keeping its
// data, as a service that goes down does.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatalf("stopping the scim peer: %v", err)
	}
	must(t, regexp.MustCompile(`stopped`), s)
}

// Resume makes a stopped peer listen again on the same port.
func (s *Server) Resume(t testing.TB) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatalf("resuming the scim peer: %v", err)
	}
	must(t, listening, s)
	if err := s.ready(); err != nil {
		t.Fatal(err)
	}
}

// Throttle makes the peer answer the next Options.ThrottleOnSignal requests
// with 429 and Retry-After, as a service does when a client goes too fast.
func (s *Server) Throttle(t testing.TB) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatalf("throttling the scim peer: %v", err)
	}
	must(t, regexp.MustCompile(`throttling`), s)
}

// AwaitThrottleSpent waits until the peer has sent every 429 of the burst.
func (s *Server) AwaitThrottleSpent(t testing.TB) {
	t.Helper()
	must(t, regexp.MustCompile(`throttle spent`), s)
}

func must(t testing.TB, re *regexp.Regexp, s *Server) {
	t.Helper()
	if _, err := s.await(re); err != nil {
		t.Fatal(err)
	}
}

// await waits for the peer to print a line that matches.
func (s *Server) await(re *regexp.Regexp) (string, error) {
	deadline := time.NewTimer(60 * time.Second)
	defer deadline.Stop()
	for {
		select {
		case line, ok := <-s.lines:
			if !ok {
				return "", fmt.Errorf("the scim peer exited before printing %q", re)
			}
			if re.MatchString(line) {
				return line, nil
			}
		case <-deadline.C:
			return "", fmt.Errorf("the scim peer did not print %q within a minute", re)
		}
	}
}

// ready checks that the peer answers. It printed its port once listening,
// so one request suffices. The probe carries no token (the peer answers
// 401), so that it does not count against the peer's throttle.
func (s *Server) ready() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/ServiceProviderConfig", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("the scim peer does not answer: %w", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		return fmt.Errorf("the scim peer answered a request without a token with %s, want 401", resp.Status)
	}
	return nil
}

// TokenFile writes the token to a file for a store config.
func TokenFile(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte(Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// serverDir finds hack/scim-server from the module root.
func serverDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "hack", "scim-server"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// logWriter passes the peer's stderr to the test log.
type logWriter struct{ t testing.TB }

func (w *logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
