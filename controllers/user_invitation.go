package controllers

import (
	"context"
	"fmt"
	"net/url"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/internal/invitation"
	"roster.dev/roster/internal/mail"
	"roster.dev/roster/internal/web"
)

// +kubebuilder:rbac:groups="",namespace=roster-system,resources=secrets,verbs=get;list;watch;create;update;delete

// Invitations configures the emails with single-use links that the User
// controller sends: invitations and password resets.
type Invitations struct {
	// Templates renders the emails; Sender delivers them.
	Templates *mail.Templates
	Sender    mail.Sender
	// PublicURL is where links point: the web endpoint's public address.
	PublicURL *url.URL
	// ProductName names the platform in emails.
	ProductName string
	// InvitationTTL and ResetTTL are how long links work.
	InvitationTTL time.Duration
	ResetTTL      time.Duration
	// Metrics counts the links sent; may be nil.
	Metrics *invitation.Metrics
	// RequestsPerHour caps the emails of one purpose that request
	// annotations set off per User and hour; zero for no cap.
	RequestsPerHour int32
}

// linkPass is what a pass observed of the User's token records and decided
// about them.
type linkPass struct {
	secrets map[invitation.Purpose]*corev1.Secret
	records map[invitation.Purpose]*invitation.Record
	// handled are the request annotation values this pass acted on.
	handled map[invitation.Purpose]string
	// deferredUntil is when a request held back by the hourly limit may be
	// sent.
	deferredUntil time.Time
	// retryAt is the earliest time an email that failed may be tried again.
	retryAt time.Time
}

// retryLater notes that an email waits for its retry at t.
func (lp *linkPass) retryLater(t time.Time) {
	if lp.retryAt.IsZero() || t.Before(lp.retryAt) {
		lp.retryAt = t
	}
}

func (lp *linkPass) record(p invitation.Purpose) *invitation.Record {
	if lp == nil {
		return nil
	}
	return lp.records[p]
}

// requestAnnotation is the annotation that asks for a purpose's link.
func requestAnnotation(p invitation.Purpose) string {
	if p == invitation.PurposeReset {
		return v1alpha1.ResetPasswordAnnotation
	}
	return v1alpha1.ResendInvitationAnnotation
}

// lastHandled is the last request value acted on. The status says, but it
// may lag behind the record in the cache (the record is written before the
// status) or be lost: the record's value wins when it answered the value the
// annotation holds now, or when the status has none.
func lastHandled(user *v1alpha1.User, p invitation.Purpose, rec *invitation.Record) string {
	v := user.Status.LastHandledResendInvitation
	if p == invitation.PurposeReset {
		v = user.Status.LastHandledResetPassword
	}
	if rec != nil && rec.Request != "" && (v == "" || rec.Request == user.Annotations[requestAnnotation(p)]) {
		v = rec.Request
	}
	return v
}

func (r *UserReconciler) linkInput(user *v1alpha1.User, pass *userPass, p invitation.Purpose) linkState {
	rec := pass.links.record(p)
	return linkState{
		Passwords:   pass.store.Capabilities().Passwords,
		Invite:      user.InviteEnabled(),
		Phase:       phaseOf(pass.observed),
		Record:      rec,
		Request:     user.Annotations[requestAnnotation(p)],
		LastHandled: lastHandled(user, p, rec),
	}
}

