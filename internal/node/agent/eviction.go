package agent

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/skiffhq/skiff/internal/node/agent/nodestats"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// pressureTransitionPeriod is how long MemoryPressure stays True after the
// node's memory last fell below the threshold: the kubelet's
// --eviction-pressure-transition-period default, so that the condition
// (and the scheduler's taint with it) does not flap.
const pressureTransitionPeriod = 5 * time.Minute

// evictionCandidate is a running pod as eviction ranks it.
type evictionCandidate struct {
	w        *podWorker
	name     string // namespace/name
	qos      corev1.PodQOSClass
	priority int32
	usage    int64 // bytes the pod holds now
	request  int64 // its memory request
	// containers are the pod's containers with their use and request, for
	// the eviction message.
	containers []containerUsage
}

type containerUsage struct {
	name           string
	usage, request int64
}

// rankForEviction orders candidates, the first to be evicted first, as the
// kubelet's rankMemoryPressure does: pods whose use exceeds their request
// before those within it, then lower priority first, then the larger use
// over request first. At equal priority this is the QoS order: a
// BestEffort pod requests nothing, so any use exceeds it; a Burstable pod
// exceeds its request by how much it uses beyond it; a Guaranteed pod's
// limit is its request, and its memory cannot grow past its limit, so it
// never exceeds and comes last.
func rankForEviction(cands []evictionCandidate) {
	sort.SliceStable(cands, func(i, j int) bool {
		a, b := &cands[i], &cands[j]
		aOver, bOver := a.usage > a.request, b.usage > b.request
		if aOver != bOver {
			return aOver
		}
		if a.priority != b.priority {
			return a.priority < b.priority
		}
		return a.usage-a.request > b.usage-b.request
	})
}

// evictionCandidates are the pods that run now and hold memory: evicting a
// pod that holds none (not started, or in back-off) would free nothing.
func (m *podManager) evictionCandidates() []evictionCandidate {
	m.mu.Lock()
	ws := make([]*podWorker, 0, len(m.workers))
	for _, w := range m.workers {
		ws = append(ws, w)
	}
	m.mu.Unlock()
	var out []evictionCandidate
	for _, w := range ws {
		if !w.active() {
			continue
		}
		w.mu.Lock()
		pod := w.pod
		c := evictionCandidate{w: w, name: pod.Namespace + "/" + pod.Name, qos: pod.Status.QOSClass,
			request: podMemoryRequest(pod), priority: ptrValue(pod.Spec.Priority)}
		conts := append(append([]*container{}, w.inits...), w.containers...)
		w.mu.Unlock()
		for _, ct := range conts {
			u := ct.memoryBytes()
			if u == 0 {
				continue
			}
			var req int64
			if q, ok := ct.spec.Resources.Requests[corev1.ResourceMemory]; ok {
				req = q.Value()
			} else if q, ok := ct.spec.Resources.Limits[corev1.ResourceMemory]; ok {
				req = q.Value()
			}
			c.usage += u
			c.containers = append(c.containers, containerUsage{name: ct.spec.Name, usage: u, request: req})
		}
		if c.usage > 0 {
			out = append(out, c)
		}
	}
	return out
}

