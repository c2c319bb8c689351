package mail_test

import (
	"flag"
	"net"
	netmail "net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"roster.dev/roster/internal/mail"
	"roster.dev/roster/internal/mail/mailtest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata from the current templates")

var from = &netmail.Address{Name: "Acme Platform", Address: "no-reply@acme.example.com"}

// The rendered messages are compared with files in testdata: a change to a
// template shows in review as a change to what people receive.
func TestGoldenMessages(t *testing.T) {
	tmpl, err := mail.LoadTemplates("")
	if err != nil {
		t.Fatalf("LoadTemplates: %v", err)
	}
	for _, kind := range mail.Kinds {
		t.Run(string(kind), func(t *testing.T) {
			data := mail.SampleData()
			if kind == mail.KindReset {
				data.ValidFor = time.Hour
				data.Link = strings.Replace(data.Link, "/invitation/", "/reset/", 1)
				data.ExpiresAt = time.Date(2026, 7, 2, 15, 0, 0, 0, time.UTC) // summer time in London
			}
			msg, err := tmpl.Render(kind, data.Email, data)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			for _, part := range []struct{ ext, got string }{
				{"subject.txt", msg.Subject + "\n"}, {"txt", msg.Text}, {"html", msg.HTML},
			} {
				golden := filepath.Join("testdata", string(kind)+"."+part.ext+".golden")
				if *update {
					if err := os.WriteFile(golden, []byte(part.got), 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run go test ./internal/mail -update to create it)", err)
				}
				if diff := cmp.Diff(string(want), part.got); diff != "" {
					t.Errorf("%s differs from %s (-want +got); run with -update if the change is intended:\n%s", part.ext, golden, diff)
				}
			}
		})
	}
}

func TestMessagesNameTheProductAndTheExpiry(t *testing.T) {
	tmpl, err := mail.LoadTemplates("")
	if err != nil {
		t.Fatalf("LoadTemplates: %v", err)
	}
	data := mail.SampleData()
	data.ProductName = "Globex Cloud"
	for _, kind := range mail.LinkKinds {
		msg, err := tmpl.Render(kind, data.Email, data)
		if err != nil {
			t.Fatalf("Render: %v", err)
		}
		for name, part := range map[string]string{"subject": msg.Subject, "text": msg.Text, "html": msg.HTML} {
			if !strings.Contains(part, "Globex Cloud") {
				t.Errorf("%s %s does not name the product", kind, name)
			}
			if !strings.Contains(part, "7 days") {
				t.Errorf("%s %s does not say how long the link works", kind, name)
			}
		}
		for name, part := range map[string]string{"text": msg.Text, "html": msg.HTML} {
			if !strings.Contains(part, data.Link) {
				t.Errorf("%s %s does not hold the link", kind, name)
			}
			if !strings.Contains(part, "Monday 9 March 2026 at 09:30 GMT") {
				t.Errorf("%s %s does not give the expiry in the recipient's time zone", kind, name)
			}
		}
	}
}

func TestPasswordChangedHasNoLink(t *testing.T) {
	tmpl, err := mail.LoadTemplates("")
	if err != nil {
		t.Fatalf("LoadTemplates: %v", err)
	}
	data := mail.SampleData()
	data.ProductName = "Globex Cloud"
	msg, err := tmpl.Render(mail.KindPasswordChanged, data.Email, data)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	for name, part := range map[string]string{"subject": msg.Subject, "text": msg.Text, "html": msg.HTML} {
		if !strings.Contains(part, "Globex Cloud") {
			t.Errorf("%s does not name the product", name)
		}
		if strings.Contains(part, data.Link) || strings.Contains(part, "http") || strings.Contains(part, "href") {
			t.Errorf("%s holds a link", name)
		}
	}
	for name, part := range map[string]string{"text": msg.Text, "html": msg.HTML} {
		if !strings.Contains(part, "Monday 2 March 2026 at 14:05 GMT") {
			t.Errorf("%s does not give the time of the change in the recipient's time zone", name)
		}
	}
}

func TestHTMLIsEscaped(t *testing.T) {
	tmpl, err := mail.LoadTemplates("")
	if err != nil {
		t.Fatalf("LoadTemplates: %v", err)
	}
	data := mail.SampleData()
	data.FirstName = `<script>alert("x")</script>`
	msg, err := tmpl.Render(mail.KindInvitation, data.Email, data)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	if strings.Contains(msg.HTML, "<script>") {
		t.Error("a name was inserted into the HTML unescaped")
	}
}

