package agent

import (
	"context"
	"sync"
	"time"

	"github.com/skiffhq/skiff/internal/bus"
	"github.com/skiffhq/skiff/internal/node/protocol"
)

// Report limits: how much goes in one bus message, and how much waits while
// the control plane does not answer. Statuses never pile up (only the
// newest per pod is kept); events beyond the cap are dropped, as a
// kubelet's event broadcaster drops them under pressure.
const (
	maxReportPods   = 200
	maxReportEvents = 200
	maxQueuedEvents = 2000
)

// reporter sends pod statuses and events to the control plane in batches,
// by request/reply so that a lost batch is sent again.
type reporter struct {
	a *Agent

	mu      sync.Mutex
	pending map[string]protocol.PodStatus // by UID: the newest status not yet acknowledged
	order   []string
	events  []protocol.Event
	kick    chan struct{}
	sent    uint64 // batches acknowledged, for tests
}

func newReporter(a *Agent) *reporter {
	return &reporter{a: a, pending: map[string]protocol.PodStatus{}, kick: make(chan struct{}, 1)}
}

func (r *reporter) status(ps protocol.PodStatus) {
	ps.Status = *ps.Status.DeepCopy() // not the caller's: its messages are rewritten
	r.a.hideStatusPaths(&ps.Status)
	r.mu.Lock()
	if _, ok := r.pending[ps.UID]; !ok {
		r.order = append(r.order, ps.UID)
	}
	r.pending[ps.UID] = ps
	r.mu.Unlock()
	r.wake()
}

func (r *reporter) event(ev protocol.Event) {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	ev.Message = r.a.hidePaths(ev.Message)
	r.mu.Lock()
	if len(r.events) < maxQueuedEvents {
		r.events = append(r.events, ev)
	}
	r.mu.Unlock()
	r.wake()
}

func (r *reporter) wake() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// run sends batches until ctx ends. There is no batching delay: the first
// change goes at once, and what changes while a batch is on its way goes in
// the next, so batches grow with load rather than with a timer. A failed
// batch goes back in the queue (unless a newer status replaced it) and is
// retried with back-off.
func (r *reporter) run(ctx context.Context) {
	subject, _ := bus.SubjectNodeStatus(r.a.cfg.NodeName)
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
		}
		for ctx.Err() == nil {
			rep := r.take()
			if len(rep.Pods) == 0 && len(rep.Events) == 0 {
				break
			}
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			ack, err := bus.Request[protocol.StatusReport, protocol.StatusAck](rctx, r.a.cfg.Bus, subject, rep)
			cancel()
			if err != nil {
				r.putBack(rep, ack.Gone)
				failures++
				r.a.log.Debug("status report failed, retrying", "err", err, "pods", len(rep.Pods))
				select {
				case <-ctx.Done():
					return
				case <-time.After(min(time.Duration(1<<min(failures, 5))*100*time.Millisecond, 3*time.Second)):
				}
				continue
			}
			failures = 0
			r.mu.Lock()
			r.sent++
			r.mu.Unlock()
		}
	}
}

func (r *reporter) take() protocol.StatusReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := protocol.StatusReport{Node: r.a.cfg.NodeName}
	n := min(len(r.order), maxReportPods)
	for _, uid := range r.order[:n] {
		rep.Pods = append(rep.Pods, r.pending[uid])
		delete(r.pending, uid)
	}
	r.order = append(r.order[:0], r.order[n:]...)
	m := min(len(r.events), maxReportEvents)
	rep.Events = append(rep.Events, r.events[:m]...)
	r.events = append(r.events[:0], r.events[m:]...)
	return rep
}

// putBack requeues what a failed batch carried, except statuses a newer one
// replaced meanwhile and pods the control plane said are gone.
func (r *reporter) putBack(rep protocol.StatusReport, gone []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	skip := map[string]bool{}
	for _, uid := range gone {
		skip[uid] = true
	}
	for _, ps := range rep.Pods {
		if _, newer := r.pending[ps.UID]; newer || skip[ps.UID] {
			continue
		}
		r.pending[ps.UID] = ps
		r.order = append(r.order, ps.UID)
	}
	if len(r.events)+len(rep.Events) <= maxQueuedEvents {
		r.events = append(rep.Events, r.events...)
	}
}
