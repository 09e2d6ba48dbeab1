package policy

import (
	"context"
	"log/slog"
	"net/netip"

	corev1 "k8s.io/api/core/v1"

	skiffrt "github.com/skiffhq/skiff/runtime"
)

// Firewall is a pod's runtime.Firewall: the Evaluator's decisions for one
// pod, known by namespace, name and UID.
type Firewall struct {
	e   *Evaluator
	own *corev1.Pod // the agent's copy, with the address the node gave it
}

var _ skiffrt.Firewall = (*Firewall)(nil)

// Firewall returns pod's firewall. pod is the agent's copy of the pod, with
// the address the node gave it in status.podIPs. Each decision reads the
// pod's labels from the feed, so a relabelled pod is decided by its new
// labels; until the feed has the pod (it is published once the API has
// it, but may trail the agent), or when the feed's pod of that name is
// another one (a pod recreated under its name), the agent's copy is used.
// pod is kept, not copied: the caller must not change it afterwards.
func (e *Evaluator) Firewall(pod *corev1.Pod) *Firewall {
	return &Firewall{e: e, own: pod}
}

// Allow implements runtime.Firewall.
func (f *Firewall) Allow(dir skiffrt.Direction, proto skiffrt.Protocol, peer netip.AddrPort, port uint16) bool {
	if !f.e.ready() {
		return false
	}
	pod := f.pod()
	p := corev1.Protocol(proto)
	var ok bool
	if dir == skiffrt.Ingress {
		ok = f.e.AllowIngress(pod, peer.Addr(), p, port)
	} else {
		ok = f.e.AllowEgress(pod, peer, p)
	}
	if !ok && f.e.log.Enabled(context.Background(), slog.LevelDebug) {
		dirName := "ingress"
		if dir == skiffrt.Egress {
			dirName = "egress"
		}
		f.e.log.Debug("connection denied by network policy", "pod", pod.Namespace+"/"+pod.Name,
			"direction", dirName, "protocol", proto, "peer", peer, "port", port)
	}
	return ok
}

// pod is the pod as the decision sees it: the feed's (current labels)
// with the agent's addresses when the feed has none yet.
func (f *Firewall) pod() *corev1.Pod {
	o, ok, _ := f.e.pods.GetByKey(f.own.Namespace + "/" + f.own.Name)
	if !ok {
		return f.own
	}
	fed := o.(*corev1.Pod)
	if f.own.UID != "" && fed.UID != f.own.UID {
		return f.own
	}
	if len(podIPs(fed)) > 0 || len(podIPs(f.own)) == 0 {
		return fed
	}
	cp := *fed // shallow: only status changes, and a copy of it
	cp.Status = *fed.Status.DeepCopy()
	cp.Status.PodIP, cp.Status.PodIPs = f.own.Status.PodIP, f.own.Status.PodIPs
	return &cp
}
