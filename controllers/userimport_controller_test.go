package controllers_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/controllers"
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

// waitInCache waits until the manager's cache, through which the import
// reconciler finds Users by email, holds the User.
func waitInCache(t *testing.T, ns, name string) {
	t.Helper()
	NewWithT(t).Eventually(func() error {
		return importReconciler.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: name}, &v1alpha1.User{})
	}, timeout, tick).Should(Succeed())
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
	// Otherwise the remove-user row could find nobody to remove.
	waitInCache(t, ns, "bob")
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
	waitInCache(t, other, "taken")

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

// Each generation of an import's spec is a run of its own: fixing the file
// in Git (a new source) runs the import again, and rows the first run
// applied count as unchanged. A source must still be exactly one kind.
func TestImportRerunsWhenItsSpecChanges(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	good := "add-user,first@" + ns + ".example.com,First,Row\n"
	imp := newImport(ns, "fixed", v1alpha1.UserImportSpec{Source: inline(good + "add-user,not-an-address,Bad,Row\n")})
	first := runImport(t, imp)
	g.Expect(first.Status.Phase).To(Equal(v1alpha1.ImportPartiallySucceeded))
	g.Expect(first.Status.Rows).To(Equal(v1alpha1.ImportRowCounts{Total: 2, Processed: 2, Added: 1, Failed: 1}))

	g.Eventually(func(g Gomega) {
		got := &v1alpha1.UserImport{}
		g.Expect(k8s.Get(t.Context(), client.ObjectKeyFromObject(imp), got)).To(Succeed())
		got.Spec.Source = inline(good + "add-user,second@" + ns + ".example.com,Second,Row\n")
		g.Expect(k8s.Update(t.Context(), got)).To(Succeed())
	}, timeout, tick).Should(Succeed())
	got := &v1alpha1.UserImport{}
	g.Eventually(func(g Gomega) {
		g.Expect(k8s.Get(t.Context(), client.ObjectKeyFromObject(imp), got)).To(Succeed())
		g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
		g.Expect(got.Status.Phase).To(Equal(v1alpha1.ImportSucceeded))
	}, timeout, tick).Should(Succeed())
	g.Expect(got.Status.Rows).To(Equal(v1alpha1.ImportRowCounts{Total: 2, Processed: 2, Added: 1, Unchanged: 1}))
	g.Expect(got.Status.Failures).To(BeEmpty())
	g.Expect(usersIn(g, t.Context(), ns)).To(HaveLen(2))

	two := newImport(ns, "two", v1alpha1.UserImportSpec{Source: v1alpha1.ImportSource{
		Inline: "x", ConfigMapRef: &v1alpha1.KeyReference{Name: "a", Key: "b"}}})
	g.Expect(k8s.Create(t.Context(), two)).To(MatchError(ContainSubstring("exactly one of")))
}

// interruptImport creates an import of rows new Users in a namespace the
// manager leaves alone ("manual-"), and drives its reconciler by hand as a
// manager that dies (its context cancelled) once crashAfter Users were
// created. It returns the import's key.
func interruptImport(t *testing.T, name string, rows, crashAfter int32) reconcile.Request {
	t.Helper()
	g := NewWithT(t)
	ns := newNamespaceNamed(t, "manual-")
	var b strings.Builder
	for i := range rows {
		fmt.Fprintf(&b, "add-user,r%04d@%s.example.com,Row,N%d\n", i, ns, i)
	}
	imp := newImport(ns, name, v1alpha1.UserImportSpec{Source: inline(b.String())})
	g.Expect(k8s.Create(t.Context(), imp)).To(Succeed())
	req := reconcile.Request{NamespacedName: client.ObjectKeyFromObject(imp)}
	// The reconciler reads through the manager's cache: wait until it has the import.
	g.Eventually(func() error {
		return importReconciler.Get(t.Context(), req.NamespacedName, &v1alpha1.UserImport{})
	}, timeout, tick).Should(Succeed())

	var creates atomic.Int32
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	crashing := *importReconciler
	crashing.Client = interceptor.NewClient(noWatch{importReconciler.Client}, interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if creates.Add(1) > crashAfter {
				cancel()
				return ctx.Err()
			}
			return c.Create(ctx, obj, opts...)
		},
	})
	_, err := crashing.Reconcile(ctx, req)
	g.Expect(err).To(HaveOccurred())
	return req
}

