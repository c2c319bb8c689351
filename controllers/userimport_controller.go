package controllers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/internal/importfile"
	"roster.dev/roster/internal/naming"
	"roster.dev/roster/internal/status"
	"roster.dev/roster/internal/stores"
)

// Reasons of UserImport conditions and events.
const (
	ReasonWaitingForSource = "WaitingForSource"
	ReasonInvalidSource    = "InvalidSource"
	ReasonFirstLineInvalid = "FirstLineInvalid"
	ReasonTooManyRows      = "TooManyRows"
	ReasonSourceChanged    = "SourceChanged"
	ReasonRunning          = "Running"
	ReasonSucceeded        = "Succeeded"
	ReasonRowsFailed       = "RowsFailed"
	ReasonImportStarted    = "ImportStarted"
	ReasonImportRerun      = "ImportRerun"
)

// Limits of an import's status.
const (
	// maxListedFailures caps status.failures; the rest are counted.
	maxListedFailures = 100
	// progressEvery is how many rows are applied between progress writes.
	progressEvery = 500
)

// UserImportReconciler applies UserImports: it reads the file once, plans
// one change per email, and applies the plan in parallel, writing progress
// as it goes so that a restarted manager resumes where it stopped.
type UserImportReconciler struct {
	client.Client
	// Stores resolve the store of the Users an import names.
	Stores *stores.Registry
	// DefaultRole is the role of rows and Users that set none, checked
	// against the store's rules like any other.
	DefaultRole string
	Source      *SourceLoader
	Recorder    events.EventRecorder
	Clock       clock.PassiveClock
	// Emails finds Users by email in the cache.
	Emails *EmailIndex
	// Workers bounds the rows applied at once within one import.
	Workers int
	// MaxConcurrentReconciles bounds the imports run at once.
	MaxConcurrentReconciles int
	// Backlog, when set, is how many Users wait to be reconciled; rows are
	// applied only while it is at most maxBacklog.
	Backlog func() int

	only predicate.Predicate // see Deps.Only
}

// +kubebuilder:rbac:groups=iam.roster.dev,resources=userimports,verbs=get;list;watch
// +kubebuilder:rbac:groups=iam.roster.dev,resources=userimports/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=iam.roster.dev,resources=users,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=configmaps;secrets,verbs=get

// Reconcile runs an import to completion; a finished import is left alone.
func (r *UserImportReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	imp := &v1alpha1.UserImport{}
	if err := r.Get(ctx, req.NamespacedName, imp); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if finished(imp.Status.Phase) && imp.Status.ObservedGeneration == imp.Generation {
		return ctrl.Result{}, nil // this generation's run is over
	}
	base := imp.DeepCopy()
	if imp.Status.Phase != "" && imp.Status.ObservedGeneration != imp.Generation {
		// The spec changed: a new run, from the first row. Rows this run
		// finds as asked are unchanged; what the earlier run did stays.
		imp.Status = v1alpha1.UserImportStatus{Conditions: imp.Status.Conditions}
		r.Recorder.Eventf(imp, nil, corev1.EventTypeNormal, ReasonImportRerun, "Import", "The spec changed: importing again from the first row.")
	}
	var summary status.Summary
	defer func() {
		if retErr != nil && summary.Reason == "" {
			summary = status.Summary{State: status.Progressing, Reason: ReasonRunning,
				Message: fmt.Sprintf("The import failed and is retried: %v.", retErr)}
		}
		imp.Status.ObservedGeneration = imp.Generation
		status.Apply(&imp.Status.Conditions, imp.Generation, summary)
		patchStatus(ctx, r.Client, imp, base, imp.Status, base.Status, &result, &retErr)
	}()
	if imp.Status.Phase == "" {
		imp.Status.Phase = v1alpha1.ImportPending
	}

	if _, err := r.Stores.Resolve(imp.Spec.StoreRef); err != nil {
		summary = status.Summary{State: status.Progressing, Reason: ReasonWaitingForStore,
			Message: fmt.Sprintf("Waiting for the identity store: %v.", err)}
		return ctrl.Result{RequeueAfter: storeWait}, nil
	}
	src, err := r.Source.load(ctx, imp)
	if err != nil {
		return r.sourceFailed(imp, &summary, err)
	}
	defer src.Close()
	if prev := imp.Status.SourceSHA256; prev != "" && prev != src.sha256 {
		r.fail(imp, &summary, ReasonSourceChanged, "The import's file changed while it was running; create a new UserImport for the new file.")
		return ctrl.Result{}, nil
	}

	plan, err := r.readPlan(src, imp)
	if err != nil {
		var tooMany *tooManyRowsError
		switch {
		case errors.Is(err, importfile.ErrFirstLineInvalid):
			r.fail(imp, &summary, ReasonFirstLineInvalid, err.Error())
		case errors.As(err, &tooMany):
			r.fail(imp, &summary, ReasonTooManyRows, tooMany.Error())
		default:
			r.fail(imp, &summary, ReasonInvalidSource, fmt.Sprintf("The file cannot be read: %v.", err))
		}
		return ctrl.Result{}, nil
	}

	// The plan holds what the rows need: the file (megabytes, for a large
	// import) need not stay while they are applied.
	_ = src.Close()
	r.start(imp, src.sha256, plan)
	if err := r.apply(ctx, imp, base, plan); err != nil {
		return ctrl.Result{}, err
	}
	r.complete(imp, &summary)
	return ctrl.Result{}, nil
}

