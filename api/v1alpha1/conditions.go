package v1alpha1

// Condition types shared by every Roster kind. They follow kstatus: Ready
// summarises, Reconciling and Stalled are present only while true.
const (
	// ConditionReady is True when the object is in its desired state in the store.
	ConditionReady = "Ready"
	// ConditionReconciling is True while the controller is still making changes.
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True when progress needs a person to change the spec.
	ConditionStalled = "Stalled"
)

// Finalizer keeps a User or Group until its store object has been dealt with.
const Finalizer = "iam.roster.dev/finalizer"

// Request annotations: setting a new value asks for the action once; the
// status records the last value handled.
const (
	// ResendInvitationAnnotation asks for a fresh invitation; the old link stops working.
	ResendInvitationAnnotation = "iam.roster.dev/resend-invitation"
	// ResetPasswordAnnotation asks for a single-use password reset link by email.
	ResetPasswordAnnotation = "iam.roster.dev/reset-password"
)
