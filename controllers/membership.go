package controllers

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/internal/store"
)

// This file is membership, in both directions: which Users belong to a
// Group (for the Group reconciler, which writes store membership) and which
// Groups a User belongs to (for the User's status.groups and for leaving
// groups when a retained User is deleted). It holds the indexes both
// directions read, the one search for candidate members, and the watch
// mappings that wake each reconciler when the other kind changes.

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
)

// membershipIndexes are the indexes over membership, for setupIndexes.
func membershipIndexes() []fieldIndex {
	return []fieldIndex{
		{&v1alpha1.User{}, UserGroupsIndex, func(o client.Object) []string { return o.(*v1alpha1.User).Spec.Groups }},
		{&v1alpha1.Group{}, GroupMembersIndex, func(o client.Object) []string { return o.(*v1alpha1.Group).Spec.Members }},
		{&v1alpha1.Group{}, GroupSelectorIndex, func(o client.Object) []string {
			if o.(*v1alpha1.Group).Spec.MemberSelector == nil {
				return nil
			}
			return []string{"true"}
		}},
	}
}

// MemberSelector parses spec.memberSelector. An unset selector selects no
// one; an empty one selects every User in the namespace.
func parseMemberSelector(group *v1alpha1.Group) (labels.Selector, error) {
	return metav1.LabelSelectorAsSelector(group.Spec.MemberSelector)
}