func finished(p v1alpha1.ImportPhase) bool {
	return p == v1alpha1.ImportSucceeded || p == v1alpha1.ImportPartiallySucceeded || p == v1alpha1.ImportFailed
}

func (r *UserImportReconciler) sourceFailed(imp *v1alpha1.UserImport, summary *status.Summary, err error) (ctrl.Result, error) {
	var se *sourceError
	switch {
	case isWaiting(err):
		*summary = status.Summary{State: status.Progressing, Reason: ReasonWaitingForSource,
			Message: fmt.Sprintf("Waiting for the file: %v.", err)}
		return ctrl.Result{RequeueAfter: 10 * time.Second}, nil
	case errors.As(err, &se):
		r.fail(imp, summary, ReasonInvalidSource, fmt.Sprintf("The source is invalid: %v.", err))
		return ctrl.Result{}, nil
	default:
		return ctrl.Result{}, err
	}
}

// fail ends the import without applying anything further.
func (r *UserImportReconciler) fail(imp *v1alpha1.UserImport, summary *status.Summary, reason, msg string) {
	imp.Status.Phase = v1alpha1.ImportFailed
	now := metav1.NewTime(r.Clock.Now())
	imp.Status.CompletedAt = &now
	*summary = status.Summary{State: status.Stalled, Reason: reason, Message: msg}
	r.Recorder.Eventf(imp, nil, corev1.EventTypeWarning, reason, "Import", msg)
}

// readPlan reads every row, validating it, and plans one change per email.
// It stops at the first row past the source's row limit.
func (r *UserImportReconciler) readPlan(src *source, imp *v1alpha1.UserImport) (importPlan, error) {
	rd, err := importfile.NewReader(src, src.size, importfile.Options{
		Format:     importfile.Format(imp.Spec.Format),
		SkipHeader: imp.Spec.SkipHeader,
		MaxBytes:   r.Source.MaxBytes,
		Redact:     redactsValues(imp.Spec.Source),
	})
	if err != nil {
		return importPlan{}, err
	}
	defer rd.Close()
	limit := r.Source.maxRows()
	p := newPlanner()
	for {
		row, err := rd.Next()
		var rowErr *importfile.RowError
		switch {
		case err == nil:
			p.add(row)
		case errors.Is(err, io.EOF):
			return p.finish(), nil
		case errors.As(err, &rowErr):
			p.fail(v1alpha1.ImportFailure{Row: int32(rowErr.Row), Email: rowErr.Email, Message: rowErr.Error()})
		default:
			return importPlan{}, err
		}
		if p.plan.total > limit {
			return importPlan{}, &tooManyRowsError{limit: limit}
		}
	}
}

// tooManyRowsError is a file with more data rows than one import may hold.
type tooManyRowsError struct{ limit int }

func (e *tooManyRowsError) Error() string {
	return fmt.Sprintf("The file has more than %d rows, the most one import may hold; nothing was imported. Split it into several imports.", e.limit)
}

// start records the plan's shape the first time the import runs; a resumed
// import keeps the counts it had.
func (r *UserImportReconciler) start(imp *v1alpha1.UserImport, digest string, plan importPlan) {
	st := &imp.Status
	if st.SourceSHA256 != "" {
		return
	}
	now := metav1.NewTime(r.Clock.Now())
	st.Phase = v1alpha1.ImportRunning
	st.StartedAt = &now
	st.SourceSHA256 = digest
	st.Rows = v1alpha1.ImportRowCounts{Total: int32(plan.total)}
	// Invalid rows and rows a later row replaces are settled before
	// anything is applied. The plan lists at most as many invalid rows as
	// the status does; the rest are counted.
	for _, f := range plan.failures {
		recordFailure(st, f)
	}
	unlisted := int32(plan.failed - len(plan.failures))
	st.Rows.Failed += unlisted
	st.OmittedFailures += unlisted
	st.Rows.Unchanged += int32(plan.superseded)
	st.Rows.Processed = int32(plan.failed + plan.superseded)
	verb := "Importing"
	if imp.Spec.DryRun {
		verb = "Checking"
	}
	r.Recorder.Eventf(imp, nil, corev1.EventTypeNormal, ReasonImportStarted, "Import",
		"%s %d rows (%d invalid).", verb, plan.total, plan.failed)
}

