// Package usage is the control plane's store of what pods and nodes use:
// it follows the nodes' usage reports on the bus (protocol.UsageReport),
// keeps the last two samples of each pod and node, and derives CPU in cores
// and HTTP requests per second over the window between them, as
// metrics-server derives them from two scrapes of the kubelet. Every API
// server keeps its own (nothing of it is in raft), so each serves the
// metrics APIs from memory.
//
// All methods are safe for concurrent use.
package usage

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/skiffhq/skiff/internal/bus"
	"github.com/skiffhq/skiff/internal/node/protocol"
)

// DefaultForgetAfter is how long a pod or node that is no longer reported
// stays in the store unless Config says otherwise: three report intervals
// of the default 10 s, so one lost report does not make a pod vanish from
// `kubectl top`.
const DefaultForgetAfter = 30 * time.Second

// Store keeps the last two usage samples of every pod and node.
type Store struct {
	forgetAfter time.Duration
	now         func() time.Time // the store's clock, for forgetting only

	mu    sync.Mutex
	nodes map[string]*nodeEntry
	pods  map[podKey]*podEntry
}

type podKey struct{ namespace, name string }

type nodeEntry struct {
	prev, last nodeSample
	seen       time.Time // by the store's clock, when last reported
}

type nodeSample struct {
	t        time.Time
	cpuNanos uint64
	memory   int64
}

type podEntry struct {
	node, uid  string
	prev, last podSample
	n          int       // samples held, 1 or 2
	seen       time.Time // by the store's clock
}

type podSample struct {
	t          time.Time
	containers []protocol.ContainerUsage
}

// New returns an empty store that forgets a pod or node once no report has
// named it for forgetAfter (DefaultForgetAfter when 0 or less).
func New(forgetAfter time.Duration) *Store {
	if forgetAfter <= 0 {
		forgetAfter = DefaultForgetAfter
	}
	return &Store{forgetAfter: forgetAfter, now: time.Now, nodes: map[string]*nodeEntry{}, pods: map[podKey]*podEntry{}}
}

// Follow subscribes the store to every node's usage reports on conn until
// ctx ends or the returned subscription is stopped.
func (s *Store) Follow(ctx context.Context, conn *bus.Conn, log *slog.Logger) (*bus.Subscription, error) {
	sub, err := bus.Subscribe(ctx, conn, bus.SubjectNodeUsageAny, func(_ context.Context, subject string, r protocol.UsageReport) {
		node, ok := bus.UsageNode(subject)
		if !ok || node != r.Node {
			// A node may publish only on its own subject; the name in the
			// body must agree, or one node could report for another.
			log.Warn("usage report dropped: subject and node disagree", "subject", subject, "node", r.Node)
			return
		}
		s.Add(r)
	})
	if err != nil {
		return nil, fmt.Errorf("usage: follow reports: %w", err)
	}
	return sub, nil
}

// Add takes one node's report. A report is complete for its node: a pod of
// that node missing from it no longer runs there and is dropped at once. A
// report no newer than the last one of its node is ignored.
func (s *Store) Add(r protocol.UsageReport) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forgetLocked(now)
	ne := s.nodes[r.Node]
	if ne != nil && !r.Time.After(ne.last.t) {
		return
	}
	if ne == nil {
		ne = &nodeEntry{}
		s.nodes[r.Node] = ne
	} else {
		ne.prev = ne.last
	}
	ne.last = nodeSample{t: r.Time, cpuNanos: r.CPUNanos, memory: r.MemoryBytes}
	ne.seen = now

	reported := make(map[podKey]bool, len(r.Pods))
	for _, p := range r.Pods {
		k := podKey{p.Namespace, p.Name}
		reported[k] = true
		pe := s.pods[k]
		sample := podSample{t: r.Time, containers: p.Containers}
		if pe == nil || pe.uid != p.UID || pe.node != r.Node {
			// A new pod, or another pod of the same name: no window yet.
			s.pods[k] = &podEntry{node: r.Node, uid: p.UID, last: sample, n: 1, seen: now}
			continue
		}
		pe.prev, pe.last, pe.n, pe.seen = pe.last, sample, 2, now
	}
	for k, pe := range s.pods {
		if pe.node == r.Node && !reported[k] {
			delete(s.pods, k)
		}
	}
}

// forgetLocked drops nodes and pods no report has named for forgetAfter.
func (s *Store) forgetLocked(now time.Time) {
	for name, ne := range s.nodes {
		if now.Sub(ne.seen) > s.forgetAfter {
			delete(s.nodes, name)
		}
	}
	for k, pe := range s.pods {
		if now.Sub(pe.seen) > s.forgetAfter {
			delete(s.pods, k)
		}
	}
}

// NodeMetrics is a node's usage over the window ending at Timestamp.
type NodeMetrics struct {
	Name      string
	Timestamp time.Time // the later sample's, by the node's clock
	Window    time.Duration
	// CPUNanoCores is the machine's CPU use in billionths of a core.
	CPUNanoCores int64
	MemoryBytes  int64 // in use at Timestamp
}

