package ldap

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseConfigDefaults(t *testing.T) {
	t.Setenv("ROSTER_TEST_LDAP_PASSWORD", "s3cret")
	c, err := ParseConfig([]byte(`
url: ldaps://ldap.example.com:636
bindDN: cn=roster,dc=example,dc=com
bindPasswordEnv: ROSTER_TEST_LDAP_PASSWORD
usersDN: ou=people,dc=example,dc=com
groupsDN: ou=groups,dc=example,dc=com
`))
	if err != nil {
		t.Fatalf("ParseConfig: %v", err)
	}
	if c.bindPassword != "s3cret" {
		t.Error("the bind password was not read from the environment")
	}
	want := UserAttributes{
		Email: "mail", FirstName: "givenName", LastName: "sn", Role: "employeeType", Mobile: "mobile",
		Locale: "preferredLanguage", Country: "-", TimeZone: "-", ExternalID: "employeeNumber", Extra: "description",
	}
	if diff := cmp.Diff(want, c.Attributes); diff != "" {
		t.Errorf("default attributes (-want +got):\n%s", diff)
	}
	for _, f := range []struct{ name, got, want string }{
		{"userRDNAttribute", c.UserRDNAttribute, "uid"},
		{"memberAttribute", c.MemberAttribute, "member"},
		{"emptyGroupMember", c.EmptyGroupMember, "ou=groups,dc=example,dc=com"},
		{"lockAttribute", c.LockAttribute, "pwdAccountLockedTime"},
		{"lockValue", c.LockValue, "000001010000Z"},
		{"lastLoginAttribute", c.LastLoginAttribute, "authTimestamp"},
	} {
		if f.got != f.want {
			t.Errorf("%s = %q, want %q", f.name, f.got, f.want)
		}
	}
	if c.PoolSize != 4 || c.PageSize != 500 || c.dialTimeout != 5*time.Second || c.requestTimeout != 30*time.Second {
		t.Errorf("pool, page and timeouts = %d, %d, %s, %s", c.PoolSize, c.PageSize, c.dialTimeout, c.requestTimeout)
	}
	if strings.Contains(c.String(), "s3cret") {
		t.Error("String shows the password")
	}
}