// An import interrupted mid-way (the manager stopped) resumes from its last
// progress write and applies no row twice.
func TestImportResumesAfterRestart(t *testing.T) {
	g := NewWithT(t)
	const rows = 1200
	// First run: the "manager" dies after 700 Users were created.
	req := interruptImport(t, "big", rows, 700)
	ns := req.Namespace

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
	_, err := resumed.Reconcile(t.Context(), req)
	g.Expect(err).NotTo(HaveOccurred())

	done := &v1alpha1.UserImport{}
	g.Expect(k8s.Get(t.Context(), req.NamespacedName, done)).To(Succeed())
	g.Expect(done.Status.Phase).To(Equal(v1alpha1.ImportSucceeded), "%+v", done.Status.Conditions)
	g.Expect(done.Status.Rows).To(Equal(v1alpha1.ImportRowCounts{Total: rows, Processed: rows, Added: rows}))
	g.Expect(int(resumedCreates.Load())).To(BeNumerically("<=", rows-700+200),
		"rows 1-500 are skipped; of rows 501-1000 only those not yet created are tried again")
	g.Expect(usersIn(g, t.Context(), ns)).To(HaveLen(rows))
}

// reconcileOnce creates imp in a namespace the manager leaves alone and runs
// the import reconciler once, with its source loader changed by change.
func reconcileOnce(t *testing.T, imp *v1alpha1.UserImport, change func(*controllers.SourceLoader)) *v1alpha1.UserImport {
	t.Helper()
	g := NewWithT(t)
	g.Expect(strings.HasPrefix(imp.Namespace, "manual-")).To(BeTrue(), "the manager would run the import too")
	g.Expect(k8s.Create(t.Context(), imp)).To(Succeed())
	req := reconcile.Request{NamespacedName: client.ObjectKeyFromObject(imp)}
	g.Eventually(func() error {
		return importReconciler.Get(t.Context(), req.NamespacedName, &v1alpha1.UserImport{})
	}, timeout, tick).Should(Succeed())
	r := *importReconciler
	src := *importReconciler.Source
	change(&src)
	r.Source = &src
	done := make(chan error, 1)
	go func() {
		_, err := r.Reconcile(t.Context(), req)
		done <- err
	}()
	select {
	case err := <-done:
		g.Expect(err).NotTo(HaveOccurred())
	case <-time.After(timeout):
		t.Fatal("the reconciler did not return")
	}
	got := &v1alpha1.UserImport{}
	g.Expect(k8s.Get(t.Context(), req.NamespacedName, got)).To(Succeed())
	return got
}

func readyMessage(imp *v1alpha1.UserImport) string {
	if c := meta.FindStatusCondition(imp.Status.Conditions, v1alpha1.ConditionReady); c != nil {
		return c.Message
	}
	return ""
}

func TestImportFromURLRefused(t *testing.T) {
	ns := newNamespaceNamed(t, "manual-")
	body := []byte("add-user,web@" + ns + ".example.com,Web,Site\n")
	importFiles.Store("/"+ns+".csv", body)
	sum := sha256.Sum256(body)
	good := v1alpha1.URLSource{URL: importTLS.URL + "/" + ns + ".csv", SHA256: hex.EncodeToString(sum[:])}
	_, port, err := net.SplitHostPort(importTLS.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	trickle := v1alpha1.URLSource{URL: importTLS.URL + "/" + ns + "-trickle.csv", SHA256: good.SHA256}
	importFiles.Store("/"+ns+"-trickle.csv", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000000")
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			if _, err := w.Write([]byte("a")); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-tick.C:
			}
		}
	}))

	cases := []struct {
		name   string
		url    v1alpha1.URLSource
		change func(*controllers.SourceLoader)
		want   string
	}{
		{
			name:   "no importURLHosts",
			url:    good,
			change: func(l *controllers.SourceLoader) { l.AllowedHosts = nil },
			want:   "spec.source.url: url sources are refused: the tenancy rule of the import's identity store lists no importURLHosts for this namespace",
		},
		{
			name: "an empty list of hosts",
			url:  good,
			change: func(l *controllers.SourceLoader) {
				l.AllowedHosts = func(context.Context, *v1alpha1.UserImport) ([]string, error) { return nil, nil }
			},
			want: "lists no importURLHosts",
		},
		{
			name:   "a host not on the list",
			url:    v1alpha1.URLSource{URL: "https://localhost:" + port + "/" + ns + ".csv", SHA256: good.SHA256},
			change: func(*controllers.SourceLoader) {},
			want:   "spec.source.url: refused: the host localhost:" + port + " is not one of the allowed hosts",
		},
		{
			name:   "loopback under the default address rule",
			url:    good,
			change: func(l *controllers.SourceLoader) { l.AllowAddr = nil },
			want:   "spec.source.url: refused: the host resolves to 127.0.0.1, which is not a public address",
		},
		{
			name:   "a server that trickles",
			url:    trickle,
			change: func(l *controllers.SourceLoader) { l.FetchTimeout = 300 * time.Millisecond },
			want:   "spec.source.url: fetching the file failed: the transfer did not finish within 300ms",
		},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			got := reconcileOnce(t, newImport(ns, fmt.Sprintf("refused-%d", i), v1alpha1.UserImportSpec{Source: v1alpha1.ImportSource{URL: &tc.url}}), tc.change)
			g.Expect(got.Status.Phase).To(Equal(v1alpha1.ImportFailed))
			g.Expect(meta.IsStatusConditionTrue(got.Status.Conditions, v1alpha1.ConditionStalled)).To(BeTrue())
			g.Expect(meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady).Reason).To(Equal(controllers.ReasonInvalidSource))
			g.Expect(readyMessage(got)).To(ContainSubstring(tc.want))
		})
	}
	NewWithT(t).Expect(usersIn(NewWithT(t), t.Context(), ns)).To(BeEmpty())
}

