package controllers

import (
	"fmt"
	"maps"
	"slices"

	"k8s.io/apimachinery/pkg/api/equality"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/internal/importfile"
	"roster.dev/roster/internal/naming"
)

// importPlan is what an import will do: one entry per email, the last row
// for that email winning, in the order those rows appear in the file.
type importPlan struct {
	entries []planEntry
	// superseded counts rows replaced by a later row for the same email.
	superseded int
	// failures lists the first maxListedFailures invalid rows and failed
	// counts them all, so that a file of bad rows costs no more memory
	// than a file with a hundred.
	failures []v1alpha1.ImportFailure
	failed   int
	total    int
}

// planEntry is the row that decides one email's fate.
type planEntry struct {
	row importfile.Row
}

// planner collects rows as they are read.
type planner struct {
	byEmail map[string]int // normalised email -> index in entries
	plan    importPlan
}

func newPlanner() *planner { return &planner{byEmail: map[string]int{}} }

func (p *planner) add(row importfile.Row) {
	p.plan.total++
	key := naming.NormalizeEmail(row.Email)
	if i, ok := p.byEmail[key]; ok {
		// The later row wins; the earlier one is dropped from the plan but
		// keeps its place in the counts.
		row = combineRows(p.plan.entries[i].row, row)
		p.plan.entries[i].row = importfile.Row{} // tombstone
		p.plan.superseded++
	}
	p.byEmail[key] = len(p.plan.entries)
	p.plan.entries = append(p.plan.entries, planEntry{row: row})
}

func (p *planner) fail(f v1alpha1.ImportFailure) {
	p.plan.total++
	p.plan.failed++
	if len(p.plan.failures) < maxListedFailures {
		p.plan.failures = append(p.plan.failures, f)
	}
}

// combineRows returns the one row equivalent to applying earlier and then
// later. An update after an add or an update refines it (its set fields win);
// any other later row replaces the earlier one.
func combineRows(earlier, later importfile.Row) importfile.Row {
	if later.Action != importfile.ActionUpdate || earlier.Action == importfile.ActionRemove {
		return later
	}
	merged := earlier
	merged.Number = later.Number
	setNonEmpty(&merged.FirstName, later.FirstName)
	setNonEmpty(&merged.LastName, later.LastName)
	setNonEmpty(&merged.Role, later.Role)
	setNonEmpty(&merged.Mobile, later.Mobile)
	setNonEmpty(&merged.TimeZone, later.TimeZone)
	setNonEmpty(&merged.Country, later.Country)
	setNonEmpty(&merged.Locale, later.Locale)
	if later.Groups != nil {
		merged.Groups = later.Groups
	}
	return merged
}

// finish drops the tombstones and returns the plan.
func (p *planner) finish() importPlan {
	p.plan.entries = slices.DeleteFunc(p.plan.entries, func(e planEntry) bool { return e.row.Number == 0 })
	return p.plan
}

// rowOutcome is what applying one row did, or would do in a dry run.
type rowOutcome int

const (
	outcomeUnchanged rowOutcome = iota
	outcomeAdded
	outcomeUpdated
	outcomeRemoved
	outcomeFailed
)

// desiredUser returns the User a row asks for: a new one when existing is
// nil, else a copy of existing with the row's fields applied. Fields the row
// leaves empty keep their value; defaults fill role and groups.
func desiredUser(row importfile.Row, existing *v1alpha1.User, imp *v1alpha1.UserImport) *v1alpha1.User {
	var u *v1alpha1.User
	if existing == nil {
		u = &v1alpha1.User{}
		u.Namespace = imp.Namespace
		u.Spec.Email = row.Email
		u.Spec.StoreRef = imp.Spec.StoreRef.DeepCopy()
		invite := imp.Spec.SendInvitations
		u.Spec.Invite = &invite
		// The User controller would add the finalizer as its first write;
		// setting it here saves that write for every imported user.
		u.Finalizers = []string{v1alpha1.Finalizer}
	} else {
		u = existing.DeepCopy()
	}
	setNonEmpty(&u.Spec.FirstName, row.FirstName)
	setNonEmpty(&u.Spec.LastName, row.LastName)
	setNonEmpty(&u.Spec.Mobile, row.Mobile)
	setNonEmpty(&u.Spec.TimeZone, row.TimeZone)
	setNonEmpty(&u.Spec.Country, row.Country)
	setNonEmpty(&u.Spec.Locale, row.Locale)
	role, groups := row.Role, row.Groups
	if d := imp.Spec.Defaults; d != nil {
		if role == "" {
			role = d.Role
		}
		if groups == nil && len(d.Groups) > 0 {
			groups = d.Groups
		}
	}
	setNonEmpty(&u.Spec.Role, role)
	if groups != nil {
		u.Spec.Groups = slices.Clone(groups)
	}
	return u
}

// specChanged reports whether applying desired would change existing.
func specChanged(existing, desired *v1alpha1.User) bool {
	return !equality.Semantic.DeepEqual(existing.Spec, desired.Spec)
}

// markImported labels u with the import and records the outcome.
func markImported(u *v1alpha1.User, imp *v1alpha1.UserImport, outcome rowOutcome) {
	u.Labels = maps.Clone(u.Labels)
	if u.Labels == nil {
		u.Labels = map[string]string{}
	}
	u.Labels[v1alpha1.ImportLabel] = imp.Name
	u.Annotations = maps.Clone(u.Annotations)
	if u.Annotations == nil {
		u.Annotations = map[string]string{}
	}
	u.Annotations[v1alpha1.LastImportAnnotation] = lastImportValue(imp, outcome)
}

func lastImportValue(imp *v1alpha1.UserImport, outcome rowOutcome) string {
	word := "updated"
	if outcome == outcomeAdded {
		word = "added"
	}
	// The generation keeps one run's rows apart from another's: a row the
	// previous run applied is unchanged in the next.
	return fmt.Sprintf("%s/%d %s", imp.UID, imp.Generation, word)
}

// appliedBefore returns the outcome with which this run of the import
// already applied a row to u, before a restart, if it did.
func appliedBefore(u *v1alpha1.User, imp *v1alpha1.UserImport) (rowOutcome, bool) {
	switch u.Annotations[v1alpha1.LastImportAnnotation] {
	case lastImportValue(imp, outcomeAdded):
		return outcomeAdded, true
	case lastImportValue(imp, outcomeUpdated):
		return outcomeUpdated, true
	}
	return outcomeUnchanged, false
}

// setNonEmpty sets *dst to v unless v is empty: an empty cell in an import
// row means "not set", never "clear".
func setNonEmpty(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}
