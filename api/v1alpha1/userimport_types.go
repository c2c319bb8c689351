package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ImportFormat is the file format of an import's source.
// +kubebuilder:validation:Enum=CSV;XLSX
type ImportFormat string

const (
	// ImportFormatCSV is comma-separated text, optionally gzip-compressed.
	ImportFormatCSV ImportFormat = "CSV"
	// ImportFormatXLSX is an Excel workbook; its first sheet is read.
	ImportFormatXLSX ImportFormat = "XLSX"
)

// ImportPhase is where an import stands.
// +kubebuilder:validation:Enum=Pending;Running;Succeeded;PartiallySucceeded;Failed
type ImportPhase string

// Import phases.
const (
	ImportPending            ImportPhase = "Pending"
	ImportRunning            ImportPhase = "Running"
	ImportSucceeded          ImportPhase = "Succeeded"
	ImportPartiallySucceeded ImportPhase = "PartiallySucceeded"
	ImportFailed             ImportPhase = "Failed"
)

// KeyReference names a key of a ConfigMap or Secret in the import's namespace.
type KeyReference struct {
	// name is the object's name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// key is the key within the object's data.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key"`
}

// URLSource is a file fetched over HTTPS and checked against its digest.
type URLSource struct {
	// url is the HTTPS address of the file.
	// +required
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https://`
	URL string `json:"url"`
	// sha256 is the hex SHA-256 digest the file must have.
	// +required
	// +kubebuilder:validation:Pattern=`^[a-f0-9]{64}$`
	SHA256 string `json:"sha256"`
}

// ImportSource is where the import's rows come from: exactly one field is set.
// +kubebuilder:validation:XValidation:rule="[has(self.configMapRef), has(self.secretRef), has(self.inline), has(self.url)].filter(x, x).size() == 1",message="exactly one of configMapRef, secretRef, inline and url must be set"
type ImportSource struct {
	// configMapRef reads CSV from data, or XLSX or gzip-compressed CSV from binaryData.
	// +optional
	ConfigMapRef *KeyReference `json:"configMapRef,omitempty"`
	// secretRef reads the file from a Secret.
	// +optional
	SecretRef *KeyReference `json:"secretRef,omitempty"`
	// inline is CSV text.
	// +optional
	// +kubebuilder:validation:MaxLength=1048576
	Inline string `json:"inline,omitempty"`
	// url fetches a file too large for an object over HTTPS.
	// +optional
	URL *URLSource `json:"url,omitempty"`
}

// ImportDefaults apply to rows that do not set a value.
type ImportDefaults struct {
	// role is the role of rows that name none.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Role string `json:"role,omitempty"`
	// groups are the groups of rows that name none.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=253
	Groups []string `json:"groups,omitempty"`
}

// UserImportSpec describes a bulk import. Each generation of the spec runs
// once, like a Job: editing it (a fixed file, a new ConfigMap name from a
// kustomize generator) starts a new run.
// +kubebuilder:validation:XValidation:rule="has(self.storeRef) == has(oldSelf.storeRef)",message="storeRef is immutable"
type UserImportSpec struct {
	// source is where the rows come from.
	// +required
	Source ImportSource `json:"source"`
	// storeRef names the IdentityStore of the Users the import creates;
	// unset means the store marked default. It cannot be changed.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="storeRef is immutable"
	StoreRef *StoreReference `json:"storeRef,omitempty"`
	// format is CSV or XLSX; detected from the content when unset.
	// +optional
	Format ImportFormat `json:"format,omitempty"`
	// skipHeader says the first row is a header naming the columns.
	// +optional
	SkipHeader bool `json:"skipHeader,omitempty"`
	// sendInvitations invites the users the import adds; when false they are
	// created without an invitation.
	// +optional
	SendInvitations bool `json:"sendInvitations,omitempty"`
	// defaults apply to rows that do not set a role or groups.
	// +optional
	Defaults *ImportDefaults `json:"defaults,omitempty"`
	// dryRun validates the file and reports what would change, changing nothing.
	// +optional
	DryRun bool `json:"dryRun,omitempty"`
}

// ImportRowCounts counts the rows of an import by outcome.
type ImportRowCounts struct {
	// total is the number of data rows in the file.
	// +optional
	Total int32 `json:"total,omitempty"`
	// processed is the number of rows handled so far.
	// +optional
	Processed int32 `json:"processed,omitempty"`
	// added counts Users created.
	// +optional
	Added int32 `json:"added,omitempty"`
	// updated counts Users changed.
	// +optional
	Updated int32 `json:"updated,omitempty"`
	// removed counts Users deleted.
	// +optional
	Removed int32 `json:"removed,omitempty"`
	// unchanged counts rows that needed no change, including rows replaced
	// by a later row for the same email.
	// +optional
	Unchanged int32 `json:"unchanged,omitempty"`
	// failed counts rows that could not be applied.
	// +optional
	Failed int32 `json:"failed,omitempty"`
}

// ImportFailure is one row that could not be applied.
type ImportFailure struct {
	// row is the row number as a spreadsheet shows it: the file's first line is row 1.
	Row int32 `json:"row"`
	// email is the row's user, when it could be read.
	// +optional
	Email string `json:"email,omitempty"`
	// message says what was wrong.
	Message string `json:"message"`
}

// UserImportStatus is the progress and outcome of an import.
type UserImportStatus struct {
	// phase is Pending, Running, Succeeded, PartiallySucceeded or Failed.
	// +optional
	Phase ImportPhase `json:"phase,omitempty"`
	// rows counts the file's data rows by outcome. In a dry run the counts
	// are what the import would do.
	// +optional
	Rows ImportRowCounts `json:"rows,omitempty"`
	// sourceSHA256 is the digest of the file being imported. An import that
	// resumes after a restart checks that its file has not changed.
	// +optional
	SourceSHA256 string `json:"sourceSHA256,omitempty"`
	// failures lists failed rows, capped; omittedFailures counts the rest.
	// +optional
	// +listType=atomic
	Failures []ImportFailure `json:"failures,omitempty"`
	// omittedFailures counts the failed rows left out of failures.
	// +optional
	OmittedFailures int32 `json:"omittedFailures,omitempty"`
	// startedAt is when the import began applying rows.
	// +optional
	StartedAt *metav1.Time `json:"startedAt,omitempty"`
	// completedAt is when the import finished.
	// +optional
	CompletedAt *metav1.Time `json:"completedAt,omitempty"`
	// conditions: Ready when the import succeeded; Reconciling while it runs;
	// Stalled when it finished with failures.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// observedGeneration is the generation of the spec the status
	// describes: the run it reports on.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// UserImport adds, updates and removes Users in bulk from a CSV or Excel file.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=uimp,categories=roster
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Total",type=integer,JSONPath=`.status.rows.total`
// +kubebuilder:printcolumn:name="Processed",type=integer,JSONPath=`.status.rows.processed`
// +kubebuilder:printcolumn:name="Failed",type=integer,JSONPath=`.status.rows.failed`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type UserImport struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec describes the import; it cannot change once created.
	// +required
	Spec UserImportSpec `json:"spec"`
	// status is the import's progress and outcome.
	// +optional
	Status UserImportStatus `json:"status,omitempty"`
}

// UserImportList is a list of UserImports.
//
// +kubebuilder:object:root=true
type UserImportList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []UserImport `json:"items"`
}
