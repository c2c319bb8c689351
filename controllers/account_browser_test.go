package controllers_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"roster.dev/roster/api/v1alpha1"
)

// accountScreenshotDir is where the account pages' screenshots go:
// $ROSTER_SCREENSHOT_DIR/account, or bin/screenshots/account in the
// repository (ignored by git), for people to look at. They are not
// compared with anything.
func accountScreenshotDir(t *testing.T) string {
	dir := os.Getenv("ROSTER_SCREENSHOT_DIR")
	if dir == "" {
		dir = filepath.Join("..", "bin", "screenshots")
	}
	dir = filepath.Join(dir, "account")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// shoot saves the whole page as dir/name.png.
func shoot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	png, err := chromedp.Run(tctx, chromedp.FullScreenshot(100)) // quality 100 is a PNG, less a JPEG
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if len(png) < 1000 {
		t.Fatalf("screenshot %s is %d bytes: nothing drawn", name, len(png))
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// A person signs in, is refused a wrong password, changes a setting, is
// refused a mobile number that is not E.164, changes their password and
// signs out, at a desktop and a phone width; each page is screenshot.
func TestAccountBrowserPages(t *testing.T) {
	ctx := browser(t, true)
	g := NewWithT(t)
	ns := newNamespace(t)
	addr := "screens@" + ns + ".example.com"
	passwords := []string{choose("Screenshot-Start-2026"), choose("Screenshot-Desk-2026!"), choose("Screenshot-Phone-2026?")}
	activeUser(t, ns, "screens", addr, passwords[0])
	git := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{"email": addr, "lastName": "Lovelace"}}}
	git.SetAPIVersion(v1alpha1.GroupVersion.String())
	git.SetKind("User")
	git.SetNamespace(ns)
	git.SetName("screens")
	g.Expect(k8s.Apply(t.Context(), client.ApplyConfigurationFromUnstructured(git), client.FieldOwner("argocd-controller"), client.ForceOwnership)).To(Succeed())
	dir := accountScreenshotDir(t)

	for i, size := range []struct {
		name          string
		width, height int64
		zone          string
	}{
		{"desktop", 1280, 900, "Asia/Tokyo"},
		{"phone", 390, 844, "America/New_York"},
	} {
		current, next := passwords[i], passwords[i+1]
		g.Expect(do(ctx, chromedp.EmulateViewport(size.width, size.height))).To(Succeed())

		open(t, ctx, webURL+"/account", "#email")
		g.Expect(text(t, ctx, "h1")).To(Equal("Sign in"))
		shoot(t, ctx, dir, "signin-"+size.name)

		g.Expect(do(ctx,
			chromedp.SendKeys(chromedp.CSS("#email"), addr),
			chromedp.SendKeys(chromedp.CSS("#password"), current+"x"),
			chromedp.Click(chromedp.CSS(`form[action$="/sign-in"] button`)),
		)).To(Succeed())
		g.Expect(text(t, ctx, "#problems")).To(Equal("The email address or password is not right."))
		shoot(t, ctx, dir, "signin-error-"+size.name)

		g.Expect(do(ctx,
			chromedp.SendKeys(chromedp.CSS("#password"), current),
			chromedp.Click(chromedp.CSS(`form[action$="/sign-in"] button`)),
			chromedp.WaitVisible(chromedp.CSS("#firstName")),
		)).To(Succeed())
		g.Expect(text(t, ctx, "h1")).To(Equal("Your account"))
		g.Expect(text(t, ctx, "#lastName-managed")).To(Equal("Managed by your administrator."))
		shoot(t, ctx, dir, "settings-"+size.name)

		g.Expect(do(ctx,
			chromedp.SetValue(chromedp.CSS("#mobile"), "0151 2345678"),
			chromedp.Click(chromedp.CSS(`form[action$="/account"] button`)),
			chromedp.WaitVisible(chromedp.CSS("#mobile-error")),
		)).To(Succeed())
		g.Expect(text(t, ctx, "#mobile-error")).To(ContainSubstring("E.164"))
		shoot(t, ctx, dir, "settings-error-"+size.name)

		g.Expect(do(ctx,
			chromedp.SetValue(chromedp.CSS("#mobile"), "+4915123456789"),
			chromedp.SetValue(chromedp.CSS("#timeZone"), size.zone),
			chromedp.Click(chromedp.CSS(`form[action$="/account"] button`)),
			chromedp.WaitVisible(chromedp.CSS(".notice.ok")),
		)).To(Succeed())
		g.Expect(get(g, t.Context(), ns, "screens").Spec.TimeZone).To(Equal(size.zone))
		shoot(t, ctx, dir, "settings-saved-"+size.name)

		open(t, ctx, webURL+"/account/password", "#current")
		shoot(t, ctx, dir, "password-"+size.name)
		g.Expect(do(ctx,
			chromedp.SendKeys(chromedp.CSS("#current"), current),
			chromedp.SendKeys(chromedp.CSS("#password"), "weak"),
			chromedp.SendKeys(chromedp.CSS("#confirm"), "weak"),
			chromedp.Click(chromedp.CSS(`form[data-policy] button`)),
		)).To(Succeed())
		g.Expect(text(t, ctx, "#problems")).To(ContainSubstring("An uppercase letter"))
		shoot(t, ctx, dir, "password-error-"+size.name)

		g.Expect(do(ctx,
			chromedp.SetValue(chromedp.CSS("#password"), next),
			chromedp.SetValue(chromedp.CSS("#confirm"), next),
			chromedp.Click(chromedp.CSS(`form[data-policy] button`)),
			chromedp.WaitVisible(chromedp.CSS(".notice.ok")),
		)).To(Succeed())
		_, err := emb.Authenticate(t.Context(), addr, next)
		g.Expect(err).NotTo(HaveOccurred())
		shoot(t, ctx, dir, "password-changed-"+size.name)

		g.Expect(do(ctx, chromedp.Click(chromedp.CSS(".signout button")))).To(Succeed())
		g.Expect(text(t, ctx, ".message h1")).To(Equal("You have signed out"))
		shoot(t, ctx, dir, "signed-out-"+size.name)
	}
	t.Logf("Screenshots of the account pages are in %s", dir)
}
