package scim

import (
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strings"

	"roster.dev/roster/internal/store"
)

// Schema URNs (RFC 7643 sections 4 and 8.7, RFC 7644 sections 3.4 and 3.5.2).
const (
	userSchema       = "urn:ietf:params:scim:schemas:core:2.0:User"
	groupSchema      = "urn:ietf:params:scim:schemas:core:2.0:Group"
	enterpriseSchema = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	// Roster's extensions, for what the core schemas have no place for.
	rosterUserSchema  = "urn:ietf:params:scim:schemas:extension:roster:2.0:User"
	rosterGroupSchema = "urn:ietf:params:scim:schemas:extension:roster:2.0:Group"
	listSchema        = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
	patchSchema       = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
)

// enterpriseAttributes are the enterprise extension's string attributes
// that User.Attributes keys of the same name map to.
var enterpriseAttributes = []string{"employeeNumber", "costCenter", "organization", "division", "department"}

// resource is a SCIM resource as the service sent it. Users and groups are
// edited as maps, not structs, so that what Roster does not manage (other
// phone numbers, sub-attributes, extensions of the service's own) goes back
// unchanged when a whole resource is PUT.
type resource map[string]any

type listResponse struct {
	TotalResults int        `json:"totalResults"`
	StartIndex   int        `json:"startIndex"`
	ItemsPerPage int        `json:"itemsPerPage"`
	Resources    []resource `json:"Resources"`
}

type patchRequest struct {
	Schemas    []string  `json:"schemas"`
	Operations []patchOp `json:"Operations"`
}

type patchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path,omitempty"`
	Value any    `json:"value,omitempty"`
}

func newPatch(ops []patchOp) patchRequest {
	return patchRequest{Schemas: []string{patchSchema}, Operations: ops}
}

// serviceProviderConfig is what discovery reads (RFC 7643 section 5).
type serviceProviderConfig struct {
	Patch          feature `json:"patch"`
	Bulk           feature `json:"bulk"`
	Filter         feature `json:"filter"`
	ChangePassword feature `json:"changePassword"`
	Sort           feature `json:"sort"`
	ETag           feature `json:"etag"`
}

type feature struct {
	Supported  bool `json:"supported"`
	MaxResults int  `json:"maxResults,omitempty"`
}

// clone deep-copies a resource through JSON, so edits leave the original
// alone for comparison.
func (r resource) clone() resource {
	b, _ := json.Marshal(r)
	var out resource
	_ = json.Unmarshal(b, &out)
	return out
}

func (r resource) str(key string) string {
	s, _ := r[key].(string)
	return s
}

// sub returns the complex attribute at key, creating it when create is set.
func (r resource) sub(key string, create bool) resource {
	switch m := r[key].(type) {
	case map[string]any:
		return m
	case resource:
		return m
	}
	if !create {
		return nil
	}
	m := resource{}
	r[key] = map[string]any(m)
	return m
}

