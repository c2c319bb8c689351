// Package mail renders and sends the emails Roster sends itself: invitations,
// password reset links and the notice that a password was changed. Messages are multipart (text and HTML), rendered
// from templates built into the binary that an operator can replace, and go
// either to an SMTP server or, when none is configured, to an outbox folder
// as RFC 5322 .eml files.
package mail

import (
	"context"
	"fmt"
	netmail "net/mail"
	"strings"

	gomail "github.com/wneessen/go-mail"
)

// Kind is which email a message is.
type Kind string

const (
	// KindInvitation invites a person to choose a first password.
	KindInvitation Kind = "invitation"
	// KindReset carries a password reset link.
	KindReset Kind = "reset"
	// KindPasswordChanged tells a person their password was changed on the
	// account page. It carries no link: a message that says "your password
	// changed" is what a phishing email would copy.
	KindPasswordChanged Kind = "password-changed"
)

// Kinds are every kind of message.
var Kinds = []Kind{KindInvitation, KindReset, KindPasswordChanged}

// LinkKinds are the kinds that carry a link, with its expiry.
var LinkKinds = []Kind{KindInvitation, KindReset}

// Message is a rendered email.
type Message struct {
	Kind Kind
	// To is the recipient's address; ToName their name, possibly empty.
	To     string
	ToName string
	// Subject, Text and HTML are the rendered templates.
	Subject string
	Text    string
	HTML    string
}

// Sender delivers messages. Implementations are safe for concurrent use.
type Sender interface {
	// Send delivers the message or returns why it could not. An error means
	// the message may not have been delivered; the caller retries.
	Send(ctx context.Context, m Message) error
}

// ParseFrom reads a sender address such as "Roster <roster@example.com>".
func ParseFrom(from string) (*netmail.Address, error) {
	addr, err := netmail.ParseAddress(from)
	if err != nil {
		return nil, fmt.Errorf("sender address %q: %w", from, err)
	}
	return addr, nil
}

// build turns a message into an RFC 5322 message with a text part and an HTML
// alternative, the form both senders write.
func build(from *netmail.Address, m Message) (*gomail.Msg, error) {
	msg := gomail.NewMsg()
	msg.FromMailAddress(from)
	if err := msg.AddToFormat(m.ToName, m.To); err != nil {
		return nil, fmt.Errorf("recipient address: %w", err)
	}
	msg.Subject(m.Subject)
	msg.SetMessageID()
	msg.SetDate()
	// Ask mail servers and clients not to send vacation replies to a
	// message nobody reads replies to.
	msg.SetGenHeader(gomail.Header("Auto-Submitted"), "auto-generated")
	msg.SetGenHeader(gomail.Header("X-Roster-Message"), string(m.Kind))
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	if strings.TrimSpace(m.HTML) != "" {
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	}
	return msg, nil
}
