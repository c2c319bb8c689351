package controllers_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"roster.dev/roster/api/v1alpha1"
)

func newImport(ns, name string, spec v1alpha1.UserImportSpec) *v1alpha1.UserImport {
	return &v1alpha1.UserImport{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
}

func inline(csv string) v1alpha1.ImportSource { return v1alpha1.ImportSource{Inline: csv} }

// runImport creates the import and waits until it has finished.
func runImport(t *testing.T, imp *v1alpha1.UserImport) *v1alpha1.UserImport {
	t.Helper()
	g := NewWithT(t)
	g.Expect(k8s.Create(t.Context(), imp)).To(Succeed())
	got := &v1alpha1.UserImport{}
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(t.Context(), client.ObjectKeyFromObject(imp), got)).To(Succeed())
		g.Expect(got.Status.Phase).To(BeElementOf(v1alpha1.ImportSucceeded, v1alpha1.ImportPartiallySucceeded, v1alpha1.ImportFailed))
	}, timeout, tick).Should(Succeed())
	return got
}

func usersIn(g Gomega, ctx context.Context, ns string) map[string]v1alpha1.User {
	var list v1alpha1.UserList
	g.Expect(k8s.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
	out := map[string]v1alpha1.User{}
	for _, u := range list.Items {
		if u.DeletionTimestamp.IsZero() {
			out[u.Spec.Email] = u
		}
	}
	return out
}

func TestImportHeaderWithoutSkipHeader(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	got := runImport(t, newImport(ns, "hdr", v1alpha1.UserImportSpec{Source: inline(
		"action,username,firstName,lastName\nadd-user,ada@" + ns + ".example.com,Ada,Lovelace\n")}))

	g.Expect(got.Status.Phase).To(Equal(v1alpha1.ImportFailed))
	ready := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady)
	g.Expect(ready.Message).To(Equal("The first line is invalid. If this is a header row, set spec.skipHeader: true."))
	g.Expect(meta.IsStatusConditionTrue(got.Status.Conditions, v1alpha1.ConditionStalled)).To(BeTrue())
	g.Expect(usersIn(g, t.Context(), ns)).To(BeEmpty(), "nothing is applied")
}

// The help-centre example: a header row, an add, a remove and a later add
// for the same email that renames the user.
func TestImportHelpCentreExample(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	bob := "bob@" + ns + ".example.com"
	g.Expect(k8s.Create(t.Context(), newUser(ns, "bob", bob))).To(Succeed())
	ada := "ada@" + ns + ".example.com"
	csv := strings.Join([]string{
		"action,username,firstName,lastName,role,groups",
		"add-user," + ada + ",Ada,Lovelace,Admin,eng;ops",
		"remove-user," + bob + ",,",
		"add-user,carl@" + ns + ".example.com,Carl,Sagan,,",
		"add-user," + strings.ToUpper(ada) + ",Augusta,King,,",
	}, "\n")
	got := runImport(t, newImport(ns, "help", v1alpha1.UserImportSpec{Source: inline(csv), SkipHeader: true, SendInvitations: true}))

	g.Expect(got.Status.Phase).To(Equal(v1alpha1.ImportSucceeded), "conditions: %+v failures: %+v", got.Status.Conditions, got.Status.Failures)
	g.Expect(got.Status.Rows).To(Equal(v1alpha1.ImportRowCounts{Total: 4, Processed: 4, Added: 2, Removed: 1, Unchanged: 1}))
	g.Expect(got.Status.StartedAt).NotTo(BeNil())
	g.Expect(got.Status.CompletedAt).NotTo(BeNil())
	g.Expect(meta.IsStatusConditionTrue(got.Status.Conditions, v1alpha1.ConditionReady)).To(BeTrue())

	g.Eventually(func(g Gomega) {
		users := usersIn(g, t.Context(), ns)
		g.Expect(users).To(HaveLen(2))
		g.Expect(users).NotTo(HaveKey(bob))
	}, timeout, tick).Should(Succeed())
	users := usersIn(g, t.Context(), ns)
	a := users[strings.ToUpper(ada)]
	g.Expect(a.Name).To(Equal("ada-at-" + ns + ".example.com"))
	g.Expect(a.Spec.FirstName).To(Equal("Augusta"), "the later row wins")
	g.Expect(a.Spec.Groups).To(BeEmpty(), "the earlier row's groups are not applied")
	g.Expect(a.Labels).To(HaveKeyWithValue(v1alpha1.ImportLabel, "help"))
	g.Expect(a.Finalizers).To(ContainElement(v1alpha1.Finalizer))
	g.Expect(a.InviteEnabled()).To(BeTrue())
}

