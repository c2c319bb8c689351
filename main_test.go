package main

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"roster.dev/roster/internal/mail"
)

func TestParseFlags(t *testing.T) {
	cases := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{name: "defaults", args: nil},
		{name: "bad namespace", args: []string{"--namespace=Not_A_Namespace"}, wantErr: "--namespace"},
		{name: "store check too often", args: []string{"--store-check-period=10ms"}, wantErr: "--store-check-period"},
		{name: "bad public URL", args: []string{"--public-url=ftp://example.com"}, wantErr: "--public-url"},
		{name: "resync too short", args: []string{"--resync-period=5s"}, wantErr: "--resync-period"},
		{name: "no workers", args: []string{"--user-concurrency=0"}, wantErr: "--user-concurrency"},
		{name: "no group workers", args: []string{"--group-concurrency=0"}, wantErr: "--group-concurrency"},
		{name: "undefined flag", args: []string{"--colour=blue"}, wantErr: "colour"},
		{name: "stray argument", args: []string{"extra"}, wantErr: "unexpected arguments"},
		{name: "SMTP with STARTTLS", args: []string{"--smtp-url=smtp://mail.example.com", "--mail-from=Acme <id@acme.example.com>"}},
		{name: "SMTP user with a password file", args: []string{"--smtp-url=smtps://roster@mail.example.com", "--smtp-password-file=/run/secrets/smtp"}},
		{name: "SMTP password in the URL", args: []string{"--smtp-url=smtp://roster:hunter2@mail.example.com"}, wantErr: "file or an environment variable"},
		{name: "SMTP user without a password", args: []string{"--smtp-url=smtp://roster@mail.example.com"}, wantErr: "--smtp-password-file"},
		{name: "two SMTP passwords", args: []string{"--smtp-url=smtp://roster@mail.example.com", "--smtp-password-file=/x", "--smtp-password-env=X"}, wantErr: "not both"},
		{name: "SMTP password without a server", args: []string{"--smtp-password-env=X"}, wantErr: "--smtp-url"},
		{name: "plain SMTP scheme", args: []string{"--smtp-url=mail.example.com:25"}, wantErr: "--smtp-url"},
		{name: "bad sender", args: []string{"--mail-from=not an address"}, wantErr: "--mail-from"},
		{name: "link life too short", args: []string{"--password-reset-ttl=10s"}, wantErr: "--password-reset-ttl"},
		{name: "unknown character class", args: []string{"--password-require=lower,emoji"}, wantErr: "emoji"},
		{name: "custom password policy", args: []string{"--password-min-length=14", "--password-require=none"}},
		{name: "quicker failover", args: []string{"--leader-elect-lease-duration=8s", "--leader-elect-renew-deadline=6s", "--leader-elect-retry-period=1s"}},
		{name: "renew deadline past the lease", args: []string{"--leader-elect-lease-duration=10s", "--leader-elect-renew-deadline=10s"}, wantErr: "--leader-elect-renew-deadline"},
		{name: "no retry period", args: []string{"--leader-elect-retry-period=0s"}, wantErr: "--leader-elect-retry-period"},
		{name: "no submissions", args: []string{"--web-submissions-per-minute=0"}, wantErr: "--web-submissions-per-minute"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseFlags(tc.args)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("parseFlags: %v", err)
				}
				if o.outboxDir != "/var/lib/roster/outbox" {
					t.Errorf("outboxDir = %q, want it under the data dir", o.outboxDir)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("parseFlags error = %v, want one naming %q", err, tc.wantErr)
			}
		})
	}
}

