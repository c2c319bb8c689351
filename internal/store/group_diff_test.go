package store

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestGroupDiff(t *testing.T) {
	observed := Group{ID: "g1", Name: "team/eng", DisplayName: "Engineering", ExternalID: "ext-1", Description: "Builders"}
	cases := []struct {
		name    string
		desired Group
		want    GroupUpdate
	}{
		{"nothing differs", Group{DisplayName: "Engineering", ExternalID: "ext-1", Description: "Builders"}, GroupUpdate{}},
		{"unset fields are not managed", Group{}, GroupUpdate{}},
		{"new display name", Group{DisplayName: "Engines"}, GroupUpdate{DisplayName: ptr("Engines")}},
		{
			"every field",
			Group{DisplayName: "E", ExternalID: "ext-2", Description: "D"},
			GroupUpdate{DisplayName: ptr("E"), ExternalID: ptr("ext-2"), Description: ptr("D")},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := GroupDiff(tc.desired, observed)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("GroupDiff() mismatch (-want +got):\n%s", diff)
			}
			if got.IsEmpty() != (tc.want == GroupUpdate{}) {
				t.Errorf("IsEmpty() = %v", got.IsEmpty())
			}
			// Applying the update leaves nothing to change.
			if again := GroupDiff(tc.desired, got.Apply(observed)); !again.IsEmpty() {
				t.Errorf("GroupDiff after Apply = %+v, want empty", again)
			}
		})
	}
}

func TestMembershipDiff(t *testing.T) {
	cases := []struct {
		name     string
		desired  []string
		observed []string
		want     MemberDiff
	}{
		{"both empty", nil, nil, MemberDiff{}},
		{"equal in another order", []string{"b", "a", "c"}, []string{"c", "a", "b"}, MemberDiff{}},
		{"duplicates count once", []string{"a", "a", "b"}, []string{"b", "a", "b"}, MemberDiff{}},
		{"new group", []string{"c", "a", "b"}, nil, MemberDiff{Add: []string{"a", "b", "c"}}},
		{"everyone leaves", nil, []string{"b", "a"}, MemberDiff{Remove: []string{"a", "b"}}},
		{"some join, some leave", []string{"a", "c", "d"}, []string{"a", "b", "c", "e"}, MemberDiff{Add: []string{"d"}, Remove: []string{"b", "e"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := MembershipDiff(tc.desired, tc.observed)
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("MembershipDiff() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// One member joining a large group is a diff of one, not a new list.
func TestMembershipDiffLargeGroup(t *testing.T) {
	const n = 10000
	observed := make([]string, n)
	for i := range observed {
		observed[i] = fmt.Sprintf("user-%05d", i)
	}
	desired := append(append([]string(nil), observed...), "user-new")
	got := MembershipDiff(desired, observed)
	if diff := cmp.Diff(MemberDiff{Add: []string{"user-new"}}, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("MembershipDiff() mismatch (-want +got):\n%s", diff)
	}
}
