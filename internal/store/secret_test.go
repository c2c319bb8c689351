package store

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadSecret(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	if err := os.WriteFile(file, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ROSTER_TEST_TOKEN", "from-env")
	cases := []struct {
		name, path, env, want, wantErr string
	}{
		{name: "file", path: file, want: "s3cret"},
		{name: "env", env: "ROSTER_TEST_TOKEN", want: "from-env"},
		{name: "neither", wantErr: "tokenFile or tokenEnv is required"},
		{name: "both", path: file, env: "ROSTER_TEST_TOKEN", wantErr: "both set"},
		{name: "missing file", path: filepath.Join(dir, "nope"), wantErr: "tokenFile"},
		{name: "empty file", path: empty, wantErr: "is empty"},
		{name: "unset env", env: "ROSTER_TEST_UNSET", wantErr: "ROSTER_TEST_UNSET is not set"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadSecret("token", tc.path, tc.env)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ReadSecret() = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
