package controllerstest

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/onsi/gomega"
)

// browserStep bounds each step a test asks of the browser.
const browserStep = 30 * time.Second

// Chromium starts headless Chromium for one test, with or without
// JavaScript. Without Chromium the test is skipped on a workstation and
// fails in CI (CI=true), which installs it.
func Chromium(t *testing.T, javascript bool) context.Context {
	t.Helper()
	var path string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("Chromium is not installed; CI must install it (apt-get install -y chromium)")
		}
		t.Skip("Chromium is not installed (apt-get install -y chromium); skipping the browser test outside CI")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // tests may run as root, where Chromium's sandbox refuses to start
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(420, 900), // a phone
	)
	// The deadline bounds the whole browser, which lives as long as the
	// context of the first Run.
	life, cancelLife := context.WithTimeout(context.Background(), 5*time.Minute)
	alloc, cancelAlloc := chromedp.NewExecAllocator(life, opts...)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancelCtx(); cancelAlloc(); cancelLife() })
	err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tgt *chromedp.Target) error {
		_, err := cdp.Call(ctx, tgt, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: !javascript})
		return err
	}))
	if err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	return ctx
}

// Do runs the actions with a deadline of their own.
func Do(ctx context.Context, actions ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(ctx, browserStep)
	defer cancel()
	return chromedp.Do(ctx, actions...)
}

// Open loads the page at link and waits until the element is visible. A
// navigation whose load event the browser never reports (seen on a busy
// machine) is tried again rather than waited on forever.
func Open(t *testing.T, ctx context.Context, link, css string) {
	t.Helper()
	gomega.NewWithT(t).Eventually(func() error {
		return Do(ctx, chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS(css)))
	}, 3*browserStep, 50*time.Millisecond).Should(gomega.Succeed(), "opening the link")
}

// Text waits for the element to be visible and returns its text.
func Text(t *testing.T, ctx context.Context, css string) string {
	t.Helper()
	if err := Do(ctx, chromedp.WaitVisible(chromedp.CSS(css))); err != nil {
		t.Fatalf("waiting for %s: %v", css, err)
	}
	tctx, cancel := context.WithTimeout(ctx, browserStep)
	defer cancel()
	v, err := chromedp.Run(tctx, chromedp.Text(chromedp.CSS(css)))
	if err != nil {
		t.Fatalf("reading %s: %v", css, err)
	}
	return strings.TrimSpace(v)
}
