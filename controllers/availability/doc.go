// Package availability tests what Roster does when the parts around it fail
// against real servers: the identity store going away mid-provisioning, the
// API server restarting mid-import, and the leader replica killed mid-import
// with a standby taking over. The tests start their own control planes, so
// the package runs beside the other suites; it has no code of its own.
package availability