// IsMemberOf reports whether the User belongs to the Group by any of the
// three routes: named in spec.members, matched by the selector (parsed from
// the Group; nil selects no one), or naming the Group in its spec.groups. A
// Group being deleted has no members.
func isMemberOf(user *v1alpha1.User, group *v1alpha1.Group, selector labels.Selector) bool {
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
type memberSet struct {
	// Members are the effective members' names, sorted.
	Members []string
	// StoreIDs are the store IDs of the members already in the store, sorted:
	// the membership the store group should have.
	StoreIDs []string
	// Missing are names in spec.members that no User has, sorted.
	Missing []string
	// Pending are members not in the store yet, sorted.
	Pending []string
	// OtherStore are Users that would be members but use another store,
	// sorted: a store group holds only users of its own store.
	OtherStore []string
}

// EffectiveMembers resolves a Group's members among candidate Users: those
// spec.members names, those the selector matches and those whose spec.groups
// names the Group, as the cache's indexes found them. Candidates may repeat
// and need not be members; each is checked again, so the result does not
// depend on how they were found. A User being deleted is no longer a member:
// its deletion takes it out of its groups. keys are the storeKeys of the
// Group's store: Users of other stores are no members.
func effectiveMembers(group *v1alpha1.Group, selector labels.Selector, candidates []*v1alpha1.User, keys []string) memberSet {
	var m memberSet
	seen := make(map[string]bool, len(candidates))
	ids := make(map[string]bool, len(candidates))
	for _, u := range candidates {
		if seen[u.Name] || u.Namespace != group.Namespace {
			continue
		}
		seen[u.Name] = true
		if !u.DeletionTimestamp.IsZero() || !isMemberOf(u, group, selector) {
			continue
		}
		if !slices.Contains(keys, storeKey(u.Spec.StoreRef)) {
			m.OtherStore = append(m.OtherStore, u.Name)
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
	for _, s := range [][]string{m.Members, m.StoreIDs, m.Missing, m.Pending, m.OtherStore} {
		slices.Sort(s)
	}
	return m
}

// resolveMembers finds the effective members in the cache: each User
// spec.members names, the Users the selector matches in the namespace, and
// the Users whose spec.groups names the Group.
func (r *GroupReconciler) resolveMembers(ctx context.Context, group *v1alpha1.Group, selector labels.Selector, pass *groupPass) error {
	candidates, err := candidateMembers(ctx, r.Client, group.Namespace, group)
	if err != nil {
		return fmt.Errorf("finding the member Users: %w", err)
	}
	m := effectiveMembers(group, selector, candidates, pass.storeKeys)
	pass.membership = &m
	return nil
}

// resolveGroups computes the User's effective Groups for status.groups from
// the cache. spec.groups counts only for Groups that exist: a name with no
// Group yet shows up once the Group is created (the Group watch re-queues
// the User).
func (r *UserReconciler) resolveGroups(ctx context.Context, user *v1alpha1.User, pass *userPass) error {
	groups, err := effectiveGroups(ctx, r.Client, user, pass.storeKeys)
	if err != nil {
		return err
	}
	pass.groups = make([]string, 0, len(groups))
	for i := range groups {
		pass.groups = append(pass.groups, groups[i].Name)
	}
	pass.groupsResolved = true
	return nil
}

// leaveGroups takes a User whose store user stays (deletionPolicy Retain)
// out of the store groups of its Groups before the User goes: without the
// User it is no member of them. Store groups without a Group are left as
// they are. A User whose store user is deleted needs none of this: DeleteUser
// removes a user from every group.
func (r *UserReconciler) leaveGroups(ctx context.Context, user *v1alpha1.User, pass *userPass) error {
	groups, err := effectiveGroups(ctx, r.Client, user, pass.storeKeys)
	if err != nil {
		return err
	}
	for i := range groups {
		id := groups[i].Status.StoreID
		if id == "" {
			continue
		}
		err := pass.store.UpdateGroupMembers(ctx, id, store.MemberDiff{Remove: []string{pass.observed.ID}})
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("leaving group %s: %w", groups[i].Name, err)
		}
	}
	return nil
}

// groupsSelectingOrNaming returns the Groups in the User's namespace that
// name it in spec.members or select it by label, from the indexes.
func groupsSelectingOrNaming(ctx context.Context, c client.Reader, user *v1alpha1.User) ([]v1alpha1.Group, error) {
	var named, selecting v1alpha1.GroupList
	if err := c.List(ctx, &named, client.InNamespace(user.Namespace), client.MatchingFields{GroupMembersIndex: user.Name}); err != nil {
		return nil, fmt.Errorf("listing Groups naming the User: %w", err)
	}
	if err := c.List(ctx, &selecting, client.InNamespace(user.Namespace), client.MatchingFields{GroupSelectorIndex: "true"}); err != nil {
		return nil, fmt.Errorf("listing Groups with a member selector: %w", err)
	}
	var out []v1alpha1.Group
	for _, g := range append(named.Items, selecting.Items...) {
		selector, err := parseMemberSelector(&g)
		if err != nil {
			continue // the Group reports its own invalid selector
		}
		if isMemberOf(user, &g, selector) && !slices.ContainsFunc(out, func(o v1alpha1.Group) bool { return o.Name == g.Name }) {
			out = append(out, g)
		}
	}
	return out, nil
}

// effectiveGroups returns the existing Groups of the User's store (keys, its
// storeKeys) the User belongs to by any route, sorted by name; Groups being
// deleted are left out.
func effectiveGroups(ctx context.Context, c client.Reader, user *v1alpha1.User, keys []string) ([]v1alpha1.Group, error) {
	groups, err := groupsSelectingOrNaming(ctx, c, user)
	if err != nil {
		return nil, err
	}
	for _, name := range user.Spec.Groups {
		if slices.ContainsFunc(groups, func(g v1alpha1.Group) bool { return g.Name == name }) {
			continue
		}
		var g v1alpha1.Group
		err := c.Get(ctx, types.NamespacedName{Namespace: user.Namespace, Name: name}, &g)
		switch {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			return nil, fmt.Errorf("getting Group %s: %w", name, err)
		}
		if g.DeletionTimestamp.IsZero() {
			groups = append(groups, g)
		}
	}
	// A store group holds only users of its own store.
	groups = slices.DeleteFunc(groups, func(g v1alpha1.Group) bool { return !slices.Contains(keys, storeKey(g.Spec.StoreRef)) })
	slices.SortFunc(groups, func(a, b v1alpha1.Group) int { return strings.Compare(a.Name, b.Name) })
	return groups, nil
}

// groupsOfUser names the Groups the User belongs to, for re-queueing: the
// names in its spec.groups count whether or not such a Group exists, since
// re-queueing a missing Group costs nothing.
func groupsOfUser(ctx context.Context, c client.Reader, user *v1alpha1.User) ([]string, error) {
	groups, err := groupsSelectingOrNaming(ctx, c, user)
	if err != nil {
		return nil, err
	}
	names := slices.Clone(user.Spec.Groups)
	for i := range groups {
		names = append(names, groups[i].Name)
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// groupEvents re-queues the Users whose effective Groups a Group event
// changes: on creation and deletion its members, on an update the Users
// that joined or left it.
func (r *UserReconciler) groupEvents() handler.EventHandler {
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			r.enqueueMembersOf(ctx, q, nil, e.Object)
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			if e.ObjectOld.GetGeneration() == e.ObjectNew.GetGeneration() &&
				e.ObjectOld.GetDeletionTimestamp().IsZero() == e.ObjectNew.GetDeletionTimestamp().IsZero() {
				return // a status write: membership did not change
			}
			r.enqueueMembersOf(ctx, q, e.ObjectOld, e.ObjectNew)
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			r.enqueueMembersOf(ctx, q, e.Object, nil)
		},
	}
}

// enqueueMembersOf re-queues the Users whose membership differs between the
// Group before (nil: did not exist) and after (nil: gone).
func (r *UserReconciler) enqueueMembersOf(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request], before, after client.Object) {
	old, cur := asGroup(before), asGroup(after)
	ns := cur.Namespace
	if ns == "" {
		ns = old.Namespace
	}
	candidates, err := candidateMembers(ctx, r.Client, ns, old, cur)
	if err != nil {
		log.FromContext(ctx).Error(err, "Finding the members of a Group")
		return
	}
	oldSel, _ := parseMemberSelector(old)
	curSel, _ := parseMemberSelector(cur)
	for _, u := range candidates {
		if isMemberOf(u, old, oldSel) != isMemberOf(u, cur, curSel) {
			q.Add(reconcile.Request{NamespacedName: client.ObjectKeyFromObject(u)})
		}
	}
}

// candidateMembers returns the Users that may belong to any of the Groups by
// any route, from the cache: spec.members names them, a selector matches
// them, or their spec.groups names the Group.
func candidateMembers(ctx context.Context, c client.Reader, ns string, groups ...*v1alpha1.Group) ([]*v1alpha1.User, error) {
	var out []*v1alpha1.User
	seen := map[string]bool{}
	add := func(list *v1alpha1.UserList) {
		for i := range list.Items {
			if u := &list.Items[i]; !seen[u.Name] {
				seen[u.Name] = true
				out = append(out, u)
			}
		}
	}
	for _, g := range groups {
		if g.Name == "" {
			continue
		}
		for _, name := range g.Spec.Members {
			if seen[name] {
				continue
			}
			u := &v1alpha1.User{}
			switch err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, u); {
			case apierrors.IsNotFound(err):
				continue
			case err != nil:
				return nil, err
			}
			seen[name] = true
			out = append(out, u)
		}
		opts := [][]client.ListOption{{client.InNamespace(ns), client.MatchingFields{UserGroupsIndex: g.Name}}}
		if sel, err := parseMemberSelector(g); err == nil && g.Spec.MemberSelector != nil {
			opts = append(opts, []client.ListOption{client.InNamespace(ns), client.MatchingLabelsSelector{Selector: sel}})
		}
		for _, o := range opts {
			var list v1alpha1.UserList
			if err := c.List(ctx, &list, o...); err != nil {
				return nil, err
			}
			add(&list)
		}
	}
	return out, nil
}

