// Package testenv starts a real control plane (kube-apiserver and etcd built
// by hack/build-control-plane.sh) with Roster's CRDs installed, for
// integration tests and benchmarks.
package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	eventsv1 "k8s.io/api/events/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"roster.dev/roster/api/v1alpha1"
)

// KubeVersion is the control plane version the project builds and tests with.
const KubeVersion = "1.37.0"

// RepoRoot returns the folder holding go.mod, searching up from the working
// directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// Assets returns the folder holding kube-apiserver and etcd: KUBEBUILDER_ASSETS
// when set, else the project's build cache.
func Assets() (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(root, "bin", "k8s", fmt.Sprintf("%s-%s-%s", KubeVersion, runtime.GOOS, runtime.GOARCH))
	if _, err := os.Stat(filepath.Join(dir, "kube-apiserver")); err != nil {
		return "", fmt.Errorf("no control plane binaries in %s: run hack/build-control-plane.sh (make test does)", dir)
	}
	return dir, nil
}

// Start starts a control plane with the CRDs of config/crd/bases installed.
// Call Stop on the returned environment when done.
func Start() (*envtest.Environment, *rest.Config, error) {
	return start(&envtest.Environment{})
}

// StartRestartable is Start with the API server's certificates and keys
// kept in certDir rather than in a folder removed when the API server stops,
// so that env.ControlPlane.APIServer can be stopped and started again: it
// comes back on the same port with the same certificates, and clients made
// before the restart keep working.
func StartRestartable(certDir string) (*envtest.Environment, *rest.Config, error) {
	api := &envtest.APIServer{CertDir: certDir}
	// A graceful stop waits for open requests up to the request timeout,
	// a minute by default, which only makes a test wait.
	api.Configure().Set("request-timeout", "10s")
	return start(&envtest.Environment{
		ControlPlane: envtest.ControlPlane{APIServer: api},
		// A graceful stop waits for requests in flight; envtest's 20 s
		// default can be too short on a loaded machine.
		ControlPlaneStopTimeout: 2 * time.Minute,
	})
}

func start(env *envtest.Environment) (*envtest.Environment, *rest.Config, error) {
	assets, err := Assets()
	if err != nil {
		return nil, nil, err
	}
	root, err := RepoRoot()
	if err != nil {
		return nil, nil, err
	}
	env.BinaryAssetsDirectory = assets
	env.CRDDirectoryPaths = []string{filepath.Join(root, "config", "crd", "bases")}
	env.ErrorIfCRDPathMissing = true
	cfg, err := env.Start()
	if err != nil {
		return nil, nil, fmt.Errorf("starting the control plane: %w", err)
	}
	return env, cfg, nil
}

// StartWithNamespace starts a control plane for the test, stopped when it
// ends, and returns a client of Roster's scheme with the namespace created.
func StartWithNamespace(t testing.TB, namespace string) (client.Client, *rest.Config) {
	t.Helper()
	env, cfg, err := Start()
	if err != nil {
		t.Fatalf("starting the control plane: %v", err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	c, err := client.New(cfg, client.Options{Scheme: Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil {
		t.Fatal(err)
	}
	return c, cfg
}

// Scheme returns a scheme with the Kubernetes built-in kinds and Roster's.
func Scheme() *kruntime.Scheme {
	s := kruntime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(v1alpha1.AddToScheme(s))
	return s
}

// EventReasons lists the reasons of the events about the named object in
// the namespace, a reason once for each time a repeated event was counted.
func EventReasons(ctx context.Context, c client.Reader, namespace, name string) ([]string, error) {
	var list eventsv1.EventList
	if err := c.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		return nil, fmt.Errorf("listing events: %w", err)
	}
	var reasons []string
	for _, e := range list.Items {
		if e.Regarding.Name != name {
			continue
		}
		// A repeated event is one object counting its series.
		n := 1
		if e.Series != nil {
			n = max(1, int(e.Series.Count))
		}
		for range n {
			reasons = append(reasons, e.Reason)
		}
	}
	return reasons, nil
}
