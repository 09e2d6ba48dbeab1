package agent

import (
	"context"
	"time"

	"github.com/skiffhq/skiff/internal/bus"
	"github.com/skiffhq/skiff/internal/node/protocol"
)

// Usage reports: every UsageInterval the agent publishes what its pods and
// the node use (protocol.UsageReport) on the node's usage subject, for the
// metrics APIs every API server serves (kubectl top, autoscalers). Counters
// go as they are (cumulative CPU time and requests), so the control plane
// derives rates over the node's own clock and a lost report costs nothing
// but resolution. Reports are not written to raft.

// DefaultUsageInterval is how often usage is reported unless
// Config.UsageInterval says otherwise: metrics-server's default resolution.
const DefaultUsageInterval = 10 * time.Second

// usageReport reads what the node and its running pods use now.
func (a *Agent) usageReport() protocol.UsageReport {
	r := protocol.UsageReport{Node: a.cfg.NodeName, Time: time.Now()}
	if n, err := a.readCPU(); err == nil {
		r.CPUNanos = n
	} else {
		a.log.Debug("node CPU not read", "err", err)
	}
	if m, err := a.readMemory(); err == nil {
		r.MemoryBytes = max(m.Total-m.Available, 0)
	} else {
		a.log.Debug("node memory not read", "err", err)
	}
	a.pods.mu.Lock()
	ws := make([]*podWorker, 0, len(a.pods.workers))
	for _, w := range a.pods.workers {
		ws = append(ws, w)
	}
	a.pods.mu.Unlock()
	for _, w := range ws {
		if !w.active() {
			continue
		}
		w.mu.Lock()
		pu := protocol.PodUsage{Namespace: w.pod.Namespace, Name: w.pod.Name, UID: w.uid}
		conts := append([]*container{}, w.containers...)
		w.mu.Unlock()
		// Regular containers only, as metrics-server lists them: init
		// containers have ended by the time a pod serves, and their CPU
		// time would show as a burst at the pod's first sample.
		for _, c := range conts {
			cu := protocol.ContainerUsage{Name: c.spec.Name, CPUNanos: uint64(c.cpu.usage()), MemoryBytes: c.memoryBytes()}
			if n, ok := c.cpu.httpRequests(); ok {
				cu.HTTPRequests = &n
			}
			pu.Containers = append(pu.Containers, cu)
		}
		r.Pods = append(r.Pods, pu)
	}
	return r
}

// reportUsage publishes a usage report every UsageInterval until ctx ends.
func (a *Agent) reportUsage(ctx context.Context, done chan struct{}) {
	defer close(done)
	subject, _ := bus.SubjectNodeUsage(a.cfg.NodeName) // the name was checked in New
	t := time.NewTicker(a.cfg.UsageInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := bus.Publish(ctx, a.cfg.Bus, subject, a.usageReport()); err != nil && ctx.Err() == nil {
			a.log.Warn("usage report not sent", "err", err)
		}
	}
}
