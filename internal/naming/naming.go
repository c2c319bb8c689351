// Package naming holds the names Roster derives from an email address: the
// form addresses are compared in, and the object name a User gets when an
// import or `kubectl roster invite` creates it. The controllers and the
// kubectl plugin share it so that both name a person's User alike.
package naming

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"
)

// NormalizeEmail is the form emails are compared in: the store treats
// addresses that differ only in case as one.
func NormalizeEmail(email string) string { return strings.ToLower(strings.TrimSpace(email)) }

var notNameChars = regexp.MustCompile(`[^a-z0-9]+`)

// UserName derives a User's object name from its email: readable,
// deterministic and a valid DNS subdomain name. "Ada.Lovelace@Example.com"
// becomes "ada.lovelace-at-example.com".
func UserName(email string) string {
	local, domain, _ := strings.Cut(NormalizeEmail(email), "@")
	name := clean(local) + "-at-" + clean(domain)
	if len(name) > 200 {
		name = strings.TrimRight(name[:200], ".-")
	}
	return name
}

// UserNameWithSuffix is UserName with a suffix from the email's digest, for
// when another User already holds the plain name.
func UserNameWithSuffix(email string) string {
	sum := sha256.Sum256([]byte(NormalizeEmail(email)))
	return UserName(email) + "-" + hex.EncodeToString(sum[:4])
}

// clean turns a part of an address into dot-separated labels of [a-z0-9-]
// that start and end with a letter or digit.
func clean(s string) string {
	var labels []string
	for _, l := range strings.Split(s, ".") {
		if l = strings.Trim(notNameChars.ReplaceAllString(l, "-"), "-"); l != "" {
			labels = append(labels, l)
		}
	}
	if len(labels) == 0 {
		return "x"
	}
	return strings.Join(labels, ".")
}
