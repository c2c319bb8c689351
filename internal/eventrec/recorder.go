// Package eventrec records Kubernetes Events (events.k8s.io/v1) without
// client-go's broadcaster, which keeps a copy of every Event it sent for
// minutes to build series: at 100,000 Users, each with an Event per store
// write, that copy was a large part of the manager's memory. This recorder
// keeps a bounded table of recent Events for series instead and sends from
// bounded queues. When the API server falls behind, a full queue holds the
// caller back for a while (the Events pace the work that causes them), and
// only then drops the Event and counts it.
package eventrec

import (
	"context"
	"fmt"
	"hash/fnv"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/tools/reference"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Limits of what the recorder keeps and how it sends.
const (
	// queueSize bounds the Events waiting to be sent, over all workers.
	queueSize = 1000
	// recentSize bounds the table of recent Events that repeats are
	// counted against; the oldest entry makes way for a new one.
	recentSize = 4096
	// seriesWindow is how long after an Event a repeat joins its series,
	// as client-go's recorder does (Events expire after an hour anyway).
	seriesWindow = 6 * time.Minute
	// maxNote is the longest note the API accepts.
	maxNote = 1024
	workers = 4
	// fullWait is how long Eventf waits for room in a full queue.
	fullWait = 5 * time.Second
)

// Recorder is an events.EventRecorder that writes Events through a client.
// Run sends them; it is a manager Runnable.
type Recorder struct {
	client     client.Client
	scheme     *runtime.Scheme
	controller string
	instance   string
	log        logr.Logger
	// queues are the workers' queues; an Event and the updates of its
	// series go to the same one, so that they arrive in order.
	queues  []chan *eventsv1.Event
	dropped prometheus.Counter
	now     func() time.Time
	// wait is how long a full queue holds the caller back (fullWait).
	wait time.Duration

	mu     sync.Mutex
	recent map[seriesKey]*recentEvent
	order  []seriesKey // insertion order of recent, oldest first
}

var _ events.EventRecorder = (*Recorder)(nil)

// seriesKey is what makes two Events the same, apart from time.
type seriesKey struct {
	uid                         types.UID
	typ, reason, action, note   string
	regardingKind, regardingRef string
}

type recentEvent struct {
	namespace, name string
	first           time.Time
	count           int32
}

// New returns a recorder that reports as controller; dropped Events are
// counted in roster_events_dropped_total, registered with reg.
func New(c client.Client, scheme *runtime.Scheme, controller string, log logr.Logger, reg prometheus.Registerer) *Recorder {
	instance, _ := os.Hostname()
	r := &Recorder{
		client: c, scheme: scheme, controller: controller, instance: controller + "-" + instance, log: log,
		queues: make([]chan *eventsv1.Event, workers),
		recent: map[seriesKey]*recentEvent{},
		now:    time.Now,
		wait:   fullWait,
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "roster_events_dropped_total",
			Help: "Events not recorded because too many waited to be sent.",
		}),
	}
	for i := range r.queues {
		r.queues[i] = make(chan *eventsv1.Event, queueSize/workers)
	}
	if reg != nil {
		reg.MustRegister(r.dropped)
	}
	return r
}

// enqueue queues ev for the worker its name falls to, waiting for room in
// a full queue for up to r.wait before it drops the Event.
func (r *Recorder) enqueue(ev *eventsv1.Event) {
	h := fnv.New32a()
	h.Write([]byte(ev.Namespace + "/" + ev.Name))
	queue := r.queues[h.Sum32()%uint32(len(r.queues))]
	select {
	case queue <- ev:
		return
	default:
	}
	timer := time.NewTimer(r.wait)
	defer timer.Stop()
	select {
	case queue <- ev:
	case <-timer.C:
		r.dropped.Inc()
	}
}

