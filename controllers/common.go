package controllers

import (
	"errors"
	"math/rand/v2"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"

	"roster.dev/roster/internal/store"
)

// jittered returns period plus up to a tenth more, so that periodic
// resyncs of many objects spread out instead of arriving together.
func jittered(period time.Duration) time.Duration {
	if period <= 0 {
		return 0
	}
	return period + time.Duration(rand.Int64N(int64(period/10)+1))
}

// observeStore reads a store object afresh: by its store ID when the status
// knows one, else by its natural key (a store object deleted out of band, or
// a status lost before the ID was recorded). It returns nil when the store
// has no such object.
func observeStore[T any](id string, byID, byKey func() (T, error)) (*T, error) {
	got, err := *new(T), store.ErrNotFound
	if id != "" {
		got, err = byID()
	}
	if errors.Is(err, store.ErrNotFound) {
		got, err = byKey()
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	}
	return &got, nil
}

// recordEvent emits an event about obj when the reconciler has a recorder.
func recordEvent(rec events.EventRecorder, obj runtime.Object, typ, reason, action, format string, args ...any) {
	if rec != nil {
		rec.Eventf(obj, nil, typ, reason, action, format, args...)
	}
}
