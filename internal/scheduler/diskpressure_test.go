package scheduler

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// A node whose DiskPressure is True counts as tainted
// node.kubernetes.io/disk-pressure:NoSchedule, as Kubernetes' node
// lifecycle controller taints it: only pods that tolerate it go there.
func TestDiskPressureTaint(t *testing.T) {
	n := &nodeInfo{node: &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n"}, Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{
		{Type: corev1.NodeReady, Status: corev1.ConditionTrue},
		{Type: corev1.NodeDiskPressure, Status: corev1.ConditionTrue},
	}}}}
	pod := &corev1.Pod{}
	want := []string{"node(s) had untolerated taint {node.kubernetes.io/disk-pressure: }"}
	if got := fitsTaints(newPodInfo(pod), n); !slices.Equal(got, want) {
		t.Errorf("fitsTaints = %q, want %q", got, want)
	}
	pod.Spec.Tolerations = []corev1.Toleration{{Key: corev1.TaintNodeDiskPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
	if got := fitsTaints(newPodInfo(pod), n); got != nil {
		t.Errorf("a pod tolerating disk pressure: %q", got)
	}
	n.node.Status.Conditions[1].Status = corev1.ConditionFalse
	if got := fitsTaints(newPodInfo(&corev1.Pod{}), n); got != nil {
		t.Errorf("without disk pressure: %q", got)
	}
}
