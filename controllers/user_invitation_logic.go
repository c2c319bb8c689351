package controllers

import (
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/internal/invitation"
)

// Reasons of the Invitation condition and the matching events.
const (
	ReasonInvitationSent        = "InvitationSent"
	ReasonInvitationPending     = "InvitationPending"
	ReasonInvitationAccepted    = "InvitationAccepted"
	ReasonInvitationExpired     = "InvitationExpired"
	ReasonInvitationRevoked     = "InvitationRevoked"
	ReasonInvitationDisabled    = "InvitationDisabled"
	ReasonInvitationNotSent     = "InvitationNotSent"
	ReasonActivatedWithoutLink  = "ActivatedWithoutInvitation"
	ReasonDeactivatedNoInvite   = "Deactivated"
	ReasonPasswordsNotSupported = "PasswordsNotSupported"
	ReasonPasswordResetSent     = "PasswordResetSent"
	ReasonPasswordResetNotSent  = "PasswordResetNotSent"
	ReasonMailFailed            = "MailFailed"
	ReasonLinkRequestDeferred   = "LinkRequestDeferred"
	ReasonPasswordRefused       = "PasswordRefused"
)

// LinkInput is what decides whether a pass emails a link.
type linkState struct {
	// Passwords is true when the store accepts passwords.
	Passwords bool
	// Invite is spec.invite.
	Invite bool
	// Phase is the phase the store user puts the User in.
	Phase v1alpha1.UserPhase
	// Record is the token record for the purpose, nil when there is none.
	Record *invitation.Record
	// Request is the request annotation's value; LastHandled the last value
	// acted on.
	Request     string
	LastHandled string
}

// requested reports whether the request annotation holds a value not yet
// acted on.
func (in linkState) requested() bool { return in.Request != "" && in.Request != in.LastHandled }

// LinkAction is what a pass does about one purpose's link.
type linkAction struct {
	// Send issues a fresh token (voiding the older one) and emails it.
	Send bool
	// Revoke voids the outstanding token without sending another.
	Revoke bool
	// Decline, when not empty, says why a request is recorded as handled
	// without sending anything.
	Decline string
}

// InvitationAction decides what a pass does about the invitation: send it
// once, send a fresh one on request, revoke it when spec.invite turns false.
// Nothing here depends on time, so a resync that observes nothing new does
// nothing.
func invitationAction(in linkState) linkAction {
	var a linkAction
	switch {
	case !in.Passwords:
		if in.requested() {
			a.Decline = "The store does not accept passwords, so there is no invitation link to send."
		}
	case in.Phase == v1alpha1.UserActive:
		if in.requested() {
			a.Decline = "The user is already Active; to send a new password, use the iam.roster.dev/reset-password annotation."
		}
	case in.Phase != v1alpha1.UserInvited:
		if in.requested() {
			a.Decline = fmt.Sprintf("No invitation is sent while the user is %s.", in.Phase)
		}
	case !in.Invite:
		a.Revoke = in.Record != nil && in.Record.Hash != nil
		if in.requested() {
			a.Decline = "spec.invite is false, so no invitation is sent."
		}
	case in.requested():
		a.Send = true
	case in.Record == nil, in.Record.SentAt.IsZero(), !in.Record.RevokedAt.IsZero():
		// Never sent, not sent since the last token was issued (the email
		// failed, or the pass that sent it crashed before recording it), or
		// revoked and now wanted again.
		a.Send = true
	}
	return a
}

// ResetAction decides what a pass does about a password reset: send a link
// once per new value of the request annotation, to Active users only.
func resetAction(in linkState) linkAction {
	var a linkAction
	switch {
	case !in.requested():
	case !in.Passwords:
		a.Decline = "The store does not accept passwords, so there is no password reset link to send."
	case in.Phase == v1alpha1.UserInvited:
		a.Decline = "The user has not activated yet; to send a fresh invitation, use the iam.roster.dev/resend-invitation annotation."
	case in.Phase != v1alpha1.UserActive:
		a.Decline = fmt.Sprintf("No password reset link is sent while the user is %s.", in.Phase)
	default:
		a.Send = true
	}
	return a
}

// requestLimited reports whether a requested link must wait, and until
// when: a request annotation sets off at most perHour emails of a purpose
// per User in an hour, so that annotating in a loop cannot flood a person's
// mailbox. Zero perHour sets no limit.
func requestLimited(in linkState, now time.Time, perHour int32) (time.Time, bool) {
	if perHour <= 0 || !in.requested() || in.Record == nil || in.Record.SentInHour(now) < perHour {
		return time.Time{}, false
	}
	return in.Record.HourEnds(), true
}

