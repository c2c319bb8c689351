package controllers

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/internal/store"
)

func user(name, storeID string, labels map[string]string, groups ...string) *v1alpha1.User {
	return &v1alpha1.User{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: name, Labels: labels},
		Spec:       v1alpha1.UserSpec{Email: name + "@example.com", Groups: groups},
		Status:     v1alpha1.UserStatus{StoreID: storeID},
	}
}

func TestEffectiveMembers(t *testing.T) {
	now := metav1.Now()
	leaving := user("leaving", "id-leaving", map[string]string{"team": "eng"})
	leaving.DeletionTimestamp = &now
	elsewhere := user("elsewhere", "id-elsewhere", map[string]string{"team": "eng"})
	elsewhere.Namespace = "other"

	cases := []struct {
		name       string
		members    []string
		selector   *metav1.LabelSelector
		candidates []*v1alpha1.User
		want       memberSet
	}{
		{
			name: "no members",
			want: memberSet{},
		},
		{
			name:     "the union of the three routes, each counted once",
			members:  []string{"ada", "grace"},
			selector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "eng"}},
			candidates: []*v1alpha1.User{
				user("ada", "id-ada", nil),
				user("grace", "id-grace", map[string]string{"team": "eng"}, "eng"),
				user("alan", "id-alan", map[string]string{"team": "eng"}),
				user("linus", "id-linus", nil, "eng"),
				user("grace", "id-grace", map[string]string{"team": "eng"}, "eng"),
			},
			want: memberSet{
				Members:  []string{"ada", "alan", "grace", "linus"},
				StoreIDs: []string{"id-ada", "id-alan", "id-grace", "id-linus"},
			},
		},
		{
			name:     "candidates that are no members are dropped",
			selector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "eng"}},
			candidates: []*v1alpha1.User{
				user("ops", "id-ops", map[string]string{"team": "ops"}),
				user("other-group", "id-og", nil, "ops"),
				elsewhere,
			},
			want: memberSet{},
		},
		{
			name:       "a named User that does not exist is missing",
			members:    []string{"ada", "ghost", "bob"},
			candidates: []*v1alpha1.User{user("ada", "id-ada", nil)},
			want:       memberSet{Members: []string{"ada"}, StoreIDs: []string{"id-ada"}, Missing: []string{"bob", "ghost"}},
		},
		{
			name:       "a member not in the store yet is pending",
			members:    []string{"ada", "new"},
			candidates: []*v1alpha1.User{user("new", "", nil), user("ada", "id-ada", nil)},
			want:       memberSet{Members: []string{"ada", "new"}, StoreIDs: []string{"id-ada"}, Pending: []string{"new"}},
		},
		{
			name:       "a User being deleted is no longer a member",
			members:    []string{"leaving"},
			selector:   &metav1.LabelSelector{MatchLabels: map[string]string{"team": "eng"}},
			candidates: []*v1alpha1.User{leaving},
			want:       memberSet{},
		},
		{
			name:     "an empty selector selects everyone",
			selector: &metav1.LabelSelector{},
			candidates: []*v1alpha1.User{
				user("b", "id-b", nil), user("a", "id-a", map[string]string{"x": "y"}),
			},
			want: memberSet{Members: []string{"a", "b"}, StoreIDs: []string{"id-a", "id-b"}},
		},
		{
			name: "a set-based selector",
			selector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "team", Operator: metav1.LabelSelectorOpIn, Values: []string{"eng", "ops"}},
				{Key: "contractor", Operator: metav1.LabelSelectorOpDoesNotExist},
			}},
			candidates: []*v1alpha1.User{
				user("ops", "id-ops", map[string]string{"team": "ops"}),
				user("temp", "id-temp", map[string]string{"team": "eng", "contractor": "yes"}),
				user("sales", "id-sales", map[string]string{"team": "sales"}),
			},
			want: memberSet{Members: []string{"ops"}, StoreIDs: []string{"id-ops"}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := &v1alpha1.Group{
				ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "eng"},
				Spec:       v1alpha1.GroupSpec{Members: tc.members, MemberSelector: tc.selector},
			}
			sel, err := parseMemberSelector(g)
			if err != nil {
				t.Fatalf("MemberSelector: %v", err)
			}
			got := effectiveMembers(g, sel, tc.candidates, []string{defaultStoreKey})
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("EffectiveMembers() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestGroupBeingDeletedHasNoMembers(t *testing.T) {
	now := metav1.Now()
	g := &v1alpha1.Group{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "eng", DeletionTimestamp: &now},
		Spec:       v1alpha1.GroupSpec{Members: []string{"ada"}},
	}
	if isMemberOf(user("ada", "id", nil, "eng"), g, nil) {
		t.Error("IsMemberOf a Group being deleted = true, want false")
	}
}

