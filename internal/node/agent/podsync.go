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
// event and resync run on one goroutine (run), one at a time; mu guards the
// state for readers on other goroutines.
type podSync struct {
	a *Agent

	// nudge asks run for a full sync (at start, after a reconnect). One
	// pending nudge covers any number of requests. Kept in process: the
	// node identity may not publish to its pods subject, which is the
	// control plane's.
	nudge chan struct{}

	mu      sync.Mutex
	epoch   string
	seq     uint64
	desired map[types.UID]corev1.Pod
	resyncs int
}

// podEventBuffer is how many pod events may wait while a sync runs; the bus
// subscription holds more (nats.go's pending limit) when it is full.
const podEventBuffer = 64

// startPodSync subscribes to the node's pod events first and then asks for
// the full set, so nothing falls between the two.
func (a *Agent) startPodSync(ctx context.Context) error {
	subject, _ := bus.SubjectNodePods(a.cfg.NodeName) // checked in New
	ps := &podSync{a: a, desired: map[types.UID]corev1.Pod{}, nudge: make(chan struct{}, 1)}
	events := make(chan protocol.PodEvent, podEventBuffer)
	sub, err := bus.Subscribe(ctx, a.cfg.Bus, subject, func(ctx context.Context, _ string, ev protocol.PodEvent) {
		select {
		case events <- ev:
		case <-ctx.Done():
		}
	})
	if err != nil {
		return fmt.Errorf("agent: subscribe to pod events: %w", err)
	}
	a.mu.Lock()
	a.sync, a.podSub = ps, sub
	a.mu.Unlock()
	ps.requestResync() // the first sync, before any event is looked at
	go ps.run(ctx, events)
	return nil
}

// run handles nudges and events one at a time until ctx ends. A pending
// nudge goes first, so the first sync precedes the first event.
func (ps *podSync) run(ctx context.Context, events <-chan protocol.PodEvent) {
	for {
		select {
		case <-ps.nudge:
			ps.resync(ctx)
			continue
		default:
		}
		select {
		case <-ctx.Done():
			return
		case <-ps.nudge:
			ps.resync(ctx)
		case ev := <-events:
			ps.event(ctx, ev)
		}
	}
}

// requestResync makes run fetch the full set; it never blocks.
func (ps *podSync) requestResync() {
	select {
	case ps.nudge <- struct{}{}:
	default: // one is pending already
	}
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
