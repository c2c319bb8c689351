package controllers

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
	if plan.total != 4 || plan.superseded != 1 || len(plan.failures) != 1 {
		t.Errorf("total=%d superseded=%d failures=%d, want 4, 1, 1", plan.total, plan.superseded, len(plan.failures))
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
