package naming

import (
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

func TestUserName(t *testing.T) {
	cases := []struct {
		email string
		want  string
	}{
		{"ada@example.com", "ada-at-example.com"},
		{"Ada.Lovelace@Example.COM", "ada.lovelace-at-example.com"},
		{"first+tag@sub.example.org", "first-tag-at-sub.example.org"},
		{"..odd..@x.io", "odd-at-x.io"},
		{"_@x.io", "x-at-x.io"},
		{"a.-b@x.io", "a.b-at-x.io"},
		{"\"quoted name\"@x.io", "quoted-name-at-x.io"},
	}
	for _, tc := range cases {
		t.Run(tc.email, func(t *testing.T) {
			got := UserName(tc.email)
			if got != tc.want {
				t.Errorf("UserName(%q) = %q, want %q", tc.email, got, tc.want)
			}
			for _, name := range []string{got, UserNameWithSuffix(tc.email)} {
				if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
					t.Errorf("%q is not a valid object name: %v", name, errs)
				}
			}
		})
	}
	if UserNameWithSuffix("a@x.io") == UserNameWithSuffix("b@x.io") {
		t.Error("suffixes of different emails collide")
	}
}