// ensureLinks emails the invitation once, a fresh one or a password reset
// link on request, and revokes the invitation when spec.invite turns false.
//
// Sending is at least once: the token's hash is written first, then the
// email is sent, then the record says so. A crash in between leaves a record
// that was not marked sent, and the next pass sends a fresh token (the one in
// a lost email never worked, or stops working). Both writes carry the
// Secret's resourceVersion, so a pass that read a stale cache fails on a
// conflict before it sends anything twice.
func (r *UserReconciler) ensureLinks(ctx context.Context, user *v1alpha1.User, pass *userPass) error {
	if r.Invitations == nil || pass.observed == nil {
		return nil
	}
	lp := &linkPass{
		secrets: map[invitation.Purpose]*corev1.Secret{},
		records: map[invitation.Purpose]*invitation.Record{},
		handled: map[invitation.Purpose]string{},
	}
	for _, p := range invitation.Purposes {
		secret := &corev1.Secret{}
		err := r.Get(ctx, invitation.SecretKey(r.Namespace, user, p), secret)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("reading the %s record: %w", p, err)
		}
		rec, err := invitation.ReadRecord(secret)
		if err != nil {
			// A record that does not parse is replaced by the next token;
			// until then, it counts as absent.
			log.FromContext(ctx).Error(err, "Ignoring an unreadable token record", "purpose", p)
		}
		lp.secrets[p], lp.records[p] = secret, &rec
	}
	pass.links = lp

	for _, p := range invitation.Purposes {
		in := r.linkInput(user, pass, p)
		action := invitationAction(in)
		if p == invitation.PurposeReset {
			action = resetAction(in)
		}
		if until, limited := requestLimited(in, r.Clock.Now(), r.Invitations.RequestsPerHour); action.Send && limited {
			// The request stays pending and is acted on once the hour is over.
			action.Send = false
			if lp.deferredUntil.IsZero() || until.Before(lp.deferredUntil) {
				lp.deferredUntil = until
			}
			r.event(user, corev1.EventTypeWarning, ReasonLinkRequestDeferred, "Defer",
				"Held back %s=%s: %d emails were sent in the last hour; it is sent at %s.",
				requestAnnotation(p), in.Request, r.Invitations.RequestsPerHour, until.UTC().Format(time.RFC3339))
		}
		if rec := lp.records[p]; action.Send && rec != nil && r.Clock.Now().Before(rec.RetryAt()) {
			// The last attempt failed: the next waits for its backoff,
			// however often the User is woken before then.
			action.Send = false
			lp.retryLater(rec.RetryAt())
		}
		switch {
		case action.Send:
			if err := r.sendLink(ctx, user, pass, p, in.Request); err != nil {
				return err
			}
		case action.Revoke:
			rec := *lp.records[p]
			rec.Revoke(r.Clock.Now())
			if err := r.writeRecord(ctx, user, lp, p, rec); err != nil {
				return err
			}
			r.event(user, corev1.EventTypeNormal, ReasonInvitationRevoked, "Revoke", "Revoked the invitation: spec.invite is false.")
		}
		if action.Decline != "" {
			lp.handled[p] = in.Request
			reason := ReasonInvitationNotSent
			if p == invitation.PurposeReset {
				reason = ReasonPasswordResetNotSent
			}
			r.event(user, corev1.EventTypeWarning, reason, "Decline", "Did not act on %s=%s: %s", requestAnnotation(p), in.Request, action.Decline)
		}
	}
	return nil
}

