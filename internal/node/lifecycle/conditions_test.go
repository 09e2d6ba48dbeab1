package lifecycle

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/skiffhq/skiff/internal/node/protocol"
)

// TestHeartbeatWritesConditionChanges: a heartbeat's DiskPressure reaches
// the Node when its status changes, and only then.
func TestHeartbeatWritesConditionChanges(t *testing.T) {
	ctx := context.Background()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{
		{Type: corev1.NodeReady, Status: corev1.ConditionTrue},
		{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasNoDiskPressure"},
	}}}
	cs := fake.NewSimpleClientset(node)
	c := newController(Config{Client: cs, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	c.ready["n1"] = true
	c.conditions["n1"] = map[corev1.NodeConditionType]corev1.ConditionStatus{corev1.NodeReady: corev1.ConditionTrue, corev1.NodeDiskPressure: corev1.ConditionFalse}
	t.Cleanup(c.renewals.Wait)
	writes := func() int {
		n := 0
		for _, a := range cs.Actions() {
			if a.GetVerb() == "update" && a.GetSubresource() == "status" {
				n++
			}
		}
		return n
	}
	beat := func(st corev1.ConditionStatus, msg string) {
		c.heartbeat(ctx, "skiff.heartbeat.n1", protocol.Heartbeat{Node: "n1", Time: time.Now(),
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeDiskPressure, Status: st, Reason: "R", Message: msg}}})
	}
	diskPressure := func() corev1.NodeCondition {
		n, err := cs.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeDiskPressure {
				return cond
			}
		}
		t.Fatal("no DiskPressure condition")
		return corev1.NodeCondition{}
	}

	beat(corev1.ConditionFalse, "fine")
	if w := writes(); w != 0 {
		t.Fatalf("an unchanged heartbeat wrote the node %d times", w)
	}
	beat(corev1.ConditionTrue, "nodefs.available 4% < 10%")
	if got := diskPressure(); got.Status != corev1.ConditionTrue || got.Message != "nodefs.available 4% < 10%" || got.LastTransitionTime.IsZero() {
		t.Fatalf("DiskPressure %+v after a heartbeat saying True", got)
	}
	before := writes()
	beat(corev1.ConditionTrue, "nodefs.available 3% < 10%")
	if w := writes(); w != before {
		t.Errorf("a heartbeat with the same status wrote the node")
	}
	beat(corev1.ConditionFalse, "fine")
	if got := diskPressure(); got.Status != corev1.ConditionFalse {
		t.Fatalf("DiskPressure %+v after a heartbeat saying False", got)
	}
}
