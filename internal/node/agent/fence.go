package agent

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The StatefulSet fence. A node cut off from every server keeps its pods
// running (edge autonomy), but the control plane replaces a lost node's
// pods elsewhere; for a StatefulSet pod that would run one ordinal twice.
// So an agent that has not reached a server for FenceTimeout stops its
// StatefulSet pods (with no grace: the control plane counts on them being
// gone) and starts none until it reaches one again, and the control plane
// deletes such pods for good only after that timeout plus a margin
// (internal/controllers/tainteviction). Contact is a round trip to the
// bus's server after a heartbeat: a message the bus accepted reached a
// server, which is all the control plane can see either.

// fenceState is the agent's side of the fence; guarded by Agent.mu.
type fenceState struct {
	lastContact time.Time
	fenced      bool
}

// contactTimeout bounds the round trip that proves contact.
func (a *Agent) contactTimeout() time.Duration {
	return min(a.cfg.HeartbeatInterval, time.Second)
}

// checkContact runs after each heartbeat: it records a round trip to the
// bus's server, and raises or lowers the fence.
func (a *Agent) checkContact() {
	if a.cfg.FenceTimeout <= 0 {
		return
	}
	ok := a.cfg.Bus.NATS().FlushTimeout(a.contactTimeout()) == nil
	now := time.Now()
	a.mu.Lock()
	if ok || a.fence.lastContact.IsZero() {
		a.fence.lastContact = now
	}
	cutOff := now.Sub(a.fence.lastContact)
	raise := !ok && !a.fence.fenced && cutOff > a.cfg.FenceTimeout
	lower := ok && a.fence.fenced
	if raise || lower {
		a.fence.fenced = raise
	}
	a.mu.Unlock()
	switch {
	case raise:
		n := a.pods.fence(true)
		a.log.Warn("cut off from every server for longer than the fence timeout: StatefulSet pods stopped",
			"cut_off", cutOff.Round(time.Millisecond), "fence_timeout", a.cfg.FenceTimeout, "pods", n)
	case lower:
		a.pods.fence(false)
		a.log.Info("in contact with a server again: StatefulSet pods may run")
		a.requestResync() // starts the ones still bound here
	}
}

// Fenced reports whether the agent holds its StatefulSet pods stopped.
func (a *Agent) Fenced() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.fence.fenced
}

// isStatefulSetPod: a pod a StatefulSet controls, whose name (ordinal)
// must never run on two nodes at once.
func isStatefulSetPod(pod *corev1.Pod) bool {
	ref := metav1.GetControllerOf(pod)
	return ref != nil && ref.Kind == "StatefulSet"
}

// fence raises (on) or lowers the fence: raised, every StatefulSet pod's
// worker is killed and none starts. It returns how many it stopped.
func (m *podManager) fence(on bool) int {
	m.mu.Lock()
	m.fenced = on
	var ws []*podWorker
	if on {
		for _, w := range m.workers {
			w.mu.Lock()
			sts := isStatefulSetPod(w.pod)
			w.mu.Unlock()
			if sts {
				ws = append(ws, w)
			}
		}
	}
	m.mu.Unlock()
	for _, w := range ws {
		w.kill()
	}
	for _, w := range ws {
		<-w.done
	}
	return len(ws)
}
