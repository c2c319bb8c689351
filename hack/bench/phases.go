package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"roster.dev/roster/api/v1alpha1"
	"roster.dev/roster/internal/chunks"
)

// latencySamples is how many Users each latency figure is measured over.
const latencySamples = 100

// readyLatencies applies n Users one after another, as a person with
// kubectl would, and returns how long each took to be Ready, sorted.
func readyLatencies(ctx context.Context, c client.WithWatch, ns, prefix string, n int) ([]time.Duration, error) {
	if err := createNamespace(ctx, c, ns); err != nil {
		return nil, err
	}
	var out []time.Duration
	for i := range n {
		u := benchUser(ns, i)
		u.Name = fmt.Sprintf("%s-%d", prefix, i)
		u.Spec.Email = fmt.Sprintf("%s-%d@%s.example.com", prefix, i, ns)
		took, err := applyAndWaitReady(ctx, c, u)
		if err != nil {
			return nil, fmt.Errorf("user %d of %d: %w", i+1, n, err)
		}
		out = append(out, took)
	}
	slices.Sort(out)
	return out, nil
}

// applyAndWaitReady creates the User and watches it until its Ready
// condition is True.
func applyAndWaitReady(ctx context.Context, c client.WithWatch, u *v1alpha1.User) (time.Duration, error) {
	w, err := c.Watch(ctx, &v1alpha1.UserList{}, client.InNamespace(u.Namespace),
		client.MatchingFieldsSelector{Selector: fields.OneTermEqualSelector("metadata.name", u.Name)})
	if err != nil {
		return 0, err
	}
	defer w.Stop()
	start := time.Now()
	if err := c.Create(ctx, u); err != nil {
		return 0, err
	}
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				return 0, fmt.Errorf("the watch of %s ended", u.Name)
			}
			got, isUser := ev.Object.(*v1alpha1.User)
			if isUser && ev.Type != watch.Deleted && meta.IsStatusConditionTrue(got.Status.Conditions, v1alpha1.ConditionReady) {
				return time.Since(start), nil
			}
		case <-ctx.Done():
			return 0, fmt.Errorf("%s not Ready: %w", u.Name, ctx.Err())
		}
	}
}

func createNamespace(ctx context.Context, c client.Client, ns string) error {
	return client.IgnoreAlreadyExists(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
}

// percentile returns the p-th percentile of sorted durations (nearest rank).
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func printLatency(what string, sorted []time.Duration, goal time.Duration) {
	fmt.Printf("  %-8s%-66s p50 %6.0f ms  p99 %6.0f ms  max %6.0f ms  (goal p99 < %s)\n", "latency", what,
		ms(percentile(sorted, 50)), ms(percentile(sorted, 99)), ms(sorted[len(sorted)-1]), goal)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// startImport stores an n-row CSV in the namespace and creates the
// UserImport, without waiting for it.
func startImport(ctx context.Context, c client.Client, ns, name string, n int) error {
	if err := createNamespace(ctx, c, ns); err != nil {
		return err
	}
	var csv bytes.Buffer
	for i := range n {
		// Addresses of a domain of the namespace's own: the first import's
		// Users hold the bench's usual ones.
		u := benchUser(ns, i)
		fmt.Fprintf(&csv, "add-user,user%06d@%s.example.com,%s,%s\n", i, ns, u.Spec.FirstName, u.Spec.LastName)
	}
	if _, err := chunks.Store(ctx, c, ns, name+"-file", "users.csv", csv.Bytes()); err != nil {
		return err
	}
	return c.Create(ctx, &v1alpha1.UserImport{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       v1alpha1.UserImportSpec{Source: v1alpha1.ImportSource{ConfigMapRef: &v1alpha1.KeyReference{Name: name + "-file", Key: "users.csv"}}},
	})
}

// managerMetrics are the manager's own counters, read from its /metrics.
type managerMetrics map[string]float64

var sample = regexp.MustCompile(`^(roster_store_calls_total|controller_runtime_reconcile_total|roster_drift_passes_total|roster_drift_pass_duration_seconds_sum|roster_drift_pass_duration_seconds_count|go_memstats_heap_alloc_bytes)(?:\{(.*)\})? ([0-9.e+-]+)$`)

func readManagerMetrics(addr string) (managerMetrics, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	out := managerMetrics{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := sample.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		n, _ := strconv.ParseFloat(m[3], 64)
		key := m[1]
		for _, kv := range label.FindAllStringSubmatch(m[2], -1) {
			switch {
			case m[1] == "roster_store_calls_total" && kv[1] == "operation":
				key = "store " + kv[2]
			case m[1] == "controller_runtime_reconcile_total" && kv[1] == "controller":
				key = "reconciles " + kv[2]
			}
		}
		out[key] += n
	}
	return out, sc.Err()
}

// storeCalls sums the store calls since before, as reads and writes.
func (after managerMetrics) storeCalls(before managerMetrics) (reads, writes float64) {
	for k, v := range after {
		op, ok := strings.CutPrefix(k, "store ")
		if !ok {
			continue
		}
		d := v - before[k]
		if strings.HasPrefix(op, "Get") || strings.HasPrefix(op, "Find") || strings.HasPrefix(op, "List") || strings.HasPrefix(op, "Probe") {
			reads += d
		} else {
			writes += d
		}
	}
	return reads, writes
}

// writesSince sums the writes since before, leaving out leader election's
// lease renewals, which a running manager makes whatever it does.
func (after apiRequests) writesSince(before apiRequests) float64 {
	var n float64
	for k, v := range after {
		verb, resource, _ := strings.Cut(k, " ")
		if verb == "GET" || verb == "LIST" || resource == "leases" {
			continue
		}
		n += v - before[k]
	}
	return n
}

// writesBreakdown names the writes since before by verb and resource.
func (after apiRequests) writesBreakdown(before apiRequests) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(after)) {
		verb, resource, _ := strings.Cut(k, " ")
		if d := after[k] - before[k]; d > 0 && verb != "GET" && verb != "LIST" && resource != "leases" {
			parts = append(parts, fmt.Sprintf("%s %.0f", k, d))
		}
	}
	return strings.Join(parts, ", ")
}