func TestMemberSelectorInvalid(t *testing.T) {
	g := &v1alpha1.Group{Spec: v1alpha1.GroupSpec{MemberSelector: &metav1.LabelSelector{
		MatchLabels: map[string]string{"not a key!": "x"},
	}}}
	if _, err := parseMemberSelector(g); err == nil {
		t.Error("MemberSelector of an invalid label key succeeded, want an error")
	}
}

func TestInvalidMemberNames(t *testing.T) {
	g := &v1alpha1.Group{Spec: v1alpha1.GroupSpec{Members: []string{"ada", "Not A Name", "grace.h", "-x"}}}
	want := []string{`spec.members[1] "Not A Name"`, `spec.members[3] "-x"`}
	if diff := cmp.Diff(want, invalidMemberNames(g)); diff != "" {
		t.Errorf("InvalidMemberNames() mismatch (-want +got):\n%s", diff)
	}
}

func TestTruncateMembers(t *testing.T) {
	names := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("user-%04d", i) // 9 bytes, 12 with quotes and comma
		}
		return out
	}
	cases := []struct {
		name      string
		names     []string
		maxItems  int
		maxBytes  int
		wantLen   int
		truncated bool
	}{
		{"empty", nil, 10, 100, 0, false},
		{"fits", names(5), 5, 60, 5, false},
		{"too many items", names(6), 5, 1000, 5, true},
		{"too many bytes", names(6), 100, 60, 5, true},
		{"10,000 fit the default limits", names(10000), MaxStatusMembers, maxStatusMembersBytes, 10000, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, truncated := truncateMembers(tc.names, tc.maxItems, tc.maxBytes)
			if len(got) != tc.wantLen || truncated != tc.truncated {
				t.Errorf("TruncateMembers() = %d names, truncated %v; want %d, %v", len(got), truncated, tc.wantLen, tc.truncated)
			}
			if diff := cmp.Diff(tc.names[:len(got)], got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("TruncateMembers() does not keep the first names (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSetMembersConditions(t *testing.T) {
	cases := []struct {
		name       string
		m          memberSet
		truncated  bool
		wantStatus metav1.ConditionStatus
		wantReason string
		wantText   []string
	}{
		{"resolved", memberSet{Members: []string{"a"}}, false, metav1.ConditionTrue, ReasonMembersResolved, nil},
		{"missing", memberSet{Missing: []string{"ghost"}}, false, metav1.ConditionFalse, ReasonMembersMissing, []string{"spec.members", "ghost"}},
		{"pending", memberSet{Pending: []string{"new"}}, false, metav1.ConditionFalse, ReasonMembersPending, []string{"new"}},
		{"missing wins the reason", memberSet{Missing: []string{"ghost"}, Pending: []string{"new"}}, false, metav1.ConditionFalse, ReasonMembersMissing, []string{"ghost", "new"}},
		{"truncated", memberSet{Members: []string{"a", "b"}}, true, metav1.ConditionTrue, ReasonMembersResolved, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := &v1alpha1.GroupStatus{}
			setMembersConditions(st, 3, &tc.m, tc.truncated)
			var resolved, truncated *metav1.Condition
			for i := range st.Conditions {
				switch c := &st.Conditions[i]; c.Type {
				case v1alpha1.ConditionMembersResolved:
					resolved = c
				case v1alpha1.ConditionMembersTruncated:
					truncated = c
				}
			}
			if resolved == nil || resolved.Status != tc.wantStatus || resolved.Reason != tc.wantReason || resolved.ObservedGeneration != 3 {
				t.Fatalf("MembersResolved = %+v, want %s/%s at generation 3", resolved, tc.wantStatus, tc.wantReason)
			}
			for _, text := range tc.wantText {
				if !strings.Contains(resolved.Message, text) {
					t.Errorf("message %q does not mention %q", resolved.Message, text)
				}
			}
			if (truncated != nil) != tc.truncated {
				t.Errorf("MembersTruncated present = %v, want %v", truncated != nil, tc.truncated)
			}
		})
	}
}

func TestGroupHoldsBefore(t *testing.T) {
	t0, t1 := metav1.NewTime(time.Unix(1000, 0)), metav1.NewTime(time.Unix(1001, 0))
	group := func(ns, name string, created metav1.Time, storeID string) *v1alpha1.Group {
		return &v1alpha1.Group{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, CreationTimestamp: created},
			Status:     v1alpha1.GroupStatus{StoreID: storeID},
		}
	}
	cases := []struct {
		name string
		a, b *v1alpha1.Group
		want bool
	}{
		{"older first", group("b", "b", t0, ""), group("a", "a", t1, ""), true},
		{"newer second", group("a", "a", t1, ""), group("b", "b", t0, ""), false},
		{"tie: lower namespace", group("a", "z", t0, ""), group("b", "a", t0, ""), true},
		{"tie: lower name", group("a", "a", t0, ""), group("a", "b", t0, ""), true},
		{"in the store wins over older", group("z", "z", t1, "id"), group("a", "a", t0, ""), true},
		{"not in the store loses to newer", group("a", "a", t0, ""), group("z", "z", t1, "id"), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := groupHoldsBefore(tc.a, tc.b); got != tc.want {
				t.Errorf("groupHoldsBefore() = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSymmetricDifferenceAndUnion(t *testing.T) {
	a, b := []string{"x", "a", "b"}, []string{"b", "c", "x"}
	if diff := cmp.Diff([]string{"a", "c"}, symmetricDifference(a, b)); diff != "" {
		t.Errorf("symmetricDifference() mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"a", "b", "c", "x"}, union(a, b)); diff != "" {
		t.Errorf("union() mismatch (-want +got):\n%s", diff)
	}
}

func TestNameList(t *testing.T) {
	if got := nameList([]string{"a", "b", "c"}, 2); got != "a, b and 1 more" {
		t.Errorf("nameList() = %q", got)
	}
}

func TestMembershipMayDiffer(t *testing.T) {
	now := metav1.Now()
	base := user("ada", "id-ada", map[string]string{"team": "eng"}, "eng")
	cases := []struct {
		name   string
		mutate func(u *v1alpha1.User)
		want   bool
	}{
		{"status only", func(u *v1alpha1.User) { u.Status.Phase = v1alpha1.UserActive }, false},
		{"another spec field", func(u *v1alpha1.User) { u.Spec.FirstName = "Augusta" }, false},
		{"labels", func(u *v1alpha1.User) { u.Labels = map[string]string{"team": "ops"} }, true},
		{"spec.groups", func(u *v1alpha1.User) { u.Spec.Groups = nil }, true},
		{"store ID", func(u *v1alpha1.User) { u.Status.StoreID = "" }, true},
		{"deletion starts", func(u *v1alpha1.User) { u.DeletionTimestamp = &now }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			after := base.DeepCopy()
			tc.mutate(after)
			if got := membershipMayDiffer(base, after); got != tc.want {
				t.Errorf("membershipMayDiffer() = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestMembershipUpdate(t *testing.T) {
	cases := []struct {
		name     string
		m        memberSet
		observed []string
		want     store.MemberDiff
	}{
		{"adds and removes", memberSet{StoreIDs: []string{"a", "b"}}, []string{"b", "c"}, store.MemberDiff{Add: []string{"a"}, Remove: []string{"c"}}},
		{"a member's ID unknown: removes nobody", memberSet{StoreIDs: []string{"a"}, Pending: []string{"ada"}}, []string{"c"},
			store.MemberDiff{Add: []string{"a"}}},
		{"in step", memberSet{StoreIDs: []string{"a"}}, []string{"a"}, store.MemberDiff{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, membershipUpdate(&tc.m, tc.observed), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("membershipUpdate (-want +got):\n%s", diff)
			}
		})
	}
}
