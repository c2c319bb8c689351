package controllers

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/internal/invitation"
)

var now = time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)

// sent is a record of a token sent an hour ago, in answer to request.
func sent(request string) *invitation.Record {
	tok, _ := invitation.New("uid")
	var r invitation.Record
	r.Issue(tok, now.Add(-time.Hour), 7*24*time.Hour)
	r.MarkSent(now.Add(-time.Hour), request)
	return &r
}

func TestInvitationAction(t *testing.T) {
	unsent := func() *invitation.Record {
		r := sent("")
		tok, _ := invitation.New("uid")
		r.Issue(tok, now, time.Hour)
		return r
	}()
	revoked := func() *invitation.Record { r := sent(""); r.Revoke(now); return r }()
	expired := func() *invitation.Record { r := sent(""); r.ExpiresAt = now.Add(-time.Minute); return r }()
	base := linkState{Passwords: true, Invite: true, Phase: v1alpha1.UserInvited}
	with := func(f func(*linkState)) linkState { in := base; f(&in); return in }
	cases := []struct {
		reason string
		in     linkState
		want   linkAction
	}{
		{"never sent: send", base, linkAction{Send: true}},
		{"sent: a resync does nothing", with(func(in *linkState) { in.Record = sent("") }), linkAction{}},
		{"expired: not resent by itself", with(func(in *linkState) { in.Record = expired }), linkAction{}},
		{"issued but not marked sent (a failed send or a crash): send", with(func(in *linkState) { in.Record = unsent }), linkAction{Send: true}},
		{"a new resend request: send", with(func(in *linkState) { in.Record = sent(""); in.Request = "2" }), linkAction{Send: true}},
		{"a handled resend request: nothing", with(func(in *linkState) { in.Record = sent("2"); in.Request = "2"; in.LastHandled = "2" }), linkAction{}},
		{"invite turned off: revoke", with(func(in *linkState) { in.Invite = false; in.Record = sent("") }), linkAction{Revoke: true}},
		{"invite off and already revoked: nothing", with(func(in *linkState) { in.Invite = false; in.Record = revoked }), linkAction{}},
		{"invite off from the start: nothing", with(func(in *linkState) { in.Invite = false }), linkAction{}},
		{"invite back on after a revoke: send", with(func(in *linkState) { in.Record = revoked }), linkAction{Send: true}},
		{"Active: nothing", with(func(in *linkState) { in.Phase = v1alpha1.UserActive; in.Record = sent("") }), linkAction{}},
		{"deactivated: nothing", with(func(in *linkState) { in.Phase = v1alpha1.UserInactive }), linkAction{}},
		{"no passwords: nothing", with(func(in *linkState) { in.Passwords = false }), linkAction{}},
	}
	for _, tc := range cases {
		t.Run(tc.reason, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, invitationAction(tc.in)); diff != "" {
				t.Errorf("InvitationAction (-want +got):\n%s", diff)
			}
		})
	}
	for _, in := range []linkState{
		with(func(in *linkState) { in.Phase = v1alpha1.UserActive; in.Request = "x" }),
		with(func(in *linkState) { in.Phase = v1alpha1.UserInactive; in.Request = "x" }),
		with(func(in *linkState) { in.Invite = false; in.Request = "x" }),
		with(func(in *linkState) { in.Passwords = false; in.Request = "x" }),
	} {
		if a := invitationAction(in); a.Send || a.Decline == "" {
			t.Errorf("a resend request that cannot be acted on (%+v) gives %+v, want it declined", in, a)
		}
	}
}

func TestResetAction(t *testing.T) {
	base := linkState{Passwords: true, Invite: true, Phase: v1alpha1.UserActive, Request: "r1"}
	with := func(f func(*linkState)) linkState { in := base; f(&in); return in }
	cases := []struct {
		reason   string
		in       linkState
		send     bool
		declined bool
	}{
		{"a new request for an Active user: send", base, true, false},
		{"no request: nothing", with(func(in *linkState) { in.Request = "" }), false, false},
		{"a handled request: nothing", with(func(in *linkState) { in.LastHandled = "r1" }), false, false},
		{"not activated yet: declined", with(func(in *linkState) { in.Phase = v1alpha1.UserInvited }), false, true},
		{"deactivated: declined", with(func(in *linkState) { in.Phase = v1alpha1.UserInactive }), false, true},
		{"no passwords: declined", with(func(in *linkState) { in.Passwords = false }), false, true},
	}
	for _, tc := range cases {
		t.Run(tc.reason, func(t *testing.T) {
			a := resetAction(tc.in)
			if a.Send != tc.send || (a.Decline != "") != tc.declined || a.Revoke {
				t.Errorf("ResetAction = %+v, want send=%v declined=%v", a, tc.send, tc.declined)
			}
		})
	}
}

