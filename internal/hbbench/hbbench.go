// Package hbbench measures what node heartbeats cost the control plane:
// N simulated agents, each on its own connection to the real embedded bus
// (nats-server), publish heartbeats as skiff's agents do, handled by the
// real node lifecycle controller (in memory: only changes are written);
// beside it, in the same run, the same heartbeats written as Kubernetes'
// kubelets write them, a Node status update each (lastHeartbeatTime)
// through the API into the raft store. It prints heartbeats per second and
// CPU time per heartbeat of both, their ratios, and what the default
// heartbeat rate costs a core.
package hbbench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiffhq/skiff/internal/benchenv"
	"github.com/skiffhq/skiff/internal/bus"
	"github.com/skiffhq/skiff/internal/node/lifecycle"
	"github.com/skiffhq/skiff/internal/node/protocol"
)

// Options of a run. Zero values take the defaults.
type Options struct {
	Agents int // simulated agents (and Nodes); default 1000
	// BusRounds and RaftRounds are how many heartbeats each agent sends on
	// each path; default 20 and 2 (the raft path is far slower).
	BusRounds, RaftRounds int
	// Writers is how many agents publish (and write) at once; default 64.
	Writers int
	// Interval is the agents' heartbeat interval for the "cost at the
	// default rate" line; default 500ms, the engine's.
	Interval time.Duration
	// APIListen is the API server's address (it is reached in process, but
	// listens too); default "127.0.0.1:0".
	APIListen string
	Dir       string // where the store lives; default a temporary directory
	Timeout   time.Duration
	Logger    *slog.Logger
}

// Side is one path's figures.
type Side struct {
	Heartbeats int
	Wall, CPU  time.Duration
}

// PerSecond is the heartbeats handled per second.
func (s Side) PerSecond() float64 { return float64(s.Heartbeats) / max(s.Wall.Seconds(), 1e-9) }

// CPUPerHeartbeat is the process's CPU time (user+system) per heartbeat.
func (s Side) CPUPerHeartbeat() time.Duration { return s.CPU / time.Duration(max(s.Heartbeats, 1)) }

// Result of a run.
type Result struct {
	Agents    int
	Bus, Raft Side
}

// Run measures both paths and prints a table.
func Run(ctx context.Context, o Options, w io.Writer) (Result, error) {
	o = o.withDefaults()
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	env, err := benchenv.Start(ctx, o.Dir, "skiff-hbbench-", o.APIListen, o.Logger)
	if err != nil {
		return Result{}, err
	}
	defer env.Close()
	cs, err := kubernetes.NewForConfig(env.InProcess())
	if err != nil {
		return Result{}, err
	}
	srv, err := bus.Start(ctx, bus.Config{Name: "hbbench", Logger: o.Logger})
	if err != nil {
		return Result{}, fmt.Errorf("start bus: %w", err)
	}
	defer srv.Close()

	names := make([]string, o.Agents)
	nodes := make([]*corev1.Node, o.Agents)
	if err := benchenv.Parallel(ctx, o.Agents, o.Writers, func(i int) error {
		names[i] = fmt.Sprintf("node-%05d", i)
		n, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: names[i]}}, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		n.Status.Conditions = conditions(time.Now())
		nodes[i], err = cs.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
		return err
	}); err != nil {
		return Result{}, fmt.Errorf("create nodes: %w", err)
	}

	fmt.Fprintf(w, "skiff heartbeat benchmark: %d agents\ngo %s %s/%s  GOMAXPROCS=%d %s\n", o.Agents, runtime.Version(),
		runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0), benchenv.Versions("github.com/nats-io/nats-server/v2", "github.com/nats-io/nats.go", "github.com/hashicorp/raft", "github.com/hashicorp/raft-wal"))
	fmt.Fprintf(w, "bus: each agent on its own connection to the embedded nats-server (in-process pipes), %d sending at once, "+
		"each heartbeat acknowledged by the node lifecycle controller (leases off: see below)\n"+
		"raft: the same heartbeat as a Node status update (lastHeartbeatTime) through the API into the raft store, %d writers\n",
		o.Writers, o.Writers)
	res := Result{Agents: o.Agents}
	if res.Bus, err = busSide(ctx, srv, cs, names, o); err != nil {
		return res, fmt.Errorf("bus: %w", err)
	}
	if res.Raft, err = raftSide(ctx, cs, nodes, o); err != nil {
		return res, fmt.Errorf("raft: %w", err)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "path\theartbeats\twall\theartbeats/s\tCPU\tCPU/heartbeat\t")
	for _, r := range []struct {
		name string
		s    Side
	}{{"bus", res.Bus}, {"raft", res.Raft}} {
		fmt.Fprintf(tw, "%s\t%d\t%v\t%.0f\t%v\t%v\t\n", r.name, r.s.Heartbeats, r.s.Wall.Round(time.Millisecond), r.s.PerSecond(),
			r.s.CPU.Round(time.Millisecond), r.s.CPUPerHeartbeat().Round(100*time.Nanosecond))
	}
	tw.Flush()
	rate := float64(o.Agents) / o.Interval.Seconds()
	fmt.Fprintf(w, "raft/bus: %.1fx the CPU per heartbeat, bus/raft: %.1fx the heartbeats per second\n",
		float64(res.Raft.CPUPerHeartbeat())/float64(max(res.Bus.CPUPerHeartbeat(), 1)), res.Bus.PerSecond()/max(res.Raft.PerSecond(), 1e-9))
	fmt.Fprintf(w, "at one heartbeat per %v per agent (%.0f/s): bus %.1f%% of a core, raft %.1f%% of a core (bus messages/s: %.0f, heartbeat and acknowledgement)\n",
		o.Interval, rate, 100*rate*res.Bus.CPUPerHeartbeat().Seconds(), 100*rate*res.Raft.CPUPerHeartbeat().Seconds(), 2*rate)
	fmt.Fprintf(w, "plus Lease renewals (raft writes) at one per node per %v: %.0f/s\n", lifecycle.DefaultLeaseRenewInterval,
		float64(o.Agents)/lifecycle.DefaultLeaseRenewInterval.Seconds())
	return res, nil
}

