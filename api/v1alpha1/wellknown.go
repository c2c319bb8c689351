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

// Labels and annotations of imports.
const (
	// ImportLabel marks the Users an import created or changed; its value is
	// the UserImport's name.
	ImportLabel = "iam.roster.dev/import"

	// LastImportAnnotation records which import last wrote a User and how
	// ("<uid> added" or "<uid> updated"), so that an import resumed after a
	// restart counts a row it had already applied by its first outcome.
	LastImportAnnotation = "iam.roster.dev/last-import"

	// ChunksAnnotation on an import's ConfigMap says the file continues in
	// further ConfigMaps named <name>-1 ... <name>-(N-1), each holding the
	// next part under the same key. kubectl roster import uses it for files
	// larger than one object may hold.
	ChunksAnnotation = "iam.roster.dev/chunks"
)
