// Package password is the password policy Roster enforces on every password
// it accepts: a minimum length and the kinds of character a password must
// contain. The same rules drive the check in the browser and the check on
// the server, so a person sees the same list in both places.
package password

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Class is a kind of character a policy can require.
type Class string

// The classes a policy can require. Letters and digits are judged by
// Unicode, so "é" is a lowercase letter and "٣" a digit; a special character
// is anything that is neither a letter nor a digit, spaces included.
const (
	Lower   Class = "lower"
	Upper   Class = "upper"
	Digit   Class = "digit"
	Special Class = "special"
)

// Classes are the classes in the order rules are listed.
var Classes = []Class{Lower, Upper, Digit, Special}

// MaxLength bounds every password: long enough for any passphrase, short
// enough that hashing a posted password costs the server nothing special.
const MaxLength = 256

// Policy is what a password must satisfy.
type Policy struct {
	// MinLength is the minimum number of characters (Unicode code points).
	MinLength int
	// Require lists the classes of character a password must contain.
	Require []Class
}

// Default is the policy of the product contract: at least 10 characters with
// a lowercase letter, an uppercase letter, a digit and a special character.
func Default() Policy {
	return Policy{MinLength: 10, Require: slices.Clone(Classes)}
}

// Parse reads a list of classes such as "lower,upper,digit,special"; an empty
// string or "none" requires none.
func Parse(minLength int, classes string) (Policy, error) {
	p := Policy{MinLength: minLength}
	if minLength < 1 || minLength > MaxLength {
		return p, fmt.Errorf("minimum length %d is outside 1..%d", minLength, MaxLength)
	}
	classes = strings.TrimSpace(classes)
	if classes == "" || classes == "none" {
		return p, nil
	}
	for _, c := range strings.Split(classes, ",") {
		class := Class(strings.ToLower(strings.TrimSpace(c)))
		if !slices.Contains(Classes, class) {
			return p, fmt.Errorf("unknown character class %q (want a list of lower, upper, digit, special)", c)
		}
		if !slices.Contains(p.Require, class) {
			p.Require = append(p.Require, class)
		}
	}
	// List rules in one order, whatever order the flag used.
	slices.SortFunc(p.Require, func(a, b Class) int { return slices.Index(Classes, a) - slices.Index(Classes, b) })
	return p, nil
}

// Rule is one requirement, worded for the person choosing a password.
type Rule struct {
	// ID names the rule in the page, where a small script checks it as the
	// person types: "length" or a Class.
	ID string
	// Text describes the rule: "At least 10 characters".
	Text string
}

// Rules lists every rule of the policy in a fixed order.
func (p Policy) Rules() []Rule {
	rules := []Rule{{ID: "length", Text: fmt.Sprintf("At least %d characters", p.MinLength)}}
	for _, c := range p.Require {
		rules = append(rules, Rule{ID: string(c), Text: classText[c]})
	}
	return rules
}

var classText = map[Class]string{
	Lower:   "A lowercase letter",
	Upper:   "An uppercase letter",
	Digit:   "A digit",
	Special: "A special character, such as ! ? # or a space",
}

// Unmet returns the rules the password does not meet, in the order Rules
// lists them; none means the password is acceptable. A password longer than
// MaxLength fails a rule of its own.
func (p Policy) Unmet(password string) []Rule {
	var unmet []Rule
	n := utf8.RuneCountInString(password)
	if n < p.MinLength {
		unmet = append(unmet, p.Rules()[0])
	}
	if n > MaxLength {
		unmet = append(unmet, Rule{ID: "maxlength", Text: fmt.Sprintf("At most %d characters", MaxLength)})
	}
	for _, c := range p.Require {
		if !strings.ContainsFunc(password, classTest[c]) {
			unmet = append(unmet, Rule{ID: string(c), Text: classText[c]})
		}
	}
	return unmet
}

var classTest = map[Class]func(rune) bool{
	Lower:   unicode.IsLower,
	Upper:   unicode.IsUpper,
	Digit:   unicode.IsDigit,
	Special: func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) },
}

// String describes the policy for logs and flags' help.
func (p Policy) String() string {
	classes := make([]string, len(p.Require))
	for i, c := range p.Require {
		classes[i] = string(c)
	}
	return fmt.Sprintf("min %d characters, require [%s]", p.MinLength, strings.Join(classes, ","))
}
