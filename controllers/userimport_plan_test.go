package controllers

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/internal/importfile"
)

func TestPlannerLaterRowWins(t *testing.T) {
	p := newPlanner()
	p.add(importfile.Row{Number: 2, Action: importfile.ActionAdd, Email: "ada@example.com", FirstName: "Ada"})
	p.add(importfile.Row{Number: 3, Action: importfile.ActionRemove, Email: "bob@example.com"})
	p.fail(v1alpha1.ImportFailure{Row: 4, Message: "bad"})
	p.add(importfile.Row{Number: 5, Action: importfile.ActionAdd, Email: "ADA@example.com", FirstName: "Augusta"})
	plan := p.finish()

	var rows []int
	for _, e := range plan.entries {
		rows = append(rows, e.row.Number)
	}
	if diff := cmp.Diff([]int{3, 5}, rows); diff != "" {
		t.Errorf("planned rows mismatch (-want +got):\n%s", diff)
	}
	if plan.total != 4 || plan.superseded != 1 || len(plan.failures) != 1 || plan.failed != 1 {
		t.Errorf("total=%d superseded=%d failures=%d failed=%d, want 4, 1, 1, 1", plan.total, plan.superseded, len(plan.failures), plan.failed)
	}
}

func TestCombineRows(t *testing.T) {
	add := importfile.Row{Number: 2, Action: importfile.ActionAdd, Email: "a@x.io", FirstName: "Ada", LastName: "L", Role: "Admin", Groups: []string{"eng"}}
	cases := []struct {
		name           string
		earlier, later importfile.Row
		want           importfile.Row
	}{
		{
			name:    "update refines an add",
			earlier: add,
			later:   importfile.Row{Number: 5, Action: importfile.ActionUpdate, Email: "a@x.io", FirstName: "Augusta", LastName: "L", Country: "GB"},
			want:    importfile.Row{Number: 5, Action: importfile.ActionAdd, Email: "a@x.io", FirstName: "Augusta", LastName: "L", Role: "Admin", Groups: []string{"eng"}, Country: "GB"},
		},
		{
			name:    "remove replaces an add",
			earlier: add,
			later:   importfile.Row{Number: 5, Action: importfile.ActionRemove, Email: "a@x.io"},
			want:    importfile.Row{Number: 5, Action: importfile.ActionRemove, Email: "a@x.io"},
		},
		{
			name:    "add replaces a remove",
			earlier: importfile.Row{Number: 2, Action: importfile.ActionRemove, Email: "a@x.io"},
			later:   add,
			want:    add,
		},
		{
			name:    "update after a remove stays an update",
			earlier: importfile.Row{Number: 2, Action: importfile.ActionRemove, Email: "a@x.io"},
			later:   importfile.Row{Number: 5, Action: importfile.ActionUpdate, Email: "a@x.io", FirstName: "B", LastName: "C"},
			want:    importfile.Row{Number: 5, Action: importfile.ActionUpdate, Email: "a@x.io", FirstName: "B", LastName: "C"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, combineRows(tc.earlier, tc.later)); diff != "" {
				t.Errorf("combineRows() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDesiredUser(t *testing.T) {
	imp := &v1alpha1.UserImport{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "q3"},
		Spec:       v1alpha1.UserImportSpec{SendInvitations: true, Defaults: &v1alpha1.ImportDefaults{Role: "Viewer", Groups: []string{"all"}}},
	}
	existing := &v1alpha1.User{Spec: v1alpha1.UserSpec{Email: "ada@example.com", FirstName: "Ada", LastName: "L", Role: "Admin", Country: "GB", Groups: []string{"eng"}}}

	cases := []struct {
		name     string
		row      importfile.Row
		existing *v1alpha1.User
		want     v1alpha1.UserSpec
	}{
		{
			name: "new user gets defaults and the invitation setting",
			row:  importfile.Row{Email: "new@example.com", FirstName: "New", LastName: "Person"},
			want: v1alpha1.UserSpec{Email: "new@example.com", FirstName: "New", LastName: "Person", Role: "Viewer", Groups: []string{"all"}, Invite: ptr(true)},
		},
		{
			name:     "row values win over defaults; unset fields keep their value",
			row:      importfile.Row{Email: "ada@example.com", FirstName: "Augusta", LastName: "L", Role: "Owner", Groups: []string{}},
			existing: existing,
			want:     v1alpha1.UserSpec{Email: "ada@example.com", FirstName: "Augusta", LastName: "L", Role: "Owner", Country: "GB", Groups: []string{}},
		},
		{
			name:     "defaults apply to rows that set nothing",
			row:      importfile.Row{Email: "ada@example.com", FirstName: "Ada", LastName: "L"},
			existing: existing,
			want:     v1alpha1.UserSpec{Email: "ada@example.com", FirstName: "Ada", LastName: "L", Role: "Viewer", Country: "GB", Groups: []string{"all"}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := desiredUser(tc.row, tc.existing, imp)
			if diff := cmp.Diff(tc.want, got.Spec); diff != "" {
				t.Errorf("desiredUser() spec mismatch (-want +got):\n%s", diff)
			}
			if tc.existing == nil && (got.Namespace != "team" || len(got.Finalizers) != 1) {
				t.Errorf("new user: namespace %q finalizers %v", got.Namespace, got.Finalizers)
			}
		})
	}
	if existing.Spec.FirstName != "Ada" {
		t.Error("desiredUser changed the existing User")
	}
}

func TestAppliedBefore(t *testing.T) {
	imp := &v1alpha1.UserImport{ObjectMeta: metav1.ObjectMeta{Name: "q3", UID: "uid-1"}}
	other := &v1alpha1.UserImport{ObjectMeta: metav1.ObjectMeta{Name: "q4", UID: "uid-2"}}
	u := &v1alpha1.User{}
	markImported(u, imp, outcomeAdded)
	if u.Labels[v1alpha1.ImportLabel] != "q3" {
		t.Errorf("label = %q, want q3", u.Labels[v1alpha1.ImportLabel])
	}
	if o, ok := appliedBefore(u, imp); !ok || o != outcomeAdded {
		t.Errorf("appliedBefore(same import) = %v, %v; want added, true", o, ok)
	}
	if _, ok := appliedBefore(u, other); ok {
		t.Error("appliedBefore(another import) = true")
	}
	markImported(u, imp, outcomeUpdated)
	if o, _ := appliedBefore(u, imp); o != outcomeUpdated {
		t.Errorf("appliedBefore after an update = %v, want updated", o)
	}
}

func ptr[T any](v T) *T { return &v }

// TestReadPlanCountsFailuresPastTheList reads a file of 200,000 bad rows:
// the plan lists the first hundred and counts the rest, and what it keeps
// does not grow with the file.
func TestReadPlanCountsFailuresPastTheList(t *testing.T) {
	const bad = 200_000
	var b strings.Builder
	b.WriteString("add-user,first@example.com,First,Row\n")
	for i := range bad {
		fmt.Fprintf(&b, "add-user,x%d,B,R\n", i)
	}
	r := &UserImportReconciler{Source: &SourceLoader{MaxBytes: 64 << 20}}
	src, err := r.Source.fromBytes("spec.source.inline", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	imp := &v1alpha1.UserImport{Spec: v1alpha1.UserImportSpec{Source: v1alpha1.ImportSource{Inline: "(above)"}}}

	before := liveHeap()
	plan, err := r.readPlan(src, imp)
	if err != nil {
		t.Fatalf("readPlan: %v", err)
	}
	kept := liveHeap() - before
	runtime.KeepAlive(plan)
	runtime.KeepAlive(src)

	if plan.total != bad+1 || plan.failed != bad || len(plan.entries) != 1 {
		t.Errorf("total=%d failed=%d entries=%d, want %d, %d, 1", plan.total, plan.failed, len(plan.entries), bad+1, bad)
	}
	if len(plan.failures) != maxListedFailures || plan.failures[0].Row != 2 || plan.failures[maxListedFailures-1].Row != maxListedFailures+1 {
		t.Errorf("the plan lists %d failures, from row %d; want the first %d, from row 2", len(plan.failures), plan.failures[0].Row, maxListedFailures)
	}
	// Keeping every failure took about 30 MiB; a hundred take some KiB.
	// The bound leaves room for what the suite's manager allocates meanwhile.
	if kept > 8<<20 {
		t.Errorf("the plan of %d bad rows keeps %d KiB of heap, want under 8 MiB", bad, kept>>10)
	}
	t.Logf("the plan of %d bad rows keeps %d KiB of heap", bad, kept>>10)

	// The status lists what the plan listed and counts the rest.
	started := &v1alpha1.UserImport{}
	r.Recorder, r.Clock = events.NewFakeRecorder(1), clocktesting.NewFakePassiveClock(time.Now())
	r.start(started, "digest", plan)
	st := started.Status
	if diff := cmp.Diff(v1alpha1.ImportRowCounts{Total: bad + 1, Processed: bad, Failed: bad}, st.Rows); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
	if len(st.Failures) != maxListedFailures || st.OmittedFailures != bad-maxListedFailures {
		t.Errorf("the status lists %d failures and omits %d, want %d and %d", len(st.Failures), st.OmittedFailures, maxListedFailures, bad-maxListedFailures)
	}
}

func TestReadPlanRowLimit(t *testing.T) {
	cases := []struct {
		name    string
		file    string
		limit   int
		tooMany bool
	}{
		{"at the limit", "add-user,a@example.com,A,B\nadd-user,b@example.com,B,C\n", 2, false},
		{"blank lines do not count", "add-user,a@example.com,A,B\n\n\nadd-user,b@example.com,B,C\n\n", 2, false},
		{"a bad row counts", "add-user,a@example.com,A,B\nadd-user,b@example.com,B,C\nadd-user,bad,B,C\n", 2, true},
		{"over the limit", "add-user,a@example.com,A,B\nadd-user,b@example.com,B,C\nremove-user,c@example.com\n", 2, true},
		{"the header does not count", "action,username,firstName,lastName\nadd-user,a@example.com,A,B\n", 1, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := &UserImportReconciler{Source: &SourceLoader{MaxBytes: 1 << 20, MaxRows: tc.limit}}
			src, err := r.Source.fromBytes("spec.source.inline", []byte(tc.file))
			if err != nil {
				t.Fatal(err)
			}
			imp := &v1alpha1.UserImport{Spec: v1alpha1.UserImportSpec{SkipHeader: strings.HasPrefix(tc.file, "action,")}}
			_, err = r.readPlan(src, imp)
			var tooMany *tooManyRowsError
			if got := errors.As(err, &tooMany); got != tc.tooMany {
				t.Fatalf("readPlan: %v; want too many rows: %v", err, tc.tooMany)
			}
			if tc.tooMany && !strings.Contains(err.Error(), fmt.Sprintf("more than %d rows", tc.limit)) {
				t.Errorf("the message %q does not name the limit", err)
			}
			if !tc.tooMany && err != nil {
				t.Errorf("readPlan: %v", err)
			}
		})
	}
}

func TestCountOutcomeRedacts(t *testing.T) {
	row := importfile.Row{Number: 7, Email: "jane@example.com"}
	apiErr := apierrors.NewInvalid(schema.GroupKind{Group: "iam.roster.dev", Kind: "User"}, "jane-at-example.com", nil)
	cases := []struct {
		name   string
		res    rowResult
		redact bool
		want   v1alpha1.ImportFailure
	}{
		{
			name: "quoted for inline and ConfigMap sources",
			res:  rowFailed("Creating User jane-at-example.com failed: "+apiErr.Error(), redactedFailure("Creating the User", apiErr)),
			want: v1alpha1.ImportFailure{Row: 7, Email: "jane@example.com", Message: "Creating User jane-at-example.com failed: " + apiErr.Error()},
		},
		{
			name:   "redacted: no email, the API server's reason only",
			res:    rowFailed("Creating User jane-at-example.com failed: "+apiErr.Error(), redactedFailure("Creating the User", apiErr)),
			redact: true,
			want:   v1alpha1.ImportFailure{Row: 7, Message: "Creating the User failed: the API server answered Invalid."},
		},
		{
			name:   "redacted, an error that is not the API server's",
			res:    rowFailed("Updating User jane-at-example.com failed: boom", redactedFailure("Updating the User", errors.New("boom"))),
			redact: true,
			want:   v1alpha1.ImportFailure{Row: 7, Message: "Updating the User failed."},
		},
		{
			name:   "redacted, a message that quotes nothing is kept",
			res:    rowFailed("No User in this namespace has this email; use add-user to create one.", ""),
			redact: true,
			want:   v1alpha1.ImportFailure{Row: 7, Message: "No User in this namespace has this email; use add-user to create one."},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var st v1alpha1.UserImportStatus
			countOutcome(&st, row, tc.res, tc.redact)
			if diff := cmp.Diff([]v1alpha1.ImportFailure{tc.want}, st.Failures); diff != "" {
				t.Errorf("failures (-want +got):\n%s", diff)
			}
			if st.Rows.Failed != 1 {
				t.Errorf("failed = %d, want 1", st.Rows.Failed)
			}
		})
	}
}

func TestRedactsValues(t *testing.T) {
	ref := &v1alpha1.KeyReference{Name: "f", Key: "k"}
	cases := []struct {
		name string
		src  v1alpha1.ImportSource
		want bool
	}{
		{"inline text is the importer's own", v1alpha1.ImportSource{Inline: "x"}, false},
		{"a ConfigMap is readable with the import", v1alpha1.ImportSource{ConfigMapRef: ref}, false},
		{"a Secret may not be readable by the importer", v1alpha1.ImportSource{SecretRef: ref}, true},
		{"a URL is fetched from the operator's address", v1alpha1.ImportSource{URL: &v1alpha1.URLSource{URL: "https://x"}}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, redactsValues(tc.src)); diff != "" {
				t.Errorf("redactsValues (-want +got):\n%s", diff)
			}
		})
	}
}

func liveHeap() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// An import applies its next row only once the User controller's backlog
// is down to maxBacklog, and stops waiting when it is cancelled.
func TestImportIsPacedByTheUserBacklog(t *testing.T) {
	var looks atomic.Int32
	r := &UserImportReconciler{Backlog: func() int {
		if looks.Add(1) < 4 {
			return maxBacklog + 1
		}
		return maxBacklog
	}}
	r.paced(t.Context())
	if n := looks.Load(); n != 4 {
		t.Errorf("paced looked at the backlog %d times, want 4 (three above the bound, one at it)", n)
	}

	r.Backlog = func() int { return maxBacklog + 1 }
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { r.paced(ctx); close(done) }()
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("paced kept waiting after its import was cancelled")
	}

	(&UserImportReconciler{}).paced(t.Context()) // no backlog to read: no wait
}
