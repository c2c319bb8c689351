package cachetrim

import (
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"roster.dev/roster/api/v1alpha1"
)

func user(name string) *v1alpha1.User {
	return &v1alpha1.User{
		TypeMeta: metav1.TypeMeta{APIVersion: "iam.roster.dev/v1alpha1", Kind: "User"},
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: "team",
			Labels:        map[string]string{"team": "engines"},
			Annotations:   map[string]string{corev1.LastAppliedConfigAnnotation: "{...}", "note": "kept"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}},
			Finalizers:    []string{v1alpha1.Finalizer},
		},
		Spec: v1alpha1.UserSpec{Email: name + "@example.com", Role: "Member", Groups: []string{"eng"}},
		Status: v1alpha1.UserStatus{Phase: v1alpha1.UserInvited, Conditions: []metav1.Condition{{
			Type: "Ready", Status: metav1.ConditionTrue, Reason: "Provisioned", Message: "The user is in the embedded store.",
		}}},
	}
}

func TestTransform(t *testing.T) {
	want := user("ada")
	want.ManagedFields = nil
	delete(want.Annotations, corev1.LastAppliedConfigAnnotation)

	got, err := Transform(user("ada"))
	if err != nil {
		t.Fatalf("Transform: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Transform() mismatch (-want +got):\n%s", diff)
	}
}

// Two Users decoded separately end up sharing their repeated strings.
func TestTransformSharesStrings(t *testing.T) {
	a, _ := Transform(user("ada"))
	b, _ := Transform(user("bob"))
	ca, cb := a.(*v1alpha1.User).Status.Conditions[0], b.(*v1alpha1.User).Status.Conditions[0]
	if unsafe.StringData(ca.Message) != unsafe.StringData(cb.Message) {
		t.Error("condition messages are separate copies")
	}
	if unsafe.StringData(a.(*v1alpha1.User).Namespace) != unsafe.StringData(b.(*v1alpha1.User).Namespace) {
		t.Error("namespaces are separate copies")
	}
}
