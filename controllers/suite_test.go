package controllers_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"roster.dev/roster/controllers/controllerstest"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/controllers"
	"roster.dev/roster/internal/invitation"
	"roster.dev/roster/internal/mail/mailtest"
	"roster.dev/roster/internal/store"
	"roster.dev/roster/internal/store/embedded"
	"roster.dev/roster/internal/testenv"
)

// The suite runs one control plane and one manager; each test works in a
// namespace of its own, so counters are kept per namespace.
var (
	k8s              client.Client // reads straight from the API server
	importReconciler *controllers.UserImportReconciler
	reconcilers      *controllers.Reconcilers
	registry         = prometheus.NewRegistry() // the manager's metrics
	restCfg          *rest.Config               // the suite's admin connection
	importTLS        *httptest.Server
	importFiles      sync.Map // path -> []byte or http.HandlerFunc served by importTLS
	backend          *faultyStore
	emb              *embedded.Store
	storeMetrics     *store.Metrics
	linkMetrics      *invitation.Metrics
	apiWrites        = newCounter()
	passes           = newCounter()
	groupPasses      = newCounter()

	smtpServer *mailtest.Server // receives every email the suite sends
	webURL     string           // where the invitation and password pages are
	logs       = &syncBuffer{}  // everything the manager logged
)

// statusMembersLimit is the suite's cap on a Group's status.members, low so
// that the large group test shows the truncation.
const statusMembersLimit = 500

const defaultRole = "Member"

// linksPerHour is the suite's cap on emails of a purpose per User and hour.
const linksPerHour = 3

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	ctrl.SetLogger(zap.New(zap.WriteTo(io.MultiWriter(os.Stderr, logs)), zap.UseDevMode(true)))
	env, cfg, err := testenv.Start()
	restCfg = cfg
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = env.Stop() }()

	scheme := testenv.Scheme()
	if k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	dir, err := os.MkdirTemp("", "roster-store-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	emb, err = embedded.Open(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer emb.Close()
	backend = &faultyStore{Store: emb}
	storeMetrics = store.NewMetrics(prometheus.NewRegistry())

	mgr, err := controllerstest.NewManager(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	// Emails go through a real SMTP conversation (STARTTLS, AUTH PLAIN) to
	// a server in this process, and the pages listen on a loopback port.
	inv, err := controllerstest.NewInvitations()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer inv.Close()
	smtpServer, webURL, linkMetrics = inv.SMTP, inv.URL, inv.Config.Metrics
	inv.Config.RequestsPerHour = linksPerHour

	importTLS = httptest.NewTLSServer(http.HandlerFunc(serveImportFile))
	defer importTLS.Close()
	reconcilers, err = controllers.Setup(mgr, controllers.Deps{
		Namespace:         controllerstest.OperatorNamespace,
		OpenStore:         controllerstest.StoreOpener(backend),
		StoreMetrics:      storeMetrics,
		StoreCheckPeriod:  time.Second,
		Client:            countingClient(mgr.GetClient()),
		Registry:          registry,
		DefaultRole:       defaultRole,
		ResyncPeriod:      time.Second,
		UserConcurrency:   4,
		GroupConcurrency:  2,
		ImportConcurrency: 2,
		ImportWorkers:     8,
		MaxStatusMembers:  statusMembersLimit,
		Invitations:       inv.Config,
		Pages:             inv.Pages,
		ImportSource: controllers.SourceLoader{
			// importTLS listens on loopback: the only address the suite
			// lets url sources dial. The store's rule lists it as the one
			// importURLHost.
			AllowAddr: netip.Addr.IsLoopback,
			RootCAs:   importTLS.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs,
			MaxBytes:  8 << 20,
			TempDir:   dir,
		},
		// Objects in namespaces starting with "manual-" are left to the
		// test, which drives the import reconciler itself to interrupt it.
		Only: predicate.NewPredicateFuncs(func(o client.Object) bool { return !strings.HasPrefix(o.GetNamespace(), "manual-") }),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	importReconciler = reconcilers.Import
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
			os.Exit(1)
		}
	}()
	// The store every test uses: the default, named after its kind.
	ids := controllerstest.EmbeddedDefault("embedded")
	ids.Spec.Tenants[0].ImportURLHosts = []string{importTLS.Listener.Addr().String()}
	if err := controllerstest.CreateStore(ctx, k8s, ids, time.Minute); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// counter counts by namespace.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func newCounter() *counter { return &counter{n: map[string]int{}} }

func (c *counter) add(ns string) {
	c.mu.Lock()
	c.n[ns]++
	c.mu.Unlock()
}

func (c *counter) get(ns string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[ns]
}

// noWatch lets the manager's cached client be wrapped by an interceptor;
// reconcilers never watch through their client.
type noWatch struct{ client.Client }

func (noWatch) Watch(context.Context, client.ObjectList, ...client.ListOption) (watch.Interface, error) {
	return nil, errors.New("watch is not supported")
}

// countingClient counts every write the reconciler makes to the API server.
func countingClient(c client.Client) client.Client {
	return interceptor.NewClient(noWatch{c}, interceptor.Funcs{
		// Every reconcile pass starts by getting its object: Users and
		// Groups are counted apart (a User pass also gets the Groups its
		// spec.groups names, so only count Groups in namespaces without).
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			switch obj.(type) {
			case *v1alpha1.User:
				passes.add(key.Namespace)
			case *v1alpha1.Group:
				groupPasses.add(key.Namespace)
			}
			return c.Get(ctx, key, obj, opts...)
		},
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			apiWrites.add(obj.GetNamespace())
			return c.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			apiWrites.add(obj.GetNamespace())
			return c.Update(ctx, obj, opts...)
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, p client.Patch, opts ...client.PatchOption) error {
			apiWrites.add(obj.GetNamespace())
			return c.Patch(ctx, obj, p, opts...)
		},
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			apiWrites.add(obj.GetNamespace())
			return c.Delete(ctx, obj, opts...)
		},
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			apiWrites.add(obj.GetNamespace())
			return c.SubResource(sub).Update(ctx, obj, opts...)
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
			apiWrites.add(obj.GetNamespace())
			return c.SubResource(sub).Patch(ctx, obj, p, opts...)
		},
	})
}

