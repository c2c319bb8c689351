package controllerstest

import (
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"roster.dev/roster/api/v1alpha1"
)

// CreateUsers creates n Users named <prefix>-<i> in the namespace, each
// with the address <name>@<namespace>.example.com, and returns their names.
func CreateUsers(t testing.TB, c client.Client, ns, prefix string, n int) []string {
	t.Helper()
	var names []string
	for i := range n {
		name := fmt.Sprintf("%s-%02d", prefix, i)
		u := &v1alpha1.User{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec:       v1alpha1.UserSpec{Email: name + "@" + ns + ".example.com", FirstName: "First", LastName: name},
		}
		if err := c.Create(t.Context(), u); err != nil {
			t.Fatalf("creating User %s: %v", name, err)
		}
		names = append(names, name)
	}
	return names
}
