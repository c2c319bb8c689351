package ldap

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	ldapv3 "github.com/go-ldap/ldap/v3"
	"sigs.k8s.io/yaml"

	"roster.dev/roster/internal/store"
)

// Config is the --store-config file of the LDAP store. Only url, bindDN, the
// bind password, usersDN and groupsDN are required; everything else has a
// default that suits OpenLDAP with the ppolicy and lastbind overlays.
type Config struct {
	// URL is ldaps://host:port, or ldap://host:port with StartTLS (or,
	// for plaintext, Insecure).
	URL string `json:"url"`
	// StartTLS upgrades an ldap:// connection to TLS before binding.
	StartTLS bool `json:"startTLS,omitempty"`
	// Insecure allows an ldap:// URL without startTLS, which sends the bind
	// password and every entry unencrypted. It is for a directory on the
	// same host or in tests; it never turns off certificate checks.
	Insecure bool `json:"insecure,omitempty"`
	// CAFile is a PEM bundle of the CAs that sign the server's certificate;
	// the system's roots when empty.
	CAFile string `json:"caFile,omitempty"`
	// ServerName overrides the name checked in the server's certificate.
	ServerName string `json:"serverName,omitempty"`

	BindDN           string `json:"bindDN"`
	BindPasswordFile string `json:"bindPasswordFile,omitempty"`
	BindPasswordEnv  string `json:"bindPasswordEnv,omitempty"`

	// UsersDN is where users are created and searched for (subtree).
	UsersDN string `json:"usersDN"`
	// GroupsDN is where groups are created and searched for (subtree).
	GroupsDN string `json:"groupsDN"`

	// UserObjectClasses are the object classes of new users; the first one
	// also selects users in searches. Default [inetOrgPerson].
	UserObjectClasses []string `json:"userObjectClasses,omitempty"`
	// UserRDNAttribute names new users' entries: uid (default) or mail. Its
	// value is the email in lower case.
	UserRDNAttribute string `json:"userRDNAttribute,omitempty"`
	// GroupObjectClasses are the object classes of new groups; the first one
	// selects groups in searches. Default [groupOfNames, extensibleObject]:
	// groupOfNames alone allows neither displayName nor an external ID.
	GroupObjectClasses []string `json:"groupObjectClasses,omitempty"`
	// MemberAttribute holds the member DNs of a group. Default member.
	MemberAttribute string `json:"memberAttribute,omitempty"`
	// EmptyGroupMember is the DN every group Roster creates carries as a
	// member, because groupOfNames requires at least one. It is never
	// reported as a member. Default: groupsDN.
	EmptyGroupMember string `json:"emptyGroupMember,omitempty"`

	// Attributes maps user fields to LDAP attributes; see UserAttributes.
	Attributes UserAttributes `json:"attributes,omitempty"`
	// GroupAttributes maps group fields to LDAP attributes.
	GroupAttributes GroupAttributes `json:"groupAttributes,omitempty"`

	// LockAttribute and LockValue deactivate a user: the attribute holding
	// the value means the user cannot log in. Default pwdAccountLockedTime
	// with 000001010000Z, the ppolicy overlay's permanent lock.
	LockAttribute string `json:"lockAttribute,omitempty"`
	LockValue     string `json:"lockValue,omitempty"`
	// LastLoginAttribute holds the time of the last successful bind
	// (GeneralizedTime). Default authTimestamp (the lastbind overlay);
	// "-" turns login times off.
	LastLoginAttribute string `json:"lastLoginAttribute,omitempty"`

	// DialTimeout bounds connecting and binding; default 5s.
	DialTimeout string `json:"dialTimeout,omitempty"`
	// RequestTimeout bounds each operation; default 30s.
	RequestTimeout string `json:"requestTimeout,omitempty"`
	// PoolSize is the most connections kept open; default 4.
	PoolSize int `json:"poolSize,omitempty"`
	// PageSize is the page size of searches (RFC 2696); default 500.
	PageSize int `json:"pageSize,omitempty"`

	// BindPassword and CAPEM, when set, are the bind password and the CA
	// bundle themselves, as an IdentityStore gives them (from a Secret and
	// from its spec); they are never read from YAML.
	BindPassword string `json:"-"`
	CAPEM        []byte `json:"-"`

	dialTimeout, requestTimeout time.Duration
	bindPassword                string
}

