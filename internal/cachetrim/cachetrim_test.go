package cachetrim

import (
	"fmt"
	"reflect"
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

// Users with the same labels share one map; a User with other labels has
// its own, equal to what it was given; and the table of maps kept for
// sharing stays bounded when every User's labels differ.
func TestTransformSharesEqualMaps(t *testing.T) {
	ptr := func(m map[string]string) uintptr { return reflect.ValueOf(m).Pointer() }
	a, _ := Transform(user("ada"))
	b, _ := Transform(user("bob"))
	la, lb := a.(*v1alpha1.User).Labels, b.(*v1alpha1.User).Labels
	if ptr(la) != ptr(lb) {
		t.Error("equal labels are separate maps")
	}
	c := user("cy")
	c.Labels = map[string]string{"team": "looms"}
	got, _ := Transform(c)
	lc := got.(*v1alpha1.User).Labels
	if ptr(lc) == ptr(la) || lc["team"] != "looms" || len(lc) != 1 {
		t.Errorf("other labels became %v (shared: %v)", lc, ptr(lc) == ptr(la))
	}
	for i := range 2 * maxSharedMaps {
		u := user("many")
		u.Labels = map[string]string{"id": fmt.Sprint(i)}
		if got, _ := Transform(u); got.(*v1alpha1.User).Labels["id"] != fmt.Sprint(i) {
			t.Fatalf("labels of user %d came back as %v", i, got.(*v1alpha1.User).Labels)
		}
	}
	if n := len(shared.maps); n > maxSharedMaps {
		t.Errorf("the sharing table holds %d maps, more than %d", n, maxSharedMaps)
	}
}

// Two token records share their keys and the label values that repeat,
// keep their own UIDs and data, and come back equal to what was decoded.
func TestTransformSharesSecretKeys(t *testing.T) {
	record := func(uid, hash string) *corev1.Secret {
		return &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: "roster-system", Name: "roster-invitation-" + uid, Labels: map[string]string{
				"iam.roster.dev/token-purpose": "invitation", "iam.roster.dev/user-uid": uid,
			}},
			Type: corev1.SecretTypeOpaque,
			Data: map[string][]byte{"hash": []byte(hash)},
		}
	}
	a, _ := Transform(record("0f6d1c2e-8b1a-4f7e-9c3d-2a5b6c7d8e9f", "aa"))
	b, _ := Transform(record("1f6d1c2e-8b1a-4f7e-9c3d-2a5b6c7d8e9f", "bb"))
	if diff := cmp.Diff(record("0f6d1c2e-8b1a-4f7e-9c3d-2a5b6c7d8e9f", "aa"), a); diff != "" {
		t.Errorf("Transform changed the record (-want +got):\n%s", diff)
	}
	key := func(m map[string]string, k string) *byte {
		for have := range m {
			if have == k {
				return unsafe.StringData(have)
			}
		}
		return nil
	}
	la, lb := a.(*corev1.Secret).Labels, b.(*corev1.Secret).Labels
	if key(la, "iam.roster.dev/user-uid") != key(lb, "iam.roster.dev/user-uid") {
		t.Error("label keys are separate copies")
	}
	if pa, pb := la["iam.roster.dev/token-purpose"], lb["iam.roster.dev/token-purpose"]; unsafe.StringData(pa) != unsafe.StringData(pb) {
		t.Error("the purpose values are separate copies")
	}
}
