// Package controllers holds one reconciler per Roster kind. Reconcilers get
// their dependencies (store, clock, event recorder) from the manager.
package controllers
