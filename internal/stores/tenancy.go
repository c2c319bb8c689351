package stores

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/internal/naming"
)

// NotPermittedError is a refusal by a store's tenancy rules: the resource
// is Stalled with reason NotPermitted and nothing is written to the store.
// The message names the store and what was refused, as a sentence without
// its full stop.
type NotPermittedError struct{ Msg string }

func (e *NotPermittedError) Error() string { return e.Msg }

// NotPermitted returns a NotPermittedError with the message.
func NotPermitted(format string, args ...any) error { return notPermitted(format, args...) }

func notPermitted(format string, args ...any) error {
	return &NotPermittedError{Msg: fmt.Sprintf(format, args...)}
}

// Tenancy is what the store's rules allow one namespace: the first rule
// that selects it.
type Tenancy struct {
	store string
	ns    string
	rule  v1alpha1.TenantRule
}

// Admit returns what the store allows the namespace, or a NotPermittedError
// when no rule selects it. ns is the Namespace object, for its labels.
func (h *Handle) Admit(ns *corev1.Namespace) (*Tenancy, error) {
	for _, rule := range h.Spec.Tenants {
		if selects(rule, ns) {
			return &Tenancy{store: h.Name, ns: ns.Name, rule: rule}, nil
		}
	}
	return nil, notPermitted("IdentityStore %s admits no resources from namespace %s: no rule of its spec.tenants selects it", h.Name, ns.Name)
}

func selects(rule v1alpha1.TenantRule, ns *corev1.Namespace) bool {
	if rule.NamespaceSelector != nil {
		sel, err := metav1.LabelSelectorAsSelector(rule.NamespaceSelector)
		return err == nil && sel.Matches(labels.Set(ns.Labels))
	}
	return slices.Contains(rule.Namespaces, ns.Name)
}

// CheckEmail refuses an address outside the rule's emailDomains.
func (t *Tenancy) CheckEmail(email string) error {
	_, domain, _ := strings.Cut(naming.NormalizeEmail(email), "@")
	for _, d := range t.rule.EmailDomains {
		d = strings.ToLower(d)
		switch {
		case d == "*", d == domain:
			return nil
		case strings.HasPrefix(d, "*.") && strings.HasSuffix(domain, d[1:]):
			return nil
		}
	}
	return notPermitted("IdentityStore %s does not allow namespace %s addresses at %s (allowed: %s)",
		t.store, t.ns, domain, strings.Join(t.rule.EmailDomains, ", "))
}

// CheckRole refuses a role outside the rule's roles; role is the effective
// one, the default role included.
func (t *Tenancy) CheckRole(role string) error {
	if slices.Contains(t.rule.Roles, "*") || slices.Contains(t.rule.Roles, role) {
		return nil
	}
	return notPermitted("IdentityStore %s does not allow namespace %s the role %s (allowed: %s)",
		t.store, t.ns, role, strings.Join(t.rule.Roles, ", "))
}

// CheckAdoption refuses adopting a store user Roster did not create unless
// the rule allows it.
func (t *Tenancy) CheckAdoption(email string) error {
	if t.rule.Adoption == v1alpha1.AdoptionAllowed {
		return nil
	}
	return notPermitted("IdentityStore %s already holds %s for a user Roster did not create, and its rule for namespace %s does not allow adoption",
		t.store, email, t.ns)
}

// MayDeleteAdopted reports whether deleting a User may remove the adopted
// store user, when the User also asks for it.
func (t *Tenancy) MayDeleteAdopted() bool { return t.rule.DeleteAdopted }

// ImportURLHosts are the hosts an import's url source may name.
func (t *Tenancy) ImportURLHosts() []string { return t.rule.ImportURLHosts }
