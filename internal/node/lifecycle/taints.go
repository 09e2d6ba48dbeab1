package lifecycle

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
)

// lifecycleTaintKeys are the taint keys this controller owns; others on a
// node belong to its users and are kept.
var lifecycleTaintKeys = map[string]bool{corev1.TaintNodeUnreachable: true, corev1.TaintNodeNotReady: true}

// wantTaints is what Kubernetes' node lifecycle controller puts on a node
// whose Ready condition has the given status: unreachable for Unknown,
// not-ready for False, each with NoSchedule (no new pods) and NoExecute
// (the taint-eviction controller evicts pods that do not tolerate it);
// none for True.
func wantTaints(ready corev1.ConditionStatus) []corev1.Taint {
	key := ""
	switch ready {
	case corev1.ConditionUnknown:
		key = corev1.TaintNodeUnreachable
	case corev1.ConditionFalse:
		key = corev1.TaintNodeNotReady
	default:
		return nil
	}
	return []corev1.Taint{{Key: key, Effect: corev1.TaintEffectNoSchedule}, {Key: key, Effect: corev1.TaintEffectNoExecute}}
}

// readyStatus is the node's Ready condition status; Unknown when it has
// none, as Kubernetes reads a node that never reported.
func readyStatus(st corev1.NodeStatus) corev1.ConditionStatus {
	for _, c := range st.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status
		}
	}
	return corev1.ConditionUnknown
}

// hasTaints reports whether have holds exactly the lifecycle taints of want
// (by key and effect) and no other lifecycle taint.
func hasTaints(have, want []corev1.Taint) bool {
	n := 0
	for _, t := range have {
		if !lifecycleTaintKeys[t.Key] {
			continue
		}
		n++
		found := false
		for _, w := range want {
			found = found || (w.Key == t.Key && w.Effect == t.Effect)
		}
		if !found {
			return false
		}
	}
	return n == len(want)
}

// syncTaints makes the node's lifecycle taints match its Ready condition
// in the store, writing only on a difference. A NoExecute taint carries
// timeAdded, from which the taint-eviction controller counts pods'
// tolerationSeconds; a taint kept keeps its time.
func (c *Controller) syncTaints(ctx context.Context, name string) error {
	nodes := c.cfg.Client.CoreV1().Nodes()
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := nodes.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		ready := readyStatus(n.Status)
		want := wantTaints(ready)
		if hasTaints(n.Spec.Taints, want) {
			return nil
		}
		now := metav1.NewTime(c.cfg.Clock.Now())
		var taints []corev1.Taint
		for _, t := range n.Spec.Taints {
			if !lifecycleTaintKeys[t.Key] {
				taints = append(taints, t)
			}
		}
		for _, w := range want {
			for _, t := range n.Spec.Taints {
				if t.Key == w.Key && t.Effect == w.Effect {
					w.TimeAdded = t.TimeAdded
				}
			}
			if w.Effect == corev1.TaintEffectNoExecute && w.TimeAdded == nil {
				w.TimeAdded = &now
			}
			taints = append(taints, w)
		}
		n.Spec.Taints = taints
		if _, err := nodes.Update(ctx, n, metav1.UpdateOptions{}); err != nil {
			return err
		}
		c.log.Info("node taints changed", "node", name, "ready", ready, "taints", len(want))
		return nil
	})
}
