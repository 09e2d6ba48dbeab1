package agent

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiffhq/skiff/internal/bus"
	"github.com/skiffhq/skiff/internal/node/protocol"
)

// podSync is the agent's view of the pods bound to its node: events from
// the control plane, checked for gaps, and full syncs when one is found.
// event and resync run on the bus subscription's goroutine, one at a time;
// mu guards the state for readers on other goroutines.
type podSync struct {
	a *Agent

	mu      sync.Mutex
	epoch   string
	seq     uint64
	desired map[types.UID]corev1.Pod
	resyncs int
}

// startPodSync subscribes to the node's pod events first and then asks for
// the full set, so nothing falls between the two.
func (a *Agent) startPodSync(ctx context.Context) error {
	subject, _ := bus.SubjectNodePods(a.cfg.NodeName) // checked in New
	ps := &podSync{a: a, desired: map[types.UID]corev1.Pod{}}
	sub, err := bus.Subscribe(ctx, a.cfg.Bus, subject, func(ctx context.Context, _ string, ev protocol.PodEvent) {
		ps.event(ctx, ev)
	})
	if err != nil {
		return fmt.Errorf("agent: subscribe to pod events: %w", err)
	}
	a.mu.Lock()
	a.sync, a.podSub = ps, sub
	a.mu.Unlock()
	// The first sync goes through the same path as events, so the state is
	// only ever touched on one goroutine: a synthetic event from another
	// epoch makes the handler sync.
	return bus.Publish(ctx, a.cfg.Bus, subject, protocol.PodEvent{Epoch: "agent-start"})
}

func (ps *podSync) event(ctx context.Context, ev protocol.PodEvent) {
	ps.mu.Lock()
	epoch, seq := ps.epoch, ps.seq
	ps.mu.Unlock()
	switch {
	case ev.Epoch != epoch, ev.Seq > seq+1:
		ps.resync(ctx) // another control plane instance, or missed events
		return
	case ev.Seq <= seq:
		return // already part of the last sync
	}
	ps.mu.Lock()
	ps.seq = ev.Seq
	if ev.Type == "DELETED" {
		delete(ps.desired, ev.Pod.UID)
	} else {
		ps.desired[ev.Pod.UID] = ev.Pod
	}
	ps.mu.Unlock()
	ps.a.changed(ps)
}

// resync replaces the state with a full sync, retrying with back-off while
// the control plane does not answer (bounded by ctx: the subscription's).
func (ps *podSync) resync(ctx context.Context) {
	subject, _ := bus.SubjectNodeSync(ps.a.cfg.NodeName)
	for attempt := 0; ctx.Err() == nil; attempt++ {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		resp, err := bus.Request[protocol.SyncRequest, protocol.SyncResponse](rctx, ps.a.cfg.Bus, subject,
			protocol.SyncRequest{Node: ps.a.cfg.NodeName})
		cancel()
		if err == nil {
			ps.mu.Lock()
			ps.epoch, ps.seq = resp.Epoch, resp.Seq
			clear(ps.desired)
			for _, p := range resp.Pods {
				ps.desired[p.UID] = p
			}
			ps.resyncs++
			ps.mu.Unlock()
			ps.a.changed(ps)
			return
		}
		ps.a.log.Debug("pod sync failed, retrying", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(min(time.Duration(1<<min(attempt, 5))*100*time.Millisecond, 3*time.Second)):
		}
	}
}

// changed hands the new desired set to whoever runs the pods.
func (a *Agent) changed(ps *podSync) {
	pods := ps.snapshot()
	if a.cfg.Runtime != nil {
		a.pods.sync(pods)
	}
	if a.cfg.OnPodsChanged != nil {
		a.cfg.OnPodsChanged(pods)
	}
}

// DesiredPods returns the pods bound to this node, as last synced, ordered
// by namespace and name.
func (a *Agent) DesiredPods() []corev1.Pod {
	a.mu.Lock()
	ps := a.sync
	a.mu.Unlock()
	if ps == nil {
		return nil
	}
	return ps.snapshot()
}

// Resyncs counts the full pod syncs since Start: one at start, one per gap,
// new control plane instance or reconnect.
func (a *Agent) Resyncs() int {
	a.mu.Lock()
	ps := a.sync
	a.mu.Unlock()
	if ps == nil {
		return 0
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.resyncs
}

func (ps *podSync) snapshot() []corev1.Pod {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	out := make([]corev1.Pod, 0, len(ps.desired))
	for _, p := range ps.desired {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out
}
