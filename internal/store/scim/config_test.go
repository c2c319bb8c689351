package scim

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestConfig(t *testing.T) {
	t.Setenv("SCIM_TEST_TOKEN", "s3cret")
	tests := []struct {
		name    string
		yaml    string
		wantErr []string // substrings naming the bad fields; none for a valid config
		check   func(t *testing.T, s settings)
	}{
		{
			name: "complete",
			yaml: `
url: https://scim.example.com/scim/v2
tokenEnv: SCIM_TEST_TOKEN
timeout: 10s
rateLimit: {requestsPerMinute: 180, burst: 5}
maxRetries: 2
maxRetryWait: 30s
pageSize: 50
enterpriseExtension: true
rosterExtension: false
`,
			check: func(t *testing.T, s settings) {
				if s.base.Host != "scim.example.com" || s.token != "s3cret" || s.timeout != 10*time.Second ||
					s.maxRetries != 2 || s.maxRetryWait != 30*time.Second || s.pageSize != 50 || !s.enterprise || s.rosterExtension == nil || *s.rosterExtension {
					t.Errorf("settings = %+v", s)
				}
				if s.limiter == nil || s.limiter.Limit() != 3 || s.limiter.Burst() != 5 {
					t.Errorf("limiter = %v", s.limiter)
				}
			},
		},
		{
			name: "defaults",
			yaml: "url: https://127.0.0.1:8443\ntokenEnv: SCIM_TEST_TOKEN\n",
			check: func(t *testing.T, s settings) {
				if s.timeout != 30*time.Second || s.maxRetries != 5 || s.pageSize != 100 || s.rosterExtension != nil || s.limiter != nil {
					t.Errorf("settings = %+v", s)
				}
			},
		},
		{name: "per second", yaml: "url: https://x\ntokenEnv: SCIM_TEST_TOKEN\nrateLimit: {requestsPerSecond: 2}\n",
			check: func(t *testing.T, s settings) {
				if s.limiter.Limit() != 2 || s.limiter.Burst() != 1 {
					t.Errorf("limiter = %v/%v", s.limiter.Limit(), s.limiter.Burst())
				}
			}},
		{name: "unknown field", yaml: "url: https://x\ntokenEnv: SCIM_TEST_TOKEN\ntoken: inline\n", wantErr: []string{`unknown field "token"`}},
		{name: "no url", yaml: "tokenEnv: SCIM_TEST_TOKEN\n", wantErr: []string{"url is required"}},
		{name: "bad url", yaml: "url: ftp://x\ntokenEnv: SCIM_TEST_TOKEN\n", wantErr: []string{"url:"}},
		{name: "no token", yaml: "url: https://x\n", wantErr: []string{"tokenFile or tokenEnv is required"}},
		{name: "both tokens", yaml: "url: https://x\ntokenFile: /t\ntokenEnv: SCIM_TEST_TOKEN\n", wantErr: []string{"tokenFile and tokenEnv are both set"}},
		{name: "unset env", yaml: "url: https://x\ntokenEnv: SCIM_TEST_NOT_SET\n", wantErr: []string{"tokenEnv: environment variable SCIM_TEST_NOT_SET is not set"}},
		{name: "several bad fields", yaml: "url: https://x\ntokenEnv: SCIM_TEST_TOKEN\ntimeout: soon\nmaxRetryWait: -1s\npageSize: -1\ncaFile: /does/not/exist\n",
			wantErr: []string{"timeout:", "maxRetryWait:", "pageSize:", "caFile:"}},
		{name: "two rates", yaml: "url: https://x\ntokenEnv: SCIM_TEST_TOKEN\nrateLimit: {requestsPerMinute: 1, requestsPerSecond: 1}\n", wantErr: []string{"rateLimit: requestsPerMinute and requestsPerSecond are both set"}},
		{name: "no rate", yaml: "url: https://x\ntokenEnv: SCIM_TEST_TOKEN\nrateLimit: {burst: 3}\n", wantErr: []string{"rateLimit: requestsPerMinute or requestsPerSecond is required"}},
		{name: "wrong type", yaml: "url: https://x\ntokenEnv: SCIM_TEST_TOKEN\npageSize: many\n", wantErr: []string{"pageSize"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ParseConfig([]byte(tc.yaml))
			var s settings
			if err == nil {
				s, err = cfg.settings()
			}
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				tc.check(t, s)
				return
			}
			if err == nil {
				t.Fatalf("no error, want one naming %q", tc.wantErr)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q shows the token", err)
			}
		})
	}
}

// TestConfigTransport: plain http is refused unless the file asks for it by
// name, so the bearer token does not cross the network unencrypted by
// mistake.
func TestConfigTransport(t *testing.T) {
	t.Setenv("SCIM_TEST_TOKEN", "s3cret")
	const refused = "url: http:// sends the bearer token unencrypted: use https://, or set insecure: true to allow plaintext"
	for _, tc := range []struct {
		name     string
		lines    string // the url and insecure
		wantBase string // the base URL in use; empty when refused
		wantErr  string // the whole message; empty when accepted
	}{
		{name: "https", lines: "url: https://scim.example.com/scim/v2", wantBase: "https://scim.example.com/scim/v2"},
		{name: "http allowed by insecure", lines: "url: http://127.0.0.1:8080\ninsecure: true", wantBase: "http://127.0.0.1:8080"},
		{name: "insecure with https", lines: "url: https://scim.example.com\ninsecure: true", wantBase: "https://scim.example.com"},
		{name: "http refused", lines: "url: http://scim.example.com/scim/v2", wantErr: refused},
		{name: "http on loopback refused", lines: "url: http://127.0.0.1:8080", wantErr: refused},
		{name: "upper-case scheme refused", lines: "url: HTTP://scim.example.com", wantErr: refused},
		{name: "insecure false refused", lines: "url: http://scim.example.com\ninsecure: false", wantErr: refused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ParseConfig([]byte(tc.lines + "\ntokenEnv: SCIM_TEST_TOKEN\n"))
			if err != nil {
				t.Fatalf("ParseConfig: %v", err)
			}
			s, err := cfg.settings()
			gotErr, gotBase := "", ""
			if err != nil {
				gotErr = err.Error()
			}
			if s.base != nil {
				gotBase = s.base.String()
			}
			if diff := cmp.Diff(tc.wantErr, gotErr); diff != "" {
				t.Errorf("settings error (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantBase, gotBase); diff != "" {
				t.Errorf("base URL (-want +got):\n%s", diff)
			}
		})
	}
}
