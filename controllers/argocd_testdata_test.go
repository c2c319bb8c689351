package controllers_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/controllers"
	"roster.dev/roster/controllers/controllerstest"
	"roster.dev/roster/internal/store"
	"roster.dev/roster/internal/stores"
)

var updateArgoCDTestdata = flag.Bool("update-argocd-testdata", false,
	"write the objects the controllers make into config/argocd/testdata")

// argoCDTestdata holds the objects config/argocd/health_test.yaml feeds to
// the Argo CD health check.
const argoCDTestdata = "../config/argocd/testdata"

// handWrittenArgoCDTestdata are the testdata files no run of this suite can
// produce; each says so in a comment at its top.
var handWrittenArgoCDTestdata = []string{
	// The suite opens one store for every IdentityStore without reading
	// its spec or Secrets, so neither a missing token Secret nor a spec the
	// store refuses can be observed here.
	"identitystore_missingSecret.yaml",
	"identitystore_invalidConfig.yaml",
}

// checkHandWrittenStores opens each hand-written IdentityStore with the
// manager's real Opener and checks that the file's Ready condition quotes
// the error it meets now, with the reason the controller gives that error.
func checkHandWrittenStores(t *testing.T) {
	g := NewWithT(t)
	token := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: controllerstest.OperatorNamespace, Name: "argocd-scim-token"},
		Data:       map[string][]byte{"token": []byte("not-a-real-token")},
	}
	g.Expect(client.IgnoreAlreadyExists(k8s.Create(t.Context(), token))).To(Succeed())
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), token) })
	opener := &stores.Opener{Secrets: k8s, Namespace: controllerstest.OperatorNamespace, DataDir: t.TempDir()}

	for _, file := range handWrittenArgoCDTestdata {
		t.Run(file, func(t *testing.T) {
			g := NewWithT(t)
			raw, err := os.ReadFile(filepath.Join(argoCDTestdata, file))
			g.Expect(err).NotTo(HaveOccurred())
			var ids v1alpha1.IdentityStore
			g.Expect(yaml.UnmarshalStrict(raw, &ids)).To(Succeed())
			_, err = opener.Fingerprint(t.Context(), &ids)
			if err == nil {
				var s store.Store
				if s, err = opener.Open(t.Context(), &ids); err == nil {
					_ = s.Close()
				}
			}
			g.Expect(err).To(HaveOccurred(), "the store opens")
			wantReason, stateCondition := controllers.ReasonWaitingForStore, v1alpha1.ConditionReconciling
			if stores.IsConfigError(err) {
				wantReason, stateCondition = controllers.ReasonInvalidConfig, v1alpha1.ConditionStalled
			}
			ready := meta.FindStatusCondition(ids.Status.Conditions, v1alpha1.ConditionReady)
			g.Expect(ready).NotTo(BeNil())
			g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(ready.Reason).To(Equal(wantReason))
			g.Expect(ready.Message).To(ContainSubstring(err.Error()))
			state := meta.FindStatusCondition(ids.Status.Conditions, stateCondition)
			g.Expect(state).NotTo(BeNil())
			g.Expect(state.Status).To(Equal(metav1.ConditionTrue))
			g.Expect(state.Reason).To(Equal(wantReason))
			g.Expect(state.Message).To(Equal(ready.Message))
		})
	}
}