func (o Options) withDefaults() Options {
	if o.Agents <= 0 {
		o.Agents = 1000
	}
	if o.BusRounds <= 0 {
		o.BusRounds = 20
	}
	if o.RaftRounds <= 0 {
		o.RaftRounds = 2
	}
	if o.Writers <= 0 {
		o.Writers = 64
	}
	if o.Interval <= 0 {
		o.Interval = 500 * time.Millisecond
	}
	if o.APIListen == "" {
		o.APIListen = "127.0.0.1:0"
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return o
}

// conditions are what an agent reports with each heartbeat.
func conditions(now time.Time) []corev1.NodeCondition {
	t := metav1.NewTime(now)
	return []corev1.NodeCondition{
		{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", LastHeartbeatTime: t, LastTransitionTime: t},
		{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientMemory",
			Message: "skiff agent has sufficient memory available", LastHeartbeatTime: t, LastTransitionTime: t},
		{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasNoDiskPressure",
			Message: "skiff agent has no disk pressure", LastHeartbeatTime: t, LastTransitionTime: t},
	}
}

// busSide runs the lifecycle controller and the agents' connections,
// warms every node up with one heartbeat (its first marks it known, and
// writes nothing more), then times BusRounds heartbeats per agent until the
// controller has handled them all.
func busSide(ctx context.Context, srv *bus.Server, cs kubernetes.Interface, names []string, o Options) (Side, error) {
	cp, err := srv.Connect(ctx, "control-plane")
	if err != nil {
		return Side{}, err
	}
	defer cp.Close()
	// A long grace period: the measured phase must not mark anyone
	// Unknown; leases off, so that what is timed is the heartbeat itself.
	c, err := lifecycle.Start(ctx, lifecycle.Config{Bus: cp, Client: cs, GracePeriod: time.Hour, LeaseRenewInterval: 24 * time.Hour,
		Logger: o.Logger})
	if err != nil {
		return Side{}, err
	}
	defer c.Stop()
	conns := make([]*bus.Conn, len(names))
	defer func() {
		for _, cn := range conns {
			if cn != nil {
				cn.Close()
			}
		}
	}()
	for i, n := range names {
		if conns[i], err = srv.ConnectNode(ctx, "agent-"+n); err != nil {
			return Side{}, fmt.Errorf("agent %s: %w", n, err)
		}
	}
	beat := func(i int) error {
		subject, err := bus.SubjectHeartbeat(names[i])
		if err != nil {
			return err
		}
		// Acknowledged by the controller, as an agent with the StatefulSet
		// fence (the default) sends them: two bus messages each.
		return bus.Notify(ctx, conns[i], subject, protocol.Heartbeat{Node: names[i], Time: time.Now(), Conditions: conditions(time.Now())[1:]})
	}
	if err := benchenv.Parallel(ctx, len(names), o.Writers, beat); err != nil {
		return Side{}, err
	}
	if err := waitBeats(ctx, c, uint64(len(names))); err != nil {
		return Side{}, fmt.Errorf("warm-up: %w", err)
	}
	total := len(names) * o.BusRounds
	cpu0, start := cpuTime(), time.Now()
	if err := benchenv.Parallel(ctx, total, o.Writers, func(i int) error { return beat(i % len(names)) }); err != nil {
		return Side{}, err
	}
	if err := waitBeats(ctx, c, uint64(len(names)+total)); err != nil {
		return Side{}, err
	}
	return Side{Heartbeats: total, Wall: time.Since(start), CPU: cpuTime() - cpu0}, nil
}

// waitBeats waits until the controller has handled n heartbeats, polling
// every millisecond within ctx.
func waitBeats(ctx context.Context, c *lifecycle.Controller, n uint64) error {
	for c.Heartbeats() < n {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d heartbeats handled: %w", c.Heartbeats(), n, ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
	return nil
}

// raftSide writes RaftRounds heartbeats per node as Node status updates,
// each node's by one writer at a time (each update carries the version
// the previous one returned, as a kubelet's patch would have read).
func raftSide(ctx context.Context, cs kubernetes.Interface, nodes []*corev1.Node, o Options) (Side, error) {
	total := len(nodes) * o.RaftRounds
	// The bus side's controller wrote the nodes' conditions: start from
	// their current versions (not timed).
	if err := benchenv.Parallel(ctx, len(nodes), o.Writers, func(i int) error {
		n, err := cs.CoreV1().Nodes().Get(ctx, nodes[i].Name, metav1.GetOptions{})
		nodes[i] = n
		return err
	}); err != nil {
		return Side{}, err
	}
	var mu sync.Mutex
	cpu0, start := cpuTime(), time.Now()
	err := benchenv.Parallel(ctx, len(nodes), o.Writers, func(i int) error {
		mu.Lock()
		n := nodes[i]
		mu.Unlock()
		for range o.RaftRounds {
			n = n.DeepCopy()
			now := metav1.Now()
			for j := range n.Status.Conditions {
				n.Status.Conditions[j].LastHeartbeatTime = now
			}
			var err error
			if n, err = cs.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
				return err
			}
		}
		mu.Lock()
		nodes[i] = n
		mu.Unlock()
		return nil
	})
	if err != nil {
		return Side{}, err
	}
	return Side{Heartbeats: total, Wall: time.Since(start), CPU: cpuTime() - cpu0}, nil
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
