// Package invitation issues and checks the single-use links Roster emails:
// invitations and password resets.
//
// A link carries a token made of two parts: the UID of the User it was
// issued for, which finds the token's record without searching the cluster,
// and 256 random bits. The cluster keeps only a SHA-256 hash of the random
// part, in a Secret owned by the User (see Record for why a Secret). The
// random part is long enough that a fast hash is safe: unlike a password, it
// cannot be guessed from a list.
package invitation

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Purpose is what a token lets its holder do.
type Purpose string

const (
	// PurposeInvitation accepts an invitation by choosing a first password.
	PurposeInvitation Purpose = "invitation"
	// PurposeReset chooses a new password.
	PurposeReset Purpose = "reset"
)

// Purposes are every purpose, in a fixed order.
var Purposes = []Purpose{PurposeInvitation, PurposeReset}

// Path is where the web endpoint serves the page for a purpose; a link is
// the public URL, this path and the token.
func (p Purpose) Path() string {
	if p == PurposeReset {
		return "/reset/"
	}
	return "/invitation/"
}

// secretBytes is the random part's length: 256 bits, twice the minimum the
// product contract asks for.
const secretBytes = 32

var encoding = base64.RawURLEncoding

// ErrMalformed means a string is not a token at all.
var ErrMalformed = errors.New("malformed token")

// Token is a token in plain text. It exists only in memory and in the email
// it is sent in; never log it or store it.
type Token struct {
	// ID is the UID of the User the token was issued for.
	ID     string
	secret string
}

// New returns a fresh token for the User with the UID.
func New(uid string) (Token, error) {
	if uid == "" || strings.ContainsAny(uid, "./") {
		return Token{}, fmt.Errorf("issuing a token: unusable user UID %q", uid)
	}
	b := make([]byte, secretBytes)
	if _, err := rand.Read(b); err != nil {
		return Token{}, fmt.Errorf("issuing a token: %w", err)
	}
	return Token{ID: uid, secret: encoding.EncodeToString(b)}, nil
}

// Parse reads a token from a link. It checks only the form; Record.Check
// says whether the token is valid.
func Parse(s string) (Token, error) {
	id, secret, ok := strings.Cut(s, ".")
	if !ok || id == "" || len(id) > 128 || strings.ContainsAny(id, "/") {
		return Token{}, ErrMalformed
	}
	if b, err := encoding.DecodeString(secret); err != nil || len(b) != secretBytes {
		return Token{}, ErrMalformed
	}
	return Token{ID: id, secret: secret}, nil
}

// Value is the token as it appears in a link. It is the only way to read
// the secret part, so that formatting a Token can never reveal it.
func (t Token) Value() string { return t.ID + "." + t.secret }

// String redacts the secret part, so a token that ends up in a log line or
// an error message gives nothing away.
func (t Token) String() string { return t.ID + ".<redacted>" }

// GoString redacts the secret part for %#v.
func (t Token) GoString() string {
	return fmt.Sprintf("invitation.Token{ID: %q, secret: <redacted>}", t.ID)
}

// Hash is what the cluster keeps of the token.
func (t Token) Hash() []byte {
	h := sha256.Sum256([]byte(t.secret))
	return h[:]
}

// Matches reports, in constant time, whether the token hashes to hash.
func (t Token) Matches(hash []byte) bool {
	return len(hash) == sha256.Size && subtle.ConstantTimeCompare(t.Hash(), hash) == 1
}

// Link is the address of the page for the token, under publicURL.
func Link(publicURL *url.URL, p Purpose, t Token) string {
	u := *publicURL
	u.Path = strings.TrimSuffix(u.Path, "/") + p.Path() + t.Value()
	u.RawQuery, u.Fragment = "", ""
	return u.String()
}