// Eventf implements events.EventRecorder. It never blocks: an Event that
// does not fit in the queue is dropped and counted.
func (r *Recorder) Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	ref, err := reference.GetReference(r.scheme, regarding)
	if err != nil {
		r.log.Error(err, "Could not refer to an object in an Event", "reason", reason)
		return
	}
	var relatedRef *corev1.ObjectReference
	if related != nil {
		if relatedRef, err = reference.GetReference(r.scheme, related); err != nil {
			r.log.Error(err, "Could not refer to a related object in an Event", "reason", reason)
		}
	}
	msg := fmt.Sprintf(note, args...)
	if len(msg) > maxNote {
		msg = msg[:maxNote-3] + "..."
	}
	now := r.now()
	ns := ref.Namespace
	if ns == "" {
		ns = metav1.NamespaceDefault
	}
	ev := &eventsv1.Event{
		ObjectMeta: metav1.ObjectMeta{
			Name:      ref.Name + "." + strconv.FormatInt(now.UnixNano(), 16),
			Namespace: ns,
		},
		EventTime:           metav1.NewMicroTime(now),
		ReportingController: r.controller,
		ReportingInstance:   r.instance,
		Action:              action,
		Reason:              reason,
		Regarding:           *ref,
		Related:             relatedRef,
		Note:                msg,
		Type:                eventtype,
	}
	if series := r.joinSeries(ev, now); series != nil {
		ev = series
	}
	r.enqueue(ev)
}

// joinSeries counts ev against a recent Event that it repeats and returns
// the update of that Event's series to send instead; nil when ev repeats
// none.
func (r *Recorder) joinSeries(ev *eventsv1.Event, now time.Time) *eventsv1.Event {
	key := seriesKey{uid: ev.Regarding.UID, typ: ev.Type, reason: ev.Reason, action: ev.Action, note: ev.Note,
		regardingKind: ev.Regarding.Kind, regardingRef: ev.Regarding.Namespace + "/" + ev.Regarding.Name}
	r.mu.Lock()
	defer r.mu.Unlock()
	if prev, ok := r.recent[key]; ok && now.Sub(prev.first) < seriesWindow {
		prev.count++
		return &eventsv1.Event{
			ObjectMeta: metav1.ObjectMeta{Namespace: prev.namespace, Name: prev.name},
			Series:     &eventsv1.EventSeries{Count: prev.count, LastObservedTime: metav1.NewMicroTime(now)},
		}
	}
	if _, ok := r.recent[key]; !ok {
		if len(r.order) >= recentSize {
			delete(r.recent, r.order[0])
			r.order = r.order[1:]
		}
		r.order = append(r.order, key)
	}
	r.recent[key] = &recentEvent{namespace: ev.Namespace, name: ev.Name, first: now, count: 1}
	return nil
}

// Start sends queued Events until ctx ends, then sends what is left for a
// few seconds.
func (r *Recorder) Start(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, queue := range r.queues {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case ev := <-queue:
					r.send(ev)
				case <-ctx.Done():
					r.drain(queue)
					return
				}
			}
		}()
	}
	wg.Wait()
	return nil
}

// NeedLeaderElection implements manager.LeaderElectionRunnable: every
// replica records the Events of what it does.
func (r *Recorder) NeedLeaderElection() bool { return false }

func (r *Recorder) drain(queue chan *eventsv1.Event) {
	deadline := time.After(5 * time.Second)
	for {
		select {
		case ev := <-queue:
			r.send(ev)
		case <-deadline:
			return
		default:
			return
		}
	}
}

func (r *Recorder) send(ev *eventsv1.Event) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var err error
	if ev.Series != nil {
		patch := fmt.Sprintf(`{"series":{"count":%d,"lastObservedTime":%q}}`, ev.Series.Count,
			ev.Series.LastObservedTime.UTC().Format(metav1.RFC3339Micro))
		target := &eventsv1.Event{ObjectMeta: ev.ObjectMeta}
		err = r.client.Patch(ctx, target, client.RawPatch(types.MergePatchType, []byte(patch)))
	} else {
		err = r.client.Create(ctx, ev)
	}
	if err != nil {
		// The Event is lost; what it reported is in the object's status.
		r.log.Info("Could not record an Event", "namespace", ev.Namespace, "name", ev.Name, "error", err.Error())
	}
}
