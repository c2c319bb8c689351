package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/internal/store"
)

// Field indexes that let both controllers answer "which Groups does this
// User belong to" and "which Users belong to this Group" from the cache,
// without listing every object.
const (
	// UserGroupsIndex indexes Users by the Group names in spec.groups.
	UserGroupsIndex = "spec.groups"
	// GroupMembersIndex indexes Groups by the User names in spec.members.
	GroupMembersIndex = "spec.members"
	// GroupSelectorIndex indexes Groups that have a spec.memberSelector under
	// "true", so that a User's labels are matched only against those.
	GroupSelectorIndex = "spec.memberSelector.present"
	// GroupExternalIDIndex indexes Groups by spec.externalID, across
	// namespaces: the external ID is unique within the store.
	GroupExternalIDIndex = "spec.externalID"
)

// IndexGroupFields registers the group indexes with the manager's cache;
// SetupIndexes calls it. The Group and User controllers both read them.
func IndexGroupFields(ctx context.Context, indexer client.FieldIndexer) error {
	indexes := []struct {
		obj   client.Object
		field string
		fn    client.IndexerFunc
	}{
		{&v1alpha1.User{}, UserGroupsIndex, func(o client.Object) []string { return o.(*v1alpha1.User).Spec.Groups }},
		{&v1alpha1.Group{}, GroupMembersIndex, func(o client.Object) []string { return o.(*v1alpha1.Group).Spec.Members }},
		{&v1alpha1.Group{}, GroupSelectorIndex, func(o client.Object) []string {
			if o.(*v1alpha1.Group).Spec.MemberSelector == nil {
				return nil
			}
			return []string{"true"}
		}},
		{&v1alpha1.Group{}, GroupExternalIDIndex, func(o client.Object) []string {
			if ext := o.(*v1alpha1.Group).Spec.ExternalID; ext != "" {
				return []string{ext}
			}
			return nil
		}},
	}
	for _, ix := range indexes {
		if err := indexer.IndexField(ctx, ix.obj, ix.field, ix.fn); err != nil {
			return fmt.Errorf("indexing %s: %w", ix.field, err)
		}
	}
	return nil
}

// StoreGroupName is the store group's unchanging name for a Group. A
// namespace cannot contain a slash, so no two Groups share a name.
func StoreGroupName(group *v1alpha1.Group) string { return group.Namespace + "/" + group.Name }

// DesiredStoreGroup is the store group a Group asks for. Fields the spec
// leaves empty are not managed.
func DesiredStoreGroup(group *v1alpha1.Group) store.Group {
	return store.Group{
		Name:        StoreGroupName(group),
		DisplayName: group.Spec.DisplayName,
		ExternalID:  group.Spec.ExternalID,
		Description: group.Spec.Description,
	}
}

// MemberSelector parses spec.memberSelector. An unset selector selects no
// one; an empty one selects every User in the namespace.
func MemberSelector(group *v1alpha1.Group) (labels.Selector, error) {
	return metav1.LabelSelectorAsSelector(group.Spec.MemberSelector)
}

// InvalidMemberNames returns the entries of spec.members that are not valid
// object names, with their field paths. The schema refuses them already; this
// guards against objects stored under an older schema.
func InvalidMemberNames(group *v1alpha1.Group) []string {
	var bad []string
	for i, name := range group.Spec.Members {
		if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
			bad = append(bad, fmt.Sprintf("spec.members[%d] %q", i, name))
		}
	}
	return bad
}

// IsMemberOf reports whether the User belongs to the Group by any of the
// three routes: named in spec.members, matched by the selector (parsed from
// the Group; nil selects no one), or naming the Group in its spec.groups. A
// Group being deleted has no members.
func IsMemberOf(user *v1alpha1.User, group *v1alpha1.Group, selector labels.Selector) bool {
	switch {
	case user.Namespace != group.Namespace || !group.DeletionTimestamp.IsZero():
		return false
	case slices.Contains(group.Spec.Members, user.Name):
		return true
	case selector != nil && selector.Matches(labels.Set(user.Labels)):
		return true
	default:
		return slices.Contains(user.Spec.Groups, group.Name)
	}
}

// Membership is a Group's effective membership, resolved from the cache.
type Membership struct {
	// Members are the effective members' names, sorted.
	Members []string
	// StoreIDs are the store IDs of the members already in the store, sorted:
	// the membership the store group should have.
	StoreIDs []string
	// Missing are names in spec.members that no User has, sorted.
	Missing []string
	// Pending are members not in the store yet, sorted.
	Pending []string
}

// EffectiveMembers resolves a Group's members among candidate Users: those
// spec.members names, those the selector matches and those whose spec.groups
// names the Group, as the cache's indexes found them. Candidates may repeat
// and need not be members; each is checked again, so the result does not
// depend on how they were found. A User being deleted is no longer a member:
// its deletion takes it out of its groups.
func EffectiveMembers(group *v1alpha1.Group, selector labels.Selector, candidates []*v1alpha1.User) Membership {
	var m Membership
	seen := make(map[string]bool, len(candidates))
	ids := make(map[string]bool, len(candidates))
	for _, u := range candidates {
		if seen[u.Name] || u.Namespace != group.Namespace {
			continue
		}
		seen[u.Name] = true
		if !u.DeletionTimestamp.IsZero() || !IsMemberOf(u, group, selector) {
			continue
		}
		m.Members = append(m.Members, u.Name)
		switch id := u.Status.StoreID; {
		case id == "":
			m.Pending = append(m.Pending, u.Name)
		case !ids[id]:
			ids[id] = true
			m.StoreIDs = append(m.StoreIDs, id)
		}
	}
	for _, name := range group.Spec.Members {
		if !seen[name] {
			m.Missing = append(m.Missing, name)
		}
	}
	for _, s := range [][]string{m.Members, m.StoreIDs, m.Missing, m.Pending} {
		slices.Sort(s)
	}
	return m
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
func TruncateMembers(names []string, maxItems, maxBytes int) ([]string, bool) {
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
// already in the store keeps it against a newcomer (creation times are only
// precise to the second); otherwise the older one, and on a tie the lower
// namespace/name, so that every reconciler agrees.
func groupHoldsBefore(a, b *v1alpha1.Group) bool {
	if inA, inB := a.Status.StoreID != "", b.Status.StoreID != ""; inA != inB {
		return inA
	}
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	if a.Namespace != b.Namespace {
		return a.Namespace < b.Namespace
	}
	return a.Name < b.Name
}
