package agent

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiffhq/skiff/internal/bus"
	"github.com/skiffhq/skiff/internal/node/protocol"
)

// The StatefulSet fence. A node cut off from every server keeps its pods
// running (edge autonomy), but the control plane replaces a lost node's
// pods elsewhere; for a StatefulSet pod that would run one ordinal twice.
// So an agent whose heartbeats the control plane has not acknowledged for
// FenceTimeout stops its StatefulSet pods (with no grace: the control plane
// counts on them being gone) and starts none until one is acknowledged
// again, and the control plane deletes such pods for good only after that
// timeout plus a margin after the last heartbeat it heard
// (internal/controllers/tainteviction). The acknowledgement comes from the
// lifecycle controller, which runs on the raft leader only: the one whose
// clock counts.

// fenceState is the agent's side of the fence; guarded by Agent.mu.
type fenceState struct {
	lastContact time.Time
	fenced      bool
}

// contactTimeout bounds the wait for the control plane's acknowledgement.
func (a *Agent) contactTimeout() time.Duration {
	return min(a.cfg.HeartbeatInterval, time.Second)
}

// sendHeartbeat sends one heartbeat. With a fence, it is acknowledged by
// the control plane's lifecycle controller (on the raft leader only), and
// the acknowledgement is the contact the fence counts: the bus server the
// agent is connected to may be up but cut off from the leader.
func (a *Agent) sendHeartbeat(ctx context.Context, subject string) {
	hb := protocol.Heartbeat{Node: a.cfg.NodeName, Time: time.Now(), Conditions: a.conditions()}
	if a.cfg.FenceTimeout <= 0 {
		if err := bus.Publish(ctx, a.cfg.Bus, subject, hb); err != nil && ctx.Err() == nil {
			a.log.Warn("heartbeat not sent", "err", err)
		}
		return
	}
	nctx, cancel := context.WithTimeout(ctx, a.contactTimeout())
	err := bus.Notify(nctx, a.cfg.Bus, subject, hb)
	cancel()
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		a.log.Debug("heartbeat not acknowledged", "err", err)
	}
	a.checkContact(err == nil)
}

// checkContact runs after each acknowledged or unacknowledged heartbeat:
// it records the contact, and raises or lowers the fence.
func (a *Agent) checkContact(ok bool) {
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
		a.log.Warn("cut off from the control plane for longer than the fence timeout: StatefulSet pods stopped",
			"cut_off", cutOff.Round(time.Millisecond), "fence_timeout", a.cfg.FenceTimeout, "pods", n)
	case lower:
		a.pods.fence(false)
		a.log.Info("in contact with the control plane again: StatefulSet pods may run")
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
