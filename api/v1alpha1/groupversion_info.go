// Package v1alpha1 contains the API types of the iam.roster.dev group: User,
// Group, UserImport, AccessKey and the cluster-scoped IdentityStore. It imports only apimachinery, so that clients can use
// the types without pulling in the operator.
//
// +kubebuilder:object:generate=true
// +groupName=iam.roster.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of every Roster kind.
	GroupVersion = schema.GroupVersion{Group: "iam.roster.dev", Version: "v1alpha1"}

	// SchemeBuilder adds the Roster kinds to a scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the Roster kinds to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(scheme *runtime.Scheme) error {
	scheme.AddKnownTypes(GroupVersion,
		&User{}, &UserList{},
		&Group{}, &GroupList{},
		&UserImport{}, &UserImportList{},
		&IdentityStore{}, &IdentityStoreList{},
		&AccessKey{}, &AccessKeyList{},
	)
	metav1.AddToGroupVersion(scheme, GroupVersion)
	return nil
}
