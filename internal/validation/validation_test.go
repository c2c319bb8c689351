package validation

import (
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestChecks(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	cases := []struct {
		name   string
		reason string
		check  func(string) error
		value  string
		valid  bool
	}{
		{"email", "a plain address is valid", Email, "jane.doe@example.com", true},
		{"email plus", "sub-addressing is valid", Email, "jane+ops@example.co.uk", true},
		{"email empty", "an address is required", Email, "", false},
		{"email display name", "a display name would become part of the ID", Email, "Jane <jane@example.com>", false},
		{"email angle", "angle brackets are not part of an address", Email, "<jane@example.com>", false},
		{"email two", "one cell is one address", Email, "a@example.com, b@example.com", false},
		{"email no at", "an address has an @", Email, "jane.example.com", false},
		{"email space", "spaces are not allowed unquoted", Email, "jane doe@example.com", false},
		{"email trailing dot", "the domain cannot end with a dot", Email, "jane@example.com.", false},
		{"email long", "the schema allows 254 characters", Email, long(250) + "@e.co", false},
		{"email long local", "the local part has at most 64 characters", Email, long(65) + "@example.com", false},
		{"mobile", "E.164 with country code", Mobile, "+4915123456789", true},
		{"mobile no plus", "the + is part of E.164", Mobile, "4915123456789", false},
		{"mobile scientific", "a spreadsheet's number format is not a number", Mobile, "4.91512E+12", false},
		{"mobile spaces", "E.164 has no spaces", Mobile, "+49 151 23456789", false},
		{"time zone", "an IANA name", TimeZone, "Europe/Berlin", true},
		{"time zone UTC", "UTC is in the IANA database", TimeZone, "UTC", true},
		{"time zone unknown", "not in the database", TimeZone, "Mars/Olympus", false},
		{"time zone local", "Local is the operator's zone", TimeZone, "Local", false},
		{"time zone path", "not a file path", TimeZone, "../../etc/passwd", false},
		{"country", "upper-case alpha-2", Country, "DE", true},
		{"country lower", "the schema wants upper case", Country, "de", false},
		{"country unknown", "XX is user-assigned, not a country", Country, "XX", false},
		{"locale", "language and region", Locale, "en-GB", true},
		{"locale underscore", "the schema allows _", Locale, "pt_BR", true},
		{"locale bad", "not a tag", Locale, "english", false},
		{"role", "letters", Role, "Admin", true},
		{"role digit", "starts with a letter", Role, "1admin", false},
		{"role long", "at most 63 characters", Role, long(64), false},
		{"group", "DNS-subdomain-like", GroupName, "platform-admins", true},
		{"group upper", "lower case only", GroupName, "Admins", false},
		{"group dash end", "ends with a letter or digit", GroupName, "admins-", false},
		{"name", "free text", Name, "Zoë O'Brien-Łukasz", true},
		{"name invalid utf8", "a Latin-1 file read as UTF-8", Name, "Zo\xeb", false},
		{"name long", "at most 128 characters", Name, long(129), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.check(tc.value)
			if got := err == nil; got != tc.valid {
				t.Errorf("%s: check(%q) = %v, want valid %v", tc.reason, tc.value, err, tc.valid)
			}
		})
	}
}

func TestGroups(t *testing.T) {
	many := make([]string, MaxGroups+1)
	for i := range many {
		many[i] = "g"
	}
	if err := Groups(many); err == nil {
		t.Errorf("Groups accepted %d groups, want at most %d", len(many), MaxGroups)
	}
	if err := Groups([]string{"a", "b.c"}); err != nil {
		t.Errorf("Groups: %v", err)
	}
}

// TestCountriesMatchSchema keeps the list in step with the CEL rule on
// UserSpec.country, which the API server enforces.
func TestCountriesMatchSchema(t *testing.T) {
	src, err := os.ReadFile("../../api/v1alpha1/user_types.go")
	if err != nil {
		t.Fatal(err)
	}
	rule := regexp.MustCompile(`self in \[([^\]]*)\]`).FindSubmatch(src)
	if rule == nil {
		t.Fatal("no country rule found in user_types.go")
	}
	var schema []string
	for _, m := range regexp.MustCompile(`'([A-Z]{2})'`).FindAllSubmatch(rule[1], -1) {
		schema = append(schema, string(m[1]))
	}
	var ours []string
	for c := range countries {
		ours = append(ours, c)
	}
	sort.Strings(schema)
	sort.Strings(ours)
	if diff := cmp.Diff(schema, ours); diff != "" {
		t.Errorf("countries differ from the schema (-schema +ours):\n%s", diff)
	}
}
