package web

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/internal/validation"
)

// FieldManager is the field manager of the account page's writes to a
// User: server-side apply records which spec fields the person set.
const FieldManager = "roster-account"

// DefaultOwnFieldManagers are the field managers whose fields a person may
// change on the account page besides their own: Roster's controllers
// (imports) write as roster-manager.
var DefaultOwnFieldManagers = []string{"roster-manager"}

// setting is a spec field the person may edit.
type setting struct {
	name, label, kind, autocomplete, hint string
	get                                   func(*v1alpha1.UserSpec) string
	check                                 func(string) error
}

var settings = []setting{
	{name: "firstName", label: "First name", kind: "text", autocomplete: "given-name",
		get: func(s *v1alpha1.UserSpec) string { return s.FirstName }, check: validation.Name},
	{name: "lastName", label: "Last name", kind: "text", autocomplete: "family-name",
		get: func(s *v1alpha1.UserSpec) string { return s.LastName }, check: validation.Name},
	{name: "mobile", label: "Mobile", kind: "tel", autocomplete: "tel", hint: "In international form, such as +4915123456789.",
		get: func(s *v1alpha1.UserSpec) string { return s.Mobile }, check: validation.Mobile},
	{name: "timeZone", label: "Time zone", kind: "select",
		get: func(s *v1alpha1.UserSpec) string { return s.TimeZone }, check: validation.TimeZone},
	{name: "locale", label: "Language", kind: "text", autocomplete: "language", hint: "A language tag, such as en-GB or de.",
		get: func(s *v1alpha1.UserSpec) string { return s.Locale }, check: validation.Locale},
}

// settingField is one field as the template shows it.
type settingField struct {
	Name, Label, Type, Autocomplete, Hint string
	Value                                 string
	// Managed is true when another manager owns the field: it is shown
	// read-only and never written.
	Managed bool
	Error   string
	Options []option
}

type option struct {
	Value, Label string
	Selected     bool
}

// foreignFields returns the settings that a field manager other than the
// account page and Roster's own owns in the User's spec.
func foreignFields(user *v1alpha1.User, own []string) map[string]bool {
	out := map[string]bool{}
	for _, mf := range user.ManagedFields {
		if mf.Manager == FieldManager || slices.Contains(own, mf.Manager) || mf.FieldsV1 == nil {
			continue
		}
		var fields map[string]map[string]json.RawMessage
		if err := json.Unmarshal(mf.FieldsV1.GetRawBytes(), &fields); err != nil {
			continue
		}
		for _, st := range settings {
			if _, ok := fields["f:spec"]["f:"+st.name]; ok {
				out[st.name] = true
			}
		}
	}
	return out
}

// fresh reads the User from the API server, with its managed fields (the
// cache drops them), and checks it is still the session's.
func (s *Server) fresh(ctx context.Context, user *v1alpha1.User) (*v1alpha1.User, error) {
	got := &v1alpha1.User{}
	if err := s.cfg.APIReader.Get(ctx, client.ObjectKeyFromObject(user), got); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, errSessionEnded
		}
		return nil, err
	}
	if got.UID != user.UID {
		return nil, errSessionEnded
	}
	return got, nil
}

// settings renders the settings form: values are the User's, or what was
// posted where errs names a problem.
func (s *Server) settings(w http.ResponseWriter, r *http.Request, user *v1alpha1.User, status int, errs map[string]string, saved bool) {
	fresh, err := s.fresh(r.Context(), user)
	if err != nil {
		s.signInAfter(w, r, err)
		return
	}
	foreign := foreignFields(fresh, s.cfg.OwnFieldManagers)
	acct := &accountData{Email: fresh.Spec.Email, Role: fresh.Status.Role, Groups: fresh.Status.Groups, Saved: saved}
	if acct.Role == "" {
		acct.Role = fresh.Spec.Role
	}
	if acct.Groups == nil {
		acct.Groups = fresh.Spec.Groups
	}
	var summary []string
	for _, st := range settings {
		f := settingField{Name: st.name, Label: st.label, Type: st.kind, Autocomplete: st.autocomplete, Hint: st.hint,
			Value: st.get(&fresh.Spec), Managed: foreign[st.name], Error: errs[st.name]}
		if f.Error != "" && !f.Managed {
			f.Value = r.PostForm.Get(st.name)
			summary = append(summary, st.label+": "+f.Error)
		}
		if st.kind == "select" && !f.Managed {
			f.Options = zoneOptions(f.Value)
		}
		acct.Fields = append(acct.Fields, f)
	}
	if msg := errs[""]; msg != "" {
		summary = append([]string{msg}, summary...)
	}
	if acct.Keys, err = s.keysOf(r.Context(), fresh); err != nil {
		s.cfg.Log.Error(err, "Could not list a person's access keys")
	}
	s.render(w, status, "account.html", pageData{
		Title: "Your account", Heading: "Your account", Email: fresh.Spec.Email, Greeting: fresh.Spec.FirstName,
		CSRF: s.csrfCookie(w, r), Account: acct, Errors: summary, Nav: "profile",
	})
}

// zoneOptions lists the time zones, with the current one selected; a
// current zone the list does not hold (a link such as Asia/Calcutta) is
// kept as the first choice, and so is "not set".
func zoneOptions(current string) []option {
	zones := validation.TimeZones()
	opts := make([]option, 0, len(zones)+2)
	opts = append(opts, option{Value: "", Label: "Not set", Selected: current == ""})
	if current != "" && !slices.Contains(zones, current) {
		opts = append(opts, option{Value: current, Label: current, Selected: true})
	}
	for _, z := range zones {
		opts = append(opts, option{Value: z, Label: strings.ReplaceAll(z, "_", " "), Selected: z == current})
	}
	return opts
}

