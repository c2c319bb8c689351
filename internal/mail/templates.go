package mail

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"os"
	"path"
	"strings"
	texttemplate "text/template"
	"time"
)

// builtin holds the templates shipped in the binary. For each kind there are
// three: <kind>.subject.txt, <kind>.txt and <kind>.html; layout.html wraps
// every HTML body, which it includes as the template "content". A file of the same name in the templates folder given to
// LoadTemplates replaces one of them.
//
//go:embed templates/*
var builtin embed.FS

// TemplateNames lists the files an operator can replace.
func TemplateNames() []string {
	names := []string{"layout.html"}
	for _, k := range Kinds {
		names = append(names, string(k)+".subject.txt", string(k)+".txt", string(k)+".html")
	}
	return names
}

// Data is what templates see.
type Data struct {
	// ProductName names the platform the person is invited to.
	ProductName string
	// FirstName and DisplayName are the recipient's names, possibly empty.
	FirstName   string
	DisplayName string
	// Email is the recipient's address.
	Email string
	// Link is the single-use link. It appears only in the message.
	Link string
	// ExpiresAt is when the link stops working.
	ExpiresAt time.Time
	// ValidFor is how long the link works from when it was sent.
	ValidFor time.Duration
	// ChangedAt is when the password was changed (password-changed
	// messages).
	ChangedAt time.Time
	// Location is the recipient's time zone (spec.timeZone), UTC if unset.
	Location *time.Location
}

// Greeting is the name to greet the recipient by.
func (d Data) Greeting() string {
	switch {
	case d.FirstName != "":
		return d.FirstName
	case d.DisplayName != "":
		return d.DisplayName
	}
	return "there"
}

// Expiry is ExpiresAt in the recipient's time zone, for people:
// "Monday 9 March 2026 at 09:30 GMT".
func (d Data) Expiry() string {
	loc := d.Location
	if loc == nil {
		loc = time.UTC
	}
	return d.ExpiresAt.In(loc).Format("Monday 2 January 2006 at 15:04 MST")
}

// Changed is ChangedAt in the recipient's time zone, for people, as Expiry
// writes it.
func (d Data) Changed() string {
	loc := d.Location
	if loc == nil {
		loc = time.UTC
	}
	return d.ChangedAt.In(loc).Format("Monday 2 January 2006 at 15:04 MST")
}

// Validity is ValidFor in words: "7 days", "1 hour", "90 minutes".
func (d Data) Validity() string { return HumanDuration(d.ValidFor) }

// HumanDuration writes a duration in the largest whole unit that fits.
func HumanDuration(d time.Duration) string {
	unit := func(n int64, one string) string {
		if n == 1 {
			return "1 " + one
		}
		return fmt.Sprintf("%d %ss", n, one)
	}
	switch {
	case d >= 24*time.Hour && d%(24*time.Hour) == 0:
		return unit(int64(d/(24*time.Hour)), "day")
	case d >= time.Hour && d%time.Hour == 0:
		return unit(int64(d/time.Hour), "hour")
	default:
		return unit(int64(d.Round(time.Minute)/time.Minute), "minute")
	}
}

// Templates renders messages.
type Templates struct {
	subject map[Kind]*texttemplate.Template
	text    map[Kind]*texttemplate.Template
	html    map[Kind]*htmltemplate.Template
}

// LoadTemplates parses the built-in templates, each replaced by the file of
// the same name in dir when dir is not empty and holds one. Every template is
// rendered once with sample data, so a broken replacement stops the operator
// at start-up rather than failing an invitation later.
func LoadTemplates(dir string) (*Templates, error) {
	sub, _ := fs.Sub(builtin, "templates")
	read := func(name string) (string, error) {
		if dir != "" {
			b, err := os.ReadFile(path.Join(dir, name))
			if err == nil {
				return string(b), nil
			}
			if !errors.Is(err, fs.ErrNotExist) {
				return "", fmt.Errorf("mail template %s: %w", name, err)
			}
		}
		b, err := fs.ReadFile(sub, name)
		return string(b), err
	}
	t := &Templates{
		subject: map[Kind]*texttemplate.Template{},
		text:    map[Kind]*texttemplate.Template{},
		html:    map[Kind]*htmltemplate.Template{},
	}
	layout, err := read("layout.html")
	if err != nil {
		return nil, err
	}
	for _, k := range Kinds {
		for _, part := range []string{".subject.txt", ".txt"} {
			src, err := read(string(k) + part)
			if err != nil {
				return nil, err
			}
			tmpl, err := texttemplate.New(string(k) + part).Option("missingkey=error").Parse(src)
			if err != nil {
				return nil, fmt.Errorf("mail template %s%s: %w", k, part, err)
			}
			if part == ".txt" {
				t.text[k] = tmpl
			} else {
				t.subject[k] = tmpl
			}
		}
		body, err := read(string(k) + ".html")
		if err != nil {
			return nil, err
		}
		tmpl, err := htmltemplate.New("layout.html").Option("missingkey=error").Parse(layout)
		if err == nil {
			_, err = tmpl.New("content").Parse(body)
		}
		if err != nil {
			return nil, fmt.Errorf("mail template %s.html: %w", k, err)
		}
		t.html[k] = tmpl
	}
	for _, k := range Kinds {
		if _, err := t.Render(k, "check@example.com", SampleData()); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// SampleData is what templates are checked with, and what golden files show.
func SampleData() Data {
	loc, _ := time.LoadLocation("Europe/London")
	return Data{
		ProductName: "Acme Platform",
		FirstName:   "Ada",
		DisplayName: "Ada Lovelace",
		Email:       "ada@example.com",
		Link:        "https://id.example.com/invitation/0f6d1c2e-8b1a-4f7e-9c3d-2a5b6c7d8e9f.SAMPLE-TOKEN",
		ExpiresAt:   time.Date(2026, 3, 9, 9, 30, 0, 0, time.UTC),
		ValidFor:    7 * 24 * time.Hour,
		ChangedAt:   time.Date(2026, 3, 2, 14, 5, 0, 0, time.UTC),
		Location:    loc,
	}
}

// Render renders the message of kind k for the recipient.
func (t *Templates) Render(k Kind, to string, d Data) (Message, error) {
	if t.subject[k] == nil {
		return Message{}, fmt.Errorf("no templates for %q emails", k)
	}
	var subject, text, html bytes.Buffer
	if err := t.subject[k].Execute(&subject, d); err != nil {
		return Message{}, fmt.Errorf("rendering the %s subject: %w", k, err)
	}
	if err := t.text[k].Execute(&text, d); err != nil {
		return Message{}, fmt.Errorf("rendering the %s text: %w", k, err)
	}
	if err := t.html[k].ExecuteTemplate(&html, "layout.html", htmlData{Data: d, Subject: oneLine(subject.String())}); err != nil {
		return Message{}, fmt.Errorf("rendering the %s HTML: %w", k, err)
	}
	return Message{
		Kind: k, To: to, ToName: d.DisplayName,
		Subject: oneLine(subject.String()),
		Text:    text.String(),
		HTML:    html.String(),
	}, nil
}

// htmlData is what the HTML templates see: the data and the subject, which
// the layout uses as the document's title.
type htmlData struct {
	Data
	Subject string
}

// oneLine keeps a subject to one line whatever the template did: a line
// break in a header would end it.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
