package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Condition types an IdentityStore reports besides Ready, Reconciling and
// Stalled.
const (
	// ConditionDeactivationEnforced is False when the store accepts the
	// password of a user Roster locked: deactivating a User there does not
	// stop them logging in. A deactivated User in such a store carries it
	// too.
	ConditionDeactivationEnforced = "DeactivationEnforced"
)

// StoreReference names the IdentityStore a resource provisions into.
type StoreReference struct {
	// name is the IdentityStore's name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// SecretKeyReference names a key of a Secret in the operator's namespace.
type SecretKeyReference struct {
	// name is the Secret's name, in the operator's namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// key is the key in the Secret's data.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key"`
}

// EmbeddedStoreSpec configures the embedded store: a bbolt file under the
// manager's --data-dir, named after the IdentityStore. It has no settings.
type EmbeddedStoreSpec struct{}

// LDAPStoreSpec configures an OpenLDAP-compatible directory.
// +kubebuilder:validation:XValidation:rule="!self.url.startsWith('ldap://') || self.startTLS || self.insecure",message="an ldap:// url needs startTLS: true, or insecure: true to send credentials in plain text"
type LDAPStoreSpec struct {
	// url is ldaps://host[:port], or ldap://host[:port] with startTLS.
	// +required
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^ldaps?://`
	URL string `json:"url"`
	// startTLS upgrades an ldap:// connection to TLS before binding.
	// +optional
	StartTLS bool `json:"startTLS,omitempty"`
	// insecure allows ldap:// without startTLS: passwords cross the network
	// in plain text.
	// +optional
	Insecure bool `json:"insecure,omitempty"`
	// caBundle is a PEM bundle of the CAs that sign the server's
	// certificate; the system's roots when empty.
	// +optional
	// +kubebuilder:validation:MaxLength=65536
	CABundle string `json:"caBundle,omitempty"`
	// serverName overrides the name checked in the server's certificate.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	ServerName string `json:"serverName,omitempty"`
	// bindDN is the DN Roster binds as.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	BindDN string `json:"bindDN"`
	// bindPasswordSecretRef is the bind password: a key of a Secret in the
	// operator's namespace.
	// +required
	BindPasswordSecretRef SecretKeyReference `json:"bindPasswordSecretRef"`
	// usersDN is where users are created and searched for (subtree); Roster
	// writes no user entry outside it.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	UsersDN string `json:"usersDN"`
	// groupsDN is where groups are created and searched for (subtree);
	// Roster writes no group entry outside it.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	GroupsDN string `json:"groupsDN"`
	// settings are the optional settings of the LDAP store (object classes,
	// attribute mapping, lock attribute, timeouts, pool and page size), in
	// the keys docs/store-ldap.md lists; an unknown key makes the store
	// Stalled, naming it.
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Type=object
	Settings *runtime.RawExtension `json:"settings,omitempty"`
}

// SCIMStoreSpec configures a SCIM 2.0 service provider.
// +kubebuilder:validation:XValidation:rule="!self.url.startsWith('http://') || self.insecure",message="an http:// url needs insecure: true to send the token in plain text"
type SCIMStoreSpec struct {
	// url is the service's SCIM base URL, the one /Users and /Groups are
	// relative to.
	// +required
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://`
	URL string `json:"url"`
	// insecure allows an http:// url: the token crosses the network in
	// plain text.
	// +optional
	Insecure bool `json:"insecure,omitempty"`
	// tokenSecretRef is the bearer token: a key of a Secret in the
	// operator's namespace.
	// +required
	TokenSecretRef SecretKeyReference `json:"tokenSecretRef"`
	// caBundle is a PEM bundle of CAs trusted in addition to the system's.
	// +optional
	// +kubebuilder:validation:MaxLength=65536
	CABundle string `json:"caBundle,omitempty"`
	// settings are the optional settings of the SCIM store (timeout,
	// retries, page size, schema extensions), in the keys
	// docs/store-scim.md lists; an unknown key makes the store Stalled,
	// naming it.
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Type=object
	Settings *runtime.RawExtension `json:"settings,omitempty"`
}

// StoreRateLimit caps the calls Roster makes to a store.
type StoreRateLimit struct {
	// qps is the steady rate of store calls per second.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	QPS int32 `json:"qps"`
	// burst is how many calls may go at once above qps.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	Burst int32 `json:"burst,omitempty"`
}

// AdoptionPolicy says whether a User may take over a store user that
// already holds its address.
// +kubebuilder:validation:Enum=Never;Allowed
type AdoptionPolicy string

const (
	// AdoptionNever refuses Users whose address the store already holds.
	AdoptionNever AdoptionPolicy = "Never"
	// AdoptionAllowed lets a User adopt the store user holding its address.
	AdoptionAllowed AdoptionPolicy = "Allowed"
)

// TenantRule admits the namespaces it selects to a store, and says what
// their resources may do there.
// +kubebuilder:validation:XValidation:rule="has(self.namespaceSelector) != has(self.namespaces)",message="set exactly one of namespaceSelector and namespaces"
type TenantRule struct {
	// namespaceSelector selects namespaces by their labels.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
	// namespaces lists namespaces by name.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=63
	Namespaces []string `json:"namespaces,omitempty"`
	// emailDomains are the domains of the addresses Users may hold ("*" for
	// any). A domain also admits its subdomains only when written as
	// "*.example.com".
	// +required
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=253
	EmailDomains []string `json:"emailDomains"`
	// roles are the roles Users may hold, imports and the default role
	// included ("*" for any).
	// +required
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=64
	Roles []string `json:"roles"`
	// adoption says whether a User may adopt a store user that already
	// holds its address: Never (the default) or Allowed.
	// +optional
	// +kubebuilder:default=Never
	Adoption AdoptionPolicy `json:"adoption,omitempty"`
	// deleteAdopted lets deleting a User remove an adopted store user, when
	// the User also says deletionPolicy: Delete.
	// +optional
	DeleteAdopted bool `json:"deleteAdopted,omitempty"`
	// importURLHosts are the hosts a UserImport's url source may name; url
	// sources are refused while it is empty.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=253
	ImportURLHosts []string `json:"importURLHosts,omitempty"`
}

// IdentityStoreSpec is a store Roster provisions into, and who may use it.
// +kubebuilder:validation:XValidation:rule="[has(self.embedded), has(self.ldap), has(self.scim)].filter(x, x).size() == 1",message="set exactly one of embedded, ldap and scim"
// +kubebuilder:validation:XValidation:rule="has(self.embedded) == has(oldSelf.embedded) && has(self.ldap) == has(oldSelf.ldap) && has(self.scim) == has(oldSelf.scim)",message="the kind of store cannot change; create another IdentityStore"
type IdentityStoreSpec struct {
	// default makes this the store of resources that name none. At most one
	// store is the default; when several say so, none is used as default
	// and each says why.
	// +optional
	Default bool `json:"default,omitempty"`
	// embedded is a store kept by Roster itself, in a file of the manager.
	// +optional
	Embedded *EmbeddedStoreSpec `json:"embedded,omitempty"`
	// ldap is an OpenLDAP-compatible directory.
	// +optional
	LDAP *LDAPStoreSpec `json:"ldap,omitempty"`
	// scim is a SCIM 2.0 service provider.
	// +optional
	SCIM *SCIMStoreSpec `json:"scim,omitempty"`
	// rateLimit caps the calls Roster makes to the store, across all
	// controllers; unset for no limit.
	// +optional
	RateLimit *StoreRateLimit `json:"rateLimit,omitempty"`
	// tenants are the rules that admit namespaces to the store. A namespace
	// that no rule selects may not use it; the first rule that selects a
	// namespace applies.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=256
	Tenants []TenantRule `json:"tenants,omitempty"`
}

// StoreCapabilities is what the store was found to support.
type StoreCapabilities struct {
	// passwords: the store accepts passwords, so Roster sends password
	// pages; false for services where people sign in through single
	// sign-on.
	Passwords bool `json:"passwords"`
	// logins: the store reports users' last login times.
	Logins bool `json:"logins"`
	// deactivation: deactivating a user stops them logging in, as checked
	// against the store itself.
	Deactivation bool `json:"deactivation"`
}

// IdentityStoreStatus is what Roster observed of the store.
type IdentityStoreStatus struct {
	// type is the kind of store: embedded, ldap or scim.
	// +optional
	Type string `json:"type,omitempty"`
	// capabilities is what the store was found to support.
	// +optional
	Capabilities *StoreCapabilities `json:"capabilities,omitempty"`
	// referencedBy counts the Users, Groups and UserImports that use the
	// store; it cannot be deleted while any do.
	// +optional
	ReferencedBy int32 `json:"referencedBy,omitempty"`
	// conditions describe the store's health: Ready when it is reachable,
	// its credentials are accepted and its capabilities are known.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// observedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// IdentityStore is a store Roster provisions Users and Groups into, shared
// by the cluster: platform admins declare it and its tenancy rules, and
// namespaced resources refer to it.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=ids,categories=roster
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.status.type`
// +kubebuilder:printcolumn:name="Default",type=boolean,JSONPath=`.spec.default`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type IdentityStore struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the store and its tenancy rules.
	// +required
	Spec IdentityStoreSpec `json:"spec"`

	// status is the store's observed health.
	// +optional
	Status IdentityStoreStatus `json:"status,omitempty"`
}

// IdentityStoreList is a list of IdentityStores.
//
// +kubebuilder:object:root=true
type IdentityStoreList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []IdentityStore `json:"items"`
}

// Kind is the kind of store: embedded, ldap or scim.
func (s *IdentityStore) Kind() string {
	switch {
	case s.Spec.LDAP != nil:
		return "ldap"
	case s.Spec.SCIM != nil:
		return "scim"
	default:
		return "embedded"
	}
}
