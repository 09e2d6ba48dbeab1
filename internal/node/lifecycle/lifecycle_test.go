package lifecycle

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestMergeConditions: a heartbeat's condition changes the Node only when
// its status differs, with a new transition time; a missing one is added.
func TestMergeConditions(t *testing.T) {
	old := metav1.NewTime(time.Now().Add(-time.Hour))
	n := &corev1.Node{Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{
		{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastTransitionTime: old},
		{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientMemory", LastTransitionTime: old},
	}}}
	now := metav1.Now()
	same := []corev1.NodeCondition{{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientMemory"}}
	if mergeConditions(n, same, now) {
		t.Error("an unchanged condition changed the node")
	}
	pressure := []corev1.NodeCondition{{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionTrue, Reason: "KubeletHasInsufficientMemory"}}
	if !mergeConditions(n, pressure, now) {
		t.Fatal("a changed condition did not change the node")
	}
	c := n.Status.Conditions[1]
	if c.Status != corev1.ConditionTrue || c.Reason != "KubeletHasInsufficientMemory" || !c.LastTransitionTime.Equal(&now) {
		t.Errorf("condition after the change: %+v", c)
	}
	if !n.Status.Conditions[0].LastTransitionTime.Equal(&old) {
		t.Error("Ready was touched")
	}
	bare := &corev1.Node{}
	if !mergeConditions(bare, pressure, now) || len(bare.Status.Conditions) != 1 {
		t.Errorf("a missing condition was not added: %+v", bare.Status.Conditions)
	}
}