// InvitationCondition says where the invitation stands, or nil when there is
// nothing to say (the user is not in the store yet).
func invitationConditionOf(in linkState, storeKind string, now time.Time) *metav1.Condition {
	c := func(status metav1.ConditionStatus, reason, format string, args ...any) *metav1.Condition {
		return &metav1.Condition{Type: v1alpha1.ConditionInvitation, Status: status, Reason: reason, Message: fmt.Sprintf(format, args...)}
	}
	rec := in.Record
	accepted := rec != nil && !rec.CompletedAt.IsZero()
	switch {
	case in.Phase == v1alpha1.UserPending || in.Phase == "":
		return nil
	case !in.Passwords:
		return c(metav1.ConditionFalse, ReasonPasswordsNotSupported,
			"The %s store does not accept passwords set by Roster, so no invitation or password reset link is sent; the user signs in through the store's own login, such as single sign-on.", storeKind)
	case rec != nil && !rec.RefusedAt.IsZero() && in.Phase == v1alpha1.UserInvited:
		return passwordRefused(storeKind, "invitation", rec)
	case accepted && in.Phase != v1alpha1.UserInvited:
		return c(metav1.ConditionTrue, ReasonInvitationAccepted, "The user accepted the invitation and chose a password.")
	case in.Phase == v1alpha1.UserActive:
		return c(metav1.ConditionTrue, ReasonActivatedWithoutLink, "The user activated without the invitation link, for example by logging in.")
	case in.Phase == v1alpha1.UserInactive:
		return c(metav1.ConditionFalse, ReasonDeactivatedNoInvite, "No invitation is sent while the user is deactivated.")
	case !in.Invite && rec != nil && !rec.RevokedAt.IsZero():
		return c(metav1.ConditionFalse, ReasonInvitationRevoked, "spec.invite is false: the invitation link was revoked.")
	case !in.Invite:
		return c(metav1.ConditionFalse, ReasonInvitationDisabled, "spec.invite is false, so no invitation is sent.")
	case rec != nil && rec.SentAt.IsZero() && rec.RevokedAt.IsZero() && rec.FailedSends > 0:
		return c(metav1.ConditionFalse, ReasonMailFailed,
			"Sending the invitation email failed %s; Roster retries with backoff. The mail server answered: %s.",
			attempts(rec.FailedSends), strings.TrimSuffix(rec.SendError, "."))
	case rec == nil || rec.SentAt.IsZero() || !rec.RevokedAt.IsZero():
		return c(metav1.ConditionFalse, ReasonInvitationPending, "The invitation has not been sent yet.")
	case rec.Hash == nil:
		return c(metav1.ConditionTrue, ReasonInvitationAccepted, "The invitation link was used; the user becomes Active once the store confirms the password.")
	case rec.Expired(now):
		return c(metav1.ConditionFalse, ReasonInvitationExpired,
			"The invitation expired before it was accepted; set the iam.roster.dev/resend-invitation annotation to a new value to send a fresh link.")
	default:
		return c(metav1.ConditionTrue, ReasonInvitationSent, "The invitation was sent and waits for the user to choose a password.")
	}
}

// passwordRefused is the Invitation condition when the store refused, for
// a reason no other password gets past, the password a person chose
// through a link: a person must fix the store, and the link stays valid.
func passwordRefused(storeName, link string, rec *invitation.Record) *metav1.Condition {
	return &metav1.Condition{Type: v1alpha1.ConditionInvitation, Status: metav1.ConditionFalse, Reason: ReasonPasswordRefused,
		Message: fmt.Sprintf("At %s the %s store refused the password the user chose through the %s link, and no other password would pass: %s. Fix the store; the link stays valid.",
			rec.RefusedAt.UTC().Format(time.RFC3339), storeName, link, strings.TrimSuffix(rec.StoreError, "."))}
}

// attempts words a count of failed attempts.
func attempts(n int32) string {
	if n == 1 {
		return "once"
	}
	return fmt.Sprintf("%d times in a row", n)
}

// InvitationStatus is status.invitation as the record shows it.
func invitationStatus(rec *invitation.Record) *v1alpha1.InvitationStatus {
	if rec == nil || (rec.SendCount == 0 && rec.CompletedAt.IsZero()) {
		return nil
	}
	st := &v1alpha1.InvitationStatus{SendCount: rec.SendCount}
	if !rec.SentAt.IsZero() {
		st.SentAt = metaTime(rec.SentAt)
		st.ExpiresAt = metaTime(rec.ExpiresAt)
	}
	if !rec.CompletedAt.IsZero() {
		st.AcceptedAt = metaTime(rec.CompletedAt)
	}
	return st
}

func metaTime(t time.Time) *metav1.Time {
	return timePtr(&t)
}
