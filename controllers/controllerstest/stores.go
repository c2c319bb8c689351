package controllerstest

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/controllers"
	"roster.dev/roster/internal/store"
)

// StoreOpener opens st for every IdentityStore, for suites that wrap a
// store to inject faults. The suite owns st: closing a handle leaves it
// open.
func StoreOpener(st store.Store) controllers.StoreOpener { return opener{st} }

type opener struct{ st store.Store }

func (o opener) Fingerprint(_ context.Context, ids *v1alpha1.IdentityStore) (string, error) {
	return fmt.Sprint(ids.Generation), nil
}

func (o opener) Open(context.Context, *v1alpha1.IdentityStore) (store.Store, error) {
	return unclosed{o.st}, nil
}

type unclosed struct{ store.Store }

func (unclosed) Close() error { return nil }

// Unwrap lets store.AsAuthenticator find the store's password check.
func (u unclosed) Unwrap() store.Store { return u.Store }

// EmbeddedDefault is an IdentityStore of the embedded kind, marked default,
// that admits every namespace with any role.
func EmbeddedDefault(name string) *v1alpha1.IdentityStore {
	return &v1alpha1.IdentityStore{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.IdentityStoreSpec{
			Default: true, Embedded: &v1alpha1.EmbeddedStoreSpec{},
			Tenants: []v1alpha1.TenantRule{AnyTenant()},
		},
	}
}

// AnyTenant admits every namespace, with any address, role or adoption; it
// lists no importURLHosts.
func AnyTenant() v1alpha1.TenantRule {
	return v1alpha1.TenantRule{
		NamespaceSelector: &metav1.LabelSelector{}, EmailDomains: []string{"*"}, Roles: []string{"*"},
		Adoption: v1alpha1.AdoptionAllowed, DeleteAdopted: true,
	}
}

// CreateStore creates the IdentityStore and waits until it is Ready.
func CreateStore(ctx context.Context, c client.Client, ids *v1alpha1.IdentityStore, timeout time.Duration) error {
	if err := c.Create(ctx, ids); err != nil {
		return fmt.Errorf("creating IdentityStore %s: %w", ids.Name, err)
	}
	deadline := time.Now().Add(timeout)
	for {
		var got v1alpha1.IdentityStore
		if err := c.Get(ctx, client.ObjectKeyFromObject(ids), &got); err == nil &&
			meta.IsStatusConditionTrue(got.Status.Conditions, v1alpha1.ConditionReady) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("IdentityStore %s is not Ready within %s", ids.Name, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