// saveSettings serves POST /account.
func (s *Server) saveSettings(w http.ResponseWriter, r *http.Request) {
	user, ok := s.signedInPost(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	fresh, err := s.fresh(ctx, user)
	if err != nil {
		s.signInAfter(w, r, err)
		return
	}
	foreign := foreignFields(fresh, s.cfg.OwnFieldManagers)
	values, errs := map[string]string{}, map[string]string{}
	for _, st := range settings {
		if foreign[st.name] {
			continue
		}
		v := strings.TrimSpace(r.PostForm.Get(st.name))
		if v != "" {
			if err := st.check(v); err != nil {
				errs[st.name] = sentence(err.Error())
			}
		}
		values[st.name] = v
	}
	if len(errs) > 0 {
		s.settings(w, r, user, http.StatusUnprocessableEntity, errs, false)
		return
	}
	log := s.cfg.Log.WithValues("user", types.NamespacedName{Namespace: fresh.Namespace, Name: fresh.Name})
	switch err := s.apply(ctx, fresh, values); {
	case errors.Is(err, errManagedElsewhere):
		// Another manager took a field between the read and the write.
		s.settings(w, r, user, http.StatusConflict, map[string]string{"": "Your administrator changed your account while you were editing it. Nothing was saved: check the form and save again."}, false)
		return
	case apierrors.IsInvalid(err):
		log.Info("The API server refused account settings", "reason", err.Error())
		s.settings(w, r, user, http.StatusUnprocessableEntity, map[string]string{"": "These settings were not accepted. Nothing was saved."}, false)
		return
	case err != nil:
		log.Error(err, "Could not save account settings")
		s.message(w, http.StatusServiceUnavailable, message{"Something went wrong on our side", "Your settings were not saved. Please try again in a few minutes."})
		return
	}
	log.Info("Saved account settings")
	s.settings(w, r, user, http.StatusOK, nil, true)
}

var errManagedElsewhere = errors.New("a field is managed by another manager")

// apply writes the settings the person may change, and no other, with
// server-side apply under FieldManager. The first apply does not force: a
// field another manager owns with a different value is a conflict. The
// fields asked for are never another's (foreignFields left them out), so a
// conflict is with Roster's own managers (an import set the field), or
// with a manager that took the field since the read; the User is read
// again to tell which, and only in the first case is the apply forced, with
// the resourceVersion read as a precondition, so that a change made in
// between still fails rather than being overwritten.
func (s *Server) apply(ctx context.Context, user *v1alpha1.User, values map[string]string) error {
	obj := applyObject(user, values)
	err := s.cfg.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), client.FieldOwner(FieldManager))
	if apierrors.IsConflict(err) {
		again, rerr := s.fresh(ctx, user)
		if rerr != nil {
			return rerr
		}
		for name := range foreignFields(again, s.cfg.OwnFieldManagers) {
			if _, asked := values[name]; asked {
				return errManagedElsewhere
			}
		}
		obj = applyObject(again, values)
		obj.SetResourceVersion(again.ResourceVersion)
		err = s.cfg.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), client.FieldOwner(FieldManager), client.ForceOwnership)
		if apierrors.IsConflict(err) {
			return errManagedElsewhere
		}
		user = again
	}
	if err != nil {
		return err
	}
	// An emptied field that another of Roster's managers also owns stays
	// after the apply, which only gives up the account page's claim: remove
	// it, on the same precondition.
	var clear []string
	for _, st := range settings {
		if v, asked := values[st.name]; asked && v == "" && st.get(&user.Spec) != "" {
			clear = append(clear, st.name)
		}
	}
	if len(clear) == 0 {
		return nil
	}
	after, err := s.fresh(ctx, user)
	if err != nil {
		return err
	}
	spec := map[string]any{}
	for _, name := range clear {
		for _, st := range settings {
			if st.name == name && st.get(&after.Spec) != "" {
				spec[name] = nil
			}
		}
	}
	if len(spec) == 0 {
		return nil
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"resourceVersion": after.ResourceVersion}, "spec": spec})
	err = s.cfg.Client.Patch(ctx, after, client.RawPatch(types.MergePatchType, patch), client.FieldOwner(FieldManager))
	if apierrors.IsConflict(err) {
		return errManagedElsewhere
	}
	return err
}

// applyObject is the apply configuration: the User's identity and the
// settings' values, empty ones left out (an applied configuration that
// leaves out a field it applied before gives it up).
func applyObject(user *v1alpha1.User, values map[string]string) *unstructured.Unstructured {
	spec := map[string]any{}
	for name, v := range values {
		if v != "" {
			spec[name] = v
		}
	}
	obj := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	obj.SetAPIVersion(v1alpha1.GroupVersion.String())
	obj.SetKind("User")
	obj.SetNamespace(user.Namespace)
	obj.SetName(user.Name)
	obj.SetUID(user.UID)
	return obj
}

// sentence makes a validation message a sentence: capitalised, with a full
// stop.
func sentence(s string) string {
	if s == "" {
		return s
	}
	s = strings.ToUpper(s[:1]) + s[1:]
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}
