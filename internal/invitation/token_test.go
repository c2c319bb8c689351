package invitation

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"roster.dev/roster/api/v1alpha1"
)

const uid = "0f6d1c2e-8b1a-4f7e-9c3d-2a5b6c7d8e9f"

func TestTokensAreRandomAndLongEnough(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		tok, err := New(uid)
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		s := tok.Value()
		if seen[s] {
			t.Fatalf("token %d repeated", len(seen))
		}
		seen[s] = true
		_, secret, _ := strings.Cut(s, ".")
		b, err := encoding.DecodeString(secret)
		if err != nil {
			t.Fatalf("decoding the secret part: %v", err)
		}
		if len(b)*8 < 128 {
			t.Fatalf("the secret part has %d bits, want at least 128", len(b)*8)
		}
	}
}

func TestParse(t *testing.T) {
	tok, err := New(uid)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	got, err := Parse(tok.Value())
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if got != tok {
		t.Error("Parse(String()) does not give the token back")
	}
	_, secret, _ := strings.Cut(tok.Value(), ".")
	for _, bad := range []string{
		"", uid, "." + secret, uid + ".", uid + "." + secret[:20], uid + "." + secret + "A",
		uid + "." + strings.Replace(secret, secret[:1], "*", 1), "a/b." + secret,
	} {
		if _, err := Parse(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("Parse(%q) error = %v, want ErrMalformed", bad, err)
		}
	}
}

func TestTokenIsNotPrinted(t *testing.T) {
	tok, _ := New(uid)
	_, secret, _ := strings.Cut(tok.Value(), ".")
	for _, format := range []string{"%#v", "%v", "%+v", "%s"} {
		if got := fmt.Sprintf(format, tok); strings.Contains(got, secret) {
			t.Errorf("%s prints the secret part: %s", format, got)
		}
	}
	if err := fmt.Errorf("checking %v: %w", tok, ErrVoided); strings.Contains(err.Error(), secret) {
		t.Error("an error wrapping the token prints the secret part")
	}
}

func TestLink(t *testing.T) {
	tok, _ := New(uid)
	base, _ := url.Parse("https://id.example.com/roster/?x=1")
	got := Link(base, PurposeReset, tok)
	want := "https://id.example.com/roster/reset/" + tok.Value()
	if got != want {
		t.Errorf("Link = %q, want %q", got, want)
	}
}

