// Package scimtest runs the SCIM peer that Roster's SCIM store is tested
// against: hack/scim-server, an in-memory service built on SCIMMY, a SCIM
// 2.0 implementation this project did not write. It needs Node.js; without
// it tests are skipped, or fail when CI=true.
package scimtest

import (
	"bufio"
	"context"
	"fmt"
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
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("node is not installed; the SCIM store tests need Node.js")
		}
		t.Skip("node is not installed; skipping the SCIM store tests")
	}
	dir := serverDir(t)
	if _, err := os.Stat(filepath.Join(dir, "node_modules")); err != nil {
		npm := exec.Command("npm", "ci", "--no-audit", "--no-fund")
		npm.Dir = dir
		if out, err := npm.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
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
	if opts.RetryAfter != "" {
		cmd.Env = append(cmd.Env, "SCIM_RETRY_AFTER="+opts.RetryAfter)
	}
	cmd.Stderr = &logWriter{t: t}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("scim peer stdout: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the scim peer: %v", err)
	}
	s := &Server{cmd: cmd, lines: make(chan string, 16)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		close(s.lines)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	line := s.await(t, listening)
	s.URL = "http://127.0.0.1:" + listening.FindStringSubmatch(line)[1]
	s.ready(t)
	return s
}

// Stop makes the peer stop listening and drop its connections, keeping its
// data, as a service that goes down does.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatalf("stopping the scim peer: %v", err)
	}
	s.await(t, regexp.MustCompile(`stopped`))
}

// Resume makes a stopped peer listen again on the same port.
func (s *Server) Resume(t testing.TB) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatalf("resuming the scim peer: %v", err)
	}
	s.await(t, listening)
	s.ready(t)
}

// await waits for the peer to print a line that matches.
func (s *Server) await(t testing.TB, re *regexp.Regexp) string {
	t.Helper()
	deadline := time.NewTimer(60 * time.Second)
	defer deadline.Stop()
	for {
		select {
		case line, ok := <-s.lines:
			if !ok {
				t.Fatalf("the scim peer exited before printing %q", re)
			}
			if re.MatchString(line) {
				return line
			}
		case <-deadline.C:
			t.Fatalf("the scim peer did not print %q within a minute", re)
		}
	}
}

// ready checks that the peer answers. It printed its port once listening,
// so one request suffices. The probe carries no token (the peer answers
// 401), so that it does not count against the peer's throttle.
func (s *Server) ready(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/ServiceProviderConfig", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("the scim peer does not answer: %v", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the scim peer answered a request without a token with %s, want 401", resp.Status)
	}
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
func serverDir(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "hack", "scim-server")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
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
