// Package ldapintegration runs the User and Group reconcilers against the
// LDAP store and a real slapd, on envtest's control plane. It is a package
// of its own because the controllers package's suite runs a manager on the
// embedded store, and two managers would reconcile the same objects.
package ldapintegration
