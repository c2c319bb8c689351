// Package storeintegration holds integration tests that run Roster's
// reconcilers on a real control plane against real identity stores (the
// controllers package's own suite uses the embedded store). It has no code
// of its own.
package storeintegration
