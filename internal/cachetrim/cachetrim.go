// Package cachetrim shrinks the objects the manager's informer cache holds,
// which is most of the operator's memory at 100,000 Users.
package cachetrim

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"unique"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/internal/invitation"
)

var stripManagedFields = cache.TransformStripManagedFields()

// Transform is the cache's transform: it drops managedFields and kubectl's
// last-applied-configuration annotation (a second copy of the whole object
// for applied resources), which no controller reads or writes, so patches
// computed from the cache never touch them. For Users it also shares the
// strings that thousands of them repeat (kind, namespace, finalizer, label
// and annotation keys, condition reasons and messages, phases) instead of
// keeping one decoded copy per object.
func Transform(obj any) (any, error) {
	obj, err := stripManagedFields(obj)
	if err != nil {
		return obj, err
	}
	if m, ok := obj.(metav1.Object); ok {
		if a := m.GetAnnotations(); a != nil {
			if _, found := a[corev1.LastAppliedConfigAnnotation]; found {
				delete(a, corev1.LastAppliedConfigAnnotation)
				m.SetAnnotations(a)
			}
		}
	}
	switch o := obj.(type) {
	case *v1alpha1.User:
		internUser(o)
	case *corev1.Secret:
		internSecret(o)
	}
	return obj, nil
}

func intern(s *string) {
	if *s != "" {
		*s = unique.Make(*s).Value()
	}
}

// internMap returns a map equal to m whose strings are shared. When a map
// of the same content was seen lately (every User an import creates
// carries the same labels), that map itself is returned, so that thousands
// of cached objects hold one map instead of one each. Cached objects are
// never modified in place (readers get copies, or promise not to modify
// them), so sharing is safe.
func internMap(m map[string]string, values bool) map[string]string {
	if len(m) == 0 {
		return m
	}
	key := mapKey(m, values)
	shared.Lock()
	defer shared.Unlock()
	if same, ok := shared.maps[key]; ok {
		return same
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		intern(&k)
		if values {
			intern(&v)
		}
		out[k] = v
	}
	if len(shared.maps) >= maxSharedMaps {
		// Objects keep the maps they have; only later ones share anew.
		clear(shared.maps)
	}
	shared.maps[key] = out
	return out
}

// maxSharedMaps bounds the maps kept for sharing: objects whose labels are
// all different (a label with a person's ID) share nothing, and must not
// grow the table without end.
const maxSharedMaps = 4096

var shared = struct {
	sync.Mutex
	maps map[string]map[string]string
}{maps: map[string]map[string]string{}}

// mapKey is the content of a map as one string, in key order. Values that
// are not interned are compared too: only an equal map is shared.
func mapKey(m map[string]string, values bool) string {
	keys := slices.Sorted(maps.Keys(m))
	var b strings.Builder
	if !values {
		b.WriteByte(1)
	}
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(m[k])
		b.WriteByte(0)
	}
	return b.String()
}

func internUser(u *v1alpha1.User) {
	intern(&u.APIVersion)
	intern(&u.Kind)
	intern(&u.Namespace)
	for i := range u.Finalizers {
		intern(&u.Finalizers[i])
	}
	u.Labels = internMap(u.Labels, true)
	u.Annotations = internMap(u.Annotations, false)
	for _, s := range []*string{&u.Spec.Role, &u.Spec.Country, &u.Spec.TimeZone, &u.Spec.Locale, &u.Status.Role} {
		intern(s)
	}
	for i := range u.Spec.Groups {
		intern(&u.Spec.Groups[i])
	}
	for i := range u.Status.Groups {
		intern(&u.Status.Groups[i])
	}
	if cap(u.Status.Conditions) > len(u.Status.Conditions) {
		// The decoder grows the slice by doubling: three conditions sit
		// in room for four, a hundred bytes a User.
		u.Status.Conditions = slices.Clone(u.Status.Conditions)
	}
	for i := range u.Status.Conditions {
		c := &u.Status.Conditions[i]
		intern(&c.Type)
		intern((*string)(&c.Status))
		intern(&c.Reason)
		intern(&c.Message)
	}
	intern((*string)(&u.Status.Phase))
	intern((*string)(&u.Status.Origin))
}

// internSecret shares what the Secrets the cache holds (Roster's token
// records, one per User and purpose) repeat: the type, the keys of labels
// and data, and the label values that are not the User's own.
func internSecret(s *corev1.Secret) {
	intern(&s.APIVersion)
	intern(&s.Kind)
	intern(&s.Namespace)
	intern((*string)(&s.Type))
	s.Labels = internKeys(s.Labels, func(k, v string) string {
		if sharedLabelValues[k] {
			intern(&v)
		}
		return v
	})
	s.Data = internKeys(s.Data, func(_ string, v []byte) []byte { return v })
}

// internKeys returns a copy of m whose keys are shared, with each value as
// value makes it.
func internKeys[V any](m map[string]V, value func(k string, v V) V) map[string]V {
	if len(m) == 0 {
		return m
	}
	out := make(map[string]V, len(m))
	for k, v := range m {
		intern(&k)
		out[k] = value(k, v)
	}
	return out
}

// sharedLabelValues are the labels of token records whose values many
// records repeat; the others hold the User's own UID and name.
var sharedLabelValues = map[string]bool{
	invitation.LabelManagedBy: true, invitation.LabelPurpose: true, invitation.LabelUserNamespace: true,
}