// faultyStore is the real embedded store with a switch that makes every call
// fail as an unreachable store would, one that makes it a store without
// passwords, and one that makes it reject creating users with some
// addresses for good, as a SCIM service answering 400 would.
type faultyStore struct {
	store.Store
	mu          sync.Mutex
	down        bool
	noPasswords bool
	rejected    map[string]int   // email -> CreateUser calls rejected
	refusals    map[string]error // store ID -> SetPassword's answer
}

// refusePasswords makes SetPassword of the store user answer err; nil
// lifts it.
func (f *faultyStore) refusePasswords(id string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refusals == nil {
		f.refusals = map[string]error{}
	}
	if err != nil {
		f.refusals[id] = err
	} else {
		delete(f.refusals, id)
	}
}

// rejectCreate makes CreateUser reject the address with store.ErrRejected.
func (f *faultyStore) rejectCreate(email string, on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rejected == nil {
		f.rejected = map[string]int{}
	}
	if on {
		f.rejected[email] = 0
	} else {
		delete(f.rejected, email)
	}
}

// rejectedCreates is how many times CreateUser rejected the address.
func (f *faultyStore) rejectedCreates(email string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rejected[email]
}

func (f *faultyStore) setNoPasswords(on bool) {
	f.mu.Lock()
	f.noPasswords = on
	f.mu.Unlock()
}

func (f *faultyStore) Capabilities() store.Capabilities {
	f.mu.Lock()
	defer f.mu.Unlock()
	caps := f.Store.Capabilities()
	if f.noPasswords {
		caps.Passwords = false
	}
	return caps
}

func (f *faultyStore) SetPassword(ctx context.Context, id, password string) error {
	if err := f.err(); err != nil {
		return err
	}
	if !f.Capabilities().Passwords {
		return store.ErrPasswordsUnsupported
	}
	f.mu.Lock()
	refusal := f.refusals[id]
	f.mu.Unlock()
	if refusal != nil {
		return refusal
	}
	return f.Store.SetPassword(ctx, id, password)
}

func (f *faultyStore) setDown(down bool) {
	f.mu.Lock()
	f.down = down
	f.mu.Unlock()
}