func TestTemplatesCanBeReplaced(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("invitation.subject.txt", "Welcome aboard {{.ProductName}}, {{.Greeting}}!\n")
	tmpl, err := mail.LoadTemplates(dir)
	if err != nil {
		t.Fatalf("LoadTemplates: %v", err)
	}
	msg, err := tmpl.Render(mail.KindInvitation, "ada@example.com", mail.SampleData())
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	if msg.Subject != "Welcome aboard Acme Platform, Ada!" {
		t.Errorf("Subject = %q, want the replacement's", msg.Subject)
	}
	if !strings.Contains(msg.Text, "You have been invited") {
		t.Error("the built-in text template was not used for the file not replaced")
	}

	write("reset.txt", "{{.NoSuchField}}")
	if _, err := mail.LoadTemplates(dir); err == nil || !strings.Contains(err.Error(), "reset") {
		t.Errorf("LoadTemplates with a broken template: err = %v, want one naming it", err)
	}
	write("reset.txt", "{{if}")
	if _, err := mail.LoadTemplates(dir); err == nil || !strings.Contains(err.Error(), "reset.txt") {
		t.Errorf("LoadTemplates with a template that does not parse: err = %v, want one naming it", err)
	}
}

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		7 * 24 * time.Hour: "7 days", 24 * time.Hour: "1 day", time.Hour: "1 hour",
		36 * time.Hour: "36 hours", 90 * time.Minute: "90 minutes", time.Minute: "1 minute",
	} {
		if got := mail.HumanDuration(d); got != want {
			t.Errorf("HumanDuration(%s) = %q, want %q", d, got, want)
		}
	}
}

func render(t *testing.T) mail.Message {
	t.Helper()
	tmpl, err := mail.LoadTemplates("")
	if err != nil {
		t.Fatalf("LoadTemplates: %v", err)
	}
	data := mail.SampleData()
	msg, err := tmpl.Render(mail.KindInvitation, data.Email, data)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	return msg
}

// checkReceived parses a raw message and checks it is the sample invitation.
func checkReceived(t *testing.T, raw []byte) {
	t.Helper()
	p, err := mailtest.Parse(raw)
	if err != nil {
		t.Fatalf("parsing the message: %v", err)
	}
	want := mail.SampleData()
	if !strings.HasPrefix(p.Subject, "You're invited to Acme Platform") {
		t.Errorf("Subject = %q", p.Subject)
	}
	if got := p.Header.Get("To"); !strings.Contains(got, want.Email) {
		t.Errorf("To = %q, want it to hold %s", got, want.Email)
	}
	if got := p.Header.Get("From"); !strings.Contains(got, from.Address) {
		t.Errorf("From = %q, want %s", got, from.Address)
	}
	for _, h := range []string{"Date", "Message-Id", "Mime-Version"} {
		if p.Header.Get(h) == "" {
			t.Errorf("no %s header", h)
		}
	}
	if links := mailtest.Links(p.Text); len(links) == 0 || links[0] != want.Link {
		t.Errorf("links in the text part = %v, want %s first", links, want.Link)
	}
	if !strings.Contains(p.HTML, `href="`+want.Link+`"`) {
		t.Error("the HTML part does not link to the invitation")
	}
}

