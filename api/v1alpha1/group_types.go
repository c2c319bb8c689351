package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition types a Group reports besides Ready, Reconciling and Stalled.
const (
	// ConditionMembersResolved is False while spec.members names Users that
	// do not exist or members are not in the store yet; the message names them.
	ConditionMembersResolved = "MembersResolved"
	// ConditionMembersTruncated is True while status.members lists only part
	// of the members, to keep the object under the API server's size limit.
	ConditionMembersTruncated = "MembersTruncated"
)

// GroupSpec is the desired state of a group in the identity store.
//
// The effective members are the union of members, the Users memberSelector
// matches and the Users whose spec.groups names the group.
// +kubebuilder:validation:XValidation:rule="has(self.storeRef) == has(oldSelf.storeRef)",message="storeRef is immutable"
type GroupSpec struct {
	// storeRef names the IdentityStore to provision into; its members are Users of the same store; unset means the
	// store marked default. It cannot be changed.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="storeRef is immutable"
	StoreRef *StoreReference `json:"storeRef,omitempty"`

	// displayName is the group's name as people see it. When unset, the group
	// is created in the store with the Group's name and the display name is
	// not managed afterwards.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	DisplayName string `json:"displayName,omitempty"`

	// externalID is the group's identifier in systems outside Roster, unique
	// within the store: a Group whose externalID another Group or store group
	// already holds is not provisioned. When unset it is not managed.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	ExternalID string `json:"externalID,omitempty"`

	// description says what the group is for. When unset it is not managed.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Description string `json:"description,omitempty"`

	// members names Users in the same namespace that belong to the group. A
	// name with no User yet is reported in the MembersResolved condition and
	// becomes a member when the User appears.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=10000
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Members []string `json:"members,omitempty"`

	// memberSelector selects Users in the same namespace by label; every
	// User it matches is a member. An empty selector ({}) matches every User
	// in the namespace; an unset one matches none.
	// +optional
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, e.operator in ['In', 'NotIn', 'Exists', 'DoesNotExist'])",message="matchExpressions operators must be In, NotIn, Exists or DoesNotExist"
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, (e.operator in ['In', 'NotIn']) == (has(e.values) && size(e.values) > 0))",message="matchExpressions with In or NotIn need values, and Exists or DoesNotExist take none"
	MemberSelector *metav1.LabelSelector `json:"memberSelector,omitempty"`
}

// GroupStatus is the observed state of a Group.
type GroupStatus struct {
	// members are the group's effective members (User names), sorted. When
	// the list would be too long it is truncated and a condition says so;
	// memberCount is always complete.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=10000
	// +kubebuilder:validation:items:MaxLength=253
	Members []string `json:"members,omitempty"`

	// memberCount is the number of effective members.
	// +optional
	// +kubebuilder:validation:Minimum=0
	MemberCount int32 `json:"memberCount,omitempty"`

	// storeID is the group's identifier in the identity store.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	StoreID string `json:"storeID,omitempty"`

	// conditions describe the Group's state: Ready, Reconciling or Stalled
	// while they apply, MembersResolved, and MembersTruncated while the
	// member list is cut short.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// observedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// Group is a set of Users, provisioned into the identity store.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=grp,categories=roster
// +kubebuilder:printcolumn:name="Display Name",type=string,JSONPath=`.spec.displayName`
// +kubebuilder:printcolumn:name="Members",type=integer,JSONPath=`.status.memberCount`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Group struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired state of the group.
	// +optional
	Spec GroupSpec `json:"spec,omitempty"`

	// status is the observed state of the group.
	// +optional
	Status GroupStatus `json:"status,omitempty"`
}

// GroupList is a list of Groups.
//
// +kubebuilder:object:root=true
type GroupList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Group `json:"items"`
}