// symmetricDifference returns the sorted names in exactly one of a and b.
func symmetricDifference(a, b []string) []string {
	var out []string
	for _, n := range a {
		if !slices.Contains(b, n) {
			out = append(out, n)
		}
	}
	for _, n := range b {
		if !slices.Contains(a, n) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// union returns the sorted names in a or b.
func union(a, b []string) []string {
	out := append(slices.Clone(a), b...)
	slices.Sort(out)
	return slices.Compact(out)
}

// asGroup returns the Group, or an empty one (no members) for nil.
func asGroup(obj client.Object) *v1alpha1.Group {
	if g, ok := obj.(*v1alpha1.Group); ok {
		return g
	}
	return &v1alpha1.Group{}
}

// userEvents re-queues the Groups whose membership a User event may change.
func (r *GroupReconciler) userEvents() handler.EventHandler {
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			r.enqueueGroupsOf(ctx, q, e.Object, nil)
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			r.enqueueGroupsOf(ctx, q, e.ObjectOld, e.ObjectNew)
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			r.enqueueGroupsOf(ctx, q, e.Object, nil)
		},
	}
}

// enqueueGroupsOf re-queues exactly the Groups a User event affects. For a
// creation or deletion (cur nil) that is every Group the User belongs to.
// For an update it is the Groups it joined or left (labels or spec.groups
// changed) or, when its store ID changed or its deletion began, every Group
// it belongs to before or after, since their store membership changes.
func (r *GroupReconciler) enqueueGroupsOf(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request], prev, cur client.Object) {
	before, ok := prev.(*v1alpha1.User)
	if !ok {
		return
	}
	if after, ok := cur.(*v1alpha1.User); ok && !membershipMayDiffer(before, after) {
		return // a status write or a change that does not touch membership
	}
	groupsBefore, err := groupsOfUser(ctx, r.Client, before)
	if err != nil {
		log.FromContext(ctx).Error(err, "Finding the Groups of a User", "user", client.ObjectKeyFromObject(before))
		return
	}
	affected := groupsBefore
	if after, ok := cur.(*v1alpha1.User); ok {
		groupsAfter, err := groupsOfUser(ctx, r.Client, after)
		if err != nil {
			log.FromContext(ctx).Error(err, "Finding the Groups of a User", "user", client.ObjectKeyFromObject(after))
			return
		}
		storeChanged := before.Status.StoreID != after.Status.StoreID ||
			before.DeletionTimestamp.IsZero() != after.DeletionTimestamp.IsZero()
		affected = symmetricDifference(groupsBefore, groupsAfter)
		if storeChanged {
			affected = union(groupsBefore, groupsAfter)
		}
	}
	for _, name := range affected {
		q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: before.Namespace, Name: name}})
	}
}

// membershipMayDiffer reports whether a User update can change which Groups
// it belongs to or what its Groups write to the store.
func membershipMayDiffer(before, after *v1alpha1.User) bool {
	return !maps.Equal(before.Labels, after.Labels) ||
		!slices.Equal(before.Spec.Groups, after.Spec.Groups) ||
		before.Status.StoreID != after.Status.StoreID ||
		before.DeletionTimestamp.IsZero() != after.DeletionTimestamp.IsZero()
}