// UserAttributes maps user fields to LDAP attribute names. A field mapped to
// "-" is kept in the Extra attribute as "field=value" instead, for
// directories whose schema has no attribute for it.
type UserAttributes struct {
	Email      string `json:"email,omitempty"`      // default mail
	FirstName  string `json:"firstName,omitempty"`  // default givenName
	LastName   string `json:"lastName,omitempty"`   // default sn
	Role       string `json:"role,omitempty"`       // default employeeType
	Mobile     string `json:"mobile,omitempty"`     // default mobile
	Locale     string `json:"locale,omitempty"`     // default preferredLanguage
	Country    string `json:"country,omitempty"`    // default "-" (inetOrgPerson has no c)
	TimeZone   string `json:"timeZone,omitempty"`   // default "-" (no standard attribute)
	ExternalID string `json:"externalID,omitempty"` // default employeeNumber
	// Extra is a multi-valued attribute holding the user's further
	// attributes as "key=value" values. Values of another shape are left
	// alone. Default description.
	Extra string `json:"extra,omitempty"`
}

// GroupAttributes maps group fields to LDAP attribute names. The group's
// name is always the cn of its entry.
type GroupAttributes struct {
	DisplayName string `json:"displayName,omitempty"` // default displayName
	ExternalID  string `json:"externalID,omitempty"`  // default uniqueIdentifier
	Description string `json:"description,omitempty"` // default description
}

// notMapped marks a user field kept in the Extra attribute.
const notMapped = "-"

// extraKeyPrefix marks fields of the user kept in the Extra attribute, so
// they are not mistaken for the user's own attributes.
const extraKeyPrefix = "roster."

