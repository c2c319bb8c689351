// Package validation checks the values of a User's fields the way the API
// server's schema does, and a little more (IANA time zones, stricter email
// addresses), for code that meets the values before the API server does: the
// import file reader, the UserImport controller and the kubectl plugin. Each
// check returns nil or an error whose message is a sentence fragment for
// people, such as `"XX" is not an ISO 3166-1 alpha-2 country code`, so callers
// can prefix it with the row or field it came from.
package validation

import (
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
	// The manager runs on a distroless image without /usr/share/zoneinfo;
	// the embedded database makes time.LoadLocation answer the same there
	// as on a workstation. It is used only when the system has no database.
	_ "time/tzdata"
	"unicode/utf8"
)

// Limits from the User schema (api/v1alpha1/user_types.go).
const (
	MaxEmailLength     = 254
	MaxNameLength      = 128
	MaxRoleLength      = 63
	MaxGroupNameLength = 253
	MaxGroups          = 256
	MaxTimeZoneLength  = 64
	MaxLocaleLength    = 35
)

var (
	mobilePattern   = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
	timeZonePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$`)
	localePattern   = regexp.MustCompile(`^[a-zA-Z]{2,3}([-_][a-zA-Z0-9]{2,8})*$`)
	rolePattern     = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.-]*$`)
	groupPattern    = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`)
)

// Email accepts a single bare address such as jane@example.com: what
// net/mail parses, without a display name, angle brackets or comments, and
// no longer than the schema allows. The schema's own check (format=email)
// also accepts "Jane <jane@example.com>", which would make the display name
// part of the user's ID.
func Email(s string) error {
	if s == "" {
		return errors.New("an email address is required")
	}
	if len(s) > MaxEmailLength {
		return fmt.Errorf("the email address is longer than %d characters", MaxEmailLength)
	}
	addr, err := mail.ParseAddress(s)
	if err != nil || addr.Name != "" || addr.Address != s {
		return fmt.Errorf("%q is not a single email address such as jane@example.com", s)
	}
	at := strings.LastIndexByte(s, '@')
	if at < 1 || at > 64 {
		return fmt.Errorf("%q is not a single email address such as jane@example.com", s)
	}
	domain := s[at+1:]
	if domain == "" || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") || strings.Contains(domain, "..") {
		return fmt.Errorf("%q does not have a valid domain after the @", s)
	}
	return nil
}

// Name checks a first or last name: valid UTF-8 within the schema's length.
// Names are otherwise free text.
func Name(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("the text is not valid UTF-8")
	}
	if n := utf8.RuneCountInString(s); n > MaxNameLength {
		return fmt.Errorf("the name is %d characters long, more than %d", n, MaxNameLength)
	}
	return nil
}

// Mobile accepts an E.164 number such as +4915123456789.
func Mobile(s string) error {
	if !mobilePattern.MatchString(s) {
		return fmt.Errorf("%q is not a mobile number in E.164 form such as +4915123456789", s)
	}
	return nil
}

// TimeZone accepts an IANA time zone name such as Europe/Berlin. "Local" is
// refused: it names the operator's zone, not the user's.
func TimeZone(s string) error {
	if len(s) > MaxTimeZoneLength || !timeZonePattern.MatchString(s) || s == "Local" {
		return fmt.Errorf("%q is not an IANA time zone name such as Europe/Berlin", s)
	}
	if _, ok := knownZones.Load(s); ok {
		return nil
	}
	if _, err := time.LoadLocation(s); err != nil {
		return fmt.Errorf("%q is not an IANA time zone name such as Europe/Berlin", s)
	}
	knownZones.Store(s, struct{}{})
	return nil
}

// knownZones remembers the zones time.LoadLocation found, which reads and
// parses a file on every call: an import of many rows names few zones.
// Only valid names are kept, so its size is bounded by the database.
var knownZones sync.Map

// Country accepts an ISO 3166-1 alpha-2 code in upper case, such as DE.
func Country(s string) error {
	if _, ok := countries[s]; !ok {
		return fmt.Errorf("%q is not an ISO 3166-1 alpha-2 country code", s)
	}
	return nil
}

// Locale accepts a BCP 47 language tag of the shape the schema allows, such
// as en or en-GB.
func Locale(s string) error {
	if len(s) > MaxLocaleLength || !localePattern.MatchString(s) {
		return fmt.Errorf("%q is not a language tag such as en-GB", s)
	}
	return nil
}

// Role accepts a role name such as Admin.
func Role(s string) error {
	if len(s) > MaxRoleLength || !rolePattern.MatchString(s) {
		return fmt.Errorf("%q is not a role name: up to %d letters, digits, '_', '.' or '-', starting with a letter", s, MaxRoleLength)
	}
	return nil
}

// GroupName accepts the name of a Group resource such as platform-admins.
func GroupName(s string) error {
	if len(s) > MaxGroupNameLength || !groupPattern.MatchString(s) {
		return fmt.Errorf("%q is not a group name: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit", s)
	}
	return nil
}

// Groups checks a list of group names and its length.
func Groups(names []string) error {
	if len(names) > MaxGroups {
		return fmt.Errorf("%d groups are more than the %d a user may have", len(names), MaxGroups)
	}
	for _, n := range names {
		if err := GroupName(n); err != nil {
			return err
		}
	}
	return nil
}

// TimeZones returns the IANA time zone names people choose from: one or
// more per country, as the tz database's zone.tab lists them, and UTC,
// sorted. TimeZone accepts other valid names too (links such as
// Asia/Calcutta, Etc/GMT+1).
func TimeZones() []string { return slices.Clone(zoneNames) }
