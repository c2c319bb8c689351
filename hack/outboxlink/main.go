// Command outboxlink prints the link in the newest email of a kind that the
// outbox holds for an address, so that `make demo` can show a newcomer the
// invitation link to open. It is a development aid: the link is a live
// credential, which the operator itself never prints.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"roster.dev/roster/internal/mail/mailtest"
)

func main() {
	dir := flag.String("outbox", "", "the outbox folder (--outbox-dir of the operator)")
	to := flag.String("to", "", "the recipient's address")
	kind := flag.String("kind", "invitation", "the kind of email: invitation or reset")
	flag.Parse()
	link, err := newestLink(*dir, *to, *kind)
	if err != nil {
		fmt.Fprintln(os.Stderr, "outboxlink:", err)
		os.Exit(1)
	}
	fmt.Println(link)
}

func newestLink(dir, to, kind string) (string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*-"+kind+"-*.eml"))
	if err != nil {
		return "", err
	}
	// File names start with the time they were written.
	slices.Sort(files)
	slices.Reverse(files)
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		msg, err := mailtest.Parse(raw)
		if err != nil {
			return "", fmt.Errorf("%s: %w", f, err)
		}
		if !strings.Contains(strings.ToLower(msg.Header.Get("To")), strings.ToLower(to)) {
			continue
		}
		if links := mailtest.Links(msg.Text); len(links) > 0 {
			return links[0], nil
		}
	}
	return "", fmt.Errorf("no %s email for %s in %s", kind, to, dir)
}