// entries returns the multi-valued attribute at key.
func (r resource) entries(key string) []map[string]any {
	list, _ := r[key].([]any)
	out := make([]map[string]any, 0, len(list))
	for _, v := range list {
		if m, ok := v.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

func (r resource) setEntries(key string, list []map[string]any) {
	if len(list) == 0 {
		delete(r, key)
		return
	}
	anys := make([]any, len(list))
	for i, m := range list {
		anys[i] = m
	}
	r[key] = anys
}

// setString sets or, for "", removes a string attribute.
func setString(r resource, key, v string) {
	if v == "" {
		delete(r, key)
		return
	}
	r[key] = v
}

// pick returns the index of the entry a single value lives in: the one of
// type typ when typ is set, else the primary one, else the first; -1 when
// there is none.
func pick(list []map[string]any, typ string) int {
	if typ != "" {
		return slices.IndexFunc(list, func(m map[string]any) bool { return m["type"] == typ })
	}
	if i := slices.IndexFunc(list, func(m map[string]any) bool { return m["primary"] == true }); i >= 0 {
		return i
	}
	if len(list) > 0 {
		return 0
	}
	return -1
}

// setEntry writes v into sub-attribute field of the entry pick chooses,
// adding one (with fresh) when there is none, and dropping it when v is "".
func setEntry(r resource, key, typ, field, v string, fresh map[string]any) {
	list := r.entries(key)
	i := pick(list, typ)
	switch {
	case v == "" && i >= 0:
		list = slices.Delete(list, i, i+1)
	case v == "":
	case i >= 0:
		list[i][field] = v
	default:
		fresh[field] = v
		list = append(list, fresh)
	}
	r.setEntries(key, list)
}

func entryValue(r resource, key, typ, field string) string {
	list := r.entries(key)
	if i := pick(list, typ); i >= 0 {
		s, _ := list[i][field].(string)
		return s
	}
	return ""
}

func (r resource) addSchema(urn string) {
	list, _ := r["schemas"].([]any)
	for _, v := range list {
		if v == urn {
			return
		}
	}
	r["schemas"] = append(list, urn)
}

// userFields writes a user update into a SCIM User. It is how a new user is
// encoded too: the update that sets every field of the user.
func (s *Store) userFields(r resource, u store.UserUpdate) error {
	r.addSchema(userSchema)
	if u.FirstName != nil || u.LastName != nil {
		name := r.sub("name", true)
		if u.FirstName != nil {
			setString(name, "givenName", *u.FirstName)
		}
		if u.LastName != nil {
			setString(name, "familyName", *u.LastName)
		}
		if len(name) == 0 {
			delete(r, "name")
		}
		// Some services (AWS IAM Identity Center) require displayName; it
		// follows the names Roster manages.
		setString(r, "displayName", strings.TrimSpace(name.str("givenName")+" "+name.str("familyName")))
	}
	if u.Mobile != nil {
		setEntry(r, "phoneNumbers", "mobile", "value", *u.Mobile, map[string]any{"type": "mobile"})
	}
	if u.Country != nil {
		setEntry(r, "addresses", "", "country", *u.Country, map[string]any{"type": "work", "primary": true})
	}
	if u.Role != nil {
		setEntry(r, "roles", "", "value", *u.Role, map[string]any{"primary": true})
	}
	if u.TimeZone != nil {
		setString(r, "timezone", *u.TimeZone)
	}
	if u.Locale != nil {
		setString(r, "locale", *u.Locale)
	}
	if u.Disabled != nil {
		r["active"] = !*u.Disabled
	}
	for _, k := range slices.Sorted(maps.Keys(u.Attributes)) {
		v := u.Attributes[k]
		if s.cfg.enterprise && slices.Contains(enterpriseAttributes, k) {
			r.addSchema(enterpriseSchema)
			setString(r.sub(enterpriseSchema, true), k, v)
			continue
		}
		if !s.userExt {
			return &attributeError{key: k}
		}
		r.addSchema(rosterUserSchema)
		ext := r.sub(rosterUserSchema, true)
		list := resource(ext).entries("attributes")
		i := slices.IndexFunc(list, func(m map[string]any) bool { return m["key"] == k })
		if i >= 0 {
			list[i]["value"] = v
		} else {
			list = append(list, map[string]any{"key": k, "value": v})
		}
		resource(ext).setEntries("attributes", list)
	}
	return nil
}

// attributeError is a user attribute this service has no place for: the
// store's schema rejects it until its config or the User changes.
type attributeError struct{ key string }

func (e *attributeError) Unwrap() error { return store.ErrRejected }

func (e *attributeError) Error() string {
	return "attribute " + e.key + " has no place in this SCIM service: set rosterExtension: true, or enterpriseExtension: true for an enterprise attribute name"
}

// newUser encodes a user to create.
func (s *Store) newUser(u store.User) (resource, error) {
	r := resource{"userName": u.Email, "active": !u.Disabled,
		"emails": []any{map[string]any{"value": u.Email, "type": "work", "primary": true}}}
	setString(r, "externalId", u.ExternalID)
	err := s.userFields(r, store.UserUpdate{
		FirstName: &u.FirstName, LastName: &u.LastName, Role: &u.Role, Mobile: &u.Mobile,
		TimeZone: &u.TimeZone, Country: &u.Country, Locale: &u.Locale, Attributes: u.Attributes,
	})
	if s.userExt {
		r.addSchema(rosterUserSchema)
		r.sub(rosterUserSchema, true)["activated"] = u.Activated
	}
	return r, err
}

// decodeUser reads a SCIM User.
func (s *Store) decodeUser(r resource) store.User {
	u := store.User{
		ID: r.str("id"), Email: r.str("userName"), ExternalID: r.str("externalId"),
		Mobile:   entryValue(r, "phoneNumbers", "mobile", "value"),
		Country:  entryValue(r, "addresses", "", "country"),
		Role:     entryValue(r, "roles", "", "value"),
		TimeZone: r.str("timezone"), Locale: r.str("locale"),
	}
	if name := r.sub("name", false); name != nil {
		u.FirstName, u.LastName = name.str("givenName"), name.str("familyName")
	}
	if active, ok := r["active"].(bool); ok {
		u.Disabled = !active
	}
	attrs := map[string]string{}
	if ext := r.sub(enterpriseSchema, false); ext != nil && s.cfg.enterprise {
		for _, k := range enterpriseAttributes {
			if v := ext.str(k); v != "" {
				attrs[k] = v
			}
		}
	}
	if ext := r.sub(rosterUserSchema, false); ext != nil {
		u.Activated, _ = ext["activated"].(bool)
		for _, m := range ext.entries("attributes") {
			k, _ := m["key"].(string)
			v, _ := m["value"].(string)
			if k != "" {
				attrs[k] = v
			}
		}
	}
	if len(attrs) > 0 {
		u.Attributes = attrs
	}
	return u
}

// groupFields writes a group update into a SCIM Group. The SCIM
// displayName is the name people read in the service: the Group's display
// name. The group's Roster name (namespace/name), which Roster finds it by,
// is its externalId, the identifier RFC 7643 section 3.1 leaves to the
// provisioning client. A Group's own external ID and description go into
// Roster's Group extension, where the service declares it.
func (s *Store) groupFields(r resource, u store.GroupUpdate) error {
	r.addSchema(groupSchema)
	if u.DisplayName != nil {
		setString(r, "displayName", *u.DisplayName)
	}
	if u.ExternalID != nil && *u.ExternalID != "" && !s.groupExt {
		return &externalIDError{}
	}
	if !s.groupExt || u.ExternalID == nil && u.Description == nil {
		// Without the extension there is nowhere to keep a description;
		// the docs say so.
		return nil
	}
	r.addSchema(rosterGroupSchema)
	ext := r.sub(rosterGroupSchema, true)
	if u.ExternalID != nil {
		setString(ext, "externalID", *u.ExternalID)
	}
	if u.Description != nil {
		setString(ext, "description", *u.Description)
	}
	return nil
}

// externalIDError is a Group external ID asked of a service with nowhere to
// keep it.
type externalIDError struct{}

func (e *externalIDError) Unwrap() error { return store.ErrRejected }

func (e *externalIDError) Error() string {
	return "this SCIM service declares no Roster Group extension, and its externalId holds the group's Roster name: spec.externalID cannot be kept; leave it empty, or set rosterExtension: true if the service accepts the extension"
}

func (s *Store) newGroup(g store.Group, members []string) (resource, error) {
	display := g.DisplayName
	if display == "" {
		display = g.Name
	}
	r := resource{"displayName": display, "externalId": g.Name}
	if err := s.groupFields(r, store.GroupUpdate{ExternalID: &g.ExternalID, Description: &g.Description}); err != nil {
		return nil, err
	}
	if ext := r.sub(rosterGroupSchema, false); ext != nil && len(ext) == 0 {
		delete(r, rosterGroupSchema)
		r["schemas"] = []any{groupSchema}
	}
	if len(members) > 0 {
		r["members"] = memberValues(members)
	}
	return r, nil
}

func (s *Store) decodeGroup(r resource) store.Group {
	g := store.Group{ID: r.str("id"), Name: r.str("externalId"), DisplayName: r.str("displayName")}
	if ext := r.sub(rosterGroupSchema, false); ext != nil {
		g.ExternalID, g.Description = ext.str("externalID"), ext.str("description")
	}
	return g
}

func memberValues(ids []string) []any {
	out := make([]any, len(ids))
	for i, id := range ids {
		out[i] = map[string]any{"value": id}
	}
	return out
}

// memberIDs reads a group's members, sorted and without repeats.
func memberIDs(r resource) []string {
	var ids []string
	for _, m := range r.entries("members") {
		if v, _ := m["value"].(string); v != "" {
			ids = append(ids, v)
		}
	}
	sort.Strings(ids)
	return slices.Compact(ids)
}

// changedOps returns PATCH operations that turn before into after, one
// replace (or remove) per top-level attribute that differs. An extension's
// attributes are patched one by one, so the service's own stay as they are.
func changedOps(before, after resource) []patchOp {
	var ops []patchOp
	for _, k := range slices.Sorted(maps.Keys(after)) {
		switch k {
		case "schemas", "meta", "id", "members":
			continue
		case enterpriseSchema, rosterUserSchema, rosterGroupSchema:
			b, a := resource(before.sub(k, false)), resource(after.sub(k, false))
			for _, sk := range slices.Sorted(maps.Keys(a)) {
				if !reflect.DeepEqual(b[sk], a[sk]) {
					ops = append(ops, patchOp{Op: "replace", Path: k + ":" + sk, Value: a[sk]})
				}
			}
			for _, sk := range slices.Sorted(maps.Keys(b)) {
				if _, ok := a[sk]; !ok {
					ops = append(ops, patchOp{Op: "remove", Path: k + ":" + sk})
				}
			}
			continue
		}
		if !reflect.DeepEqual(before[k], after[k]) {
			ops = append(ops, patchOp{Op: "replace", Path: k, Value: after[k]})
		}
	}
	for _, k := range slices.Sorted(maps.Keys(before)) {
		if _, ok := after[k]; !ok && k != "members" && k != "meta" {
			ops = append(ops, patchOp{Op: "remove", Path: k})
		}
	}
	return ops
}
