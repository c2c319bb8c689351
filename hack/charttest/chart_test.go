// Package charttest checks the Helm chart in charts/roster: it lints,
// renders, matches what `kubectl apply -k config/default` and config/stores
// install, and the API server accepts every object it renders.
package charttest

import (
	"context"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"helm.sh/helm/v4/pkg/chart/common"
	chartutil "helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"roster.dev/roster/internal/testenv"
)

const chartDir = "../../charts/roster"

// render renders the chart with the values layered over its defaults, into
// release namespace roster-system, and returns the objects.
func render(t *testing.T, values map[string]any) []*unstructured.Unstructured {
	t.Helper()
	chrt, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("loading the chart: %v", err)
	}
	vals, err := chartutil.ToRenderValues(chrt, values, common.ReleaseOptions{Name: "roster", Namespace: "roster-system", IsInstall: true}, common.DefaultCapabilities)
	if err != nil {
		t.Fatalf("values: %v", err)
	}
	files, err := engine.Render(chrt, vals)
	if err != nil {
		t.Fatalf("rendering: %v", err)
	}
	var out []*unstructured.Unstructured
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if strings.HasSuffix(name, "NOTES.txt") || strings.HasSuffix(name, ".tpl") {
			continue
		}
		out = append(out, decode(t, files[name])...)
	}
	for _, c := range chrt.CRDObjects() {
		out = append(out, decode(t, string(c.File.Data))...)
	}
	return out
}

func decode(t *testing.T, docs string) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for _, doc := range strings.Split(docs, "\n---") {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
			t.Fatalf("decoding %q: %v", doc, err)
		}
		if len(m) > 0 {
			out = append(out, &unstructured.Unstructured{Object: m})
		}
	}
	return out
}

func key(o *unstructured.Unstructured) string { return o.GetKind() + "/" + o.GetName() }

func TestChartLints(t *testing.T) {
	res := lint.RunAll(chartDir, nil, "roster-system")
	for _, m := range res.Messages {
		t.Log(m)
	}
	if res.HighestSeverity >= support.WarningSev {
		t.Errorf("helm lint found problems (see the log)")
	}
}

// Every object carries the app.kubernetes.io labels and the image is the
// release, never latest.
func TestChartLabelsAndImage(t *testing.T) {
	for _, o := range render(t, nil) {
		if o.GetKind() == "CustomResourceDefinition" {
			continue
		}
		for _, l := range []string{"app.kubernetes.io/name", "app.kubernetes.io/part-of", "app.kubernetes.io/managed-by"} {
			if o.GetLabels()[l] == "" {
				t.Errorf("%s has no %s label", key(o), l)
			}
		}
		if o.GetKind() == "Deployment" {
			containers, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
			image := containers[0].(map[string]any)["image"].(string)
			if !strings.HasSuffix(image, ":v0.1.0") {
				t.Errorf("the manager's image is %s, not the release", image)
			}
		}
	}
}

