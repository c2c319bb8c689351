package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// apiRequests counts the API server's requests by verb and resource, read
// from its apiserver_request_total metric: writes, and reads other than
// watches.
type apiRequests map[string]float64

var requestTotal = regexp.MustCompile(`^apiserver_request_total\{(.*)\} ([0-9.e+]+)$`)
var label = regexp.MustCompile(`(\w+)="([^"]*)"`)

func readAPIRequests(ctx context.Context, cfg *rest.Config) (apiRequests, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	raw, err := cs.RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the API server's metrics: %w", err)
	}
	out := apiRequests{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := requestTotal.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		l := map[string]string{}
		for _, kv := range label.FindAllStringSubmatch(m[1], -1) {
			l[kv[1]] = kv[2]
		}
		switch l["verb"] {
		case "POST", "PUT", "PATCH", "DELETE", "APPLY", "GET", "LIST":
		default:
			continue
		}
		key := l["verb"] + " " + l["resource"]
		if l["subresource"] != "" {
			key += "/" + l["subresource"]
		}
		n, _ := strconv.ParseFloat(m[2], 64)
		out[key] += n
	}
	return out, sc.Err()
}

// printPerUser prints the requests made since before, per User.
func (after apiRequests) printPerUser(before apiRequests, users int) {
	writes, reads := 0.0, 0.0
	for _, k := range slices.Sorted(maps.Keys(after)) {
		n := after[k] - before[k]
		if n < float64(users)/100 {
			continue
		}
		if strings.HasPrefix(k, "GET ") || strings.HasPrefix(k, "LIST ") {
			reads += n
		} else {
			writes += n
		}
		fmt.Printf("  %-8s%-66s%8.2f\n", "api", k+" per User", n/float64(users))
	}
	fmt.Printf("  %-8s%-66s%8.2f writes, %.2f reads\n", "api", "requests per User", writes/float64(users), reads/float64(users))
}