func TestSMTPPasswordIsReadFromAFileOrTheEnvironment(t *testing.T) {
	file := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(file, []byte("from-a-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o, err := parseFlags([]string{"--smtp-url=smtp://roster@mail.example.com", "--smtp-password-file=" + file})
	if err != nil {
		t.Fatalf("parseFlags: %v", err)
	}
	if pw, err := o.smtpPassword(); err != nil || pw != "from-a-file" {
		t.Errorf("smtpPassword = %q, %v; want the file's content without its newline", pw, err)
	}
	t.Setenv("ROSTER_TEST_SMTP_PASSWORD", "from-the-env")
	o, err = parseFlags([]string{"--smtp-url=smtp://roster@mail.example.com", "--smtp-password-env=ROSTER_TEST_SMTP_PASSWORD"})
	if err != nil {
		t.Fatalf("parseFlags: %v", err)
	}
	if pw, err := o.smtpPassword(); err != nil || pw != "from-the-env" {
		t.Errorf("smtpPassword = %q, %v; want the variable's value", pw, err)
	}
	o.smtpPasswordEnv = "ROSTER_TEST_UNSET_VARIABLE"
	if _, err := o.smtpPassword(); err == nil || !strings.Contains(err.Error(), "ROSTER_TEST_UNSET_VARIABLE") {
		t.Errorf("smtpPassword of an unset variable: err = %v, want one naming it", err)
	}
}

func TestOutboxIsTheDefault(t *testing.T) {
	dir := t.TempDir()
	o, err := parseFlags([]string{"--data-dir=" + dir})
	if err != nil {
		t.Fatalf("parseFlags: %v", err)
	}
	inv, err := o.invitations()
	if err != nil {
		t.Fatalf("invitations: %v", err)
	}
	if _, ok := inv.Sender.(*mail.Outbox); !ok {
		t.Errorf("sender is %T, want the outbox", inv.Sender)
	}
	if inv.InvitationTTL != 7*24*time.Hour || inv.ResetTTL != time.Hour {
		t.Errorf("link lives = %s and %s, want 7 days and 1 hour", inv.InvitationTTL, inv.ResetTTL)
	}
	if _, err := os.Stat(filepath.Join(dir, "outbox")); err != nil {
		t.Errorf("the outbox folder was not created: %v", err)
	}
}

func TestMetricsServer(t *testing.T) {
	// served is what a metrics server built from the options does.
	type served struct {
		Address    string
		HTTPS      bool
		Filtered   bool // authentication and authorization by the API server
		NextProtos []string
	}
	cases := []struct {
		name string
		args []string
		want served
	}{
		{name: "defaults", args: nil,
			want: served{Address: ":8443", HTTPS: true, Filtered: true, NextProtos: []string{"http/1.1"}}},
		{name: "plain HTTP asked for", args: []string{"--metrics-secure=false", "--metrics-bind-address=127.0.0.1:8080"},
			want: served{Address: "127.0.0.1:8080"}},
		{name: "off", args: []string{"--metrics-bind-address=0"},
			want: served{Address: "0", HTTPS: true, Filtered: true, NextProtos: []string{"http/1.1"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseFlags(tc.args)
			if err != nil {
				t.Fatalf("parseFlags: %v", err)
			}
			m := o.metricsServer()
			got := served{Address: m.BindAddress, HTTPS: m.SecureServing, Filtered: m.FilterProvider != nil}
			if len(m.TLSOpts) > 0 {
				cfg := &tls.Config{NextProtos: []string{"h2", "http/1.1"}}
				for _, opt := range m.TLSOpts {
					opt(cfg)
				}
				got.NextProtos = cfg.NextProtos
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("metrics server (-want +got):\n%s", diff)
			}
		})
	}
}

// The install's kustomization lists every generated CRD, so that
// `kubectl apply -k config/default` installs each kind.
func TestInstallListsEveryCRD(t *testing.T) {
	kust, err := os.ReadFile("config/crd/kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("config/crd/bases/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no generated CRDs: %v", err)
	}
	for _, f := range files {
		if !strings.Contains(string(kust), "bases/"+filepath.Base(f)) {
			t.Errorf("config/crd/kustomization.yaml does not list %s", f)
		}
	}
}
