package invitation

import (
	"errors"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

func TestChangedByPages(t *testing.T) {
	now := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	token, err := New("uid")
	if err != nil {
		t.Fatal(err)
	}
	var issued Record
	issued.Issue(token, now, time.Hour)
	issued.MarkSent(now, "")

	for _, tc := range []struct {
		name   string
		change func(r *Record)
		want   bool
	}{
		{"sent", func(r *Record) { r.MarkSent(now.Add(time.Second), "again") }, false},
		{"failed", func(r *Record) { r.MarkFailed(now.Add(time.Second), errors.New("421 try later")) }, false},
		{"revoked", func(r *Record) { r.Revoke(now.Add(time.Second)) }, false},
		{"issued afresh", func(r *Record) {
			r.Claim(now.Add(time.Minute))
			fresh, _ := New("uid")
			r.Issue(fresh, now.Add(2*time.Minute), time.Hour)
		}, false},
		{"claimed", func(r *Record) { r.Claim(now.Add(time.Minute)) }, true},
		{"completed", func(r *Record) { r.Complete(now.Add(time.Minute)) }, true},
		{"refused", func(r *Record) { r.Refuse(now.Add(time.Minute), errors.New("password too short")) }, true},
		{"expiry changed by hand", func(r *Record) { r.ExpiresAt = now.Add(-time.Minute) }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old, cur := &corev1.Secret{}, &corev1.Secret{}
			issued.WriteTo(old)
			r := issued
			tc.change(&r)
			r.WriteTo(cur)
			if got := ChangedByPages(old, cur); got != tc.want {
				t.Errorf("ChangedByPages = %v, want %v", got, tc.want)
			}
		})
	}

	// A claim given back (the store refused the password) is news too.
	claimed := issued
	hash := claimed.Claim(now.Add(time.Minute))
	given := claimed
	given.Unclaim(hash)
	old, cur := &corev1.Secret{}, &corev1.Secret{}
	claimed.WriteTo(old)
	given.WriteTo(cur)
	if !ChangedByPages(old, cur) {
		t.Error("ChangedByPages = false for a claim given back")
	}
}