// sendLink issues a fresh token for the purpose, voiding the older one, and
// emails it. A failed email does not fail the pass: the record counts the
// failure and keeps the server's answer, the Invitation condition reports
// it, and the pass asks to be woken when the backoff the record computes is
// over, so that an outage neither holds the User back from Ready nor sets
// off a retry every time the record's update wakes the User.
func (r *UserReconciler) sendLink(ctx context.Context, user *v1alpha1.User, pass *userPass, p invitation.Purpose, request string) error {
	cfg, lp := r.Invitations, pass.links
	ttl, kind := cfg.InvitationTTL, mail.KindInvitation
	if p == invitation.PurposeReset {
		ttl, kind = cfg.ResetTTL, mail.KindReset
	}
	token, err := invitation.New(string(user.UID))
	if err != nil {
		return err
	}
	var rec invitation.Record
	if old := lp.records[p]; old != nil {
		rec = *old
	}
	rec.Issue(token, r.Clock.Now(), ttl)
	if err := r.writeRecord(ctx, user, lp, p, rec); err != nil {
		return err
	}

	loc := time.UTC
	if tz := user.Spec.TimeZone; tz != "" {
		if l, err := time.LoadLocation(tz); err == nil {
			loc = l
		}
	}
	msg, err := cfg.Templates.Render(kind, user.Spec.Email, mail.Data{
		ProductName: cfg.ProductName,
		FirstName:   user.Spec.FirstName,
		DisplayName: displayName(user),
		Email:       user.Spec.Email,
		Link:        invitation.Link(cfg.PublicURL, p, token),
		ExpiresAt:   rec.ExpiresAt,
		ValidFor:    ttl,
		Location:    loc,
	})
	if err == nil {
		err = cfg.Sender.Send(ctx, msg)
	}
	if err != nil {
		log.FromContext(ctx).Error(err, "Sending an email failed", "purpose", p)
		rec.MarkFailed(r.Clock.Now(), err)
		if werr := r.writeRecord(ctx, user, lp, p, rec); werr != nil {
			return fmt.Errorf("recording the failed %s email: %w", kind, werr)
		}
		lp.retryLater(rec.RetryAt())
		r.event(user, corev1.EventTypeWarning, ReasonMailFailed, "Send", "Failed sending the %s email, retrying in %s: %v.",
			kind, rec.RetryAt().Sub(r.Clock.Now()).Round(time.Second), err)
		return nil
	}

	rec.MarkSent(r.Clock.Now(), request)
	lp.handled[p] = request
	cfg.Metrics.Sent(p)
	if err := r.writeRecord(ctx, user, lp, p, rec); err != nil {
		return fmt.Errorf("recording the %s email as sent: %w", kind, err)
	}
	if p == invitation.PurposeReset {
		r.event(user, corev1.EventTypeNormal, ReasonPasswordResetSent, "Send",
			"Sent a password reset link to %s, valid for %s.", user.Spec.Email, mail.HumanDuration(ttl))
	} else {
		r.event(user, corev1.EventTypeNormal, ReasonInvitationSent, "Send",
			"Sent an invitation to %s, valid for %s.", user.Spec.Email, mail.HumanDuration(ttl))
	}
	return nil
}

// writeRecord creates or updates the Secret holding the purpose's record. An
// update carries the resourceVersion read, and a create fails if the Secret
// exists, so a pass working from a stale cache gets a conflict.
func (r *UserReconciler) writeRecord(ctx context.Context, user *v1alpha1.User, lp *linkPass, p invitation.Purpose, rec invitation.Record) error {
	secret := lp.secrets[p]
	if secret == nil {
		secret = invitation.NewSecret(r.Namespace, user, p)
		rec.WriteTo(secret)
		if err := r.Create(ctx, secret); err != nil {
			if apierrors.IsAlreadyExists(err) {
				return apierrors.NewConflict(corev1.Resource("secrets"), secret.Name, err)
			}
			return fmt.Errorf("creating the %s record: %w", p, err)
		}
	} else {
		secret = secret.DeepCopy()
		rec.WriteTo(secret)
		if err := r.Update(ctx, secret); err != nil {
			return fmt.Errorf("updating the %s record: %w", p, err)
		}
	}
	lp.secrets[p], lp.records[p] = secret, &rec
	return nil
}

