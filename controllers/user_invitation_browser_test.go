package controllers_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"
	. "github.com/onsi/gomega"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/controllers/controllerstest"
)

// The browser steps every browser test uses.
var (
	browser = controllerstest.Chromium
	do      = controllerstest.Do
	open    = controllerstest.Open
	text    = controllerstest.Text
)

// screenshot saves the page when ROSTER_SCREENSHOT_DIR is set, to look at
// the pages by eye.
func screenshot(t *testing.T, ctx context.Context, name string) {
	dir := os.Getenv("ROSTER_SCREENSHOT_DIR")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Errorf("screenshot %s: %v", name, err)
		return
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Errorf("screenshot %s: %v", name, err)
	}
}

// typePasswords types into the two fields, after what they hold.
func typePasswords(pw, confirm string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.SendKeys(chromedp.CSS("#password"), pw),
		chromedp.SendKeys(chromedp.CSS("#confirm"), confirm),
	)
}

func submit() chromedp.Action[chromedp.Void] {
	return chromedp.Click(chromedp.CSS("button[type=submit]"))
}

// A person opens the invitation in a browser, is refused a weak password
// with the rules shown (by the page's script), chooses a strong one and
// sees the success page; the User becomes Active.
func TestBrowserAcceptsAnInvitation(t *testing.T) {
	ctx := browser(t, true)
	g := NewWithT(t)
	ns := newNamespace(t)
	addr := "browser@" + ns + ".example.com"
	g.Expect(k8s.Create(t.Context(), newUser(ns, "browser", addr))).To(Succeed())
	link := waitForEmails(t, addr, "invitation", 1)[0].link

	open(t, ctx, link, "#password")
	g.Expect(text(t, ctx, "h1")).To(Equal("Accept your invitation"))
	screenshot(t, ctx, "invitation-form")

	g.Expect(do(ctx, typePasswords("weak", "weak"), submit())).To(Succeed())
	problems := text(t, ctx, "#problems")
	for _, rule := range []string{"At least 10 characters", "An uppercase letter", "A digit", "A special character"} {
		g.Expect(problems).To(ContainSubstring(rule))
	}
	g.Expect(problems).NotTo(ContainSubstring("A lowercase letter"), "a met rule is not listed")
	lower, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(`#rules li[data-rule="lower"]`), "class"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(lower.Value).To(ContainSubstring("met"), "the rule list shows what is met as the person types")
	screenshot(t, ctx, "invitation-weak")
	g.Expect(get(g, t.Context(), ns, "browser").Status.Phase).To(Equal(v1alpha1.UserInvited))

	// The page kept what was typed (nothing was sent); typing on makes it
	// strong.
	more := "-Headless-Chromium-2026"
	choose("weak" + more)
	g.Expect(do(ctx, typePasswords(more, more), submit())).To(Succeed())
	g.Expect(text(t, ctx, ".message.success h1")).To(Equal("You're all set"))
	screenshot(t, ctx, "invitation-done")
	waitFor(t, ns, "browser", hasPhase(v1alpha1.UserActive))

	// Opening the link again shows a plain page without a form.
	open(t, ctx, link, ".message:not(.success)")
	g.Expect(text(t, ctx, ".message h1")).To(Equal("This link has already been used"))
	forms, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.forms.length`))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(forms).To(BeZero())
	screenshot(t, ctx, "invitation-used")
}

// The same for a password reset, with JavaScript off: the server refuses
// the weak password and lists the rules it misses.
func TestBrowserResetsAPasswordWithoutJavaScript(t *testing.T) {
	ctx := browser(t, false)
	g := NewWithT(t)
	ns := newNamespace(t)
	addr := "reset-browser@" + ns + ".example.com"
	g.Expect(k8s.Create(t.Context(), newUser(ns, "forgetful", addr))).To(Succeed())
	got := waitFor(t, ns, "forgetful", hasPhase(v1alpha1.UserInvited))
	old := choose("Set-Out-Of-Band-1")
	g.Expect(emb.SetPassword(t.Context(), got.Status.StoreID, old)).To(Succeed())
	waitFor(t, ns, "forgetful", hasPhase(v1alpha1.UserActive))

	annotate(t, ns, "forgetful", v1alpha1.ResetPasswordAnnotation, "browser")
	link := waitForEmails(t, addr, "reset", 1)[0].link

	open(t, ctx, link, "#password")
	g.Expect(text(t, ctx, "h1")).To(Equal("Choose a new password"))
	screenshot(t, ctx, "reset-form")

	g.Expect(do(ctx, typePasswords("alllowercase1", "alllowercase1"), submit())).To(Succeed())
	problems := text(t, ctx, "#problems")
	g.Expect(problems).To(ContainSubstring("An uppercase letter"))
	g.Expect(problems).To(ContainSubstring("A special character"))
	g.Expect(problems).NotTo(ContainSubstring("A digit"))
	screenshot(t, ctx, "reset-weak")

	// The server's answer is a fresh form: it never sends a password back.
	strong := choose("Remembered-At-Last-7")
	g.Expect(do(ctx, typePasswords(strong, strong), submit())).To(Succeed())
	g.Expect(text(t, ctx, ".message.success h1")).To(Equal("Your password has been changed"))
	screenshot(t, ctx, "reset-done")

	_, err := emb.Authenticate(t.Context(), addr, strong)
	g.Expect(err).NotTo(HaveOccurred())
	got = waitFor(t, ns, "forgetful", func(g Gomega, u *v1alpha1.User) {
		g.Expect(u.Status.PasswordResetAt).NotTo(BeNil())
		g.Expect(u.Status.LastLoginAt).NotTo(BeNil())
	})
	g.Expect(got.Status.Phase).To(Equal(v1alpha1.UserActive))

	open(t, ctx, link, ".message:not(.success)")
	g.Expect(text(t, ctx, ".message h1")).To(Equal("This link has already been used"))
}