// The record is written before the status: a pass that sees the record of a
// request but a status that has not caught up must not send again.
func TestLastHandledPrefersTheRecordOfTheCurrentRequest(t *testing.T) {
	user := &v1alpha1.User{}
	user.Annotations = map[string]string{v1alpha1.ResetPasswordAnnotation: "second"}
	user.Status.LastHandledResetPassword = "first"
	cases := []struct {
		reason string
		rec    *invitation.Record
		status string
		want   string
	}{
		{"the status lags behind the record", sent("second"), "first", "second"},
		{"the record answered an older request", sent("first"), "first", "first"},
		{"no record", nil, "first", "first"},
		{"the status was lost", sent("first"), "", "first"},
	}
	for _, tc := range cases {
		t.Run(tc.reason, func(t *testing.T) {
			user.Status.LastHandledResetPassword = tc.status
			if got := lastHandled(user, invitation.PurposeReset, tc.rec); got != tc.want {
				t.Errorf("lastHandled = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestInvitationCondition(t *testing.T) {
	accepted := func() *invitation.Record { r := sent(""); r.Claim(now); r.Complete(now); return r }()
	expired := func() *invitation.Record { r := sent(""); r.ExpiresAt = now.Add(-time.Minute); return r }()
	revoked := func() *invitation.Record { r := sent(""); r.Revoke(now); return r }()
	failed := func() *invitation.Record {
		r := sent("")
		tok, _ := invitation.New("uid")
		r.Issue(tok, now, time.Hour)
		r.MarkFailed(now, errors.New("535 5.7.8 Authentication credentials invalid"))
		return r
	}()
	base := linkState{Passwords: true, Invite: true, Phase: v1alpha1.UserInvited}
	with := func(f func(*linkState)) linkState { in := base; f(&in); return in }
	cases := []struct {
		reason string
		in     linkState
		want   string
		status metav1.ConditionStatus
	}{
		{"not sent", base, ReasonInvitationPending, metav1.ConditionFalse},
		{"mail failed", with(func(in *linkState) { in.Record = failed }), ReasonMailFailed, metav1.ConditionFalse},
		{"mail failed, then revoked", with(func(in *linkState) {
			r := *failed
			r.Revoke(now)
			in.Invite, in.Record = false, &r
		}), ReasonInvitationRevoked, metav1.ConditionFalse},
		{"sent", with(func(in *linkState) { in.Record = sent("") }), ReasonInvitationSent, metav1.ConditionTrue},
		{"expired", with(func(in *linkState) { in.Record = expired }), ReasonInvitationExpired, metav1.ConditionFalse},
		{"revoked", with(func(in *linkState) { in.Invite = false; in.Record = revoked }), ReasonInvitationRevoked, metav1.ConditionFalse},
		{"never wanted", with(func(in *linkState) { in.Invite = false }), ReasonInvitationDisabled, metav1.ConditionFalse},
		{"accepted", with(func(in *linkState) { in.Phase = v1alpha1.UserActive; in.Record = accepted }), ReasonInvitationAccepted, metav1.ConditionTrue},
		{"activated by a login", with(func(in *linkState) { in.Phase = v1alpha1.UserActive; in.Record = sent("") }), ReasonActivatedWithoutLink, metav1.ConditionTrue},
		{"deactivated", with(func(in *linkState) { in.Phase = v1alpha1.UserInactive }), ReasonDeactivatedNoInvite, metav1.ConditionFalse},
		{"no passwords", with(func(in *linkState) { in.Passwords = false }), ReasonPasswordsNotSupported, metav1.ConditionFalse},
	}
	for _, tc := range cases {
		t.Run(tc.reason, func(t *testing.T) {
			c := invitationConditionOf(tc.in, "embedded", now)
			if c == nil || c.Reason != tc.want || c.Status != tc.status {
				t.Fatalf("InvitationCondition = %+v, want reason %s and status %s", c, tc.want, tc.status)
			}
			if c.Message == "" || c.Message[len(c.Message)-1] != '.' {
				t.Errorf("message %q is not a sentence", c.Message)
			}
			if tc.want == ReasonMailFailed && !strings.Contains(c.Message, "535 5.7.8 Authentication credentials invalid") {
				t.Errorf("message %q does not say what the mail server answered", c.Message)
			}
		})
	}
	if c := invitationConditionOf(linkState{Phase: v1alpha1.UserPending}, "embedded", now); c != nil {
		t.Errorf("a user not in the store has an Invitation condition: %+v", c)
	}
}

func TestInvitationStatus(t *testing.T) {
	if got := invitationStatus(nil); got != nil {
		t.Errorf("InvitationStatus(nil) = %+v, want nil", got)
	}
	rec := sent("")
	got := invitationStatus(rec)
	want := &v1alpha1.InvitationStatus{SendCount: 1, SentAt: metaTime(rec.SentAt), ExpiresAt: metaTime(rec.ExpiresAt)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("InvitationStatus (-want +got):\n%s", diff)
	}
}

func TestRequestLimited(t *testing.T) {
	now := time.Date(2026, 3, 2, 10, 30, 0, 0, time.UTC)
	sent := func(start time.Time, n int32) *invitation.Record {
		return &invitation.Record{HourStart: start, HourCount: n}
	}
	cases := []struct {
		name      string
		in        linkState
		wantUntil time.Time
		wantLimit bool
	}{
		{"no request", linkState{Record: sent(now.Add(-time.Minute), 9)}, time.Time{}, false},
		{"under the limit", linkState{Request: "b", LastHandled: "a", Record: sent(now.Add(-time.Minute), 2)}, time.Time{}, false},
		{"at the limit", linkState{Request: "b", LastHandled: "a", Record: sent(now.Add(-time.Minute), 3)}, now.Add(59 * time.Minute), true},
		{"the hour is over", linkState{Request: "b", LastHandled: "a", Record: sent(now.Add(-time.Hour), 3)}, time.Time{}, false},
		{"no record yet", linkState{Request: "b"}, time.Time{}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			until, limited := requestLimited(tc.in, now, 3)
			if diff := cmp.Diff([]any{tc.wantUntil, tc.wantLimit}, []any{until, limited}); diff != "" {
				t.Errorf("requestLimited (-want +got):\n%s", diff)
			}
		})
	}
	if _, limited := requestLimited(linkState{Request: "b", Record: sent(now, 100)}, now, 0); limited {
		t.Error("zero per hour should set no limit")
	}
}
