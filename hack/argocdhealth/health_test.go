package argocdhealth

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	lua "github.com/yuin/gopher-lua"
	"sigs.k8s.io/yaml"
)

const dir = "../../config/argocd"

// healthStatus is what a health script returns, as Argo CD reads it.
type healthStatus struct {
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
}

// healthTests is health_test.yaml, in Argo CD's format.
type healthTests struct {
	Tests []struct {
		HealthStatus healthStatus `json:"healthStatus"`
		InputPath    string       `json:"inputPath"`
	} `json:"tests"`
}

func TestHealthScript(t *testing.T) {
	script, err := os.ReadFile(filepath.Join(dir, "health.lua"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "health_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cases healthTests
	if err := yaml.UnmarshalStrict(raw, &cases); err != nil {
		t.Fatalf("health_test.yaml: %v", err)
	}
	if len(cases.Tests) == 0 {
		t.Fatal("health_test.yaml lists no tests")
	}
	tested := map[string]bool{}
	for _, tc := range cases.Tests {
		tested[filepath.Clean(tc.InputPath)] = true
		t.Run(tc.InputPath, func(t *testing.T) {
			obj := readObject(t, filepath.Join(dir, tc.InputPath))
			got, err := runHealth(string(script), obj)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.HealthStatus, got); diff != "" {
				t.Errorf("health (-want +got):\n%s", diff)
			}
		})
	}

	// Every object in testdata is a case.
	files, err := filepath.Glob(filepath.Join(dir, "testdata", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		rel := filepath.Join("testdata", filepath.Base(f))
		if !tested[rel] {
			t.Errorf("%s is in no case of health_test.yaml", rel)
		}
	}
}

// The script on objects the testdata does not hold: ones Argo CD sees before
// a controller has written to them or after their spec changed, and the
// informational conditions that must not change the health.
func TestHealthScriptRules(t *testing.T) {
	script, err := os.ReadFile(filepath.Join(dir, "health.lua"))
	if err != nil {
		t.Fatal(err)
	}
	readyGen1 := map[string]any{"type": "Ready", "status": "True", "reason": "Provisioned", "message": "Ready.", "observedGeneration": float64(1)}
	cases := []struct {
		name string
		obj  map[string]any
		want healthStatus
	}{
		{
			name: "no status",
			obj:  map[string]any{"kind": "User", "metadata": map[string]any{"generation": float64(1)}},
			want: healthStatus{Status: "Progressing", Message: "Waiting for the User to be observed"},
		},
		{
			name: "spec changed since observed",
			obj: map[string]any{"kind": "Group", "metadata": map[string]any{"generation": float64(2)},
				"status": map[string]any{"observedGeneration": float64(1), "conditions": []any{readyGen1}}},
			want: healthStatus{Status: "Progressing", Message: "Waiting for the Group to be observed"},
		},
		{
			name: "ready for the current generation",
			obj: map[string]any{"kind": "Group", "metadata": map[string]any{"generation": float64(1)},
				"status": map[string]any{"observedGeneration": float64(1), "conditions": []any{readyGen1}}},
			want: healthStatus{Status: "Healthy", Message: "Ready."},
		},
		{
			name: "a User whose invitation mail fails stays Healthy",
			obj: map[string]any{"kind": "User", "metadata": map[string]any{"generation": float64(1)},
				"status": map[string]any{"observedGeneration": float64(1), "phase": "Pending", "conditions": []any{
					readyGen1,
					map[string]any{"type": "Invitation", "status": "False", "reason": "SendFailed", "message": "The invitation could not be sent.", "observedGeneration": float64(1)},
				}}},
			want: healthStatus{Status: "Healthy", Message: "Ready."},
		},
		{
			name: "an IdentityStore that does not enforce deactivation stays Healthy",
			obj: map[string]any{"kind": "IdentityStore", "metadata": map[string]any{"generation": float64(1)},
				"status": map[string]any{"observedGeneration": float64(1), "conditions": []any{
					readyGen1,
					map[string]any{"type": "DeactivationEnforced", "status": "False", "reason": "NotEnforcedByStore", "message": "Deactivated users can still log in.", "observedGeneration": float64(1)},
				}}},
			want: healthStatus{Status: "Healthy", Message: "Ready."},
		},
		{
			name: "a finished import whose Ready condition is for an older spec",
			obj: map[string]any{"kind": "UserImport", "metadata": map[string]any{"generation": float64(2)},
				"status": map[string]any{"phase": "Succeeded", "conditions": []any{readyGen1}}},
			want: healthStatus{Status: "Progressing", Message: "Waiting for the UserImport to be observed"},
		},
		{
			name: "no Ready condition yet",
			obj: map[string]any{"kind": "IdentityStore", "metadata": map[string]any{"generation": float64(1)},
				"status": map[string]any{"observedGeneration": float64(1), "conditions": []any{}}},
			want: healthStatus{Status: "Progressing", Message: "Waiting for the IdentityStore to be Ready"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := runHealth(string(script), tc.obj)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("health (-want +got):\n%s", diff)
			}
		})
	}
}

// docs/gitops.md quotes the script in its argocd-cm example; the quote must
// be the script.
func TestDocsQuoteTheScript(t *testing.T) {
	script, err := os.ReadFile(filepath.Join(dir, "health.lua"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../../docs/gitops.md")
	if err != nil {
		t.Fatal(err)
	}
	const marker = "      health.lua: |\n"
	_, quoted, ok := strings.Cut(string(doc), marker)
	if !ok {
		t.Fatalf("docs/gitops.md has no %q", marker)
	}
	quoted, _, _ = strings.Cut(quoted, "```")
	var lines []string
	for line := range strings.Lines(quoted) {
		lines = append(lines, strings.TrimPrefix(line, "        "))
	}
	if diff := cmp.Diff(string(script), strings.Join(lines, "")); diff != "" {
		t.Errorf("docs/gitops.md quotes another script (-health.lua +quoted):\n%s", diff)
	}
}

func readObject(t *testing.T, path string) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	obj := map[string]any{}
	// Through JSON, as Argo CD's objects are: numbers become float64.
	if err := yaml.Unmarshal(raw, &obj); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return obj
}

// runHealth runs a health script on obj in a state like Argo CD's: only the
// base, table and package libraries (no io, no os, not even string), obj as
// a global, and a one second limit.
func runHealth(script string, obj map[string]any) (healthStatus, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return healthStatus{}, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(script); err != nil {
		return healthStatus{}, err
	}
	ret, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return healthStatus{}, fmt.Errorf("the script returned %s, not a table", l.Get(-1).Type())
	}
	return fromLua(ret)
}

// toLua converts a decoded JSON value as Argo CD's util/lua decodeValue does.
func toLua(l *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case json.Number:
		return lua.LString(v)
	case []any:
		arr := l.CreateTable(len(v), 0)
		for _, item := range v {
			arr.Append(toLua(l, item))
		}
		return arr
	case map[string]any:
		tbl := l.CreateTable(0, len(v))
		for k, item := range v {
			tbl.RawSetH(lua.LString(k), toLua(l, item))
		}
		return tbl
	}
	return lua.LNil
}

// fromLua reads the returned table as Argo CD does: through JSON.
func fromLua(t *lua.LTable) (healthStatus, error) {
	m := map[string]any{}
	var err error
	t.ForEach(func(k, v lua.LValue) {
		key, ok := k.(lua.LString)
		if !ok {
			err = fmt.Errorf("the returned table has a key of type %s", k.Type())
			return
		}
		s, ok := v.(lua.LString)
		if !ok {
			err = fmt.Errorf("%s is a %s, not a string", key, v.Type())
			return
		}
		m[string(key)] = string(s)
	})
	if err != nil {
		return healthStatus{}, err
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return healthStatus{}, err
	}
	var hs healthStatus
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&hs); err != nil {
		return healthStatus{}, err
	}
	return hs, nil
}
