package agent

import (
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	skiffrt "github.com/skiffhq/skiff/runtime"
)

// CPU limits and CPU time. The runtime holds each container to its
// `resources.limits.cpu` where it can (runtime.CPULimiter says whether);
// where it cannot, the node says so in a condition and a label, and each pod
// that asks for a CPU limit gets a warning event, as DESIGN.md's "Degrade,
// never break" asks. CPU time is read from the container's process
// (runtime.CPUMeter) for `kubectl top` and autoscaling.

// NodeCPULimitsNotEnforced is the node condition that is True when the
// node's runtime cannot hold containers to their CPU limits (Reason
// CPULimitsNotEnforced, the cause in Message), False when it does. Like the
// pressure conditions, True is the state that needs attention.
const NodeCPULimitsNotEnforced corev1.NodeConditionType = "CPULimitsNotEnforced"

// CPULimitsLabel labels a node "enforced" or "not-enforced", so that pods
// that depend on their CPU limit can select nodes that hold it.
const CPULimitsLabel = "skiff.dev/cpu-limits"

// cpuLimitsEnforced asks the runtime; a runtime that cannot say does not
// enforce.
func (a *Agent) cpuLimitsEnforced() (bool, string) {
	if l, ok := a.cfg.Runtime.(skiffrt.CPULimiter); ok {
		return l.CPULimitEnforced()
	}
	return false, "the runtime does not enforce CPU limits"
}

// describeCPULimits adds the condition and the label to the Node the agent
// registers.
func (a *Agent) describeCPULimits(node *corev1.Node, now metav1.Time) {
	if a.cfg.Runtime == nil {
		return
	}
	cond := corev1.NodeCondition{Type: NodeCPULimitsNotEnforced, Status: corev1.ConditionFalse, Reason: "CPULimitsEnforced",
		Message: "containers are held to their CPU limits", LastHeartbeatTime: now, LastTransitionTime: now}
	node.Labels[CPULimitsLabel] = "enforced"
	if ok, why := a.cpuLimitsEnforced(); !ok {
		cond.Status, cond.Reason, cond.Message = corev1.ConditionTrue, "CPULimitsNotEnforced", "CPU limits not enforced on this node: "+why
		node.Labels[CPULimitsLabel] = "not-enforced"
		a.log.Warn("CPU limits not enforced on this node", "reason", why)
	}
	node.Status.Conditions = append(node.Status.Conditions, cond)
}

// cpuLimitMillis is the container's CPU limit in thousandths of a core, 0
// for none.
func cpuLimitMillis(c *corev1.Container) int64 {
	if q, ok := c.Resources.Limits[corev1.ResourceCPU]; ok {
		return q.MilliValue()
	}
	return 0
}

// containerCPU is a container's CPU time and served HTTP requests across
// its starts, and whether its pod was told that its limit is not held.
type containerCPU struct {
	mu     sync.Mutex
	done   time.Duration    // of the starts that ended
	proc   skiffrt.CPUMeter // of the current start; nil when none or not measured
	warned bool

	reqsDone uint64                 // HTTP requests of the starts that ended
	reqs     skiffrt.RequestCounter // of the current start; nil when none or not counted
	counted  bool                   // some start's requests were counted
}

// started follows the CPU time (and requests) of a new start of the
// container.
func (cc *containerCPU) started(p skiffrt.Process) {
	m, _ := p.(skiffrt.CPUMeter)
	rc, _ := p.(skiffrt.RequestCounter)
	cc.mu.Lock()
	cc.proc = m
	cc.reqs = rc
	cc.counted = cc.counted || rc != nil
	cc.mu.Unlock()
}

// ended adds the ended start's CPU time and requests to the container's.
func (cc *containerCPU) ended() {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.proc != nil {
		cc.done += cc.proc.CPUUsage()
		cc.proc = nil
	}
	if cc.reqs != nil {
		cc.reqsDone += cc.reqs.HTTPRequests()
		cc.reqs = nil
	}
}

// httpRequests is the container's served HTTP requests across its starts;
// ok is false when its runtime never counted them.
func (cc *containerCPU) httpRequests() (n uint64, ok bool) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	n = cc.reqsDone
	if cc.reqs != nil {
		n += cc.reqs.HTTPRequests()
	}
	return n, cc.counted
}

func (cc *containerCPU) usage() time.Duration {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	u := cc.done
	if cc.proc != nil {
		u += cc.proc.CPUUsage()
	}
	return u
}

// warnCPULimit tells the pod, once per container, that its CPU limit is not
// held on this node.
func (c *container) warnCPULimit(limitMillis int64) {
	if limitMillis <= 0 {
		return
	}
	ok, why := c.w.a.cpuLimitsEnforced()
	if ok {
		return
	}
	c.cpu.mu.Lock()
	warned := c.cpu.warned
	c.cpu.warned = true
	c.cpu.mu.Unlock()
	if !warned {
		c.event(corev1.EventTypeWarning, "CPULimitNotEnforced", "CPU limit not enforced on this node: "+why)
	}
}

// PodCPUUsage is the CPU time the containers of a pod running on this node
// have used (init containers included, across restarts, execs into them
// included), as a kubelet's summary API reports usageCoreNanoSeconds: the
// rate of its change is the pod's CPU usage. ok is false when the pod does
// not run here.
func (a *Agent) PodCPUUsage(namespace, name string) (usage time.Duration, ok bool) {
	w := a.pods.find(namespace, name, "")
	if w == nil {
		return 0, false
	}
	for _, c := range w.inits {
		usage += c.cpu.usage()
	}
	for _, c := range w.containers {
		usage += c.cpu.usage()
	}
	return usage, true
}