// An import from a Secret, or from a URL, lists failures by row, column and
// reason, never with a cell's value or the row's email: whoever creates the
// import may not be allowed to read the file the operator reads for them.
func TestImportFromSecretQuotesNoValues(t *testing.T) {
	g := NewWithT(t)
	ns, other := newNamespace(t), newNamespace(t)
	taken := "secret-taken@" + ns + ".example.com"
	g.Expect(k8s.Create(t.Context(), newUser(other, "taken", taken))).To(Succeed())
	g.Eventually(func(g Gomega) { get(g, t.Context(), other, "taken") }, timeout, tick).Should(Succeed())
	waitInCache(t, other, "taken")
	csv := strings.Join([]string{
		"action,username,firstName,lastName,country",
		"add-user,secret-good@" + ns + ".example.com,Good,Row,DE",
		"add-user,secret-not-an-email,Bad,Row,",
		"add-user,secret-country@" + ns + ".example.com,Bad,Country,SECRETLAND",
		"update,secret-ghost@" + ns + ".example.com,No,Body,",
		"add-user," + taken + ",Taken,Elsewhere,",
		"secret-action,secret-x@" + ns + ".example.com,A,B,",
	}, "\n")
	g.Expect(k8s.Create(t.Context(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "people"},
		Data:       map[string][]byte{"users.csv": []byte(csv)},
	})).To(Succeed())

	got := runImport(t, newImport(ns, "from-secret", v1alpha1.UserImportSpec{SkipHeader: true, Source: v1alpha1.ImportSource{
		SecretRef: &v1alpha1.KeyReference{Name: "people", Key: "users.csv"}}}))
	g.Expect(got.Status.Phase).To(Equal(v1alpha1.ImportPartiallySucceeded), "%+v", got.Status.Conditions)
	g.Expect(got.Status.Rows).To(Equal(v1alpha1.ImportRowCounts{Total: 6, Processed: 6, Added: 1, Failed: 5}))
	g.Expect(got.Status.Failures).To(ConsistOf(
		v1alpha1.ImportFailure{Row: 3, Message: "row 3, column username: not a valid email address: one bare address such as jane@example.com, at most 254 characters"},
		v1alpha1.ImportFailure{Row: 4, Message: "row 4, column country: not an ISO 3166-1 alpha-2 country code such as DE"},
		v1alpha1.ImportFailure{Row: 5, Message: "No User in this namespace has this email; use add-user to create one."},
		v1alpha1.ImportFailure{Row: 6, Message: "The email address is held by a User in another namespace."},
		v1alpha1.ImportFailure{Row: 7, Message: "row 7, column action: not an action; use add-user, remove-user or update"},
	))
	status := fmt.Sprintf("%+v", got.Status)
	g.Expect(strings.ToLower(status)).NotTo(ContainSubstring("secret"), "the status quotes the Secret")
	g.Expect(strings.ToLower(status)).NotTo(ContainSubstring("taken"), "the status names the User holding the email")

	// The same file inline is the importer's own to read: its failures
	// quote it, so the checks above can tell. (In another namespace the
	// first row fails too: the first import's User holds its email.)
	plain := runImport(t, newImport(newNamespace(t), "inline", v1alpha1.UserImportSpec{SkipHeader: true, Source: inline(csv)}))
	g.Expect(plain.Status.Rows.Failed).To(BeEquivalentTo(6))
	g.Expect(strings.ToLower(fmt.Sprintf("%+v", plain.Status))).To(ContainSubstring("secret"))
	g.Expect(fmt.Sprintf("%+v", plain.Status)).To(ContainSubstring(other + "/taken"))
}

