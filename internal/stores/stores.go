// Package stores keeps the identity stores that IdentityStore resources
// declare, open and ready for the controllers and the web pages, and
// resolves which store a resource uses: the one its storeRef names, or the
// store marked default. The IdentityStore controller opens, replaces and
// closes them; every other reader only looks them up.
package stores

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/internal/store"
)

// Handle is one open store with the rules of its IdentityStore.
type Handle struct {
	// Name is the IdentityStore's name; metrics and messages use it.
	Name string
	// Store is the open store, rate limited and counted.
	store.Store
	// Spec is the IdentityStore's spec the store was opened from.
	Spec v1alpha1.IdentityStoreSpec
	// Deactivation is false when the store was found to let a locked user
	// log in.
	Deactivation bool
}

// WithSpec is the same open store under a changed spec (a new default flag
// or tenancy rule needs no reconnection).
func (h *Handle) WithSpec(spec v1alpha1.IdentityStoreSpec) *Handle {
	c := *h
	c.Spec = spec
	return &c
}

// NotReadyError means the store a resource uses is not open: it does not
// exist, or it cannot be reached or configured. The message says which, as
// a sentence without its full stop.
type NotReadyError struct{ Msg string }

func (e *NotReadyError) Error() string { return e.Msg }

func notReady(format string, args ...any) error {
	return &NotReadyError{Msg: fmt.Sprintf(format, args...)}
}

// Registry holds the open stores by name. It is safe for concurrent use.
type Registry struct {
	mu      sync.RWMutex
	handles map[string]*Handle
	// problems says why a declared store is not open.
	problems map[string]string
	// defaults are the names of the declared stores marked default, open
	// or not.
	defaults map[string]bool
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{handles: map[string]*Handle{}, problems: map[string]string{}, defaults: map[string]bool{}}
}

// Put opens the way to a store under its name, replacing (and returning, for
// the caller to close) the one there before.
func (r *Registry) Put(h *Handle) (old *Handle) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old = r.handles[h.Name]
	r.handles[h.Name] = h
	delete(r.problems, h.Name)
	r.setDefault(h.Name, h.Spec.Default)
	return old
}

// Fail records why the named store is not open and takes it out, returning
// the handle that was there for the caller to close.
func (r *Registry) Fail(name string, isDefault bool, problem string) (old *Handle) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old = r.handles[name]
	delete(r.handles, name)
	r.problems[name] = problem
	r.setDefault(name, isDefault)
	return old
}

// Remove forgets the store, returning its handle for the caller to close.
func (r *Registry) Remove(name string) (old *Handle) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old = r.handles[name]
	delete(r.handles, name)
	delete(r.problems, name)
	delete(r.defaults, name)
	return old
}

func (r *Registry) setDefault(name string, on bool) {
	if on {
		r.defaults[name] = true
	} else {
		delete(r.defaults, name)
	}
}

// Get returns the open store of that name.
func (r *Registry) Get(name string) (*Handle, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	h, ok := r.handles[name]
	return h, ok
}

// Known reports whether the named store was opened or failed to open: a
// declared store that is not known yet is still being opened.
func (r *Registry) Known(name string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, open := r.handles[name]
	_, failed := r.problems[name]
	return open || failed
}

// All returns the open stores, sorted by name.
func (r *Registry) All() []*Handle {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]*Handle, 0, len(r.handles))
	for _, h := range r.handles {
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// DefaultName is the name of the one store marked default, or an error
// saying why there is none.
func (r *Registry) DefaultName() (string, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.defaultName()
}

func (r *Registry) defaultName() (string, error) {
	names := make([]string, 0, len(r.defaults))
	for n := range r.defaults {
		names = append(names, n)
	}
	slices.Sort(names)
	switch len(names) {
	case 0:
		return "", notReady("no IdentityStore is marked default; set spec.storeRef or mark one store default")
	case 1:
		return names[0], nil
	default:
		return "", notReady("IdentityStores %s are all marked default; keep one", strings.Join(names, ", "))
	}
}

// Name is the name of the store a resource uses: ref's, or the default's.
func (r *Registry) Name(ref *v1alpha1.StoreReference) (string, error) {
	if ref != nil {
		return ref.Name, nil
	}
	return r.DefaultName()
}

// Resolve returns the open store a resource uses, or a NotReadyError that
// says why it cannot be used now.
func (r *Registry) Resolve(ref *v1alpha1.StoreReference) (*Handle, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	name := ""
	if ref != nil {
		name = ref.Name
	} else {
		var err error
		if name, err = r.defaultName(); err != nil {
			return nil, err
		}
	}
	if h, ok := r.handles[name]; ok {
		return h, nil
	}
	if p, ok := r.problems[name]; ok {
		return nil, notReady("IdentityStore %s is not ready: %s", name, p)
	}
	return nil, notReady("IdentityStore %s does not exist or is not open yet", name)
}

// IsDefault reports whether name is the one default store.
func (r *Registry) IsDefault(name string) bool {
	d, err := r.DefaultName()
	return err == nil && d == name
}
