package usage

import (
	"math"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/node/protocol"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func u64(n uint64) *uint64 { return &n }

func report(node string, at time.Duration, cpu uint64, pods ...protocol.PodUsage) protocol.UsageReport {
	return protocol.UsageReport{Node: node, Time: t0.Add(at), CPUNanos: cpu, MemoryBytes: 1 << 30, Pods: pods}
}

func pod(name, uid string, cpu uint64, mem int64, reqs *uint64) protocol.PodUsage {
	return protocol.PodUsage{Namespace: "default", Name: name, UID: uid,
		Containers: []protocol.ContainerUsage{{Name: "c", CPUNanos: cpu, MemoryBytes: mem, HTTPRequests: reqs}}}
}

// newStore is a store whose clock the test sets.
func newStore(clock *time.Time) *Store {
	s := New(30 * time.Second)
	s.now = func() time.Time { return *clock }
	return s
}

func TestRatesOverTheWindow(t *testing.T) {
	clock := t0
	s := newStore(&clock)
	s.Add(report("n1", 0, 10e9, pod("busy", "u1", 1e9, 4<<20, u64(100))))
	if _, ok := s.Pod("default", "busy"); ok {
		t.Fatal("a pod with one sample has metrics")
	}
	if len(s.Nodes()) != 0 {
		t.Fatal("a node with one sample has metrics")
	}
	// 2 s later: 1.5 s of CPU (0.75 cores), 50 requests (25/s), the node
	// 3 s of CPU (1.5 cores).
	clock = clock.Add(2 * time.Second)
	s.Add(report("n1", 2*time.Second, 13e9, pod("busy", "u1", 2.5e9, 5<<20, u64(150))))
	m, ok := s.Pod("default", "busy")
	if !ok {
		t.Fatal("no metrics after two samples")
	}
	if m.Window != 2*time.Second || !m.Timestamp.Equal(t0.Add(2*time.Second)) || m.Node != "n1" {
		t.Errorf("window %v at %v on %q", m.Window, m.Timestamp, m.Node)
	}
	c := m.Containers[0]
	if c.CPUNanoCores != 750_000_000 || c.MemoryBytes != 5<<20 {
		t.Errorf("cpu %d nanocores, memory %d", c.CPUNanoCores, c.MemoryBytes)
	}
	if !c.Counted || math.Abs(c.RequestsPerSecond-25) > 1e-9 {
		t.Errorf("requests/s %v counted %v, want 25", c.RequestsPerSecond, c.Counted)
	}
	if rps, ok := m.PodRequestsPerSecond(); !ok || math.Abs(rps-25) > 1e-9 {
		t.Errorf("pod requests/s %v %v", rps, ok)
	}
	nm, ok := s.Node("n1")
	if !ok || nm.CPUNanoCores != 1_500_000_000 || nm.MemoryBytes != 1<<30 || nm.Window != 2*time.Second {
		t.Errorf("node %+v %v", nm, ok)
	}
	// The window slides: the next sample is taken against this one.
	clock = clock.Add(time.Second)
	s.Add(report("n1", 3*time.Second, 13e9, pod("busy", "u1", 2.5e9, 5<<20, u64(150))))
	m, _ = s.Pod("default", "busy")
	if c := m.Containers[0]; c.CPUNanoCores != 0 || c.RequestsPerSecond != 0 || !c.Counted || m.Window != time.Second {
		t.Errorf("idle second: %+v window %v", c, m.Window)
	}
}

func TestUncountedRequestsAreNotZero(t *testing.T) {
	clock := t0
	s := newStore(&clock)
	s.Add(report("n1", 0, 0, pod("cmd", "u", 0, 1, nil)))
	s.Add(report("n1", time.Second, 0, pod("cmd", "u", 1e6, 1, nil)))
	m, ok := s.Pod("default", "cmd")
	if !ok {
		t.Fatal("no metrics")
	}
	if _, ok := m.PodRequestsPerSecond(); ok || m.Containers[0].Counted {
		t.Error("a container whose runtime does not count requests has a rate")
	}
}

func TestResetsAndReplacedPods(t *testing.T) {
	clock := t0
	s := newStore(&clock)
	s.Add(report("n1", 0, 0, pod("p", "u1", 5e9, 1, nil)))
	// The counter went back (the node restarted the pod's worker): no rate.
	s.Add(report("n1", time.Second, 0, pod("p", "u1", 1e9, 1, nil)))
	if _, ok := s.Pod("default", "p"); ok {
		t.Error("a rate from a counter that went back")
	}
	s.Add(report("n1", 2*time.Second, 0, pod("p", "u1", 2e9, 1, nil)))
	if m, ok := s.Pod("default", "p"); !ok || m.Containers[0].CPUNanoCores != 1e9 {
		t.Errorf("after the reset: %+v %v", m, ok)
	}
	// Another pod of the same name (a new UID) starts without a window.
	s.Add(report("n1", 3*time.Second, 0, pod("p", "u2", 9e9, 1, nil)))
	if _, ok := s.Pod("default", "p"); ok {
		t.Error("a replaced pod got the old one's window")
	}
	// A report no newer than the last is ignored.
	s.Add(report("n1", 3*time.Second, 0))
	if len(s.pods) != 1 {
		t.Error("a stale report dropped the pod")
	}
}

func TestForgetting(t *testing.T) {
	clock := t0
	s := newStore(&clock)
	s.Add(report("n1", 0, 0, pod("a", "ua", 0, 1, nil), pod("b", "ub", 0, 1, nil)))
	s.Add(report("n2", 0, 0))
	clock = clock.Add(time.Second)
	s.Add(report("n1", time.Second, 1e9, pod("a", "ua", 1, 1, nil), pod("b", "ub", 1, 1, nil)))
	s.Add(report("n2", time.Second, 1e9))
	if got := len(s.Pods("")); got != 2 {
		t.Fatalf("%d pods, want 2", got)
	}
	// b is gone from n1's next report: it no longer runs there.
	clock = clock.Add(time.Second)
	s.Add(report("n1", 2*time.Second, 2e9, pod("a", "ua", 2, 1, nil)))
	if _, ok := s.Pod("default", "b"); ok {
		t.Error("a pod missing from its node's report is still served")
	}
	if len(s.Pods("default")) != 1 || len(s.Pods("other")) != 0 {
		t.Error("namespace filter")
	}
	// n2 falls silent: forgotten after 30 s, n1 still reports.
	for i := 3; i < 40; i++ {
		clock = clock.Add(time.Second)
		s.Add(report("n1", time.Duration(i)*time.Second, uint64(i)*1e9, pod("a", "ua", uint64(i), 1, nil)))
	}
	if _, ok := s.Node("n2"); ok {
		t.Error("a silent node is still served")
	}
	if ns := s.Nodes(); len(ns) != 1 || ns[0].Name != "n1" {
		t.Errorf("nodes %+v", ns)
	}
	// n1 falls silent too: its pods go with it.
	clock = clock.Add(31 * time.Second)
	if len(s.Pods("")) != 0 || len(s.Nodes()) != 0 {
		t.Error("a silent node's pods are still served")
	}
}