func TestCheck(t *testing.T) {
	now := time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)
	older, _ := New(uid)
	tok, _ := New(uid)
	other, _ := New("another-uid")
	tampered, _ := Parse(tok.ID + "." + strings.Repeat("A", 43))

	issued := func() Record {
		var r Record
		r.Issue(older, now.Add(-time.Hour), 7*24*time.Hour)
		r.MarkSent(now.Add(-time.Hour), "")
		r.Issue(tok, now.Add(-time.Minute), 7*24*time.Hour)
		r.MarkSent(now.Add(-time.Minute), "2026-03-02")
		return r
	}
	cases := []struct {
		reason string
		record func() Record
		token  Token
		at     time.Time
		want   error
	}{
		{"the newest token works", issued, tok, now, nil},
		{"a newer token voids the older one", issued, older, now, ErrVoided},
		{"a tampered token does not work", issued, tampered, now, ErrVoided},
		{"another user's token does not work", issued, other, now, ErrVoided},
		{"it works until just before it expires", issued, tok, now.Add(7*24*time.Hour - 61*time.Second), nil},
		{"an expired token does not work", issued, tok, now.Add(7 * 24 * time.Hour), ErrExpired},
		{"a used token does not work again", func() Record { r := issued(); r.Claim(now); r.Complete(now); return r }, tok, now, ErrUsed},
		{"an unclaimed token works again", func() Record { r := issued(); r.Unclaim(r.Claim(now)); return r }, tok, now, nil},
		{"a revoked token does not work", func() Record { r := issued(); r.Revoke(now); return r }, tok, now, ErrVoided},
		{"no token was issued", func() Record { return Record{} }, tok, now, ErrVoided},
	}
	for _, tc := range cases {
		t.Run(tc.reason, func(t *testing.T) {
			if err := tc.record().Check(tc.token, tc.at); !errors.Is(err, tc.want) {
				t.Errorf("Check = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestRecordRoundTripsThroughASecret(t *testing.T) {
	now := time.Date(2026, 3, 2, 9, 30, 15, 0, time.UTC)
	tok, _ := New(uid)
	var want Record
	want.Issue(tok, now.Add(123*time.Millisecond), time.Hour)
	want.MarkSent(now, "first")
	want.MarkSent(now, "second")
	want.Claim(now)
	want.Complete(now)

	s := &corev1.Secret{StringData: map[string]string{"stale": "x"}}
	want.WriteTo(s)
	got, err := ReadRecord(s)
	if err != nil {
		t.Fatalf("ReadRecord: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("record after a round trip (-want +got):\n%s", diff)
	}
	if got.SendCount != 2 || got.Request != "second" {
		t.Errorf("SendCount, Request = %d, %q; want 2, second", got.SendCount, got.Request)
	}
	if s.StringData != nil {
		t.Error("WriteTo left stringData behind")
	}
	for k, v := range s.Data {
		if strings.Contains(string(v), tok.Value()[len(uid)+1:]) {
			t.Errorf("the Secret's %s holds the token in plain text", k)
		}
	}
}

func TestFailedSendsRoundTripAndBackOff(t *testing.T) {
	now := time.Date(2026, 3, 2, 9, 30, 15, 0, time.UTC)
	tok, _ := New(uid)
	var want Record
	want.Issue(tok, now, time.Hour)
	if !want.RetryAt().IsZero() {
		t.Errorf("RetryAt of a record without failures = %v, want zero", want.RetryAt())
	}
	wantWaits := []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second,
		80 * time.Second, 160 * time.Second, 5 * time.Minute, 5 * time.Minute}
	for i, wait := range wantWaits {
		want.MarkFailed(now, errors.New("535 5.7.8 authentication failed"))
		if got := want.RetryAt().Sub(now); got != wait {
			t.Errorf("after %d failures the retry waits %v, want %v", i+1, got, wait)
		}
	}

	s := &corev1.Secret{}
	want.WriteTo(s)
	got, err := ReadRecord(s)
	if err != nil {
		t.Fatalf("ReadRecord: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("record after a round trip (-want +got):\n%s", diff)
	}
	if got.FailedSends != int32(len(wantWaits)) || got.SendError != "535 5.7.8 authentication failed" || !got.FailedAt.Equal(now) {
		t.Errorf("FailedSends, SendError, FailedAt = %d, %q, %v", got.FailedSends, got.SendError, got.FailedAt)
	}

	got.MarkSent(now, "")
	if got.FailedSends != 0 || got.SendError != "" || !got.FailedAt.IsZero() || !got.RetryAt().IsZero() {
		t.Errorf("a sent email left the failures behind: %+v", got)
	}
	got.MarkFailed(now, errors.New(strings.Repeat("x", 5000)))
	if len(got.SendError) > 1024 {
		t.Errorf("SendError keeps %d bytes of the answer", len(got.SendError))
	}
}

func TestSecretSelectorSelectsRecords(t *testing.T) {
	s := NewSecret("roster-system", &v1alpha1.User{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "ada", UID: types.UID(uid)}}, PurposeReset)
	if !SecretSelector().Matches(labels.Set(s.Labels)) {
		t.Error("SecretSelector does not select a record Secret")
	}
	if SecretSelector().Matches(labels.Set{LabelManagedBy: ManagedBy}) {
		t.Error("SecretSelector selects a Secret without a purpose")
	}
	if owner, got := Owner(s); owner.Name != "ada" || owner.Namespace != "team" || got != uid {
		t.Errorf("Owner = %v, %s", owner, got)
	}
}

func TestRefusalRoundTripsAndACompletionClearsIt(t *testing.T) {
	now := time.Date(2026, 3, 2, 9, 30, 15, 0, time.UTC)
	tok, _ := New(uid)
	var rec Record
	rec.Issue(tok, now, time.Hour)
	hash := rec.Claim(now)
	rec.Unclaim(hash)
	rec.Refuse(now, errors.New("LDAP Result Code 13 \"Confidentiality Required\""))
	s := &corev1.Secret{}
	rec.WriteTo(s)
	got, err := ReadRecord(s)
	if err != nil {
		t.Fatalf("ReadRecord: %v", err)
	}
	if !got.RefusedAt.Equal(now) || !strings.Contains(got.StoreError, "Confidentiality Required") {
		t.Errorf("after a round trip RefusedAt, StoreError = %v, %q", got.RefusedAt, got.StoreError)
	}
	if err := got.Check(tok, now); err != nil {
		t.Errorf("a refused password used up the link: %v", err)
	}
	got.Complete(now.Add(time.Minute))
	if !got.RefusedAt.IsZero() || got.StoreError != "" {
		t.Errorf("a completion kept the refusal: %v, %q", got.RefusedAt, got.StoreError)
	}
}
