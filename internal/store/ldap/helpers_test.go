package ldap_test

import (
	"os"
	"slices"
)

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }

func sortedCopy(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}
