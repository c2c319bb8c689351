package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ConditionInvitation is the condition type a User reports besides Ready,
// Reconciling and Stalled: where the user's invitation stands. It is
// informational: Ready summarises provisioning, and a failure to send an
// email shows there too.
const ConditionInvitation = "Invitation"

// DeletionPolicy says what happens to the store user when its User is deleted.
// +kubebuilder:validation:Enum=Delete;Retain
type DeletionPolicy string

const (
	// DeletionPolicyDelete removes the user from the store.
	DeletionPolicyDelete DeletionPolicy = "Delete"
	// DeletionPolicyRetain leaves the user in the store.
	DeletionPolicyRetain DeletionPolicy = "Retain"
)

// UserPhase is where a user stands in its lifecycle.
// +kubebuilder:validation:Enum=Pending;Invited;Active;Inactive
type UserPhase string

const (
	// UserPending means the user is not in the store yet.
	UserPending UserPhase = "Pending"
	// UserInvited means the user is in the store and has never activated.
	UserInvited UserPhase = "Invited"
	// UserActive means the user has activated and may log in.
	UserActive UserPhase = "Active"
	// UserInactive means the user is deactivated and cannot log in.
	UserInactive UserPhase = "Inactive"
)

// UserOrigin records whether Roster created the store user or found it there.
// +kubebuilder:validation:Enum=Created;Adopted
type UserOrigin string

const (
	// UserCreated means Roster created the store user.
	UserCreated UserOrigin = "Created"
	// UserAdopted means the store user existed before and Roster adopted it.
	UserAdopted UserOrigin = "Adopted"
)

// UserSpec is the desired state of a person in the identity store.
// +kubebuilder:validation:XValidation:rule="has(self.storeRef) == has(oldSelf.storeRef)",message="storeRef is immutable"
type UserSpec struct {
	// email is the user's address and their ID in the store. It cannot be
	// changed once the User exists.
	// +required
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=254
	// +kubebuilder:validation:Format=email
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="email is immutable"
	Email string `json:"email"`

	// firstName is the user's given name.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	FirstName string `json:"firstName,omitempty"`

	// lastName is the user's family name.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	LastName string `json:"lastName,omitempty"`

	// role is the user's role or type in the platform, such as Admin or
	// Member. When unset the operator's default role applies (least privilege).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[A-Za-z][A-Za-z0-9_.-]*$`
	Role string `json:"role,omitempty"`

	// groups names Groups in the same namespace that the user belongs to. It
	// is unioned with the members each Group declares.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	Groups []string `json:"groups,omitempty"`

	// deactivated, when true, makes the user Inactive: they cannot log in.
	// Setting it back to false reactivates them. Unset leaves a user Roster
	// created active and an adopted user as the store has them.
	// +optional
	Deactivated *bool `json:"deactivated,omitempty"`

	// invite, when true, emails an invitation once the user exists in the
	// store. Setting it to false while the user is Invited revokes the
	// outstanding invitation.
	// +optional
	// +kubebuilder:default=true
	Invite *bool `json:"invite,omitempty"`

	// mobile is the user's mobile number in E.164 form (+4915123456789), used
	// for two-factor authentication.
	// +optional
	// +kubebuilder:validation:Pattern=`^\+[1-9][0-9]{6,14}$`
	Mobile string `json:"mobile,omitempty"`

	// timeZone is an IANA time zone name such as Europe/Berlin.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$`
	TimeZone string `json:"timeZone,omitempty"`

	// country is an ISO 3166-1 alpha-2 country code such as DE or US.
	// +optional
	// +kubebuilder:validation:MinLength=2
	// +kubebuilder:validation:MaxLength=2
	// +kubebuilder:validation:XValidation:rule="self in ['AD','AE','AF','AG','AI','AL','AM','AO','AQ','AR','AS','AT','AU','AW','AX','AZ','BA','BB','BD','BE','BF','BG','BH','BI','BJ','BL','BM','BN','BO','BQ','BR','BS','BT','BV','BW','BY','BZ','CA','CC','CD','CF','CG','CH','CI','CK','CL','CM','CN','CO','CR','CU','CV','CW','CX','CY','CZ','DE','DJ','DK','DM','DO','DZ','EC','EE','EG','EH','ER','ES','ET','FI','FJ','FK','FM','FO','FR','GA','GB','GD','GE','GF','GG','GH','GI','GL','GM','GN','GP','GQ','GR','GS','GT','GU','GW','GY','HK','HM','HN','HR','HT','HU','ID','IE','IL','IM','IN','IO','IQ','IR','IS','IT','JE','JM','JO','JP','KE','KG','KH','KI','KM','KN','KP','KR','KW','KY','KZ','LA','LB','LC','LI','LK','LR','LS','LT','LU','LV','LY','MA','MC','MD','ME','MF','MG','MH','MK','ML','MM','MN','MO','MP','MQ','MR','MS','MT','MU','MV','MW','MX','MY','MZ','NA','NC','NE','NF','NG','NI','NL','NO','NP','NR','NU','NZ','OM','PA','PE','PF','PG','PH','PK','PL','PM','PN','PR','PS','PT','PW','PY','QA','RE','RO','RS','RU','RW','SA','SB','SC','SD','SE','SG','SH','SI','SJ','SK','SL','SM','SN','SO','SR','SS','ST','SV','SX','SY','SZ','TC','TD','TF','TG','TH','TJ','TK','TL','TM','TN','TO','TR','TT','TV','TW','TZ','UA','UG','UM','US','UY','UZ','VA','VC','VE','VG','VI','VN','VU','WF','WS','YE','YT','ZA','ZM','ZW']",message="must be an ISO 3166-1 alpha-2 country code in upper case, such as DE or US"
	Country string `json:"country,omitempty"`

	// locale is the user's preferred language as a BCP 47 tag such as en-GB.
	// +optional
	// +kubebuilder:validation:MaxLength=35
	// +kubebuilder:validation:Pattern=`^[a-zA-Z]{2,3}([-_][a-zA-Z0-9]{2,8})*$`
	Locale string `json:"locale,omitempty"`

	// attributes are further key/value pairs stored with the user. Keys listed
	// here are managed; keys removed from this map are left in the store.
	// +optional
	// +kubebuilder:validation:MaxProperties=64
	Attributes map[string]string `json:"attributes,omitempty"`

	// deletionPolicy says whether deleting the User removes the user from the
	// store (Delete) or leaves it there (Retain). When unset, users Roster
	// created are deleted and users it adopted are retained.
	// +optional
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`

	// storeRef names the IdentityStore to provision into; unset means the
	// store marked default. It cannot be changed.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="storeRef is immutable"
	StoreRef *StoreReference `json:"storeRef,omitempty"`
}

// InvitationStatus records the invitation emails sent to a user.
type InvitationStatus struct {
	// sentAt is when the newest invitation was sent.
	// +optional
	SentAt *metav1.Time `json:"sentAt,omitempty"`
	// expiresAt is when the newest invitation link stops working.
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`
	// acceptedAt is when the user accepted an invitation and set a password.
	// +optional
	AcceptedAt *metav1.Time `json:"acceptedAt,omitempty"`
	// sendCount is how many invitations have been sent.
	// +optional
	SendCount int32 `json:"sendCount,omitempty"`
}

