package main

import (
	"strings"
	"testing"
)

func TestParseFlags(t *testing.T) {
	cases := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{name: "defaults", args: nil},
		{name: "unknown store", args: []string{"--store=redis"}, wantErr: "--store"},
		{name: "ldap needs a config", args: []string{"--store=ldap"}, wantErr: "--store-config"},
		{name: "bad public URL", args: []string{"--public-url=ftp://example.com"}, wantErr: "--public-url"},
		{name: "resync too short", args: []string{"--resync-period=5s"}, wantErr: "--resync-period"},
		{name: "no workers", args: []string{"--user-concurrency=0"}, wantErr: "--user-concurrency"},
		{name: "no group workers", args: []string{"--group-concurrency=0"}, wantErr: "--group-concurrency"},
		{name: "undefined flag", args: []string{"--colour=blue"}, wantErr: "colour"},
		{name: "stray argument", args: []string{"extra"}, wantErr: "unexpected arguments"},
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

func TestOpenStoreFailsClearly(t *testing.T) {
	o, err := parseFlags([]string{"--data-dir=/proc/roster-cannot-exist"})
	if err != nil {
		t.Fatalf("parseFlags: %v", err)
	}
	if _, err := openStore(o); err == nil || !strings.Contains(err.Error(), "/proc/roster-cannot-exist") {
		t.Errorf("openStore error = %v, want one naming the folder", err)
	}
}