func TestImportPartialSuccess(t *testing.T) {
	g := NewWithT(t)
	ns, other := newNamespace(t), newNamespace(t)
	taken := "taken@" + ns + ".example.com"
	g.Expect(k8s.Create(t.Context(), newUser(other, "taken", taken))).To(Succeed())
	g.Eventually(func(g Gomega) { get(g, t.Context(), other, "taken") }, timeout, tick).Should(Succeed())

	csv := strings.Join([]string{
		"add-user,good@" + ns + ".example.com,Good,Row",
		"add-user,not-an-email,Bad,Row",
		"update,ghost@" + ns + ".example.com,No,Body",
		"add-user," + taken + ",Taken,Elsewhere",
	}, "\n")
	got := runImport(t, newImport(ns, "partial", v1alpha1.UserImportSpec{Source: inline(csv)}))

	g.Expect(got.Status.Phase).To(Equal(v1alpha1.ImportPartiallySucceeded))
	g.Expect(got.Status.Rows).To(Equal(v1alpha1.ImportRowCounts{Total: 4, Processed: 4, Added: 1, Failed: 3}))
	rows := map[int32]string{}
	for _, f := range got.Status.Failures {
		rows[f.Row] = f.Message
	}
	g.Expect(rows).To(HaveLen(3))
	g.Expect(rows[2]).To(ContainSubstring("row 2"))
	g.Expect(rows[3]).To(ContainSubstring("add-user"))
	g.Expect(rows[4]).To(ContainSubstring(other + "/taken"))
	g.Expect(usersIn(g, t.Context(), ns)).To(HaveKey("good@" + ns + ".example.com"))
}

func TestImportDryRunChangesNothing(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	csv := "add-user,a@" + ns + ".example.com,A,One\nadd-user,b@" + ns + ".example.com,B,Two\n"
	got := runImport(t, newImport(ns, "dry", v1alpha1.UserImportSpec{Source: inline(csv), DryRun: true}))
	g.Expect(got.Status.Phase).To(Equal(v1alpha1.ImportSucceeded))
	g.Expect(got.Status.Rows.Added).To(BeEquivalentTo(2))
	g.Expect(meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady).Message).To(ContainSubstring("dry run"))
	g.Expect(usersIn(g, t.Context(), ns)).To(BeEmpty())
}

func TestImportRerunIsIdempotent(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	var b strings.Builder
	for i := range 5 {
		fmt.Fprintf(&b, "add-user,u%d@%s.example.com,User,Number%d\n", i, ns, i)
	}
	first := runImport(t, newImport(ns, "first", v1alpha1.UserImportSpec{Source: inline(b.String())}))
	g.Expect(first.Status.Rows.Added).To(BeEquivalentTo(5))
	for _, u := range usersIn(g, t.Context(), ns) {
		g.Expect(u.InviteEnabled()).To(BeFalse(), "sendInvitations is false: no invitation")
		waitFor(t, ns, u.Name, hasPhase(v1alpha1.UserInvited))
	}
	writes := apiWrites.get(ns)
	second := runImport(t, newImport(ns, "second", v1alpha1.UserImportSpec{Source: inline(b.String())}))
	g.Expect(second.Status.Phase).To(Equal(v1alpha1.ImportSucceeded))
	g.Expect(second.Status.Rows).To(Equal(v1alpha1.ImportRowCounts{Total: 5, Processed: 5, Unchanged: 5}))
	for _, u := range usersIn(g, t.Context(), ns) {
		g.Expect(u.Labels).To(HaveKeyWithValue(v1alpha1.ImportLabel, "first"), "unchanged users are not relabelled")
	}
	// Only the second import's own status patches were written.
	g.Expect(apiWrites.get(ns) - writes).To(BeNumerically("<=", 2))
}

func TestImportFromChunkedConfigMap(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	part1 := "add-user,c1@" + ns + ".example.com,C,One\nadd-us"
	part2 := "er,c2@" + ns + ".example.com,C,Two\n"
	g.Expect(k8s.Create(t.Context(), &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "file", Annotations: map[string]string{v1alpha1.ChunksAnnotation: "2"}},
		Data:       map[string]string{"users.csv": part1},
	})).To(Succeed())
	g.Expect(k8s.Create(t.Context(), &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "file-1"},
		BinaryData: map[string][]byte{"users.csv": []byte(part2)},
	})).To(Succeed())
	got := runImport(t, newImport(ns, "cm", v1alpha1.UserImportSpec{Source: v1alpha1.ImportSource{
		ConfigMapRef: &v1alpha1.KeyReference{Name: "file", Key: "users.csv"}}}))
	g.Expect(got.Status.Phase).To(Equal(v1alpha1.ImportSucceeded), "%+v", got.Status.Conditions)
	g.Expect(got.Status.Rows.Added).To(BeEquivalentTo(2))
}

