package main

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"roster.dev/roster/api/v1alpha1"
)

func TestMatches(t *testing.T) {
	u := &v1alpha1.User{
		ObjectMeta: metav1.ObjectMeta{Name: "zed", Labels: map[string]string{"team": "Engines", "city": "london"}},
		Spec:       v1alpha1.UserSpec{Email: "Ada.Lovelace@Example.com", FirstName: "Ada", LastName: "Lovelace", Role: "Admin"},
		Status:     v1alpha1.UserStatus{DisplayName: "Countess of Lovelace"},
	}
	cases := []struct {
		name string
		text string
		want bool
	}{
		{name: "email, other case", text: "ADA.LOVELACE@", want: true},
		{name: "first name", text: "ada", want: true},
		{name: "last name, part", text: "velac", want: true},
		{name: "display name", text: "countess", want: true},
		{name: "label value", text: "ENGINES", want: true},
		{name: "another label value", text: "Lond", want: true},
		{name: "label key is not searched", text: "team", want: false},
		{name: "object name is not searched", text: "zed", want: false},
		{name: "role is not searched", text: "admin", want: false},
		{name: "no match", text: "grace", want: false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, matches(u, tc.text)); diff != "" {
				t.Errorf("matches(%q) (-want +got):\n%s", tc.text, diff)
			}
		})
	}
}

func TestPrintUsers(t *testing.T) {
	now := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	users := []v1alpha1.User{
		{
			ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "ada-at-example.com", CreationTimestamp: metav1.NewTime(now.Add(-3 * time.Hour))},
			Spec:       v1alpha1.UserSpec{Email: "ada@example.com"},
			Status:     v1alpha1.UserStatus{DisplayName: "Ada Lovelace", Role: "Admin", Phase: v1alpha1.UserActive},
		},
		{
			ObjectMeta: metav1.ObjectMeta{Namespace: "b", Name: "g", CreationTimestamp: metav1.NewTime(now.Add(-50 * time.Second))},
			Spec:       v1alpha1.UserSpec{Email: "g@example.com"},
		},
	}
	cases := []struct {
		name          string
		withNamespace bool
		want          string
	}{
		{
			name: "one namespace",
			want: "" +
				"NAME                 EMAIL             FULL NAME      ROLE    STATUS   AGE\n" +
				"ada-at-example.com   ada@example.com   Ada Lovelace   Admin   Active   3h\n" +
				"g                    g@example.com                                     50s\n",
		},
		{
			name:          "all namespaces",
			withNamespace: true,
			want: "" +
				"NAMESPACE   NAME                 EMAIL             FULL NAME      ROLE    STATUS   AGE\n" +
				"team-a      ada-at-example.com   ada@example.com   Ada Lovelace   Admin   Active   3h\n" +
				"b           g                    g@example.com                                     50s\n",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			if err := printUsers(&b, users, tc.withNamespace, now); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, b.String()); diff != "" {
				t.Errorf("printUsers() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFind(t *testing.T) {
	g := NewWithT(t)
	ns, other := newNamespace(t), newNamespace(t)
	// Every address and label holds ns, so that no other test's Users match.
	for _, u := range []*v1alpha1.User{
		{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ada", Labels: map[string]string{"team": "Engines-" + ns}},
			Spec:       v1alpha1.UserSpec{Email: "ada@" + ns + ".example", FirstName: "Ada", LastName: "Lovelace", Role: "Admin"},
		},
		{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "grace"},
			Spec:       v1alpha1.UserSpec{Email: "grace@" + ns + ".example", FirstName: "Grace", LastName: "Hopper"},
		},
		{
			ObjectMeta: metav1.ObjectMeta{Namespace: other, Name: "alan", Labels: map[string]string{"team": "engines-" + ns}},
			Spec:       v1alpha1.UserSpec{Email: "alan@" + ns + ".example", FirstName: "Alan", LastName: "Turing"},
		},
	} {
		g.Expect(k8s.Create(t.Context(), u)).To(Succeed())
	}
	// The columns show the status, so wait until the operator has written it.
	for _, key := range []client.ObjectKey{{Namespace: ns, Name: "ada"}, {Namespace: ns, Name: "grace"}, {Namespace: other, Name: "alan"}} {
		g.Eventually(func() v1alpha1.UserPhase {
			var u v1alpha1.User
			g.Expect(k8s.Get(t.Context(), key, &u)).To(Succeed())
			return u.Status.Phase
		}, 30*time.Second, 100*time.Millisecond).Should(Equal(v1alpha1.UserInvited), key.String())
	}
	ada := `ada\s+ada@` + regexp.QuoteMeta(ns) + `\.example\s+Ada Lovelace\s+Admin\s+Invited\s+\S+`
	grace := `grace\s+grace@` + regexp.QuoteMeta(ns) + `\.example\s+Grace Hopper\s+Member\s+Invited\s+\S+`
	alan := `alan\s+alan@` + regexp.QuoteMeta(ns) + `\.example\s+Alan Turing\s+Member\s+Invited\s+\S+`
	header := `NAME\s+EMAIL\s+FULL NAME\s+ROLE\s+STATUS\s+AGE`

	cases := []struct {
		name string
		args []string
		rows []string // the header, then the Users in any order
	}{
		{name: "email, other case", args: []string{"GRACE@" + strings.ToUpper(ns)}, rows: []string{header, grace}},
		{name: "last name", args: []string{"lovelace"}, rows: []string{header, ada}},
		{name: "one letter, this namespace only", args: []string{"A"}, rows: []string{header, ada, grace}},
		{name: "label value", args: []string{"ENGINES-" + ns}, rows: []string{header, ada}},
		{
			name: "label value, all namespaces", args: []string{"engines-" + ns, "-A"},
			rows: []string{`NAMESPACE\s+` + header, ns + `\s+` + ada, other + `\s+` + alan},
		},
		{
			name: "email domain, all namespaces", args: []string{"@" + strings.ToUpper(ns), "--all-namespaces"},
			rows: []string{`NAMESPACE\s+` + header, ns + `\s+` + ada, ns + `\s+` + grace, other + `\s+` + alan},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			out, errOut, err := roster(t, ns, append([]string{"find"}, tc.args...)...)
			g.Expect(err).NotTo(HaveOccurred(), errOut)
			g.Expect(errOut).To(BeEmpty())
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			var rows []any
			for _, row := range tc.rows[1:] {
				rows = append(rows, MatchRegexp(`^`+row+`$`))
			}
			g.Expect(lines[0]).To(MatchRegexp(`^`+tc.rows[0]+`$`), out)
			g.Expect(lines[1:]).To(ConsistOf(rows...), out)
		})
	}

	out, errOut, err := roster(t, ns, "find", "nobody-"+ns, "-A")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).To(BeEmpty())
	g.Expect(errOut).To(Equal(`No Users match "nobody-` + ns + `" in any namespace.` + "\n"))
	_, errOut, err = roster(t, ns, "find", "alan")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(errOut).To(Equal(`No Users match "alan" in namespace ` + ns + ".\n"))
}
