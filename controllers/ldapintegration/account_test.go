package ldapintegration_test

import (
	"net/http"
	"net/url"
	"testing"

	ldapv3 "github.com/go-ldap/ldap/v3"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/controllers/controllerstest"
)

// On the account page a person of a directory signs in by a bind as
// themselves, and a password they change there is the directory's: the
// old one no longer binds.
func TestAccountSignInAndPasswordChangeByBind(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	email := "grace@" + ns + ".example.com"
	u := &v1alpha1.User{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "grace"},
		Spec:       v1alpha1.UserSpec{Email: email, FirstName: "Grace", LastName: "Hopper"},
	}
	g.Expect(k8s.Create(t.Context(), u)).To(Succeed())
	dn := waitForUser(t, ns, "grace", hasPhase(v1alpha1.UserInvited)).Status.StoreID
	const first, second = "Compiler-A0-1952", "Flow-Matic-1955!"
	invitations.Accept(t, email, first, timeout)

	b := controllerstest.NewBrowser(t, invitations.URL)
	status, _ := b.SignIn(email, first+"x")
	g.Expect(status).To(Equal(http.StatusUnauthorized), "the directory refuses a wrong password")
	status, _ = b.SignIn(email, first)
	g.Expect(status).To(Equal(http.StatusSeeOther), "the directory accepts the bind")
	status, body := b.Get("/account")
	g.Expect(status).To(Equal(http.StatusOK))
	g.Expect(body).To(ContainSubstring("You are signed in as " + email))

	status, body = b.Get("/account/password")
	g.Expect(status).To(Equal(http.StatusOK))
	g.Expect(body).To(ContainSubstring("Current password"))
	status, body = b.Post("/account/password", url.Values{"current": {first}, "password": {second}, "confirm": {second}})
	g.Expect(status).To(Equal(http.StatusOK), body)
	g.Expect(body).To(ContainSubstring("Your password has been changed"))

	g.Expect(bind(dn, second)).To(Succeed())
	g.Expect(ldapv3.IsErrorWithCode(bind(dn, first), ldapv3.LDAPResultInvalidCredentials)).To(BeTrue(), "the old password no longer binds")
	status, _ = controllerstest.NewBrowser(t, invitations.URL).SignIn(email, first)
	g.Expect(status).To(Equal(http.StatusUnauthorized))
	status, _ = controllerstest.NewBrowser(t, invitations.URL).SignIn(email, second)
	g.Expect(status).To(Equal(http.StatusSeeOther))
}