func TestParseConfigErrors(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := map[string]string{
		"url":              "ldap://localhost:389",
		"insecure":         "true",
		"bindDN":           "cn=admin,dc=x",
		"bindPasswordFile": pw,
		"usersDN":          "ou=people,dc=x",
		"groupsDN":         "ou=groups,dc=x",
	}
	render := func(changes map[string]string) string {
		var b strings.Builder
		for k, v := range good {
			if _, replaced := changes[k]; !replaced {
				b.WriteString(k + ": " + v + "\n")
			}
		}
		for k, v := range changes {
			if v != "" {
				b.WriteString(k + ": " + v + "\n")
			}
		}
		return b.String()
	}
	for _, tc := range []struct {
		reason  string
		changes map[string]string
		want    []string
	}{
		{"no url", map[string]string{"url": ""}, []string{"url: is required"}},
		{"http url", map[string]string{"url": "http://x"}, []string{`url: scheme "http"`}},
		{"url without host", map[string]string{"url": "ldap://"}, []string{"url: has no host"}},
		{"plaintext without insecure", map[string]string{"insecure": ""}, []string{"url: ldap:// without startTLS", "insecure: true"}},
		{"startTLS on ldaps", map[string]string{"url": "ldaps://x", "startTLS": "true"}, []string{"startTLS:"}},
		{"missing CA file", map[string]string{"caFile": filepath.Join(dir, "none.pem")}, []string{"caFile:"}},
		{"no bind DN", map[string]string{"bindDN": ""}, []string{"bindDN: is required"}},
		{"bad users DN", map[string]string{"usersDN": "people"}, []string{"usersDN:"}},
		{"no groups DN", map[string]string{"groupsDN": ""}, []string{"groupsDN: is required"}},
		{"no password", map[string]string{"bindPasswordFile": ""}, []string{"bindPasswordFile or bindPasswordEnv is required"}},
		{"both passwords", map[string]string{"bindPasswordEnv": "X"}, []string{"bindPasswordFile and bindPasswordEnv are both set"}},
		{"unset password variable", map[string]string{"bindPasswordFile": "", "bindPasswordEnv": "ROSTER_TEST_UNSET_VARIABLE"}, []string{"bindPasswordEnv:"}},
		{"bad rdn", map[string]string{"userRDNAttribute": "cn"}, []string{"userRDNAttribute:"}},
		{"bad object class", map[string]string{"userObjectClasses": "['in etOrgPerson']"}, []string{"userObjectClasses[0]:"}},
		{"bad group object class", map[string]string{"groupObjectClasses": "[groupOfNames, '']"}, []string{"groupObjectClasses[1]:"}},
		{"bad placeholder", map[string]string{"emptyGroupMember": "nobody"}, []string{"emptyGroupMember:"}},
		{"bad attribute", map[string]string{"attributes": "{firstName: 'given name'}"}, []string{"attributes.firstName:"}},
		{"email not mapped", map[string]string{"attributes": "{email: '-'}"}, []string{"attributes.email:"}},
		{"bad group attribute", map[string]string{"groupAttributes": "{externalID: '-'}"}, []string{"groupAttributes.externalID:"}},
		{"bad lock attribute", map[string]string{"lockAttribute": "a b"}, []string{"lockAttribute:"}},
		{"bad timeouts", map[string]string{"dialTimeout": "soon", "requestTimeout": "-1s"}, []string{"dialTimeout:", "requestTimeout:"}},
		{"bad sizes", map[string]string{"poolSize": "-1", "pageSize": "1000001"}, []string{"poolSize:", "pageSize:"}},
		{"unknown field", map[string]string{"bindPassword": "inline"}, []string{`unknown field "bindPassword"`}},
		{"several at once", map[string]string{"url": "", "usersDN": ""}, []string{"url:", "usersDN:"}},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			_, err := ParseConfig([]byte(render(tc.changes)))
			if err == nil {
				t.Fatal("ParseConfig accepted a bad configuration")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
		})
	}
}

// TestParseConfigTransport: plaintext LDAP is refused unless the file asks
// for it by name; TLS, from the first byte or through StartTLS, needs
// nothing more.
func TestParseConfigTransport(t *testing.T) {
	t.Setenv("ROSTER_TEST_LDAP_PASSWORD", "s3cret")
	const refused = "ldap store configuration: url: ldap:// without startTLS sends the bind password unencrypted: " +
		"use ldaps://, set startTLS: true, or set insecure: true to allow plaintext"
	for _, tc := range []struct {
		name    string
		lines   string // the url and its TLS settings
		wantErr string // the whole message; empty when accepted
	}{
		{name: "ldaps", lines: "url: ldaps://ldap.example.com:636"},
		{name: "ldap with StartTLS", lines: "url: ldap://ldap.example.com\nstartTLS: true"},
		{name: "plaintext allowed by insecure", lines: "url: ldap://127.0.0.1:389\ninsecure: true"},
		{name: "insecure with StartTLS", lines: "url: ldap://ldap.example.com\nstartTLS: true\ninsecure: true"},
		{name: "insecure with ldaps", lines: "url: ldaps://ldap.example.com\ninsecure: true"},
		{name: "plaintext refused", lines: "url: ldap://ldap.example.com:389", wantErr: refused},
		{name: "plaintext on loopback refused", lines: "url: ldap://127.0.0.1:389", wantErr: refused},
		{name: "upper-case scheme refused", lines: "url: LDAP://ldap.example.com", wantErr: refused},
		{name: "insecure false refused", lines: "url: ldap://ldap.example.com\ninsecure: false", wantErr: refused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.lines + `
bindDN: cn=roster,dc=example,dc=com
bindPasswordEnv: ROSTER_TEST_LDAP_PASSWORD
usersDN: ou=people,dc=example,dc=com
groupsDN: ou=groups,dc=example,dc=com
`))
			got := ""
			if err != nil {
				got = err.Error()
			}
			if diff := cmp.Diff(tc.wantErr, got); diff != "" {
				t.Errorf("ParseConfig error (-want +got):\n%s", diff)
			}
		})
	}
}
