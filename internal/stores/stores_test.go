package stores

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"roster.dev/roster/api/v1alpha1"
)

func TestResolve(t *testing.T) {
	ref := func(name string) *v1alpha1.StoreReference { return &v1alpha1.StoreReference{Name: name} }
	cases := []struct {
		name  string
		setup func(r *Registry)
		ref   *v1alpha1.StoreReference
		want  string // the handle's name, or the error's message
	}{
		{"named and open", func(r *Registry) { r.Put(&Handle{Name: "corp"}) }, ref("corp"), "corp"},
		{"the default", func(r *Registry) {
			r.Put(&Handle{Name: "corp"})
			r.Put(&Handle{Name: "main", Spec: v1alpha1.IdentityStoreSpec{Default: true}})
		}, nil, "main"},
		{"no default", func(r *Registry) { r.Put(&Handle{Name: "corp"}) }, nil,
			"no IdentityStore is marked default; set spec.storeRef or mark one store default"},
		{"two defaults", func(r *Registry) {
			r.Put(&Handle{Name: "a", Spec: v1alpha1.IdentityStoreSpec{Default: true}})
			r.Fail("b", true, "unreachable")
		}, nil, "IdentityStores a, b are all marked default; keep one"},
		{"failed", func(r *Registry) { r.Fail("corp", false, "Secret roster-system/x does not exist") }, ref("corp"),
			"IdentityStore corp is not ready: Secret roster-system/x does not exist"},
		{"unknown", func(*Registry) {}, ref("nope"), "IdentityStore nope does not exist or is not open yet"},
		{"removed", func(r *Registry) { r.Put(&Handle{Name: "corp"}); r.Remove("corp") }, ref("corp"),
			"IdentityStore corp does not exist or is not open yet"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRegistry()
			tc.setup(r)
			h, err := r.Resolve(tc.ref)
			got := ""
			var nr *NotReadyError
			switch {
			case err == nil:
				got = h.Name
			case errors.As(err, &nr):
				got = nr.Msg
			default:
				t.Fatalf("Resolve returned %v, not a NotReadyError", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Resolve (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTenancy(t *testing.T) {
	h := &Handle{Name: "corp", Spec: v1alpha1.IdentityStoreSpec{Tenants: []v1alpha1.TenantRule{
		{Namespaces: []string{"eng-a"}, EmailDomains: []string{"eng.example.com", "*.lab.example.com"}, Roles: []string{"Member", "Viewer"}},
		{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "ops"}}, EmailDomains: []string{"*"}, Roles: []string{"*"},
			Adoption: v1alpha1.AdoptionAllowed},
	}}}
	ns := func(name string, labels map[string]string) *corev1.Namespace {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	}
	cases := []struct {
		name  string
		ns    *corev1.Namespace
		check func(*Tenancy) error
		want  string // "" when allowed
	}{
		{"listed namespace, allowed domain", ns("eng-a", nil), func(t *Tenancy) error { return t.CheckEmail("Ada@ENG.example.com") }, ""},
		{"subdomain wildcard", ns("eng-a", nil), func(t *Tenancy) error { return t.CheckEmail("x@b.lab.example.com") }, ""},
		{"the wildcard's own domain is not a subdomain", ns("eng-a", nil), func(t *Tenancy) error { return t.CheckEmail("x@lab.example.com") },
			"IdentityStore corp does not allow namespace eng-a addresses at lab.example.com (allowed: eng.example.com, *.lab.example.com)"},
		{"other domain", ns("eng-a", nil), func(t *Tenancy) error { return t.CheckEmail("mallory@corp.example.com") },
			"IdentityStore corp does not allow namespace eng-a addresses at corp.example.com (allowed: eng.example.com, *.lab.example.com)"},
		{"role allowed", ns("eng-a", nil), func(t *Tenancy) error { return t.CheckRole("Viewer") }, ""},
		{"role refused", ns("eng-a", nil), func(t *Tenancy) error { return t.CheckRole("Admin") },
			"IdentityStore corp does not allow namespace eng-a the role Admin (allowed: Member, Viewer)"},
		{"adoption refused by default", ns("eng-a", nil), func(t *Tenancy) error { return t.CheckAdoption("boss@eng.example.com") },
			"IdentityStore corp already holds boss@eng.example.com for a user Roster did not create, and its rule for namespace eng-a does not allow adoption"},
		{"selected by label, anything goes", ns("ops-1", map[string]string{"team": "ops"}), func(t *Tenancy) error {
			return errors.Join(t.CheckEmail("a@anywhere.io"), t.CheckRole("Admin"), t.CheckAdoption("a@anywhere.io"))
		}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ten, err := h.Admit(tc.ns)
			if err != nil {
				t.Fatalf("Admit: %v", err)
			}
			got := ""
			if err := tc.check(ten); err != nil {
				got = err.Error()
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	if _, err := h.Admit(ns("eng-b", map[string]string{"team": "eng"})); err == nil ||
		err.Error() != "IdentityStore corp admits no resources from namespace eng-b: no rule of its spec.tenants selects it" {
		t.Errorf("Admit of an unselected namespace = %v", err)
	}
}
