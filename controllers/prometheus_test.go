package controllers

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/promql/parser"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/yaml"

	"roster.dev/roster/internal/eventrec"
	"roster.dev/roster/internal/invitation"
	"roster.dev/roster/internal/store"
)

// describer is a Registerer that keeps what each collector describes: the
// names, and each metric as an empty family of its type, for promlint.
type describer struct {
	names    []string
	families []*dto.MetricFamily
}

var (
	fqName   = regexp.MustCompile(`fqName: "([^"]+)"`)
	helpText = regexp.MustCompile(`help: "((?:[^"\\]|\\.)*)"`)
)

// metricType is the type of what a collector exports. The manager's own
// collectors (the state gauges) export gauges.
func metricType(c prometheus.Collector) dto.MetricType {
	switch c.(type) {
	case *prometheus.CounterVec, prometheus.Counter:
		return dto.MetricType_COUNTER
	case *prometheus.HistogramVec, prometheus.Histogram:
		return dto.MetricType_HISTOGRAM
	default:
		return dto.MetricType_GAUGE
	}
}

func (d *describer) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc, 16)
	go func() { c.Describe(ch); close(ch) }()
	for desc := range ch {
		if m := fqName.FindStringSubmatch(desc.String()); m != nil {
			family := &dto.MetricFamily{Name: ptr(m[1]), Type: metricType(c).Enum(), Metric: []*dto.Metric{{}}}
			if h := helpText.FindStringSubmatch(desc.String()); h != nil {
				family.Help = ptr(h[1])
			}
			d.families = append(d.families, family)
			d.names = append(d.names, m[1])
			if strings.HasSuffix(m[1], "_seconds") { // the histograms
				d.names = append(d.names, m[1]+"_bucket", m[1]+"_sum", m[1]+"_count")
			}
		}
	}
	return nil
}

func (d *describer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		_ = d.Register(c)
	}
}

func (d *describer) Unregister(prometheus.Collector) bool { return true }

// describeAll registers every collector of the manager's own with a
// describer.
func describeAll() *describer {
	d := &describer{}
	store.NewMetrics(d)
	invitation.NewMetrics(d)
	newDriftMetrics(d)
	eventrec.New(nil, nil, "roster", logr.Discard(), d)
	d.MustRegister(newStateCollector(fake.NewClientBuilder().Build(), clock.RealClock{}))
	return d
}

// exportedMetrics names every metric the manager's own collectors export.
func exportedMetrics() []string {
	d := describeAll()
	slices.Sort(d.names)
	return slices.Compact(d.names)
}

// Every metric the manager exports passes promlint: names, units, suffixes
// by type, help text.
func TestMetricsPassPromlint(t *testing.T) {
	d := describeAll()
	if len(d.families) < 10 {
		t.Fatalf("described %d metrics; the collectors were not all seen", len(d.families))
	}
	problems, err := promlint.NewWithMetricFamilies(d.families).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

// metricsIn parses a PromQL expression and names the metrics it selects.
func metricsIn(t *testing.T, where, expr string) []string {
	t.Helper()
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		t.Errorf("%s: %q does not parse: %v", where, expr, err)
		return nil
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			names = append(names, vs.Name)
		}
		return nil
	})
	return names
}

// Every expression of the shipped alerting rules and Grafana dashboard
// parses, and every metric it uses is one the manager exports.
func TestShippedMonitoringUsesExportedMetrics(t *testing.T) {
	exported := exportedMetrics()
	check := func(where, expr string) {
		names := metricsIn(t, where, expr)
		if len(names) == 0 {
			t.Errorf("%s: %q selects no metric", where, expr)
		}
		for _, n := range names {
			if !slices.Contains(exported, n) {
				t.Errorf("%s: %s is not a metric the manager exports (%v)", where, n, exported)
			}
		}
	}

	raw, err := os.ReadFile("../config/prometheus/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var rule struct {
		Spec struct {
			Groups []struct {
				Rules []struct {
					Alert string `json:"alert"`
					Expr  string `json:"expr"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(raw, &rule); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range rule.Spec.Groups {
		for _, r := range g.Rules {
			check("alert "+r.Alert, r.Expr)
			n++
		}
	}
	if n < 4 {
		t.Errorf("rules.yaml has %d rules; want the store error ratio, objects not Ready, drift and imports at least", n)
	}

	raw, err = os.ReadFile("../config/prometheus/roster-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	for _, p := range dash.Panels {
		for _, target := range p.Targets {
			check("panel "+p.Title, target.Expr)
		}
	}
	if len(dash.Panels) == 0 {
		t.Error("the dashboard has no panels")
	}
}
