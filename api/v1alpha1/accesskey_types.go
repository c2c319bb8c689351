package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AccessKeySecretKey is the key of the AccessKey's Secret that holds the
// access key.
const AccessKeySecretKey = "key"

// LocalUserReference names a User in the same namespace.
type LocalUserReference struct {
	// name is the User's name, in the AccessKey's namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	Name string `json:"name"`
}

// AccessKeySpec is the desired state of a personal access key.
// +kubebuilder:validation:XValidation:rule="has(self.secretName) == has(oldSelf.secretName)",message="secretName is immutable"
// +kubebuilder:validation:XValidation:rule="has(self.expiresAfter) == has(oldSelf.expiresAfter)",message="expiresAfter is immutable"
type AccessKeySpec struct {
	// userRef names the User, in the same namespace, the key acts as. It
	// cannot be changed.
	// +required
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="userRef is immutable"
	UserRef LocalUserReference `json:"userRef"`

	// description says what the key is for, for people.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Description string `json:"description,omitempty"`

	// expiresAfter is how long after its creation the key stops working,
	// such as 2160h for 90 days. Unset means the key works until the
	// AccessKey is deleted. It cannot be changed: for a longer life, issue
	// a new key.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="expiresAfter is immutable"
	ExpiresAfter *metav1.Duration `json:"expiresAfter,omitempty"`

	// secretName names the Secret, in the same namespace, that Roster
	// writes the key into under the key "key". Unset means the AccessKey's
	// name. The Secret must not exist yet, or be owned by this AccessKey.
	// It cannot be changed.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="secretName is immutable"
	SecretName string `json:"secretName,omitempty"`
}

// AccessKeyStatus is the observed state of an AccessKey.
type AccessKeyStatus struct {
	// keyID is the key's public prefix: it appears in the key itself
	// (rak_<keyID>_<secret>) and tells keys apart without revealing them.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	KeyID string `json:"keyID,omitempty"`

	// expiresAt is when the key stops working, when it expires.
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`

	// lastUsedAt is when the key was last accepted, where the store
	// records it.
	// +optional
	LastUsedAt *metav1.Time `json:"lastUsedAt,omitempty"`

	// store is the IdentityStore the key was added to.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Store string `json:"store,omitempty"`

	// storeUserID is the user's identifier in that store, so that the key
	// can be removed from it even once the User is gone.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	StoreUserID string `json:"storeUserID,omitempty"`

	// conditions describe the AccessKey's state: Ready, and Reconciling or
	// Stalled while they apply.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// observedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// The Expires column is a string: kubectl prints a date column as an age,
// which for a time still ahead is "<invalid>".

// AccessKey is a personal key for API integrations, acting as a User.
// Roster generates the key, writes it once into a Secret and keeps only a
// hash of it where it is checked.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ak,categories=roster
// +kubebuilder:printcolumn:name="User",type=string,JSONPath=`.spec.userRef.name`
// +kubebuilder:printcolumn:name="Key ID",type=string,JSONPath=`.status.keyID`
// +kubebuilder:printcolumn:name="Expires",type=string,JSONPath=`.status.expiresAt`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type AccessKey struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired state of the key.
	// +required
	Spec AccessKeySpec `json:"spec"`

	// status is the observed state of the key.
	// +optional
	Status AccessKeyStatus `json:"status,omitempty"`
}

// AccessKeyList is a list of AccessKeys.
//
// +kubebuilder:object:root=true
type AccessKeyList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AccessKey `json:"items"`
}

// SecretNameOrDefault is the Secret the key is written into.
func (a *AccessKey) SecretNameOrDefault() string {
	if a.Spec.SecretName != "" {
		return a.Spec.SecretName
	}
	return a.Name
}
