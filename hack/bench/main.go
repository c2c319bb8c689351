// Command bench measures how fast Roster turns an N-row import into N
// Invited Users, against the floor set by a lean client doing the same work
// by hand (create each User, write it to the store when the store is a
// server, write its status once), and the manager's peak memory. With
// -store ldap the Users go into a throwaway slapd; with -store scim into the
// SCIM peer at a rate limit, and the figure is how much of the rate Roster
// uses. make bench runs all three.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/internal/chunks"
	"roster.dev/roster/internal/testenv"
)

type options struct {
	users   int
	workers int
	manager string
	timeout time.Duration
	// heapProfile, when set, receives the manager's heap profile at the end.
	heapProfile string
	// cpuProfile, when set, receives a CPU profile of the manager taken
	// over the first cpuSeconds of the import.
	cpuProfile string
	cpuSeconds int
	// managerArgs are further flags for the manager.
	managerArgs string
	// floorEvents makes the lean client also record the event that Roster
	// records for each store write, so that both make the same API writes.
	floorEvents bool
	// skipFloor measures only Roster (for memory at large N).
	skipFloor bool
	// goMemLimit, when set, is the manager's GOMEMLIMIT, as the Deployment
	// sets it from the container's memory limit.
	goMemLimit string
	// store is the backend measured: embedded, ldap or scim.
	store string
	// scimRate is the SCIM store's rate limit in requests per second, set in
	// Roster's store config and enforced by the peer.
	scimRate float64
	// phases measures, after the import, a new User's latency (idle and
	// during a second import), a restart and a drift pass.
	phases bool
	// invitations imports with sendInvitations, and waits until every
	// User's invitation is sent (to the manager's outbox folder).
	invitations bool
}