// settle waits until neither the API server's writes, the manager's store
// writes nor its User reconciles change for quiet (store reads go on: the
// store's health check). A restart reconciles every User, reading the
// store and writing nothing; that is not settled yet.
func settle(ctx context.Context, cfg *rest.Config, metricsAddr string, quiet time.Duration) error {
	var last [3]float64
	changed := time.Now()
	for first := true; first || time.Since(changed) < quiet; first = false {
		api, err := readAPIRequests(ctx, cfg)
		if err != nil {
			return err
		}
		mm, err := readManagerMetrics(metricsAddr)
		if err != nil {
			return err
		}
		_, w := mm.storeCalls(nil)
		if now := [3]float64{api.writesSince(nil), w, mm["reconciles user"]}; first || now != last {
			last, changed = now, time.Now()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return nil
}

// awaitDriftPass waits for the next completed store-wide comparison and
// returns its duration.
func awaitDriftPass(ctx context.Context, metricsAddr string, before managerMetrics) (time.Duration, managerMetrics, error) {
	for {
		mm, err := readManagerMetrics(metricsAddr)
		if err != nil {
			return 0, nil, err
		}
		if mm["roster_drift_pass_duration_seconds_count"] > before["roster_drift_pass_duration_seconds_count"] {
			sum := mm["roster_drift_pass_duration_seconds_sum"] - before["roster_drift_pass_duration_seconds_sum"]
			n := mm["roster_drift_pass_duration_seconds_count"] - before["roster_drift_pass_duration_seconds_count"]
			return time.Duration(sum / n * float64(time.Second)), mm, nil
		}
		select {
		case <-ctx.Done():
			return 0, nil, fmt.Errorf("no drift pass: %w", ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

// awaitReferenceCount waits until each IdentityStore's status counts every
// User, Group and UserImport in the cluster (the bench declares one store,
// the default), which it does after its next periodic check.
func awaitReferenceCount(ctx context.Context, c client.Client) error {
	want := 0
	for _, kind := range []string{"UserList", "GroupList", "UserImportList"} {
		list := &metav1.PartialObjectMetadataList{}
		list.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind(kind))
		if err := c.List(ctx, list); err != nil {
			return err
		}
		want += len(list.Items)
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		var stores v1alpha1.IdentityStoreList
		if err := c.List(ctx, &stores); err != nil {
			return err
		}
		counted := len(stores.Items) == 1 && int(stores.Items[0].Status.ReferencedBy) == want
		if counted {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the IdentityStore did not count the %d resources that use it within 3 minutes", want)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// statuses reads every User's status, by namespace/name, as JSON.
func statuses(ctx context.Context, c client.Client) (map[string]string, error) {
	var list v1alpha1.UserList
	if err := c.List(ctx, &list); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, u := range list.Items {
		b, _ := json.Marshal(u.Status)
		out[u.Namespace+"/"+u.Name] = string(b)
	}
	return out, nil
}

// changedStatuses names the Users whose status changed, with the first
// few statuses before and after, to show what a restart rewrote.
func changedStatuses(before, after map[string]string) string {
	var names []string
	for k, v := range before {
		if a, ok := after[k]; ok && a != v {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	var b strings.Builder
	fmt.Fprintf(&b, "%d Users' status changed", len(names))
	for _, n := range names[:min(2, len(names))] {
		fmt.Fprintf(&b, "\n    %s\n      before %s\n      after  %s", n, before[n], after[n])
	}
	return b.String()
}