func recordFailure(st *v1alpha1.UserImportStatus, f v1alpha1.ImportFailure) {
	st.Rows.Failed++
	if len(st.Failures) < maxListedFailures {
		st.Failures = append(st.Failures, f)
	} else {
		st.OmittedFailures++
	}
}

// apply works through the plan in chunks, writing progress after each, and
// skips the chunks a previous run already finished.
func (r *UserImportReconciler) apply(ctx context.Context, imp, base *v1alpha1.UserImport, plan importPlan) error {
	settled := plan.failed + plan.superseded
	done := int(imp.Status.Rows.Processed) - settled
	redact := redactsValues(imp.Spec.Source)
	for done < len(plan.entries) {
		end := min(done+progressEvery, len(plan.entries))
		results := r.applyChunk(ctx, imp, plan.entries[done:end])
		if err := ctx.Err(); err != nil {
			return err
		}
		for i, res := range results {
			countOutcome(&imp.Status, plan.entries[done+i].row, res, redact)
		}
		imp.Status.Rows.Processed += int32(end - done)
		done = end
		if done < len(plan.entries) {
			if err := r.writeProgress(ctx, imp, base); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeProgress patches the status mid-import; base moves along so that the
// final patch carries only what changed since.
func (r *UserImportReconciler) writeProgress(ctx context.Context, imp, base *v1alpha1.UserImport) error {
	status.Apply(&imp.Status.Conditions, imp.Generation, status.Summary{
		State: status.Progressing, Reason: ReasonRunning,
		Message: fmt.Sprintf("Processed %d of %d rows.", imp.Status.Rows.Processed, imp.Status.Rows.Total),
	})
	if err := status.Patch(ctx, r.Client, imp, base, imp.Status, base.Status); err != nil {
		return fmt.Errorf("writing progress: %w", err)
	}
	base.Status = *imp.Status.DeepCopy()
	return nil
}

type rowResult struct {
	outcome rowOutcome
	message string
	// redacted is message without the row's values or the API server's
	// words, which can quote them; "" when message quotes nothing.
	redacted string
}

// rowFailed is a row that could not be applied: msg may quote values,
// redacted must not.
func rowFailed(msg, redacted string) rowResult {
	return rowResult{outcome: outcomeFailed, message: msg, redacted: redacted}
}

// redactedFailure says what failed and the kind of the API server's answer,
// without the answer's message, which can quote the row's values.
func redactedFailure(what string, err error) string {
	if reason := apierrors.ReasonForError(err); reason != metav1.StatusReasonUnknown {
		return fmt.Sprintf("%s failed: the API server answered %s.", what, reason)
	}
	return what + " failed."
}

// applyChunk applies entries with a bounded pool of workers. Each email
// appears once in the plan, so rows never race for the same User.
func (r *UserImportReconciler) applyChunk(ctx context.Context, imp *v1alpha1.UserImport, entries []planEntry) []rowResult {
	results := make([]rowResult, len(entries))
	next := make(chan int)
	var wg sync.WaitGroup
	for range max(1, min(r.Workers, len(entries))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				results[i] = r.applyRow(ctx, imp, entries[i].row)
			}
		}()
	}
	for i := range entries {
		r.paced(ctx)
		select {
		case next <- i:
		case <-ctx.Done():
		}
	}
	close(next)
	wg.Wait()
	return results
}

// maxBacklog is how many Users may wait in the User controller's queue
// before an import applies its next row: enough that the User workers
// never run dry, few enough that creation cannot run tens of thousands of
// Users ahead of provisioning. Those would wait in the queue, a few
// hundred bytes each, while creation and provisioning compete for the
// same API server.
const maxBacklog = 1000

// backlogPoll is how often a paced import looks at the backlog again.
const backlogPoll = 50 * time.Millisecond

// paced waits while the User controller's backlog is above maxBacklog.
func (r *UserImportReconciler) paced(ctx context.Context) {
	if r.Backlog == nil || r.Backlog() <= maxBacklog {
		return
	}
	t := time.NewTicker(backlogPoll)
	defer t.Stop()
	for r.Backlog() > maxBacklog {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// countOutcome counts a row's outcome. With redact, a failure carries
// neither the row's email nor a message that quotes the row.
func countOutcome(st *v1alpha1.UserImportStatus, row importfile.Row, res rowResult, redact bool) {
	switch res.outcome {
	case outcomeAdded:
		st.Rows.Added++
	case outcomeUpdated:
		st.Rows.Updated++
	case outcomeRemoved:
		st.Rows.Removed++
	case outcomeUnchanged:
		st.Rows.Unchanged++
	case outcomeFailed:
		f := v1alpha1.ImportFailure{Row: int32(row.Number), Email: row.Email, Message: res.message}
		if redact {
			f.Email = ""
			if res.redacted != "" {
				f.Message = res.redacted
			}
		}
		recordFailure(st, f)
	}
}

// applyRow makes one row true, or in a dry run says what it would do.
func (r *UserImportReconciler) applyRow(ctx context.Context, imp *v1alpha1.UserImport, row importfile.Row) rowResult {
	existing, elsewhere, err := r.userWithEmail(ctx, imp, row.Email)
	switch {
	case err != nil:
		return rowFailed(fmt.Sprintf("Looking up the email failed: %v", err), "Looking up the email failed.")
	case elsewhere != nil:
		return rowFailed(fmt.Sprintf("The email address is held by User %s/%s in another namespace.", elsewhere.Namespace, elsewhere.Name),
			"The email address is held by a User in another namespace.")
	case row.Action == importfile.ActionRemove:
		return r.remove(ctx, imp, existing)
	case existing == nil && row.Action == importfile.ActionUpdate:
		return rowFailed("No User in this namespace has this email; use add-user to create one.", "")
	}
	desired := desiredUser(row, existing, imp)
	if err := r.permitted(ctx, imp, desired); err != nil {
		return rowFailed(err.Error()+".", "The identity store's tenancy rules for this namespace refuse the row's address or role.")
	}
	if existing != nil { // add-user of a User that exists updates it
		return r.update(ctx, imp, existing, desired)
	}
	return r.add(ctx, imp, desired)
}

// importURLHosts are the hosts the import's url source may name: those of
// the tenancy rule that admits its namespace to its store.
func (r *UserImportReconciler) importURLHosts(ctx context.Context, imp *v1alpha1.UserImport) ([]string, error) {
	h, err := r.Stores.Resolve(imp.Spec.StoreRef)
	if err != nil {
		return nil, err
	}
	ten, err := tenancyOf(ctx, r.Client, h, imp.Namespace)
	if err != nil {
		return nil, err
	}
	return ten.ImportURLHosts(), nil
}

// permitted checks the User a row asks for against the store's tenancy
// rules for the import's namespace: its address and its role, the default
// role included.
func (r *UserImportReconciler) permitted(ctx context.Context, imp *v1alpha1.UserImport, desired *v1alpha1.User) error {
	h, err := r.Stores.Resolve(imp.Spec.StoreRef)
	if err != nil {
		return err
	}
	ten, err := tenancyOf(ctx, r.Client, h, imp.Namespace)
	if err != nil {
		return err
	}
	return errors.Join(ten.CheckEmail(desired.Spec.Email), ten.CheckRole(effectiveRole(desired, r.DefaultRole)))
}

// remove deletes the User holding the row's email, if there is one.
func (r *UserImportReconciler) remove(ctx context.Context, imp *v1alpha1.UserImport, existing *v1alpha1.User) rowResult {
	switch {
	case existing == nil:
		return rowResult{outcome: outcomeUnchanged}
	case !existing.DeletionTimestamp.IsZero():
		// Being deleted already, by this import before a restart or by
		// someone else: either way the row's outcome holds.
		return rowResult{outcome: outcomeRemoved}
	case imp.Spec.DryRun:
		return rowResult{outcome: outcomeRemoved}
	}
	uid := existing.UID
	if err := r.Delete(ctx, existing, client.Preconditions{UID: &uid}); err != nil && !apierrors.IsNotFound(err) {
		return rowFailed(fmt.Sprintf("Deleting User %s failed: %v", existing.Name, err), redactedFailure("Deleting the User", err))
	}
	return rowResult{outcome: outcomeRemoved}
}

// update patches the User to what the row asks for. A User this import
// changed before a restart counts as the outcome it had then.
func (r *UserImportReconciler) update(ctx context.Context, imp *v1alpha1.UserImport, existing, desired *v1alpha1.User) rowResult {
	if !specChanged(existing, desired) {
		if outcome, ok := appliedBefore(existing, imp); ok {
			return rowResult{outcome: outcome}
		}
		return rowResult{outcome: outcomeUnchanged}
	}
	if imp.Spec.DryRun {
		return rowResult{outcome: outcomeUpdated}
	}
	markImported(desired, imp, outcomeUpdated)
	if err := r.Patch(ctx, desired, client.MergeFrom(existing)); err != nil {
		return rowFailed(fmt.Sprintf("Updating User %s failed: %v", existing.Name, err), redactedFailure("Updating the User", err))
	}
	return rowResult{outcome: outcomeUpdated}
}

// add creates a User named after its email, with a digest suffix when that
// name is taken by another address. A User with this email found under
// either name was created by this import before a restart.
func (r *UserImportReconciler) add(ctx context.Context, imp *v1alpha1.UserImport, desired *v1alpha1.User) rowResult {
	if imp.Spec.DryRun {
		return rowResult{outcome: outcomeAdded}
	}
	markImported(desired, imp, outcomeAdded)
	for _, name := range []string{naming.UserName(desired.Spec.Email), naming.UserNameWithSuffix(desired.Spec.Email)} {
		u := desired.DeepCopy()
		u.Name = name
		err := r.Create(ctx, u)
		if err == nil {
			return rowResult{outcome: outcomeAdded}
		}
		if !apierrors.IsAlreadyExists(err) {
			return rowFailed(fmt.Sprintf("Creating User %s failed: %v", name, err), redactedFailure("Creating the User", err))
		}
		var taken v1alpha1.User
		if err := r.Get(ctx, client.ObjectKey{Namespace: imp.Namespace, Name: name}, &taken); err == nil &&
			naming.NormalizeEmail(taken.Spec.Email) == naming.NormalizeEmail(desired.Spec.Email) {
			return rowResult{outcome: outcomeAdded}
		}
	}
	return rowFailed("Both names derived from this email are held by Users with other emails.", "")
}

// userWithEmail returns the User in ns holding the email (nil when there is
// none), or the User in another namespace that holds it: the User
// controller would refuse a second one.
func (r *UserImportReconciler) userWithEmail(ctx context.Context, imp *v1alpha1.UserImport, email string) (here, elsewhere *v1alpha1.User, err error) {
	keys, err := storeKeysFor(r.Stores, imp.Spec.StoreRef)
	if err != nil {
		return nil, nil, err
	}
	ns := imp.Namespace
	users, err := r.Emails.inStore(keys, email)
	if err != nil {
		return nil, nil, err
	}
	for i := range users {
		u := &users[i]
		if u.Namespace != ns {
			return nil, u, nil
		}
		if here == nil || holdsEmailBefore(u, here) {
			here = u
		}
	}
	return here, nil, nil
}

// complete sets the final phase and condition.
func (r *UserImportReconciler) complete(imp *v1alpha1.UserImport, summary *status.Summary) {
	st := &imp.Status
	now := metav1.NewTime(r.Clock.Now())
	st.CompletedAt = &now
	rows := st.Rows
	counts := fmt.Sprintf("%d added, %d updated, %d removed, %d unchanged, %d failed", rows.Added, rows.Updated, rows.Removed, rows.Unchanged, rows.Failed)
	if imp.Spec.DryRun {
		counts = "dry run, nothing changed; it would make " + counts
	}
	switch {
	case rows.Failed == 0:
		st.Phase = v1alpha1.ImportSucceeded
		*summary = status.Summary{State: status.Ready, Reason: ReasonSucceeded,
			Message: fmt.Sprintf("Imported %d rows: %s.", rows.Total, counts)}
	case rows.Failed == rows.Total:
		st.Phase = v1alpha1.ImportFailed
		*summary = status.Summary{State: status.Stalled, Reason: ReasonRowsFailed,
			Message: fmt.Sprintf("Every row failed (%s); see status.failures.", counts)}
	default:
		st.Phase = v1alpha1.ImportPartiallySucceeded
		*summary = status.Summary{State: status.Stalled, Reason: ReasonRowsFailed,
			Message: fmt.Sprintf("Imported %d rows with failures: %s; see status.failures.", rows.Total, counts)}
	}
	typ := corev1.EventTypeNormal
	if rows.Failed > 0 {
		typ = corev1.EventTypeWarning
	}
	r.Recorder.Eventf(imp, nil, typ, summary.Reason, "Import", summary.Message)
}

// SetupWithManager registers the controller. Imports never change once
// created, so only creations wake it.
func (r *UserImportReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.UserImport{}, builder.WithPredicates(forPredicates(r.only, predicate.GenerationChangedPredicate{})...)).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(1, r.MaxConcurrentReconciles)}).
		Named("userimport").
		Complete(r)
}
