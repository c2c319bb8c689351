package controllers_test

import (
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/controllers"
)

// A tenant with the edit role gets keys only for the Users of its own
// namespace, and cannot make Roster write into a Secret it did not create
// for the key.
func TestAccessKeyTenancy(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	ten := newTenant(t)
	other := newNamespace(t)
	victim := newUser(other, "victim", "victim.keys@example.com")
	victim.Spec.Invite = ptr.To(false)
	g.Expect(k8s.Create(ctx, victim)).To(Succeed())
	waitFor(t, other, "victim", hasPhase(v1alpha1.UserInvited))

	// No AccessKey in another namespace.
	g.Expect(apierrors.IsForbidden(ten.c.Create(ctx, newAccessKey(other, "steal", "victim")))).To(BeTrue())

	// userRef has no namespace: a reference to another namespace's User
	// cannot be written.
	cross := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": v1alpha1.GroupVersion.String(), "kind": "AccessKey",
		"metadata": map[string]any{"namespace": ten.ns, "name": "cross"},
		"spec":     map[string]any{"userRef": map[string]any{"name": "victim", "namespace": other}},
	}}
	err := ten.c.Create(ctx, cross, client.FieldValidation(metav1.FieldValidationStrict))
	g.Expect(err).To(HaveOccurred())
	g.Expect(err.Error()).To(ContainSubstring("unknown field"))

	// The same name in the tenant's namespace names no User there: the
	// key waits, and no key is issued.
	g.Expect(ten.c.Create(ctx, newAccessKey(ten.ns, "byname", "victim"))).To(Succeed())
	waitForKey(t, ten.ns, "byname", keyCondition(v1alpha1.ConditionReconciling, "True", controllers.ReasonWaitingForUser))
	g.Expect(apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKey{Namespace: ten.ns, Name: "byname"}, &corev1.Secret{}))).To(BeTrue())

	// userRef cannot be changed once set.
	mine := newUser(ten.ns, "mine", "mine.keys@example.com")
	mine.Spec.Invite = ptr.To(false)
	g.Expect(ten.c.Create(ctx, mine)).To(Succeed())
	ak := &v1alpha1.AccessKey{}
	g.Expect(ten.c.Get(ctx, client.ObjectKey{Namespace: ten.ns, Name: "byname"}, ak)).To(Succeed())
	ak.Spec.UserRef.Name = "mine"
	err = ten.c.Update(ctx, ak)
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
	g.Expect(err.Error()).To(ContainSubstring("userRef is immutable"))

	// A Secret that exists and is not the AccessKey's is never written.
	foreign := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ten.ns, Name: "db-password"},
		Data:       map[string][]byte{"key": []byte("not-an-access-key"), "password": []byte("hunter2hunter2")},
	}
	g.Expect(k8s.Create(ctx, foreign)).To(Succeed())
	onto := newAccessKey(ten.ns, "onto", "mine")
	onto.Spec.SecretName = "db-password"
	g.Expect(ten.c.Create(ctx, onto)).To(Succeed())
	got := waitForKey(t, ten.ns, "onto", keyCondition(v1alpha1.ConditionStalled, "True", controllers.ReasonSecretConflict))
	g.Expect(apimeta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady).Message).To(ContainSubstring("db-password"))
	g.Expect(got.Status.KeyID).To(BeEmpty())
	after := &corev1.Secret{}
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(foreign), after)).To(Succeed())
	g.Expect(after.ResourceVersion).To(Equal(foreign.ResourceVersion))
	g.Expect(after.Data).To(Equal(foreign.Data))
	g.Expect(after.OwnerReferences).To(BeEmpty())

	// Its own key, for its own User, works.
	g.Expect(ten.c.Create(ctx, newAccessKey(ten.ns, "own", "mine"))).To(Succeed())
	waitForKey(t, ten.ns, "own", keyCondition(v1alpha1.ConditionReady, "True", controllers.ReasonKeyReady))
}