func TestOutboxWritesAnRFC5322File(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "outbox")
	box, err := mail.NewOutbox(dir, from)
	if err != nil {
		t.Fatalf("NewOutbox: %v", err)
	}
	if err := box.Send(t.Context(), render(t)); err != nil {
		t.Fatalf("Send: %v", err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil || len(files) != 1 || !strings.Contains(filepath.Base(files[0]), "-invitation-") || filepath.Ext(files[0]) != ".eml" {
		t.Fatalf("outbox holds %v, want one invitation .eml file", files)
	}
	raw, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	checkReceived(t, raw)
}

func TestSMTP(t *testing.T) {
	for _, implicitTLS := range []bool{false, true} {
		name := "STARTTLS"
		if implicitTLS {
			name = "implicit TLS"
		}
		t.Run(name, func(t *testing.T) {
			srv, err := mailtest.Start(implicitTLS)
			if err != nil {
				t.Fatalf("starting the SMTP server: %v", err)
			}
			defer srv.Close()
			sender, err := mail.NewSMTP(mail.SMTPConfig{URL: srv.URL, Password: mailtest.Password, From: from, TLSConfig: srv.ClientTLS, Timeout: 10 * time.Second})
			if err != nil {
				t.Fatalf("NewSMTP: %v", err)
			}
			if err := sender.Send(t.Context(), render(t)); err != nil {
				t.Fatalf("Send: %v", err)
			}
			got := srv.Messages()
			if len(got) != 1 {
				t.Fatalf("the server received %d messages, want 1", len(got))
			}
			if !got[0].TLS || got[0].AuthUser != mailtest.Username {
				t.Errorf("TLS = %v, logged in as %q; want an encrypted, authenticated session", got[0].TLS, got[0].AuthUser)
			}
			if diff := cmp.Diff([]string{"ada@example.com"}, got[0].To); diff != "" {
				t.Errorf("recipients (-want +got):\n%s", diff)
			}
			checkReceived(t, got[0].Raw)
		})
	}
}

// A mail server with a certificate from a private CA is trusted through a
// CA file, and refused without it.
func TestSMTPCAFile(t *testing.T) {
	srv, err := mailtest.Start(false)
	if err != nil {
		t.Fatalf("starting the SMTP server: %v", err)
	}
	defer srv.Close()
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, srv.CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := mail.SMTPConfig{URL: srv.URL, Password: mailtest.Password, From: from, Timeout: 10 * time.Second}
	untrusting, err := mail.NewSMTP(cfg)
	if err != nil {
		t.Fatalf("NewSMTP: %v", err)
	}
	if err := untrusting.Send(t.Context(), render(t)); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("Send without the CA: err = %v, want a certificate error", err)
	}
	cfg.CAFile = caFile
	sender, err := mail.NewSMTP(cfg)
	if err != nil {
		t.Fatalf("NewSMTP: %v", err)
	}
	if err := sender.Send(t.Context(), render(t)); err != nil {
		t.Fatalf("Send with the CA file: %v", err)
	}
	if got := srv.Messages(); len(got) != 1 || !got[0].TLS {
		t.Errorf("the server received %d messages; want 1, encrypted", len(got))
	}

	empty := filepath.Join(dir, "empty.pem")
	if err := os.WriteFile(empty, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{empty: "holds no PEM certificate", filepath.Join(dir, "missing.pem"): "no such file"} {
		cfg.CAFile = file
		if _, err := mail.NewSMTP(cfg); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "SMTP CA file") {
			t.Errorf("NewSMTP with CA file %s: err = %v, want one naming the CA file and %q", file, err, want)
		}
	}
}

func TestSMTPFailuresAreReported(t *testing.T) {
	srv, err := mailtest.Start(false)
	if err != nil {
		t.Fatalf("starting the SMTP server: %v", err)
	}
	defer srv.Close()
	newSender := func(url, password string, tlsConfig bool) *mail.SMTP {
		cfg := mail.SMTPConfig{URL: url, Password: password, From: from, Timeout: 5 * time.Second}
		if tlsConfig {
			cfg.TLSConfig = srv.ClientTLS
		}
		s, err := mail.NewSMTP(cfg)
		if err != nil {
			t.Fatalf("NewSMTP: %v", err)
		}
		return s
	}
	msg := render(t)

	t.Run("wrong password", func(t *testing.T) {
		err := newSender(srv.URL, "wrong", true).Send(t.Context(), msg)
		if err == nil || !strings.Contains(err.Error(), "535") {
			t.Errorf("Send with a wrong password: err = %v, want the server's 535", err)
		}
		if strings.Contains(err.Error(), "wrong") {
			t.Error("the error shows the password")
		}
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		if err := newSender(srv.URL, mailtest.Password, false).Send(t.Context(), msg); err == nil {
			t.Error("Send to a server with an untrusted certificate succeeded")
		}
	})
	t.Run("server down", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		_ = ln.Close()
		err = newSender("smtp://roster@localhost:"+port, "x", true).Send(t.Context(), msg)
		if err == nil {
			t.Fatal("Send to a server that is down succeeded")
		}
	})
	t.Run("temporary refusal", func(t *testing.T) {
		srv.RefuseData(true)
		defer srv.RefuseData(false)
		if err := newSender(srv.URL, mailtest.Password, true).Send(t.Context(), msg); err == nil || !strings.Contains(err.Error(), "451") {
			t.Errorf("Send refused by the server: err = %v, want the server's 451", err)
		}
	})
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("the server accepted %d messages, want none", n)
	}
}

func TestSMTPURL(t *testing.T) {
	for _, tc := range []struct{ url, wantErr string }{
		{"smtp://mail.example.com", ""},
		{"smtps://user@mail.example.com:2465", ""},
		{"smtp://user:secret@mail.example.com", "password"},
		{"http://mail.example.com", "scheme"},
		{"smtp://", "no host"},
		{"smtp://mail.example.com:99999", "port"},
	} {
		_, _, err := mail.ParseSMTPURL(tc.url)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("ParseSMTPURL(%q): %v", tc.url, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("ParseSMTPURL(%q) error = %v, want one about %s", tc.url, err, tc.wantErr)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("ParseSMTPURL(%q) error shows the password: %v", tc.url, err)
		}
	}
}