var attrName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]*$`)

// ParseConfig reads the YAML configuration and the bind password it names.
func ParseConfig(data []byte) (*Config, error) {
	var c Config
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return nil, fmt.Errorf("parsing the ldap store configuration: %w", err)
	}
	if err := c.complete(); err != nil {
		return nil, err
	}
	return &c, nil
}

// ParseConfigWithSecrets reads the YAML configuration with the bind password
// and CA bundle given, not named.
func ParseConfigWithSecrets(data []byte, bindPassword string, caPEM []byte) (*Config, error) {
	var c Config
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return nil, fmt.Errorf("parsing the ldap store configuration: %w", err)
	}
	c.BindPassword, c.CAPEM = bindPassword, caPEM
	if err := c.complete(); err != nil {
		return nil, err
	}
	return &c, nil
}

// LoadConfig reads the configuration from a file.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the ldap store configuration: %w", err)
	}
	return ParseConfig(data)
}

func def(dst *string, v string) {
	if *dst == "" {
		*dst = v
	}
}

// complete fills in defaults and checks every field, naming each bad one.
func (c *Config) complete() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}

	switch u, err := url.Parse(c.URL); {
	case c.URL == "":
		bad("url", "is required")
	case err != nil:
		bad("url", "%v", err)
	case u.Scheme != "ldap" && u.Scheme != "ldaps":
		bad("url", "scheme %q is not ldap or ldaps", u.Scheme)
	case u.Host == "":
		bad("url", "has no host")
	case u.Scheme == "ldap" && !c.StartTLS && !c.Insecure:
		bad("url", "ldap:// without startTLS sends the bind password unencrypted: use ldaps://, set startTLS: true, or set insecure: true to allow plaintext")
	case c.StartTLS && u.Scheme == "ldaps":
		bad("startTLS", "is for ldap:// URLs; ldaps:// is TLS already")
	}
	if c.CAFile != "" {
		if _, err := os.Stat(c.CAFile); err != nil {
			bad("caFile", "%v", err)
		}
	}
	checkDN := func(field, dn string, required bool) {
		if dn == "" {
			if required {
				bad(field, "is required")
			}
			return
		}
		if _, err := ldapv3.ParseDN(dn); err != nil {
			bad(field, "%q is not a DN: %v", dn, err)
		}
	}
	checkDN("bindDN", c.BindDN, true)
	checkDN("usersDN", c.UsersDN, true)
	checkDN("groupsDN", c.GroupsDN, true)
	if c.BindPassword != "" {
		c.bindPassword = c.BindPassword
	} else if pw, err := store.ReadSecret("bindPassword", c.BindPasswordFile, c.BindPasswordEnv); err != nil {
		errs = append(errs, err)
	} else {
		c.bindPassword = pw
	}

	if len(c.UserObjectClasses) == 0 {
		c.UserObjectClasses = []string{"inetOrgPerson"}
	}
	if len(c.GroupObjectClasses) == 0 {
		c.GroupObjectClasses = []string{"groupOfNames", "extensibleObject"}
	}
	for i, oc := range c.UserObjectClasses {
		if !attrName.MatchString(oc) {
			bad(fmt.Sprintf("userObjectClasses[%d]", i), "%q is not an object class name", oc)
		}
	}
	for i, oc := range c.GroupObjectClasses {
		if !attrName.MatchString(oc) {
			bad(fmt.Sprintf("groupObjectClasses[%d]", i), "%q is not an object class name", oc)
		}
	}
	def(&c.EmptyGroupMember, c.GroupsDN)
	checkDN("emptyGroupMember", c.EmptyGroupMember, false)

	a := &c.Attributes
	def(&c.UserRDNAttribute, "uid")
	def(&c.MemberAttribute, "member")
	def(&a.Email, "mail")
	def(&a.FirstName, "givenName")
	def(&a.LastName, "sn")
	def(&a.Role, "employeeType")
	def(&a.Mobile, "mobile")
	def(&a.Locale, "preferredLanguage")
	def(&a.Country, notMapped)
	def(&a.TimeZone, notMapped)
	def(&a.ExternalID, "employeeNumber")
	def(&a.Extra, "description")
	g := &c.GroupAttributes
	def(&g.DisplayName, "displayName")
	def(&g.ExternalID, "uniqueIdentifier")
	def(&g.Description, "description")
	def(&c.LockAttribute, "pwdAccountLockedTime")
	def(&c.LockValue, "000001010000Z")
	def(&c.LastLoginAttribute, "authTimestamp")

	if c.UserRDNAttribute != "uid" && c.UserRDNAttribute != "mail" {
		bad("userRDNAttribute", "%q is not uid or mail", c.UserRDNAttribute)
	}
	for _, f := range []struct {
		field, v string
		mappable bool
	}{
		{"memberAttribute", c.MemberAttribute, false},
		{"attributes.email", a.Email, false},
		{"attributes.firstName", a.FirstName, true},
		{"attributes.lastName", a.LastName, false},
		{"attributes.role", a.Role, true},
		{"attributes.mobile", a.Mobile, true},
		{"attributes.locale", a.Locale, true},
		{"attributes.country", a.Country, true},
		{"attributes.timeZone", a.TimeZone, true},
		{"attributes.externalID", a.ExternalID, true},
		{"attributes.extra", a.Extra, false},
		{"groupAttributes.displayName", g.DisplayName, false},
		{"groupAttributes.externalID", g.ExternalID, false},
		{"groupAttributes.description", g.Description, false},
		{"lockAttribute", c.LockAttribute, false},
		{"lastLoginAttribute", c.LastLoginAttribute, true},
	} {
		if f.mappable && f.v == notMapped {
			continue
		}
		if !attrName.MatchString(f.v) {
			bad(f.field, "%q is not an attribute name", f.v)
		}
	}

	parseDuration := func(field, v string, fallback time.Duration) time.Duration {
		if v == "" {
			return fallback
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			bad(field, "%q is not a positive duration such as 10s", v)
			return fallback
		}
		return d
	}
	c.dialTimeout = parseDuration("dialTimeout", c.DialTimeout, 5*time.Second)
	c.requestTimeout = parseDuration("requestTimeout", c.RequestTimeout, 30*time.Second)
	switch {
	case c.PoolSize == 0:
		c.PoolSize = 4
	case c.PoolSize < 0 || c.PoolSize > 64:
		bad("poolSize", "%d is not between 1 and 64", c.PoolSize)
	}
	switch {
	case c.PageSize == 0:
		c.PageSize = 500
	case c.PageSize < 0 || c.PageSize > 100000:
		bad("pageSize", "%d is not between 1 and 100000", c.PageSize)
	}
	if len(errs) > 0 {
		return fmt.Errorf("ldap store configuration: %w", errors.Join(errs...))
	}
	return nil
}

// loginTimes reports whether the directory's last bind times are read.
func (c *Config) loginTimes() bool { return c.LastLoginAttribute != notMapped }

// String never shows the bind password.
func (c *Config) String() string {
	return fmt.Sprintf("ldap %s as %s", c.URL, c.BindDN)
}

// trimLower is the form of an email used in RDNs and comparisons.
func trimLower(s string) string { return strings.ToLower(strings.TrimSpace(s)) }