// TestArgoCDTestdata drives each kind into the states the Argo CD health
// check tells apart and checks that config/argocd/testdata still holds what
// the controllers write: the same phase and the same condition types,
// statuses and reasons. With -update-argocd-testdata it rewrites the files.
func TestArgoCDTestdata(t *testing.T) {
	seen := map[string]bool{}
	capture := func(t *testing.T, file, kind string, obj client.Object, namespaces ...string) {
		t.Helper()
		seen[file] = true
		recordArgoCDTestdata(t, file, kind, obj, namespaces...)
	}

	t.Run("user invited", func(t *testing.T) {
		ns := newNamespace(t)
		NewWithT(t).Expect(k8s.Create(t.Context(), newUser(ns, "ada", "ada@"+ns+".example.com"))).To(Succeed())
		capture(t, "user_invited.yaml", "User", waitFor(t, ns, "ada", hasPhase(v1alpha1.UserInvited)), ns)
	})

	t.Run("user inactive", func(t *testing.T) {
		ns := newNamespace(t)
		u := newUser(ns, "ada", "ada@"+ns+".example.com")
		u.Spec.Deactivated = ptr.To(true)
		NewWithT(t).Expect(k8s.Create(t.Context(), u)).To(Succeed())
		capture(t, "user_inactive.yaml", "User", waitFor(t, ns, "ada", hasPhase(v1alpha1.UserInactive)), ns)
	})

	t.Run("store unavailable", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		ids := &v1alpha1.IdentityStore{
			ObjectMeta: metav1.ObjectMeta{Name: "argocd-unavailable"},
			Spec:       v1alpha1.IdentityStoreSpec{Embedded: &v1alpha1.EmbeddedStoreSpec{}, Tenants: []v1alpha1.TenantRule{controllerstest.AnyTenant()}},
		}
		g.Expect(controllerstest.CreateStore(t.Context(), k8s, ids, timeout)).To(Succeed())
		t.Cleanup(func() { _ = k8s.Delete(context.Background(), ids) })

		backend.setDown(true)
		t.Cleanup(func() { backend.setDown(false) })
		g.Expect(k8s.Create(t.Context(), newUser(ns, "ada", "ada@"+ns+".example.com"))).To(Succeed())
		u := waitFor(t, ns, "ada", func(g Gomega, u *v1alpha1.User) {
			g.Expect(readyCondition(u)).NotTo(BeNil())
			g.Expect(readyCondition(u).Reason).To(Equal(controllers.ReasonStoreUnavailable))
			g.Expect(meta.IsStatusConditionTrue(u.Status.Conditions, v1alpha1.ConditionReconciling)).To(BeTrue())
		})
		capture(t, "user_storeUnavailable.yaml", "User", u, ns)
		down := waitForStore(t, ids.Name, func(g Gomega, ids *v1alpha1.IdentityStore) {
			ready := meta.FindStatusCondition(ids.Status.Conditions, v1alpha1.ConditionReady)
			g.Expect(ready).NotTo(BeNil())
			g.Expect(ready.Reason).To(Equal(controllers.ReasonStoreUnavailable))
		})
		capture(t, "identitystore_storeUnavailable.yaml", "IdentityStore", down)
	})

	t.Run("user not permitted", func(t *testing.T) {
		ns := newNamespace(t)
		u := newUser(ns, "ada", "ada@corp.example.com")
		u.Spec.StoreRef = &v1alpha1.StoreReference{Name: restrictedStore(t, ns)}
		NewWithT(t).Expect(k8s.Create(t.Context(), u)).To(Succeed())
		got := waitFor(t, ns, "ada", func(g Gomega, u *v1alpha1.User) { notPermitted(g, u, "corp.example.com") })
		capture(t, "user_notPermitted.yaml", "User", got, ns)
	})

	t.Run("user duplicate email", func(t *testing.T) {
		g := NewWithT(t)
		ns1, ns2 := newNamespace(t), newNamespace(t)
		email := "ada@" + ns1 + ".example.com"
		g.Expect(k8s.Create(t.Context(), newUser(ns1, "ada", email))).To(Succeed())
		first := waitFor(t, ns1, "ada", hasPhase(v1alpha1.UserInvited))
		// Ties in creation time go to the lower namespace: let the first be older.
		g.Eventually(func() bool { return time.Now().After(first.CreationTimestamp.Add(time.Second)) }, timeout, tick).Should(BeTrue())
		g.Expect(k8s.Create(t.Context(), newUser(ns2, "ada", email))).To(Succeed())
		second := waitFor(t, ns2, "ada", func(g Gomega, u *v1alpha1.User) {
			g.Expect(readyCondition(u)).NotTo(BeNil())
			g.Expect(readyCondition(u).Reason).To(Equal(controllers.ReasonDuplicateEmail))
			g.Expect(meta.IsStatusConditionTrue(u.Status.Conditions, v1alpha1.ConditionStalled)).To(BeTrue())
		})
		capture(t, "user_duplicateEmail.yaml", "User", second, ns1, ns2)
	})

	t.Run("group ready", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		g.Expect(k8s.Create(t.Context(), newUser(ns, "ada", "ada@"+ns+".example.com"))).To(Succeed())
		g.Expect(k8s.Create(t.Context(), newGroup(ns, "eng", v1alpha1.GroupSpec{Members: []string{"ada"}}))).To(Succeed())
		grp := waitForGroup(t, ns, "eng", func(g Gomega, grp *v1alpha1.Group) {
			hasMembers("ada")(g, grp)
			g.Expect(meta.IsStatusConditionTrue(grp.Status.Conditions, v1alpha1.ConditionReady)).To(BeTrue())
			g.Expect(meta.IsStatusConditionTrue(grp.Status.Conditions, v1alpha1.ConditionMembersResolved)).To(BeTrue())
		})
		capture(t, "group_ready.yaml", "Group", grp, ns)
	})

	t.Run("group members missing", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		g.Expect(k8s.Create(t.Context(), newGroup(ns, "eng", v1alpha1.GroupSpec{Members: []string{"ghost"}}))).To(Succeed())
		grp := waitForGroup(t, ns, "eng", func(g Gomega, grp *v1alpha1.Group) {
			g.Expect(meta.IsStatusConditionTrue(grp.Status.Conditions, v1alpha1.ConditionReady)).To(BeTrue())
			resolved := meta.FindStatusCondition(grp.Status.Conditions, v1alpha1.ConditionMembersResolved)
			g.Expect(resolved).NotTo(BeNil())
			g.Expect(resolved.Reason).To(Equal(controllers.ReasonMembersMissing))
		})
		capture(t, "group_membersMissing.yaml", "Group", grp, ns)
	})

	t.Run("import running", func(t *testing.T) {
		capture(t, "userimport_running.yaml", "UserImport", interruptedImport(t), "")
	})

	t.Run("import succeeded", func(t *testing.T) {
		ns := newNamespace(t)
		got := runImport(t, newImport(ns, "onboarding", v1alpha1.UserImportSpec{Source: inline(
			"add-user,ada@" + ns + ".example.com,Ada,Lovelace\nadd-user,grace@" + ns + ".example.com,Grace,Hopper\n")}))
		NewWithT(t).Expect(got.Status.Phase).To(Equal(v1alpha1.ImportSucceeded))
		capture(t, "userimport_succeeded.yaml", "UserImport", got, ns)
	})

	t.Run("import partially succeeded", func(t *testing.T) {
		ns := newNamespace(t)
		got := runImport(t, newImport(ns, "onboarding", v1alpha1.UserImportSpec{Source: inline(
			"add-user,ada@" + ns + ".example.com,Ada,Lovelace\nadd-user,not-an-email,Bad,Row\n")}))
		NewWithT(t).Expect(got.Status.Phase).To(Equal(v1alpha1.ImportPartiallySucceeded))
		capture(t, "userimport_partiallySucceeded.yaml", "UserImport", got, ns)
	})

	t.Run("import failed", func(t *testing.T) {
		ns := newNamespace(t)
		got := runImport(t, newImport(ns, "onboarding", v1alpha1.UserImportSpec{Source: inline(
			"action,username,firstName,lastName\nadd-user,ada@" + ns + ".example.com,Ada,Lovelace\n")}))
		NewWithT(t).Expect(got.Status.Phase).To(Equal(v1alpha1.ImportFailed))
		capture(t, "userimport_failed.yaml", "UserImport", got, ns)
	})

	t.Run("identity store ready", func(t *testing.T) {
		ids := &v1alpha1.IdentityStore{
			ObjectMeta: metav1.ObjectMeta{Name: "argocd-ready"},
			Spec:       v1alpha1.IdentityStoreSpec{Embedded: &v1alpha1.EmbeddedStoreSpec{}, Tenants: []v1alpha1.TenantRule{controllerstest.AnyTenant()}},
		}
		NewWithT(t).Expect(controllerstest.CreateStore(t.Context(), k8s, ids, timeout)).To(Succeed())
		t.Cleanup(func() { _ = k8s.Delete(context.Background(), ids) })
		got := waitForStore(t, ids.Name, func(g Gomega, ids *v1alpha1.IdentityStore) {
			g.Expect(ids.Status.ObservedGeneration).To(Equal(ids.Generation))
			g.Expect(meta.FindStatusCondition(ids.Status.Conditions, v1alpha1.ConditionDeactivationEnforced)).NotTo(BeNil())
		})
		capture(t, "identitystore_ready.yaml", "IdentityStore", got)
	})

	t.Run("access key ready", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		u := newUser(ns, "ada", "ada@"+ns+".example.com")
		u.Spec.Invite = ptr.To(false)
		g.Expect(k8s.Create(t.Context(), u)).To(Succeed())
		g.Expect(k8s.Create(t.Context(), newAccessKey(ns, "ci", "ada"))).To(Succeed())
		capture(t, "accesskey_ready.yaml", "AccessKey",
			waitForKey(t, ns, "ci", keyCondition(v1alpha1.ConditionReady, "True", controllers.ReasonKeyReady)), ns)
	})

	t.Run("access key secret conflict", func(t *testing.T) {
		g := NewWithT(t)
		ns := newNamespace(t)
		u := newUser(ns, "ada", "ada@"+ns+".example.com")
		u.Spec.Invite = ptr.To(false)
		g.Expect(k8s.Create(t.Context(), u)).To(Succeed())
		g.Expect(k8s.Create(t.Context(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ci"}})).To(Succeed())
		g.Expect(k8s.Create(t.Context(), newAccessKey(ns, "ci", "ada"))).To(Succeed())
		capture(t, "accesskey_secretConflict.yaml", "AccessKey",
			waitForKey(t, ns, "ci", keyCondition(v1alpha1.ConditionStalled, "True", controllers.ReasonSecretConflict)), ns)
	})

	t.Run("identity stores written by hand", func(t *testing.T) {
		checkHandWrittenStores(t)
		for _, f := range handWrittenArgoCDTestdata {
			seen[f] = true
		}
	})

	// Every file in the directory is produced or checked here, so that
	// none goes stale unnoticed.
	entries, err := os.ReadDir(argoCDTestdata)
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	for _, e := range entries {
		if !seen[e.Name()] {
			t.Errorf("%s: no case of TestArgoCDTestdata produces or checks it", e.Name())
		}
	}
}

// interruptedImport is an import that stopped part way, after its first
// progress write: what a UserImport shows while it runs. The reconciler is
// driven by hand in a namespace the manager leaves alone, and its context is
// cancelled once the rows of the first progress write are applied.
func interruptedImport(t *testing.T) *v1alpha1.UserImport {
	t.Helper()
	g := NewWithT(t)
	req := interruptImport(t, "onboarding", 600, 550)
	ns := req.Namespace

	got := &v1alpha1.UserImport{}
	g.Expect(k8s.Get(t.Context(), req.NamespacedName, got)).To(Succeed())
	g.Expect(got.Status.Phase).To(Equal(v1alpha1.ImportRunning))
	g.Expect(got.Status.Rows.Processed).To(BeEquivalentTo(500))
	// The file names the namespace in every row: keep the testdata small
	// and stable by leaving the source out.
	got.Spec.Source = inline("add-user,r0000@" + ns + ".example.com,Row,N0\n...\n")
	return got
}

func waitForStore(t *testing.T, name string, cond func(g Gomega, ids *v1alpha1.IdentityStore)) *v1alpha1.IdentityStore {
	t.Helper()
	got := &v1alpha1.IdentityStore{}
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(k8s.Get(t.Context(), client.ObjectKey{Name: name}, got)).To(Succeed())
		cond(g, got)
	}, timeout, tick).Should(Succeed())
	return got
}