// UserStatus is the observed state of a User.
type UserStatus struct {
	// phase is Pending (not in the store yet), Invited (in the store, never
	// activated), Active or Inactive. Failures show in conditions.
	// +optional
	Phase UserPhase `json:"phase,omitempty"`

	// storeID is the user's identifier in the identity store.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	StoreID string `json:"storeID,omitempty"`

	// origin says whether Roster created the store user or adopted one that
	// already held the email.
	// +optional
	Origin UserOrigin `json:"origin,omitempty"`

	// displayName is the user's first and last name, for display.
	// +optional
	DisplayName string `json:"displayName,omitempty"`

	// role is the role in effect: spec.role or the operator's default.
	// +optional
	Role string `json:"role,omitempty"`

	// groups are the user's effective Groups, sorted.
	// +optional
	// +listType=set
	Groups []string `json:"groups,omitempty"`

	// invitation records the invitations sent to the user.
	// +optional
	Invitation *InvitationStatus `json:"invitation,omitempty"`

	// lastLoginAt is the user's last login, where the store reports it.
	// +optional
	LastLoginAt *metav1.Time `json:"lastLoginAt,omitempty"`

	// passwordResetAt is when the last password reset link was sent.
	// +optional
	PasswordResetAt *metav1.Time `json:"passwordResetAt,omitempty"`

	// lastHandledResendInvitation is the last value of the
	// iam.roster.dev/resend-invitation annotation that was acted on.
	// +optional
	LastHandledResendInvitation string `json:"lastHandledResendInvitation,omitempty"`

	// lastHandledResetPassword is the last value of the
	// iam.roster.dev/reset-password annotation that was acted on.
	// +optional
	LastHandledResetPassword string `json:"lastHandledResetPassword,omitempty"`

	// conditions describe the User's state: Ready, and Reconciling or
	// Stalled while they apply.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// observedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// User is a person who uses the platform, provisioned into the identity store.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=usr,categories=roster
// +kubebuilder:selectablefield:JSONPath=`.status.phase`
// +kubebuilder:selectablefield:JSONPath=`.spec.role`
// +kubebuilder:printcolumn:name="Email",type=string,JSONPath=`.spec.email`
// +kubebuilder:printcolumn:name="Full Name",type=string,JSONPath=`.status.displayName`
// +kubebuilder:printcolumn:name="Role",type=string,JSONPath=`.status.role`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Groups",type=string,JSONPath=`.status.groups`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type User struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired state of the user.
	// +required
	Spec UserSpec `json:"spec"`

	// status is the observed state of the user.
	// +optional
	Status UserStatus `json:"status,omitempty"`
}

// UserList is a list of Users.
//
// +kubebuilder:object:root=true
type UserList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []User `json:"items"`
}

// InviteEnabled reports whether the user should receive an invitation.
func (u *User) InviteEnabled() bool { return u.Spec.Invite == nil || *u.Spec.Invite }

// IsDeactivated reports whether the User asks to be Inactive.
func (u *User) IsDeactivated() bool { return u.Spec.Deactivated != nil && *u.Spec.Deactivated }