// computeLinkStatus fills status.invitation, passwordResetAt, the handled
// request values and the Invitation condition from what the pass observed.
func (r *UserReconciler) computeLinkStatus(user *v1alpha1.User, pass *userPass) {
	lp := pass.links
	if r.Invitations == nil || lp == nil {
		return
	}
	st := &user.Status
	inv, reset := lp.record(invitation.PurposeInvitation), lp.record(invitation.PurposeReset)
	st.Invitation = invitationStatus(inv)
	if reset != nil && !reset.SentAt.IsZero() {
		st.PasswordResetAt = metaTime(reset.SentAt)
	}
	for p, dst := range map[invitation.Purpose]*string{
		invitation.PurposeInvitation: &st.LastHandledResendInvitation,
		invitation.PurposeReset:      &st.LastHandledResetPassword,
	} {
		if v, ok := lp.handled[p]; ok && v != "" {
			*dst = v
		} else {
			*dst = lastHandled(user, p, lp.record(p))
		}
	}

	in := r.linkInput(user, pass, invitation.PurposeInvitation)
	cond := invitationConditionOf(in, pass.store.Name, r.Clock.Now())
	if reset != nil && !reset.RefusedAt.IsZero() && in.Phase == v1alpha1.UserActive {
		cond = passwordRefused(pass.store.Name, "password reset", reset)
	}
	if cond == nil {
		meta.RemoveStatusCondition(&st.Conditions, v1alpha1.ConditionInvitation)
		return
	}
	if old := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionInvitation); cond.Reason == ReasonInvitationExpired &&
		(old == nil || old.Reason != ReasonInvitationExpired) {
		r.Invitations.Metrics.Expired()
	}
	cond.ObservedGeneration = user.Generation
	meta.SetStatusCondition(&st.Conditions, *cond)
}

// nextCheck is when the User should be looked at again without a change:
// when a held-back or failed email may go out, or when the outstanding
// invitation expires, so that the Invitation condition
// says so on time. Differences from the store are found by the drift pass.
func (r *UserReconciler) nextCheck(pass *userPass) time.Duration {
	if lp := pass.links; lp != nil && (!lp.deferredUntil.IsZero() || !lp.retryAt.IsZero()) {
		next := lp.deferredUntil
		if next.IsZero() || (!lp.retryAt.IsZero() && lp.retryAt.Before(next)) {
			next = lp.retryAt
		}
		return max(time.Second, next.Sub(r.Clock.Now())+time.Second)
	}
	rec := pass.links.record(invitation.PurposeInvitation)
	if rec == nil || rec.Hash == nil || rec.SentAt.IsZero() {
		return 0
	}
	if until := rec.ExpiresAt.Sub(r.Clock.Now()) + time.Second; until > 0 {
		return until
	}
	return 0
}

// deleteRecords removes the User's token records: they live in the
// operator's namespace, where no owner reference can take them with the
// User.
func (r *UserReconciler) deleteRecords(ctx context.Context, user *v1alpha1.User) error {
	for _, p := range invitation.Purposes {
		key := invitation.SecretKey(r.Namespace, user, p)
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
		if err := r.Delete(ctx, s); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("deleting the %s record: %w", p, err)
		}
	}
	// The account page's session record goes with them.
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespace, Name: web.SessionRecordName(user.UID)}}
	if err := r.Delete(ctx, s); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("deleting the session record: %w", err)
	}
	return nil
}

// recordOwner wakes the User a token record belongs to: a record changes
// when a person uses a link on the web pages. Only records in the
// operator's namespace are cached, so the labels are Roster's own.
// recordUsed lets through the record events a User has not seen: a link
// used on the pages or an expiry changed by hand (see
// invitation.ChangedByPages), or a record deleted.
// The User controller creates and updates records itself, in the pass that
// then writes the status; waking the User for those would only start a
// pass from a cache that has the record but not yet that status.
func recordUsed() predicate.Predicate {
	return predicate.Funcs{
		CreateFunc: func(event.CreateEvent) bool { return false },
		UpdateFunc: func(e event.UpdateEvent) bool {
			old, okOld := e.ObjectOld.(*corev1.Secret)
			cur, okNew := e.ObjectNew.(*corev1.Secret)
			return okOld && okNew && invitation.ChangedByPages(old, cur)
		},
	}
}

func recordOwner(_ context.Context, obj client.Object) []reconcile.Request {
	s, ok := obj.(*corev1.Secret)
	if !ok {
		return nil
	}
	if key, _ := invitation.Owner(s); key.Name != "" && key.Namespace != "" {
		return []reconcile.Request{{NamespacedName: key}}
	}
	return nil
}