// recordArgoCDTestdata writes obj as Argo CD would see it (without the
// fields that change on every run), or compares it with the checked-in file.
// The test's namespaces become team-a, team-b, ... so that files are stable.
func recordArgoCDTestdata(t *testing.T, file, kind string, obj client.Object, namespaces ...string) {
	t.Helper()
	g := NewWithT(t)
	obj.GetObjectKind().SetGroupVersionKind(v1alpha1.GroupVersion.WithKind(kind))
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	g.Expect(err).NotTo(HaveOccurred())
	md := u["metadata"].(map[string]any)
	for _, f := range []string{"managedFields", "uid", "resourceVersion", "creationTimestamp"} {
		delete(md, f)
	}
	stableTimes(u)
	raw, err := yaml.Marshal(u)
	g.Expect(err).NotTo(HaveOccurred())
	var pairs []string
	for i, ns := range namespaces {
		if ns != "" {
			pairs = append(pairs, ns, "team-"+string(rune('a'+i)))
		}
	}
	if ns := obj.GetNamespace(); ns != "" && !slices.Contains(namespaces, ns) {
		pairs = append(pairs, ns, "team-a")
	}
	out := []byte(strings.NewReplacer(pairs...).Replace(string(raw)))

	path := filepath.Join(argoCDTestdata, file)
	if *updateArgoCDTestdata {
		g.Expect(os.WriteFile(path, out, 0o644)).To(Succeed())
		return
	}
	want, err := os.ReadFile(path)
	g.Expect(err).NotTo(HaveOccurred(), "run with -update-argocd-testdata to write it")
	if diff := cmp.Diff(healthShape(t, want), healthShape(t, out)); diff != "" {
		t.Errorf("%s is stale; run with -update-argocd-testdata (-checked in +written now):\n%s", file, diff)
	}
}

