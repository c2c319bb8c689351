package main

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	. "github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/internal/naming"
)

func TestParseEmail(t *testing.T) {
	cases := []struct {
		name    string
		arg     string
		want    string
		wantErr string
	}{
		{name: "bare address", arg: "ada@example.com", want: "ada@example.com"},
		{name: "case kept", arg: "Ada@Example.com", want: "Ada@Example.com"},
		{name: "surrounding space trimmed", arg: " ada@example.com ", want: "ada@example.com"},
		{name: "no at sign", arg: "ada", wantErr: `"ada" is not a valid email address`},
		{name: "empty", arg: "", wantErr: `"" is not a valid email address`},
		{name: "display name", arg: "Ada <ada@example.com>", wantErr: `"Ada <ada@example.com>" is not a bare email address: give ada@example.com alone`},
		{name: "angle brackets", arg: "<ada@example.com>", wantErr: "is not a bare email address"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseEmail(tc.arg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseEmail(%q) error = %v, want one containing %q", tc.arg, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseEmail(%q): %v", tc.arg, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("parseEmail(%q) (-want +got):\n%s", tc.arg, diff)
			}
		})
	}
}

func TestChooseName(t *testing.T) {
	const email = "Ada.Lovelace@Example.com"
	plain, suffixed := naming.UserName(email), naming.UserNameWithSuffix(email)
	cases := []struct {
		name    string
		taken   map[string]bool
		want    string
		wantErr bool
	}{
		{name: "name free", taken: map[string]bool{"other": true}, want: "ada.lovelace-at-example.com"},
		{name: "plain name held by another address", taken: map[string]bool{plain: true}, want: suffixed},
		{name: "only the suffixed name held", taken: map[string]bool{suffixed: true}, want: plain},
		{name: "both names held", taken: map[string]bool{plain: true, suffixed: true}, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := chooseName(email, tc.taken)
			if (err != nil) != tc.wantErr {
				t.Fatalf("chooseName() error = %v, want error %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("chooseName() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestInviteState(t *testing.T) {
	cond := func(typ string, status metav1.ConditionStatus, gen int64, msg string) metav1.Condition {
		return metav1.Condition{Type: typ, Status: status, ObservedGeneration: gen, Reason: "Some", Message: msg}
	}
	type state struct {
		Settled bool
		Problem string
	}
	cases := []struct {
		name  string
		phase v1alpha1.UserPhase
		conds []metav1.Condition
		want  state
	}{
		{name: "new, no status", want: state{}},
		{name: "invited", phase: v1alpha1.UserInvited, want: state{Settled: true}},
		{name: "already active", phase: v1alpha1.UserActive, want: state{Settled: true}},
		{name: "deactivated", phase: v1alpha1.UserInactive, want: state{true, "The User is deactivated, so no invitation is sent."}},
		{
			name: "pending while the store is retried", phase: v1alpha1.UserPending,
			conds: []metav1.Condition{cond("Ready", "False", 1, "Store down."), cond("Reconciling", "True", 1, "Store down.")},
			want:  state{},
		},
		{
			name: "stalled", phase: v1alpha1.UserPending,
			conds: []metav1.Condition{cond("Ready", "False", 1, "Held by User a/b."), cond("Stalled", "True", 1, "Held by User a/b.")},
			want:  state{true, "Held by User a/b."},
		},
		{
			name: "not ready and not progressing", phase: v1alpha1.UserPending,
			conds: []metav1.Condition{cond("Ready", "False", 1, "Refused.")},
			want:  state{true, "Refused."},
		},
		{
			name: "stalled at an older generation", phase: v1alpha1.UserPending,
			conds: []metav1.Condition{cond("Ready", "False", 0, "Old."), cond("Stalled", "True", 0, "Old.")},
			want:  state{},
		},
		{
			name: "ready but not yet invited", phase: v1alpha1.UserPending,
			conds: []metav1.Condition{cond("Ready", "True", 1, "In the store.")},
			want:  state{},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u := &v1alpha1.User{
				ObjectMeta: metav1.ObjectMeta{Generation: 1},
				Status:     v1alpha1.UserStatus{Phase: tc.phase, Conditions: tc.conds},
			}
			var got state
			got.Settled, got.Problem = inviteState(u)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("inviteState() (-want +got):\n%s", diff)
			}
		})
	}
}

// usersIn returns the Users of namespace ns by name.
func usersIn(t *testing.T, ns string) map[string]v1alpha1.User {
	t.Helper()
	var list v1alpha1.UserList
	if err := k8s.List(t.Context(), &list, client.InNamespace(ns)); err != nil {
		t.Fatalf("listing Users: %v", err)
	}
	out := map[string]v1alpha1.User{}
	for _, u := range list.Items {
		out[u.Name] = u
	}
	return out
}

func TestInvite(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	domain := ns + ".example"

	out, errOut, err := roster(t, ns, "invite", "ada@"+domain, "Grace.Hopper@"+domain, "--role", "Viewer", "--group", "eng", "--group", "ops")
	g.Expect(err).NotTo(HaveOccurred(), errOut)
	ada, grace := naming.UserName("ada@"+domain), naming.UserName("grace.hopper@"+domain)
	g.Expect(grace).To(Equal("grace.hopper-at-" + domain))
	for _, line := range []string{"user/" + ada + " created\n", "user/" + grace + " created\n", "user/" + ada + " Invited\n", "user/" + grace + " Invited\n"} {
		g.Expect(strings.Count(out, line)).To(Equal(1), "%q once in:\n%s", line, out)
	}
	users := usersIn(t, ns)
	g.Expect(users).To(HaveLen(2))
	for name, email := range map[string]string{ada: "ada@" + domain, grace: "Grace.Hopper@" + domain} {
		g.Expect(users).To(HaveKey(name))
		want := v1alpha1.UserSpec{Email: email, Role: "Viewer", Groups: []string{"eng", "ops"}, Invite: ptr.To(true)}
		g.Expect(cmp.Diff(want, users[name].Spec)).To(BeEmpty(), name)
		g.Expect(users[name].Status.Phase).To(Equal(v1alpha1.UserInvited), name)
	}

	// One person, with a name, without waiting.
	out, errOut, err = roster(t, ns, "invite", "alan@"+domain, "--first-name", "Alan", "--last-name", "Turing", "--wait=0")
	g.Expect(err).NotTo(HaveOccurred(), errOut)
	alan := naming.UserName("alan@" + domain)
	g.Expect(out).To(Equal("user/" + alan + " created\n"))
	got := usersIn(t, ns)[alan].Spec
	g.Expect(got.FirstName + " " + got.LastName).To(Equal("Alan Turing"))
}

func TestInviteNamesAfterTheAddress(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	email := "ada@" + ns + ".example"
	// Another address's User holds the name this address would get.
	g.Expect(k8s.Create(t.Context(), &v1alpha1.User{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: naming.UserName(email)},
		Spec:       v1alpha1.UserSpec{Email: "someone.else@" + ns + ".example"},
	})).To(Succeed())

	out, errOut, err := roster(t, ns, "invite", email, "--wait=0")
	g.Expect(err).NotTo(HaveOccurred(), errOut)
	g.Expect(out).To(Equal("user/" + naming.UserNameWithSuffix(email) + " created\n"))
	g.Expect(usersIn(t, ns)[naming.UserNameWithSuffix(email)].Spec.Email).To(Equal(email))
}

func TestInviteRefusesAndCarriesOn(t *testing.T) {
	g := NewWithT(t)
	ns, other := newNamespace(t), newNamespace(t)
	domain := ns + ".example"
	g.Expect(k8s.Create(t.Context(), &v1alpha1.User{
		ObjectMeta: metav1.ObjectMeta{Namespace: other, Name: "holder"},
		Spec:       v1alpha1.UserSpec{Email: "taken@" + domain},
	})).To(Succeed())

	out, errOut, err := roster(t, ns, "invite", "not-an-address", "TAKEN@"+domain, "free@"+domain, "free@"+domain)
	g.Expect(err).To(MatchError("3 of 4 addresses failed"))
	g.Expect(errOut).To(ContainSubstring(`"not-an-address" is not a valid email address`))
	g.Expect(errOut).To(ContainSubstring("TAKEN@" + domain + " is already held by User " + other + "/holder"))
	free := naming.UserName("free@" + domain)
	g.Expect(errOut).To(ContainSubstring("free@" + domain + " is already held by User " + ns + "/" + free))
	g.Expect(out).To(Equal("user/" + free + " created\nuser/" + free + " Invited\n"))
	g.Expect(usersIn(t, ns)).To(HaveLen(1))
	g.Expect(usersIn(t, ns)).To(HaveKey(free))
}

func TestInviteDryRun(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	email := "dry@" + ns + ".example"

	out, errOut, err := roster(t, ns, "invite", email, "--dry-run", "--role", "Viewer")
	g.Expect(err).NotTo(HaveOccurred(), errOut)
	g.Expect(out).To(Equal("user/" + naming.UserName(email) + " created (server dry run)\n"))
	g.Expect(usersIn(t, ns)).To(BeEmpty())

	// The API server still validates.
	_, errOut, err = roster(t, ns, "invite", email, "--dry-run", "--role", "not a role")
	g.Expect(err).To(MatchError("1 of 1 addresses failed"))
	g.Expect(errOut).To(ContainSubstring("spec.role"))
	g.Expect(usersIn(t, ns)).To(BeEmpty())
}

func TestInviteNamesOnlyOnePerson(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	_, _, err := roster(t, ns, "invite", "a@"+ns+".example", "b@"+ns+".example", "--first-name", "Ada")
	g.Expect(err).To(MatchError(ContainSubstring("--first-name and --last-name name one person")))
	g.Expect(usersIn(t, ns)).To(BeEmpty())
}

// A caller who may not list Users cluster-wide is told that only the target
// namespace was checked; an address held elsewhere is then refused by the
// operator, and invite shows its condition instead of waiting on.
func TestInviteWithoutClusterWideList(t *testing.T) {
	g := NewWithT(t)
	ns, other := newNamespace(t), newNamespace(t)
	domain := ns + ".example"
	holder := &v1alpha1.User{
		ObjectMeta: metav1.ObjectMeta{Namespace: other, Name: "holder"},
		Spec:       v1alpha1.UserSpec{Email: "taken@" + domain},
	}
	g.Expect(k8s.Create(t.Context(), holder)).To(Succeed())
	g.Eventually(func() string {
		g.Expect(k8s.Get(t.Context(), client.ObjectKeyFromObject(holder), holder)).To(Succeed())
		return holder.Status.StoreID
	}, 30*time.Second, 100*time.Millisecond).ShouldNot(BeEmpty(), "the holder is provisioned first")

	g.Expect(k8s.Create(t.Context(), &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "invite"},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{"users"},
			Verbs: []string{"get", "list", "create"},
		}},
	})).To(Succeed())
	g.Expect(k8s.Create(t.Context(), &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "invite"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "invite"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: "tenant"}},
	})).To(Succeed())

	free, taken := naming.UserName("free@"+domain), naming.UserName("taken@"+domain)
	out, errOut, err := roster(t, ns, "--as", "tenant", "invite", "free@"+domain, "taken@"+domain)
	g.Expect(err).To(MatchError("1 of 2 addresses failed"))
	g.Expect(errOut).To(ContainSubstring("addresses were checked in namespace " + ns + " only"))
	g.Expect(strings.Count(out, "user/"+free+" Invited\n")).To(Equal(1), out)
	g.Expect(out).To(MatchRegexp(`(?m)^user/` + regexp.QuoteMeta(taken) + ` Pending: .*held by User ` + regexp.QuoteMeta(other+"/holder") + `.*$`))
	g.Expect(strings.Count(out, "user/"+taken+" ")).To(Equal(2), "created, then the condition once:\n"+out)
}