func TestImportFromURL(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	body := []byte("add-user,web@" + ns + ".example.com,Web,Site\n")
	importFiles.Store("/"+ns+".csv", body)
	sum := sha256.Sum256(body)
	good := hex.EncodeToString(sum[:])

	got := runImport(t, newImport(ns, "url", v1alpha1.UserImportSpec{Source: v1alpha1.ImportSource{
		URL: &v1alpha1.URLSource{URL: importTLS.URL + "/" + ns + ".csv", SHA256: good}}}))
	g.Expect(got.Status.Phase).To(Equal(v1alpha1.ImportSucceeded), "%+v", got.Status.Conditions)
	g.Expect(got.Status.Rows.Added).To(BeEquivalentTo(1))

	bad := runImport(t, newImport(ns, "tampered", v1alpha1.UserImportSpec{Source: v1alpha1.ImportSource{
		URL: &v1alpha1.URLSource{URL: importTLS.URL + "/" + ns + ".csv", SHA256: strings.Repeat("0", 64)}}}))
	g.Expect(bad.Status.Phase).To(Equal(v1alpha1.ImportFailed))
	g.Expect(meta.FindStatusCondition(bad.Status.Conditions, v1alpha1.ConditionReady).Message).To(ContainSubstring("spec.source.url.sha256"))
}

func TestImportSpecIsImmutable(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	imp := newImport(ns, "fixed", v1alpha1.UserImportSpec{Source: inline("add-user,f@" + ns + ".example.com,F,G\n"), DryRun: true})
	g.Expect(k8s.Create(t.Context(), imp)).To(Succeed())
	g.Eventually(func(g Gomega) {
		got := &v1alpha1.UserImport{}
		g.Expect(k8s.Get(t.Context(), client.ObjectKeyFromObject(imp), got)).To(Succeed())
		got.Spec.DryRun = false
		err := k8s.Update(t.Context(), got)
		g.Expect(err).To(MatchError(ContainSubstring("spec is immutable")))
	}, timeout, tick).Should(Succeed())

	two := newImport(ns, "two", v1alpha1.UserImportSpec{Source: v1alpha1.ImportSource{
		Inline: "x", ConfigMapRef: &v1alpha1.KeyReference{Name: "a", Key: "b"}}})
	g.Expect(k8s.Create(t.Context(), two)).To(MatchError(ContainSubstring("exactly one of")))
}

// An import interrupted mid-way (the manager stopped) resumes from its last
// progress write and applies no row twice.
func TestImportResumesAfterRestart(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespaceNamed(t, "manual-")
	const rows = 1200
	var b strings.Builder
	for i := range rows {
		fmt.Fprintf(&b, "add-user,r%04d@%s.example.com,Row,N%d\n", i, ns, i)
	}
	imp := newImport(ns, "big", v1alpha1.UserImportSpec{Source: inline(b.String())})
	g.Expect(k8s.Create(t.Context(), imp)).To(Succeed())
	req := reconcile.Request{NamespacedName: client.ObjectKeyFromObject(imp)}
	// The reconciler reads through the manager's cache: wait until it has the import.
	g.Eventually(func() error {
		return importReconciler.Get(t.Context(), req.NamespacedName, &v1alpha1.UserImport{})
	}, timeout, tick).Should(Succeed())

	// First run: the "manager" dies after 700 Users were created.
	var creates atomic.Int32
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	crashing := *importReconciler
	crashing.Client = interceptor.NewClient(noWatch{importReconciler.Client}, interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if creates.Add(1) > 700 {
				cancel()
				return ctx.Err()
			}
			return c.Create(ctx, obj, opts...)
		},
	})
	_, err := crashing.Reconcile(ctx, req)
	g.Expect(err).To(HaveOccurred())

	mid := &v1alpha1.UserImport{}
	g.Expect(k8s.Get(t.Context(), req.NamespacedName, mid)).To(Succeed())
	g.Expect(mid.Status.Phase).To(Equal(v1alpha1.ImportRunning))
	g.Expect(mid.Status.Rows.Processed).To(BeEquivalentTo(500), "progress is written every 500 rows")

	// Second run: a fresh manager picks it up.
	var resumedCreates atomic.Int32
	resumed := *importReconciler
	resumed.Client = interceptor.NewClient(noWatch{importReconciler.Client}, interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			resumedCreates.Add(1)
			return c.Create(ctx, obj, opts...)
		},
	})
	_, err = resumed.Reconcile(t.Context(), req)
	g.Expect(err).NotTo(HaveOccurred())

	done := &v1alpha1.UserImport{}
	g.Expect(k8s.Get(t.Context(), req.NamespacedName, done)).To(Succeed())
	g.Expect(done.Status.Phase).To(Equal(v1alpha1.ImportSucceeded), "%+v", done.Status.Conditions)
	g.Expect(done.Status.Rows).To(Equal(v1alpha1.ImportRowCounts{Total: rows, Processed: rows, Added: rows}))
	g.Expect(int(resumedCreates.Load())).To(BeNumerically("<=", rows-700+200),
		"rows 1-500 are skipped; of rows 501-1000 only those not yet created are tried again")
	g.Expect(usersIn(g, t.Context(), ns)).To(HaveLen(rows))
}
