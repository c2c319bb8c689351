package store

import (
	"fmt"
	"os"
	"strings"
)

// ReadSecret returns a credential named in a store's configuration: from the
// file at path, or from the environment variable env, never inline. Exactly
// one of the two must be set; field names the pair in errors (for example
// "bindPassword" for bindPasswordFile and bindPasswordEnv). Trailing newlines
// in files are dropped, as mounted Secrets often carry one.
func ReadSecret(field, path, env string) (string, error) {
	switch {
	case path != "" && env != "":
		return "", fmt.Errorf("%sFile and %sEnv are both set; set one", field, field)
	case path != "":
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("%sFile: %w", field, err)
		}
		v := strings.TrimRight(string(b), "\r\n")
		if v == "" {
			return "", fmt.Errorf("%sFile: %s is empty", field, path)
		}
		return v, nil
	case env != "":
		v, ok := os.LookupEnv(env)
		if !ok || v == "" {
			return "", fmt.Errorf("%sEnv: environment variable %s is not set", field, env)
		}
		return v, nil
	}
	return "", fmt.Errorf("%sFile or %sEnv is required", field, field)
}
