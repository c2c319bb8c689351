package password

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func ids(rules []Rule) []string {
	out := []string{}
	for _, r := range rules {
		out = append(out, r.ID)
	}
	return out
}

func TestUnmet(t *testing.T) {
	cases := []struct {
		reason   string
		policy   Policy
		password string
		want     []string
	}{
		{"a strong password meets every rule", Default(), "Tr0ub4dor&3x", []string{}},
		{"an empty password fails every rule", Default(), "", []string{"length", "lower", "upper", "digit", "special"}},
		{"every unmet rule is listed, not only the first", Default(), "password", []string{"length", "upper", "digit", "special"}},
		{"length counts characters, not bytes", Default(), "Ééééééé1!", []string{"length"}},
		{"ten characters are enough", Default(), "Abcdefgh1!", []string{}},
		{"a space is a special character", Default(), "Correct horse 9", []string{}},
		{"non-ASCII letters count as letters", Default(), "ÄÖÜäöüß12#", []string{}},
		{"a policy may require fewer classes", Policy{MinLength: 4, Require: []Class{Digit}}, "abcd", []string{"digit"}},
		{"too long", Policy{MinLength: 1}, strings.Repeat("a", MaxLength+1), []string{"maxlength"}},
	}
	for _, tc := range cases {
		t.Run(tc.reason, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, ids(tc.policy.Unmet(tc.password))); diff != "" {
				t.Errorf("Unmet(%q) (-want +got):\n%s", tc.password, diff)
			}
		})
	}
}

func TestRulesText(t *testing.T) {
	want := []string{
		"At least 10 characters",
		"A lowercase letter",
		"An uppercase letter",
		"A digit",
		"A special character, such as ! ? # or a space",
	}
	var got []string
	for _, r := range Default().Rules() {
		got = append(got, r.Text)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Rules() (-want +got):\n%s", diff)
	}
}

func TestParse(t *testing.T) {
	cases := []struct {
		reason  string
		min     int
		classes string
		want    Policy
		wantErr string
	}{
		{reason: "the default", min: 10, classes: "lower,upper,digit,special", want: Default()},
		{reason: "order and case do not matter", min: 12, classes: " Special ,digit", want: Policy{MinLength: 12, Require: []Class{Digit, Special}}},
		{reason: "none", min: 8, classes: "none", want: Policy{MinLength: 8}},
		{reason: "empty", min: 8, classes: "", want: Policy{MinLength: 8}},
		{reason: "unknown class", min: 8, classes: "emoji", wantErr: `unknown character class "emoji"`},
		{reason: "zero length", min: 0, classes: "", wantErr: "minimum length"},
	}
	for _, tc := range cases {
		t.Run(tc.reason, func(t *testing.T) {
			got, err := Parse(tc.min, tc.classes)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Parse error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Parse (-want +got):\n%s", diff)
			}
		})
	}
}