// PodMetrics is a pod's usage over the window ending at Timestamp.
type PodMetrics struct {
	Namespace, Name, UID, Node string
	Timestamp                  time.Time
	Window                     time.Duration
	Containers                 []ContainerMetrics
}

// ContainerMetrics is one container's usage over its pod's window.
type ContainerMetrics struct {
	Name         string
	CPUNanoCores int64
	MemoryBytes  int64
	// RequestsPerSecond is the HTTP requests served per second; valid only
	// when Counted (the runtime counts them for this container).
	RequestsPerSecond float64
	Counted           bool
}

// Node returns a node's metrics, or false when the store has fewer than
// two samples of it.
func (s *Store) Node(name string) (NodeMetrics, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forgetLocked(s.now())
	ne := s.nodes[name]
	if ne == nil || ne.prev.t.IsZero() {
		return NodeMetrics{}, false
	}
	return nodeMetrics(name, ne)
}

// Nodes returns the metrics of every node with two samples, by name.
func (s *Store) Nodes() []NodeMetrics {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forgetLocked(s.now())
	var out []NodeMetrics
	for name, ne := range s.nodes {
		if ne.prev.t.IsZero() {
			continue
		}
		if m, ok := nodeMetrics(name, ne); ok {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func nodeMetrics(name string, ne *nodeEntry) (NodeMetrics, bool) {
	window := ne.last.t.Sub(ne.prev.t)
	cpu, ok := rate(ne.prev.cpuNanos, ne.last.cpuNanos, window)
	if !ok {
		return NodeMetrics{}, false
	}
	return NodeMetrics{Name: name, Timestamp: ne.last.t, Window: window, CPUNanoCores: int64(cpu),
		MemoryBytes: ne.last.memory}, true
}

// Pod returns a pod's metrics, or false when the store has fewer than two
// samples of it (or its counters went back, as after the node restarted).
func (s *Store) Pod(namespace, name string) (PodMetrics, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forgetLocked(s.now())
	pe := s.pods[podKey{namespace, name}]
	if pe == nil {
		return PodMetrics{}, false
	}
	return podMetrics(namespace, name, pe)
}

// Pods returns the metrics of the pods of namespace ("" for every
// namespace) that have two samples, by namespace and name.
func (s *Store) Pods(namespace string) []PodMetrics {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forgetLocked(s.now())
	var out []PodMetrics
	for k, pe := range s.pods {
		if namespace != "" && k.namespace != namespace {
			continue
		}
		if m, ok := podMetrics(k.namespace, k.name, pe); ok {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out
}

func podMetrics(namespace, name string, pe *podEntry) (PodMetrics, bool) {
	if pe.n < 2 {
		return PodMetrics{}, false
	}
	window := pe.last.t.Sub(pe.prev.t)
	m := PodMetrics{Namespace: namespace, Name: name, UID: pe.uid, Node: pe.node, Timestamp: pe.last.t, Window: window}
	for _, c := range pe.last.containers {
		prev, found := findContainer(pe.prev.containers, c.Name)
		if !found {
			// A container new in this sample has no window yet: the
			// pod waits for the next report, as metrics-server does.
			return PodMetrics{}, false
		}
		cpu, ok := rate(prev.CPUNanos, c.CPUNanos, window)
		if !ok {
			return PodMetrics{}, false
		}
		cm := ContainerMetrics{Name: c.Name, CPUNanoCores: int64(cpu), MemoryBytes: c.MemoryBytes}
		if c.HTTPRequests != nil && prev.HTTPRequests != nil {
			if rps, ok := rate(*prev.HTTPRequests, *c.HTTPRequests, window); ok {
				cm.RequestsPerSecond, cm.Counted = rps, true
			}
		}
		m.Containers = append(m.Containers, cm)
	}
	return m, true
}

func findContainer(cs []protocol.ContainerUsage, name string) (protocol.ContainerUsage, bool) {
	for _, c := range cs {
		if c.Name == name {
			return c, true
		}
	}
	return protocol.ContainerUsage{}, false
}

// rate is a counter's increase per second of window (CPU nanoseconds per
// second are nanocores); false when the window is empty or the counter went
// back (it was reset), which leaves no honest rate.
func rate(prev, last uint64, window time.Duration) (float64, bool) {
	if window <= 0 || last < prev {
		return 0, false
	}
	return float64(last-prev) / window.Seconds(), true
}

// PodRequestsPerSecond sums a pod's containers' requests per second; ok
// is false when the runtime counts requests for none of them.
func (m PodMetrics) PodRequestsPerSecond() (rps float64, ok bool) {
	for _, c := range m.Containers {
		if c.Counted {
			rps += c.RequestsPerSecond
			ok = true
		}
	}
	return rps, ok
}
