package controllers

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/internal/store"
)

// StoreGroupName is the store group's unchanging name for a Group. A
// namespace cannot contain a slash, so no two Groups share a name.
func storeGroupName(group *v1alpha1.Group) string { return group.Namespace + "/" + group.Name }

// DesiredStoreGroup is the store group a Group asks for. Fields the spec
// leaves empty are not managed.
func desiredStoreGroup(group *v1alpha1.Group) store.Group {
	return store.Group{
		Name:        storeGroupName(group),
		DisplayName: group.Spec.DisplayName,
		ExternalID:  group.Spec.ExternalID,
		Description: group.Spec.Description,
	}
}

// InvalidMemberNames returns the entries of spec.members that are not valid
// object names, with their field paths. The schema refuses them already; this
// guards against objects stored under an older schema.
func invalidMemberNames(group *v1alpha1.Group) []string {
	var bad []string
	for i, name := range group.Spec.Members {
		if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
			bad = append(bad, fmt.Sprintf("spec.members[%d] %q", i, name))
		}
	}
	return bad
}

// Limits of status.members. The API server refuses objects over about
// 1.5 MiB; a spec of 10,000 member names already takes a good part of that,
// so the status list keeps to a quarter of a megabyte.
const (
	MaxStatusMembers      = 10000
	maxStatusMembersBytes = 256 << 10
)

// TruncateMembers returns the sorted names that status.members can hold: all
// of them, or the first ones that fit in maxItems and maxBytes (counting
// the JSON quotes and comma of each), and whether it cut the list.
func truncateMembers(names []string, maxItems, maxBytes int) ([]string, bool) {
	size := 0
	for i, name := range names {
		size += len(name) + 3
		if i >= maxItems || size > maxBytes {
			return names[:i], true
		}
	}
	return names, false
}

// nameList renders up to max names for a condition message, saying how many
// more there are.
func nameList(names []string, max int) string {
	if len(names) <= max {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:max], ", "), len(names)-max)
}

// groupHoldsBefore reports whether a holds an external ID before b: a Group
// already in the store keeps it against a newcomer.
func groupHoldsBefore(a, b *v1alpha1.Group) bool {
	return holdsBefore(a, b, a.Status.StoreID != "", b.Status.StoreID != "")
}

// membershipUpdate is what brings the store group's observed members to
// the effective ones. A member whose store ID is not known yet (not
// provisioned, or its status lost) may be among the observed members, so
// while any is, nobody is removed: an unknown ID means "leave alone".
func membershipUpdate(m *memberSet, observed []string) store.MemberDiff {
	diff := store.MembershipDiff(m.StoreIDs, observed)
	if len(m.Pending) > 0 {
		diff.Remove = nil
	}
	return diff
}
