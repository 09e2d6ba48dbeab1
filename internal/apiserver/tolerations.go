package apiserver

import (
	corev1 "k8s.io/api/core/v1"
)

// DefaultTolerationSeconds is what Kubernetes' DefaultTolerationSeconds
// admission plugin gives a pod: how long it stays bound to a node whose
// Ready condition is False (NotReady) or Unknown (Unreachable) before the
// taint-eviction controller evicts it.
type DefaultTolerationSeconds struct {
	NotReady, Unreachable int64
}

// admitDefaultTolerations is Kubernetes' DefaultTolerationSeconds admission
// plugin, on pod create: a pod with no toleration of the not-ready
// (unreachable) NoExecute taint gets one for NotReady (Unreachable)
// seconds. A toleration with an empty key or an empty effect counts as
// tolerating, as upstream reads it.
func (s *Server) admitDefaultTolerations(pod *corev1.Pod) {
	d := s.cfg.DefaultTolerationSeconds
	if d == nil {
		return
	}
	notReady, unreachable := false, false
	for _, t := range pod.Spec.Tolerations {
		if t.Effect != corev1.TaintEffectNoExecute && t.Effect != "" {
			continue
		}
		notReady = notReady || t.Key == corev1.TaintNodeNotReady || t.Key == ""
		unreachable = unreachable || t.Key == corev1.TaintNodeUnreachable || t.Key == ""
	}
	if !notReady {
		secs := d.NotReady
		pod.Spec.Tolerations = append(pod.Spec.Tolerations, corev1.Toleration{Key: corev1.TaintNodeNotReady,
			Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: &secs})
	}
	if !unreachable {
		secs := d.Unreachable
		pod.Spec.Tolerations = append(pod.Spec.Tolerations, corev1.Toleration{Key: corev1.TaintNodeUnreachable,
			Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: &secs})
	}
}