// healthShape is what the health check reads: whether the status is for the
// current generation, the phase, and each condition's type, status and reason.
func healthShape(t *testing.T, raw []byte) []string {
	t.Helper()
	var obj struct {
		Metadata struct {
			Generation int64 `json:"generation"`
		} `json:"metadata"`
		Status struct {
			ObservedGeneration int64              `json:"observedGeneration"`
			Phase              string             `json:"phase"`
			Conditions         []metav1.Condition `json:"conditions"`
		} `json:"status"`
	}
	if err := yaml.Unmarshal(raw, &obj); err != nil {
		t.Fatalf("reading testdata: %v", err)
	}
	shape := []string{
		fmt.Sprintf("observed=%t", obj.Status.ObservedGeneration >= obj.Metadata.Generation),
		"phase=" + obj.Status.Phase,
	}
	var conds []string
	for _, c := range obj.Status.Conditions {
		conds = append(conds, fmt.Sprintf("%s=%s/%s", c.Type, c.Status, c.Reason))
	}
	slices.Sort(conds)
	return append(shape, conds...)
}

// stableTimes replaces every timestamp with one fixed time.
func stableTimes(v any) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok {
				if _, err := time.Parse(time.RFC3339, s); err == nil {
					v[k] = "2026-01-01T00:00:00Z"
				}
				continue
			}
			stableTimes(x)
		}
	case []any:
		for _, x := range v {
			stableTimes(x)
		}
	}
}