func (f *faultyStore) err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return fmt.Errorf("connection refused: %w", store.ErrUnavailable)
	}
	return nil
}

func (f *faultyStore) GetUser(ctx context.Context, id string) (store.User, error) {
	if err := f.err(); err != nil {
		return store.User{}, err
	}
	return f.Store.GetUser(ctx, id)
}

func (f *faultyStore) FindUserByEmail(ctx context.Context, email string) (store.User, error) {
	if err := f.err(); err != nil {
		return store.User{}, err
	}
	return f.Store.FindUserByEmail(ctx, email)
}

func (f *faultyStore) CreateUser(ctx context.Context, u store.User) (store.User, error) {
	if err := f.err(); err != nil {
		return store.User{}, err
	}
	f.mu.Lock()
	n, reject := f.rejected[u.Email]
	if reject {
		f.rejected[u.Email] = n + 1
	}
	f.mu.Unlock()
	if reject {
		return store.User{}, fmt.Errorf("%w: scim POST /Users: 400 Bad Request (invalidValue): title exceeds 64 characters", store.ErrRejected)
	}
	return f.Store.CreateUser(ctx, u)
}

func (f *faultyStore) UpdateUser(ctx context.Context, id string, u store.UserUpdate) (store.User, error) {
	if err := f.err(); err != nil {
		return store.User{}, err
	}
	return f.Store.UpdateUser(ctx, id, u)
}

func (f *faultyStore) DeleteUser(ctx context.Context, id string) error {
	if err := f.err(); err != nil {
		return err
	}
	return f.Store.DeleteUser(ctx, id)
}

// serveImportFile serves what a test stored in importFiles: the bytes of a
// file, or a handler that misbehaves as a test needs.
func serveImportFile(w http.ResponseWriter, r *http.Request) {
	v, ok := importFiles.Load(r.URL.Path)
	if !ok {
		http.NotFound(w, r)
		return
	}
	switch v := v.(type) {
	case http.HandlerFunc:
		v(w, r)
	case []byte:
		_, _ = w.Write(v)
	}
}

// syncBuffer is a bytes.Buffer safe for the manager's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (f *faultyStore) GetGroup(ctx context.Context, id string) (store.Group, error) {
	if err := f.err(); err != nil {
		return store.Group{}, err
	}
	return f.Store.GetGroup(ctx, id)
}

func (f *faultyStore) FindGroupByName(ctx context.Context, name string) (store.Group, error) {
	if err := f.err(); err != nil {
		return store.Group{}, err
	}
	return f.Store.FindGroupByName(ctx, name)
}

func (f *faultyStore) CreateGroup(ctx context.Context, g store.Group, members []string) (store.Group, error) {
	if err := f.err(); err != nil {
		return store.Group{}, err
	}
	return f.Store.CreateGroup(ctx, g, members)
}

func (f *faultyStore) UpdateGroup(ctx context.Context, id string, u store.GroupUpdate) (store.Group, error) {
	if err := f.err(); err != nil {
		return store.Group{}, err
	}
	return f.Store.UpdateGroup(ctx, id, u)
}

func (f *faultyStore) ListGroupMembers(ctx context.Context, id string) ([]string, error) {
	if err := f.err(); err != nil {
		return nil, err
	}
	return f.Store.ListGroupMembers(ctx, id)
}

func (f *faultyStore) UpdateGroupMembers(ctx context.Context, id string, diff store.MemberDiff) error {
	if err := f.err(); err != nil {
		return err
	}
	return f.Store.UpdateGroupMembers(ctx, id, diff)
}

func (f *faultyStore) DeleteGroup(ctx context.Context, id string) error {
	if err := f.err(); err != nil {
		return err
	}
	return f.Store.DeleteGroup(ctx, id)
}

// newNamespace creates a namespace for one test.
func newNamespace(t *testing.T) string {
	t.Helper()
	return newNamespaceNamed(t, "test-")
}

// newNamespaceNamed creates a namespace whose name starts with prefix.
func newNamespaceNamed(t *testing.T, prefix string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix}}
	if err := k8s.Create(t.Context(), ns); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	return ns.Name
}