// A file of many bad rows lists the first hundred and counts the rest,
// however many there are: the reader keeps no more than it lists.
func TestImportCountsFailuresPastTheList(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	const bad = 200_000
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	fmt.Fprintf(zw, "add-user,first@%s.example.com,First,Row\n", ns)
	for i := range bad {
		fmt.Fprintf(zw, "add-user,x%d,B,R\n", i)
	}
	g.Expect(zw.Close()).To(Succeed())
	g.Expect(k8s.Create(t.Context(), &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bad"},
		BinaryData: map[string][]byte{"users.csv.gz": buf.Bytes()},
	})).To(Succeed())

	got := runImport(t, newImport(ns, "bad", v1alpha1.UserImportSpec{Source: v1alpha1.ImportSource{
		ConfigMapRef: &v1alpha1.KeyReference{Name: "bad", Key: "users.csv.gz"}}}))
	g.Expect(got.Status.Phase).To(Equal(v1alpha1.ImportPartiallySucceeded), "%+v", got.Status.Conditions)
	g.Expect(got.Status.Rows).To(Equal(v1alpha1.ImportRowCounts{Total: bad + 1, Processed: bad + 1, Added: 1, Failed: bad}))
	g.Expect(got.Status.Failures).To(HaveLen(100))
	g.Expect(got.Status.OmittedFailures).To(BeEquivalentTo(bad - 100))
	g.Expect(got.Status.Failures[0].Row).To(BeEquivalentTo(2))
	g.Expect(got.Status.Failures[99].Row).To(BeEquivalentTo(101))
	g.Expect(got.Status.Failures[99].Message).To(ContainSubstring(`"x99" is not a single email address`), "a ConfigMap's values are quoted")
}

// A file with more rows than the limit fails before any row is applied.
func TestImportRowLimit(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespaceNamed(t, "manual-")
	rows := func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "add-user,limit%d@%s.example.com,Row,N%d\n\n", i, ns, i)
		}
		return b.String()
	}
	limit := func(l *controllers.SourceLoader) { l.MaxRows = 3 }

	over := reconcileOnce(t, newImport(ns, "over", v1alpha1.UserImportSpec{Source: inline(rows(4))}), limit)
	g.Expect(over.Status.Phase).To(Equal(v1alpha1.ImportFailed))
	ready := meta.FindStatusCondition(over.Status.Conditions, v1alpha1.ConditionReady)
	g.Expect(ready.Reason).To(Equal(controllers.ReasonTooManyRows))
	g.Expect(ready.Message).To(Equal("The file has more than 3 rows, the most one import may hold; nothing was imported. Split it into several imports."))
	g.Expect(meta.IsStatusConditionTrue(over.Status.Conditions, v1alpha1.ConditionStalled)).To(BeTrue())
	g.Expect(usersIn(g, t.Context(), ns)).To(BeEmpty(), "nothing is applied")

	// Blank lines do not count; a bad row does.
	at := reconcileOnce(t, newImport(ns, "at", v1alpha1.UserImportSpec{Source: inline(rows(2) + "add-user,bad,B,R\n")}), limit)
	g.Expect(at.Status.Phase).To(Equal(v1alpha1.ImportPartiallySucceeded), "%+v", at.Status.Conditions)
	g.Expect(at.Status.Rows).To(Equal(v1alpha1.ImportRowCounts{Total: 3, Processed: 3, Added: 2, Failed: 1}))
	badRow := reconcileOnce(t, newImport(ns, "bad-row", v1alpha1.UserImportSpec{Source: inline(rows(3) + "add-user,bad,B,R\n")}), limit)
	g.Expect(meta.FindStatusCondition(badRow.Status.Conditions, v1alpha1.ConditionReady).Reason).To(Equal(controllers.ReasonTooManyRows))
}