// The chart installs what config/default and config/stores install: the
// same objects (but the namespace, which Helm's release namespace is), the
// same RBAC rules, the same CRDs and the same manager.
func TestChartMatchesTheKustomizeInstall(t *testing.T) {
	var kust []*unstructured.Unstructured
	for _, dir := range []string{"../../config/default", "../../config/stores"} {
		out, err := exec.Command("kubectl", "kustomize", dir).Output()
		if err != nil {
			t.Skipf("kubectl kustomize %s: %v", dir, err)
		}
		kust = append(kust, decode(t, string(out))...)
	}
	chart := map[string]*unstructured.Unstructured{}
	for _, o := range render(t, nil) {
		chart[key(o)] = o
	}
	var missing []string
	for _, k := range kust {
		if k.GetKind() == "Namespace" {
			continue // Helm installs into the release namespace
		}
		c, ok := chart[key(k)]
		if !ok {
			missing = append(missing, key(k))
			continue
		}
		for _, field := range [][]string{{"rules"}, {"spec", "versions"}, {"spec", "template", "spec", "containers"}, {"spec", "tenants"}, {"roleRef"}} {
			kv, _, _ := unstructured.NestedFieldNoCopy(k.Object, field...)
			cv, _, _ := unstructured.NestedFieldNoCopy(c.Object, field...)
			if diff := cmp.Diff(kv, cv); diff != "" {
				t.Errorf("%s %s differs (-kustomize +chart):\n%s", key(k), strings.Join(field, "."), diff)
			}
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("the chart lacks %v", missing)
	}
}

// More than one replica gets a PodDisruptionBudget, and is refused while a
// store is embedded; NetworkPolicy and ServiceMonitor follow their values.
func TestChartOptions(t *testing.T) {
	kinds := func(objs []*unstructured.Unstructured) []string {
		var out []string
		for _, o := range objs {
			out = append(out, o.GetKind())
		}
		return out
	}
	ldapOnly := map[string]any{"replicas": 2, "stores": map[string]any{"default": nil, "corp": map[string]any{
		"default": true, "ldap": map[string]any{"url": "ldaps://ldap.example.com", "bindDN": "cn=roster", "usersDN": "ou=people", "groupsDN": "ou=groups",
			"bindPasswordSecretRef": map[string]any{"name": "corp-ldap", "key": "password"}},
		"tenants": []any{map[string]any{"namespaceSelector": map[string]any{}, "emailDomains": []any{"*"}, "roles": []any{"Member"}}},
	}}, "networkPolicy": map[string]any{"enabled": true}, "serviceMonitor": map[string]any{"enabled": true}}
	got := kinds(render(t, ldapOnly))
	for _, want := range []string{"PodDisruptionBudget", "NetworkPolicy", "ServiceMonitor"} {
		if !slices.Contains(got, want) {
			t.Errorf("with replicas 2 and both options on, no %s among %v", want, got)
		}
	}
	if slices.Contains(kinds(render(t, nil)), "PodDisruptionBudget") {
		t.Error("one replica got a PodDisruptionBudget")
	}

	mailCA := map[string]any{"smtp": map[string]any{"url": "smtp://roster@mail.example.com", "caConfigMap": map[string]any{"name": "mail-ca"}}}
	for _, o := range render(t, mailCA) {
		if o.GetKind() != "Deployment" {
			continue
		}
		containers, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
		args, _, _ := unstructured.NestedStringSlice(containers[0].(map[string]any), "args")
		if !slices.Contains(args, "--smtp-ca-file=/etc/roster/smtp-ca/ca.crt") {
			t.Errorf("with smtp.caConfigMap the manager's args are %v, without --smtp-ca-file", args)
		}
		volumes, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "volumes")
		found := false
		for _, v := range volumes {
			name, _, _ := unstructured.NestedString(v.(map[string]any), "configMap", "name")
			found = found || name == "mail-ca"
		}
		if !found {
			t.Errorf("with smtp.caConfigMap no volume mounts the ConfigMap mail-ca: %v", volumes)
		}
	}

	chrt, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	vals, err := chartutil.ToRenderValues(chrt, map[string]any{"replicas": 2}, common.ReleaseOptions{Name: "roster", Namespace: "roster-system"}, common.DefaultCapabilities)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := engine.Render(chrt, vals); err == nil || !strings.Contains(err.Error(), "replicas must be 1") {
		t.Errorf("two replicas with an embedded store rendered: %v", err)
	}
}

// The API server accepts every object the chart renders (server-side dry
// run), CRDs first, as `helm template charts/roster | kubectl apply
// --dry-run=server -f -` would.
func TestChartAppliesToTheAPIServer(t *testing.T) {
	c, _ := testenv.StartWithNamespace(t, "roster-system")
	ctx := context.Background()
	objs := render(t, nil)
	sort.SliceStable(objs, func(i, j int) bool {
		return objs[i].GetKind() == "CustomResourceDefinition" && objs[j].GetKind() != "CustomResourceDefinition"
	})
	for _, o := range objs {
		if o.GetKind() == "ServiceMonitor" {
			continue // the Prometheus Operator's CRD is not installed here
		}
		o.SetManagedFields(nil)
		err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(o), client.FieldOwner("charttest"), client.ForceOwnership, client.DryRunAll)
		if err != nil {
			t.Errorf("applying %s: %v", key(o), err)
		}
	}
}
