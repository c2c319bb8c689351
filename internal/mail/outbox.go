package mail

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	netmail "net/mail"
	"os"
	"path/filepath"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/log"
)

// Outbox writes each message as an .eml file into a folder, for running
// without an SMTP server: the demo, development, or a cluster whose mail is
// collected from a volume. It logs the file's name, never its content: the
// file holds a live link.
type Outbox struct {
	dir  string
	from *netmail.Address
	now  func() time.Time
}

// NewOutbox returns an outbox writing into dir, creating it if needed.
func NewOutbox(dir string, from *netmail.Address) (*Outbox, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the outbox %q: %w", dir, err)
	}
	return &Outbox{dir: dir, from: from, now: time.Now}, nil
}

// Dir is the outbox folder.
func (o *Outbox) Dir() string { return o.dir }

// Send implements Sender. Files are named so that they sort by time, and
// appear whole: each is written under a temporary name and renamed.
func (o *Outbox) Send(ctx context.Context, m Message) error {
	msg, err := build(o.from, m)
	if err != nil {
		return err
	}
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	name := fmt.Sprintf("%s-%s-%s.eml", o.now().UTC().Format("20060102T150405.000Z"), m.Kind, hex.EncodeToString(suffix))
	tmp, err := os.CreateTemp(o.dir, ".writing-*")
	if err != nil {
		return fmt.Errorf("writing to the outbox: %w", err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	if _, err := msg.WriteTo(tmp); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("writing to the outbox: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing to the outbox: %w", err)
	}
	path := filepath.Join(o.dir, name)
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing to the outbox: %w", err)
	}
	log.FromContext(ctx).Info("Wrote the message to the outbox", "kind", m.Kind, "file", path)
	return nil
}