func main() {
	o := options{}
	flag.IntVar(&o.users, "n", 10000, "users to create")
	flag.IntVar(&o.workers, "workers", 16, "concurrent requests of the lean client")
	flag.StringVar(&o.manager, "manager", "bin/manager", "the manager binary")
	flag.DurationVar(&o.timeout, "timeout", 30*time.Minute, "give up after this long")
	flag.StringVar(&o.heapProfile, "heap-profile", "", "save the manager's heap profile to this file at the end")
	flag.StringVar(&o.cpuProfile, "cpu-profile", "", "save a CPU profile of the manager during the import to this file")
	flag.IntVar(&o.cpuSeconds, "cpu-seconds", 20, "with -cpu-profile, how many seconds of the import it covers")
	flag.BoolVar(&o.floorEvents, "floor-events", true, "the lean client also records an event per User, as Roster must for each store write; false for the bare floor")
	flag.StringVar(&o.managerArgs, "manager-args", "", "further flags for the manager, separated by spaces (for example --user-concurrency=16)")
	flag.BoolVar(&o.skipFloor, "skip-floor", false, "measure only the import (for the memory figure at large N)")
	flag.StringVar(&o.goMemLimit, "gomemlimit", "", "run the manager with this GOMEMLIMIT (for example 230MiB)")
	flag.StringVar(&o.store, "store", "embedded", "the store to measure: embedded, ldap (a throwaway slapd) or scim (the SCIM peer at -scim-rate)")
	flag.Float64Var(&o.scimRate, "scim-rate", 25, "with -store scim, the rate limit in requests per second")
	flag.BoolVar(&o.phases, "phases", false, "after the import, measure a new User's latency (idle, and during a second import of min(N, 10000)), a restart and a drift pass")
	flag.BoolVar(&o.invitations, "invitations", false, "import with sendInvitations and wait until every invitation is sent (the floor sends none)")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

func run(o options) error {
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	dir, err := os.MkdirTemp("", "roster-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	backend, err := openBackend(o, dir)
	if err != nil {
		return err
	}
	defer backend.close()

	env, cfg, err := testenv.Start()
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()

	lean := rest.CopyConfig(cfg)
	lean.QPS, lean.Burst = -1, 0 // no client-side throttling: the floor is the API server
	scheme := testenv.Scheme()
	c, err := client.NewWithWatch(lean, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}

	fmt.Printf("Roster bench: N=%d users, %s store, lean client with %d workers, kube-apiserver %s\n", o.users, backend.describe, o.workers, testenv.KubeVersion)
	if o.goMemLimit != "" {
		fmt.Printf("  manager runs with GOMEMLIMIT=%s\n", o.goMemLimit)
	}
	if o.invitations {
		fmt.Printf("  the import sends invitations: done when every User is Invited with its invitation sent\n")
	}
	var floor time.Duration
	if !o.skipFloor && backend.floorWrite != nil {
		if err := backend.floorStoreOnly(ctx, o); err != nil {
			return fmt.Errorf("lean store client: %w", err)
		}
	}
	if !o.skipFloor && !backend.noFloor {
		if floor, err = leanFloor(ctx, c, o, backend); err != nil {
			return fmt.Errorf("lean floor: %w", err)
		}
		steps := backend.floorSteps
		if o.floorEvents {
			steps = append(slices.Clone(steps), "event")
		}
		work := "(lean client: " + strings.Join(steps, " + ") + " per User)"
		fmt.Printf("  %-8s%-66s%8.1fs  %6.0f users/s\n", "floor", work, floor.Seconds(), float64(o.users)/floor.Seconds())
	}

	// The operator's namespace exists before the manager starts, as in a
	// real install: the web pages write their credentials there at start.
	if err := createNamespace(ctx, c, managerNamespace); err != nil {
		return err
	}
	mgr, err := startManager(ctx, o.manager, dir, env.KubeConfig, o.goMemLimit, managerArgs(o))
	if err != nil {
		return err
	}
	defer func() { mgr.stop() }()
	if err := backend.declareStore(ctx, c); err != nil {
		return fmt.Errorf("declaring the store: %w", err)
	}

	if backend.beforeImport != nil {
		if err := backend.beforeImport(ctx); err != nil {
			return err
		}
	}
	requestsBefore, err := readAPIRequests(ctx, cfg)
	if err != nil {
		return err
	}
	cpuBefore, _ := cpuTime(mgr.cmd.Process.Pid)
	rssPeaks := sampleRSS(ctx, mgr.cmd.Process.Pid)
	profiled := make(chan error, 1)
	if o.cpuProfile != "" {
		go func() {
			profiled <- saveProfile(mgr.pprof, fmt.Sprintf("profile?seconds=%d", o.cpuSeconds), o.cpuProfile)
		}()
	}
	took, err := importAll(ctx, c, o)
	if err != nil {
		return fmt.Errorf("import: %w\n%s", err, mgr.logTail())
	}
	cpuAfter, _ := cpuTime(mgr.cmd.Process.Pid)
	if o.cpuProfile != "" {
		if err := <-profiled; err != nil {
			return err
		}
		fmt.Printf("  CPU profile saved to %s (go tool pprof -top %s)\n", o.cpuProfile, o.cpuProfile)
	}
	requestsAfter, err := readAPIRequests(ctx, cfg)
	if err != nil {
		return err
	}
	rss, _ := peakRSS(mgr.cmd.Process.Pid)
	anon, file := rssPeaks()
	if o.heapProfile != "" {
		// gc=1: what is live now, not what was at the last collection,
		// which may date from the middle of the import.
		if err := saveProfile(mgr.pprof, "heap?gc=1", o.heapProfile); err != nil {
			return err
		}
		fmt.Printf("  heap profile saved to %s (go tool pprof -top %s)\n", o.heapProfile, o.heapProfile)
	}
	fmt.Printf("  %-8s%-66s%8.1fs  %6.0f users/s\n", "roster", "(UserImport of an N-row CSV until all Invited)", took.Seconds(), float64(o.users)/took.Seconds())
	if floor > 0 {
		fmt.Printf("  %-8s%-66s%8.2f\n", "ratio", "roster / floor", took.Seconds()/floor.Seconds())
	}
	requestsAfter.printPerUser(requestsBefore, o.users)
	if backend.afterImport != nil {
		if err := backend.afterImport(ctx, took); err != nil {
			return err
		}
	}
	fmt.Printf("  %-8s%-66s%8.1fs  %6.1f ms per User\n", "manager", "CPU time during the import", (cpuAfter - cpuBefore).Seconds(),
		float64((cpuAfter-cpuBefore).Milliseconds())/float64(o.users))
	fmt.Printf("  %-8s%-66s%8.1f MiB\n", "manager", "peak RSS", float64(rss)/(1<<20))
	fmt.Printf("  %-8s%-66s%8.1f MiB\n", "manager", "  of which anonymous (heap, stacks), peak sampled every 250 ms", float64(anon)/(1<<20))
	fmt.Printf("  %-8s%-66s%8.1f MiB\n", "manager", "  of which file-backed (binary, the embedded store's mapped file)", float64(file)/(1<<20))
	if live, err := liveHeap(mgr); err == nil {
		fmt.Printf("  %-8s%-66s%8.1f MiB  %6.0f bytes per User\n", "manager", "live heap after the import (after a collection)", float64(live)/(1<<20), float64(live)/float64(o.users))
	}
	errs := errorLines(mgr.log.String())
	fmt.Printf("  %-8s%-66s%8d\n", "manager", "errors logged", len(errs))
	for _, line := range errs[:min(3, len(errs))] {
		fmt.Printf("  %-8s%s\n", "", line[:min(300, len(line))])
	}
	if !o.phases {
		return nil
	}
	return measurePhases(ctx, cfg, c, o, dir, env.KubeConfig, &mgr)
}

// managerArgs are the manager's flags beyond startManager's own: -phases
// needs a drift pass within a minute.
func managerArgs(o options) []string {
	args := strings.Fields(o.managerArgs)
	if o.phases {
		args = append(args, "--resync-period=1m")
	}
	return args
}

// measurePhases measures what follows a large import: a person's new User
// while the manager idles with N cached and while a second import runs, a
// restart, and a store-wide drift pass.
func measurePhases(ctx context.Context, cfg *rest.Config, c client.WithWatch, o options, dir string, kubeconfig []byte, mgr **manager) error {
	if err := settle(ctx, cfg, (*mgr).metrics, 5*time.Second); err != nil {
		return err
	}
	idle, err := readyLatencies(ctx, c, "bench-latency", "idle", latencySamples)
	if err != nil {
		return fmt.Errorf("latency while idle: %w\n%s", err, (*mgr).logTail())
	}
	printLatency(fmt.Sprintf("(new User until Ready, %d cached, idle)", o.users), idle, time.Second)

	busyN := min(o.users, 10000)
	busyStart := time.Now()
	if err := startImport(ctx, c, "bench-busy", "second", busyN); err != nil {
		return err
	}
	busy, err := readyLatencies(ctx, c, "bench-latency", "busy", latencySamples)
	if err != nil {
		return fmt.Errorf("latency during an import: %w\n%s", err, (*mgr).logTail())
	}
	printLatency(fmt.Sprintf("(new User until Ready, during an import of %d)", busyN), busy, 5*time.Second)
	if err := waitInvited(ctx, c, "bench-busy", busyN, false); err != nil {
		return err
	}
	fmt.Printf("  %-8s%-66s%8.1fs\n", "import", fmt.Sprintf("(the second import of %d, beside the %d new Users)", busyN, latencySamples), time.Since(busyStart).Seconds())
	total := o.users + busyN + 2*latencySamples

	// The restart a person waits on: until the manager is Ready, and until
	// a User applied at that moment is Ready.
	if err := settle(ctx, cfg, (*mgr).metrics, 5*time.Second); err != nil {
		return err
	}
	(*mgr).stop()
	start := time.Now()
	if *mgr, err = startManager(ctx, o.manager, dir, kubeconfig, o.goMemLimit, managerArgs(o)); err != nil {
		return err
	}
	ready := time.Since(start)
	first := benchUser("bench-restart", 0)
	first.Spec.Email = "first@bench-restart.example.com"
	if err := createNamespace(ctx, c, first.Namespace); err != nil {
		return err
	}
	firstTook, err := applyAndWaitReady(ctx, c, first)
	if err != nil {
		return fmt.Errorf("the first User after the restart: %w\n%s", err, (*mgr).logTail())
	}
	fmt.Printf("  %-8s%-66s%8.1fs\n", "restart", fmt.Sprintf("(start until Ready, %d Users)", total), ready.Seconds())
	fmt.Printf("  %-8s%-66s%8.1fs\n", "restart", "(start until a User applied at Ready is Ready)", (ready + firstTook).Seconds())

	// The restart's own writes: a second restart once everything is
	// settled, with nothing applied around it. The IdentityStore's count of
	// the resources using it is first let catch up (it is recounted at each
	// store check), so that the restart's recount has nothing to change.
	if err := settle(ctx, cfg, (*mgr).metrics, 10*time.Second); err != nil {
		return err
	}
	if err := awaitReferenceCount(ctx, c); err != nil {
		return err
	}
	before, err := readAPIRequests(ctx, cfg)
	if err != nil {
		return err
	}
	statusBefore, err := statuses(ctx, c)
	if err != nil {
		return err
	}
	(*mgr).stop()
	if *mgr, err = startManager(ctx, o.manager, dir, kubeconfig, o.goMemLimit, managerArgs(o)); err != nil {
		return err
	}
	if err := settle(ctx, cfg, (*mgr).metrics, 10*time.Second); err != nil {
		return err
	}
	after, _ := readAPIRequests(ctx, cfg)
	mm, _ := readManagerMetrics((*mgr).metrics)
	_, restartStoreWrites := mm.storeCalls(nil)
	fmt.Printf("  %-8s%-66s%8.0f API, %.0f store  (goal 0)\n", "restart", "(writes a restart of the settled manager caused)",
		after.writesSince(before), restartStoreWrites)
	if b := after.writesBreakdown(before); b != "" {
		fmt.Printf("  %-8s%-66s%s\n", "", "", b)
	}
	if statusAfter, err := statuses(ctx, c); err == nil {
		fmt.Printf("  %-8s%s\n", "", changedStatuses(statusBefore, statusAfter))
	}

	pass, mmAfter, err := awaitDriftPass(ctx, (*mgr).metrics, mm)
	if err != nil {
		return err
	}
	apiPass, _ := readAPIRequests(ctx, cfg)
	reads, writes := mmAfter.storeCalls(mm)
	fmt.Printf("  %-8s%-66s%8.1fs  %.0f store reads, %.0f store writes, %.0f API writes (goal 0 writes)\n", "resync",
		fmt.Sprintf("(a drift pass over %d unchanged Users)", total+1), pass.Seconds(), reads, writes, apiPass.writesSince(after))
	return nil
}

func benchUser(ns string, i int) *v1alpha1.User {
	email := fmt.Sprintf("user%06d@bench.example.com", i)
	return &v1alpha1.User{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("user%06d", i), Finalizers: []string{v1alpha1.Finalizer}},
		Spec:       v1alpha1.UserSpec{Email: email, FirstName: "Bench", LastName: fmt.Sprintf("User%06d", i)},
	}
}

// leanFloor creates N Users, writes each to the store when the backend has
// a lean store client, and writes each one's status once, with a pool of
// workers; then it removes them again, from the store too.
func leanFloor(ctx context.Context, c client.Client, o options, b *backend) (time.Duration, error) {
	ns := "bench-floor"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return 0, err
	}
	start := time.Now()
	err := parallel(ctx, o.users, o.workers, func(i int) error {
		u := benchUser(ns, i)
		if err := c.Create(ctx, u); err != nil {
			return err
		}
		base := u.DeepCopy()
		u.Status.StoreID = strconv.Itoa(i)
		if b.floorWrite != nil {
			id, err := b.floorWrite(ctx, u)
			if err != nil {
				return err
			}
			u.Status.StoreID = id
		}
		u.Status.Phase = v1alpha1.UserInvited
		u.Status.ObservedGeneration = u.Generation
		u.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Provisioned",
			Message: "The user is in the embedded store.", LastTransitionTime: metav1.Now(), ObservedGeneration: u.Generation}}
		if err := c.Status().Patch(ctx, u, client.MergeFrom(base)); err != nil {
			return err
		}
		if !o.floorEvents {
			return nil
		}
		return c.Create(ctx, floorEvent(u))
	})
	took := time.Since(start)
	if err != nil {
		return 0, err
	}
	if b.floorRemove != nil {
		if err := b.floorRemove(ctx, o); err != nil {
			return 0, err
		}
	}
	// Take the floor's Users away again, finalizers first, so the manager
	// starts on an empty cluster.
	err = parallel(ctx, o.users, o.workers, func(i int) error {
		u := benchUser(ns, i)
		return c.Patch(ctx, u, client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"finalizers":null}}`)))
	})
	if err != nil {
		return 0, err
	}
	return took, c.DeleteAllOf(ctx, &v1alpha1.User{}, client.InNamespace(ns))
}

// floorEvent is the event Roster records when it creates the User's store
// user.
func floorEvent(u *v1alpha1.User) *eventsv1.Event {
	return &eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{Namespace: u.Namespace, Name: fmt.Sprintf("%s.%x", u.Name, time.Now().UnixNano())},
		EventTime:           metav1.NewMicroTime(time.Now()),
		ReportingController: "roster", ReportingInstance: "bench",
		Action: "Create", Reason: "Created", Type: corev1.EventTypeNormal,
		Regarding: corev1.ObjectReference{APIVersion: v1alpha1.GroupVersion.String(), Kind: "User", Namespace: u.Namespace, Name: u.Name, UID: u.UID},
		Note:      "Created the user in the store.",
	}
}

func parallel(ctx context.Context, n, workers int, fn func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// importAll imports an N-row CSV and waits until every User is Invited.
func importAll(ctx context.Context, c client.WithWatch, o options) (time.Duration, error) {
	ns := "bench-import"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return 0, err
	}
	var csv bytes.Buffer
	for i := range o.users {
		u := benchUser(ns, i)
		fmt.Fprintf(&csv, "add-user,%s,%s,%s\n", u.Spec.Email, u.Spec.FirstName, u.Spec.LastName)
	}
	if _, err := chunks.Store(ctx, c, ns, "bench-file", "users.csv", csv.Bytes()); err != nil {
		return 0, err
	}
	start := time.Now()
	imp := &v1alpha1.UserImport{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bench"},
		Spec: v1alpha1.UserImportSpec{
			Source:          v1alpha1.ImportSource{ConfigMapRef: &v1alpha1.KeyReference{Name: "bench-file", Key: "users.csv"}},
			SendInvitations: o.invitations,
		},
	}
	if err := c.Create(ctx, imp); err != nil {
		return 0, err
	}
	return took(start, waitInvited(ctx, c, ns, o.users, o.invitations))
}

func took(start time.Time, err error) (time.Duration, error) {
	return time.Since(start), err
}

// waitInvited watches the namespace's Users until n of them are Invited
// (with their invitation sent, when sent is set). A watch costs the API
// server far less than listing thousands of Users again and again; Users
// leaving the selection arrive as deletions.
func waitInvited(ctx context.Context, c client.WithWatch, ns string, n int, sent bool) error {
	invited := map[string]bool{}
	done := 0
	for {
		// Only Invited Users are sent (status.phase is a selectable field), so
		// the watch costs the API server one event per User.
		w, err := c.Watch(ctx, &v1alpha1.UserList{}, client.InNamespace(ns), client.MatchingFields{"status.phase": string(v1alpha1.UserInvited)})
		if err != nil {
			return err
		}
		for ev := range w.ResultChan() {
			u, ok := ev.Object.(*v1alpha1.User)
			if !ok {
				continue
			}
			now := ev.Type != watch.Deleted && u.Status.Phase == v1alpha1.UserInvited
			if sent {
				now = now && u.Status.Invitation != nil && u.Status.Invitation.SentAt != nil
			}
			if now != invited[u.Name] {
				invited[u.Name] = now
				if now {
					done++
				} else {
					done--
				}
			}
			if done >= n {
				w.Stop()
				return nil
			}
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%d of %d Users Invited: %w", done, n, err)
		}
	}
}

type manager struct {
	cmd     *exec.Cmd
	log     *bytes.Buffer
	pprof   string // address of the manager's profiling endpoint
	metrics string // address of its metrics, served over plain HTTP
}

// saveProfile saves the manager's profile of that name (and query).
func saveProfile(addr, name, path string) error {
	resp, err := http.Get("http://" + addr + "/debug/pprof/" + name)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}

func (m *manager) stop() {
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	_ = m.cmd.Wait()
}

// errorLines are the manager's log lines at level error.
func errorLines(log string) []string {
	var out []string
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, `"level":"error"`) {
			out = append(out, line)
		}
	}
	return out
}

func (m *manager) logTail() string {
	lines := strings.Split(strings.TrimSpace(m.log.String()), "\n")
	return strings.Join(lines[max(0, len(lines)-20):], "\n")
}

// startManager runs the manager binary against the control plane and waits
// until it is ready.
func startManager(ctx context.Context, bin, dir string, kubeconfig []byte, goMemLimit string, storeArgs []string) (*manager, error) {
	kc := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kc, kubeconfig, 0o600); err != nil {
		return nil, err
	}
	probe, err := freeAddr()
	if err != nil {
		return nil, err
	}
	web, err := freeAddr()
	if err != nil {
		return nil, err
	}
	pprof, err := freeAddr()
	if err != nil {
		return nil, err
	}
	metrics, err := freeAddr()
	if err != nil {
		return nil, err
	}
	m := &manager{log: &bytes.Buffer{}, pprof: pprof, metrics: metrics}
	args := append([]string{"--pprof-bind-address=" + pprof,
		"--kubeconfig=" + kc, "--data-dir=" + filepath.Join(dir, "data"),
		"--metrics-bind-address=" + metrics, "--metrics-secure=false", "--health-probe-bind-address=" + probe,
		"--web-bind-address=" + web, "--public-url=http://" + web, "--zap-log-level=error"}, storeArgs...)
	m.cmd = exec.CommandContext(ctx, bin, args...)
	m.cmd.Stdout, m.cmd.Stderr = m.log, m.log
	if goMemLimit != "" {
		m.cmd.Env = append(os.Environ(), "GOMEMLIMIT="+goMemLimit)
	}
	if err := m.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	for {
		resp, err := http.Get("http://" + probe + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return m, nil
			}
		}
		select {
		case <-ctx.Done():
			m.stop()
			return nil, errors.New("the manager did not become ready:\n" + m.logTail())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// peakRSS reads the process's high-water mark of resident memory.
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmHWM in /proc status")
}

// liveHeap is the manager's live heap: a heap profile with gc=1 makes it
// collect first, then its metrics tell what is left.
func liveHeap(m *manager) (float64, error) {
	resp, err := http.Get("http://" + m.pprof + "/debug/pprof/heap?gc=1")
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	mm, err := readManagerMetrics(m.metrics)
	if err != nil {
		return 0, err
	}
	live, ok := mm["go_memstats_heap_alloc_bytes"]
	if !ok {
		return 0, errors.New("no go_memstats_heap_alloc_bytes in the manager's metrics")
	}
	return live, nil
}

// sampleRSS samples the process's anonymous and file-backed resident
// memory until ctx ends; the function it returns gives the peaks so far.
// VmHWM is their sum's peak; the split tells the Go heap from the pages of
// the embedded store's memory-mapped file, which the kernel can drop.
func sampleRSS(ctx context.Context, pid int) func() (anon, file int64) {
	var mu sync.Mutex
	var peakAnon, peakFile int64
	read := func() {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, line := range strings.Split(string(b), "\n") {
			name, rest, ok := strings.Cut(line, ":")
			if !ok || (name != "RssAnon" && name != "RssFile") {
				continue
			}
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				continue
			}
			if name == "RssAnon" {
				peakAnon = max(peakAnon, kb<<10)
			} else {
				peakFile = max(peakFile, kb<<10)
			}
		}
	}
	go func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			read()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() (int64, int64) {
		read()
		mu.Lock()
		defer mu.Unlock()
		return peakAnon, peakFile
	}
}

// cpuTime reads the CPU time the process has used, user and system.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name, which is in parentheses.
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(fields) < 13 {
		return 0, errors.New("short /proc stat")
	}
	var ticks int64
	for _, f := range fields[11:13] { // utime, stime
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, err
		}
		ticks += n
	}
	// Linux reports clock ticks of 1/100 s (USER_HZ) on every platform Go runs on.
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}