func ptrValue[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// watchMemory checks the node's memory every EvictionInterval until ctx
// ends (see checkMemory).
func (a *Agent) watchMemory(ctx context.Context) {
	t := time.NewTicker(a.cfg.EvictionInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		mi, err := a.readMemory()
		if err != nil {
			a.log.Debug("node memory not read", "err", err)
			continue
		}
		a.checkMemory(mi, time.Now())
	}
}

// checkMemory is one eviction round, as the kubelet's eviction manager runs
// it: below the threshold the node reports MemoryPressure and evicts one pod,
// the first of rankForEviction, and the next round looks again once that
// pod's memory is back with the system. It returns the evicted pod's
// namespace/name, if any.
func (a *Agent) checkMemory(mi nodestats.Memory, now time.Time) string {
	threshold := a.cfg.EvictionMemoryAvailable
	low := threshold > 0 && mi.Available < threshold
	a.setMemoryPressure(low, now)
	if !low {
		return ""
	}
	cands := a.pods.evictionCandidates()
	if len(cands) == 0 {
		a.log.Warn("node low on memory, and no pod holds any to evict", "available", mi.Available, "threshold", threshold)
		return ""
	}
	rankForEviction(cands)
	for _, c := range cands {
		msg := evictionMessage(threshold, mi.Available, c.containers)
		if c.w.evict(msg) {
			a.log.Warn("pod evicted", "pod", c.name, "qos", c.qos, "usage", c.usage, "request", c.request,
				"available", mi.Available, "threshold", threshold)
			return c.name
		}
	}
	return ""
}

// evictionMessage is the kubelet's wording for a memory eviction, with the
// container that holds the most over its request named.
func evictionMessage(threshold, available int64, containers []containerUsage) string {
	q := func(n int64) string { return resource.NewQuantity(n, resource.BinarySI).String() }
	var b strings.Builder
	fmt.Fprintf(&b, "The node was low on resource: memory. Threshold quantity: %s, available: %s.", q(threshold), q(available))
	for _, c := range containers {
		if c.usage > c.request {
			fmt.Fprintf(&b, " Container %s was using %s, request is %s, has larger consumption of memory.", c.name, q(c.usage), q(c.request))
		}
	}
	return b.String()
}

// evict stops the pod for good because the node is low on memory, as the
// kubelet evicts: phase Failed, reason Evicted, the DisruptionTarget
// condition, a Warning event, and no grace period (a hard threshold). It
// reports whether the pod was evicted (not when it is already stopping).
func (w *podWorker) evict(msg string) bool {
	w.mu.Lock()
	if w.failed != "" || w.deleting || w.ctx.Err() != nil {
		w.mu.Unlock()
		return false
	}
	w.failed, w.failedReason = msg, ReasonEvicted
	w.disruption = &corev1.PodCondition{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue,
		Reason: "TerminationByKubelet", Message: msg, LastTransitionTime: metav1.Now()}
	w.grace = 0
	w.mu.Unlock()
	w.a.pods.markEnded(w.uid)
	w.event("", corev1.EventTypeWarning, ReasonEvicted, msg)
	w.report()
	w.cancel()
	return true
}

// markEnded keeps a pod from being started again (see podManager.ended).
func (m *podManager) markEnded(uid string) {
	m.mu.Lock()
	m.ended[uid] = true
	m.mu.Unlock()
}

// setMemoryPressure records what the last check saw; the condition stays
// True for pressureTransitionPeriod after the last low reading. A change is
// sent with a heartbeat at once.
func (a *Agent) setMemoryPressure(low bool, now time.Time) {
	a.memMu.Lock()
	if low {
		a.lastLowMemory = now
	}
	pressure := low || (!a.lastLowMemory.IsZero() && now.Sub(a.lastLowMemory) < pressureTransitionPeriod)
	changed := pressure != a.memoryPressure
	a.memoryPressure = pressure
	a.memMu.Unlock()
	if changed {
		a.log.Info("node memory pressure changed", "pressure", pressure)
		select {
		case a.heartbeatNow <- struct{}{}:
		default:
		}
	}
}

// conditions are the node conditions the agent reports with each heartbeat.
func (a *Agent) conditions() []corev1.NodeCondition {
	a.memMu.Lock()
	pressure := a.memoryPressure
	a.memMu.Unlock()
	c := corev1.NodeCondition{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse,
		Reason: "KubeletHasSufficientMemory", Message: "skiff agent has sufficient memory available"}
	if pressure {
		c.Status, c.Reason, c.Message = corev1.ConditionTrue, "KubeletHasInsufficientMemory", "skiff agent has insufficient memory available"
	}
	conds := []corev1.NodeCondition{c}
	if a.disk != nil {
		conds = append(conds, a.disk.condition())
	}
	return conds
}
