package lifecycle

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/skiffhq/skiff/internal/bus"
	"github.com/skiffhq/skiff/internal/node/protocol"
)

func readyNode(name string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name)}, Spec: corev1.NodeSpec{
		Taints: []corev1.Taint{{Key: "user", Value: "mine", Effect: corev1.TaintEffectNoSchedule}}},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{
			{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady"},
			{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse},
		}}}
}

func testController(t *testing.T, objs ...*corev1.Node) (*Controller, *fake.Clientset, *clocktesting.FakeClock) {
	t.Helper()
	cs := fake.NewSimpleClientset()
	for _, n := range objs {
		if _, err := cs.CoreV1().Nodes().Create(context.Background(), n, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	clk := clocktesting.NewFakeClock(time.Unix(1_000_000, 0))
	c := newController(Config{Client: cs, GracePeriod: 4 * time.Second, LeaseRenewInterval: 2 * time.Second, Clock: clk,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	t.Cleanup(c.renewals.Wait)
	return c, cs, clk
}

func getNode(t *testing.T, cs *fake.Clientset, name string) *corev1.Node {
	t.Helper()
	n, err := cs.CoreV1().Nodes().Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func condition(n *corev1.Node, typ corev1.NodeConditionType) corev1.NodeCondition {
	for _, c := range n.Status.Conditions {
		if c.Type == typ {
			return c
		}
	}
	return corev1.NodeCondition{}
}

func lifecycleTaints(n *corev1.Node) map[string]corev1.Taint {
	out := map[string]corev1.Taint{}
	for _, t := range n.Spec.Taints {
		out[t.Key+":"+string(t.Effect)] = t
	}
	return out
}

// A node silent for longer than the grace period goes Unknown with
// Kubernetes' reason and message and gets the unreachable taints (NoExecute
// with timeAdded); not a moment before. Its next heartbeat makes it Ready
// and takes the taints off, keeping the user's.
func TestSilentNodeGoesUnknownWithTaints(t *testing.T) {
	ctx := context.Background()
	c, cs, clk := testController(t, readyNode("n1"))
	beat := func() { c.heartbeat(ctx, "skiff.heartbeat.n1", protocol.Heartbeat{Node: "n1"}) }
	beat()

	clk.Step(4 * time.Second) // exactly the grace period: still fine
	c.checkSilence(ctx)
	if n := getNode(t, cs, "n1"); condition(n, corev1.NodeReady).Status != corev1.ConditionTrue || len(n.Spec.Taints) != 1 {
		t.Fatalf("node changed within the grace period: %+v %+v", condition(n, corev1.NodeReady), n.Spec.Taints)
	}

	clk.Step(time.Second)
	c.checkSilence(ctx)
	n := getNode(t, cs, "n1")
	if r := condition(n, corev1.NodeReady); r.Status != corev1.ConditionUnknown || r.Reason != "NodeStatusUnknown" ||
		r.Message != "Kubelet stopped posting node status." || !r.LastTransitionTime.Time.Equal(clk.Now()) {
		t.Fatalf("Ready after silence: %+v", r)
	}
	if d := condition(n, corev1.NodeDiskPressure); d.Status != corev1.ConditionUnknown {
		t.Errorf("DiskPressure after silence: %+v", d)
	}
	taints := lifecycleTaints(n)
	ne, ok := taints[corev1.TaintNodeUnreachable+":NoExecute"]
	if _, ns := taints[corev1.TaintNodeUnreachable+":NoSchedule"]; !ok || !ns || len(taints) != 3 {
		t.Fatalf("taints after silence: %+v", n.Spec.Taints)
	}
	if ne.TimeAdded == nil || !ne.TimeAdded.Time.Equal(clk.Now()) {
		t.Errorf("NoExecute taint's timeAdded %v, want %v", ne.TimeAdded, clk.Now())
	}

	// Later checks keep the taint's time: eviction counts from it.
	clk.Step(3 * time.Second)
	c.checkSilence(ctx)
	if got := lifecycleTaints(getNode(t, cs, "n1"))[corev1.TaintNodeUnreachable+":NoExecute"]; !got.TimeAdded.Equal(ne.TimeAdded) {
		t.Errorf("timeAdded moved from %v to %v", ne.TimeAdded, got.TimeAdded)
	}

	beat()
	n = getNode(t, cs, "n1")
	if r := condition(n, corev1.NodeReady); r.Status != corev1.ConditionTrue {
		t.Fatalf("Ready after a heartbeat: %+v", r)
	}
	if taints := lifecycleTaints(n); len(taints) != 1 || taints["user:NoSchedule"].Value != "mine" {
		t.Fatalf("taints after a heartbeat: %+v", n.Spec.Taints)
	}
}

// A node whose Ready condition is False (its agent says so) gets the
// not-ready taints instead.
func TestNotReadyNodeGetsNotReadyTaints(t *testing.T) {
	ctx := context.Background()
	n := readyNode("n1")
	n.Status.Conditions[0].Status = corev1.ConditionFalse
	c, cs, _ := testController(t, n)
	if err := c.syncTaints(ctx, "n1"); err != nil {
		t.Fatal(err)
	}
	taints := lifecycleTaints(getNode(t, cs, "n1"))
	if _, ok := taints[corev1.TaintNodeNotReady+":NoExecute"]; !ok || len(taints) != 3 {
		t.Fatalf("taints of a NotReady node: %+v", taints)
	}
	if _, ok := taints[corev1.TaintNodeUnreachable+":NoExecute"]; ok {
		t.Fatal("a NotReady node got the unreachable taint")
	}
}

// Heartbeats renew the node's Lease as a kubelet's do (holder, duration,
// renewTime, owned by the Node), but at most once per LeaseRenewInterval:
// each renewal is a raft write, each heartbeat is not.
func TestHeartbeatsRenewLease(t *testing.T) {
	ctx := context.Background()
	c, cs, clk := testController(t, readyNode("n1"))
	beat := func() {
		c.heartbeat(ctx, "skiff.heartbeat.n1", protocol.Heartbeat{Node: "n1"})
		c.renewals.Wait()
	}
	leaseWrites := func() int {
		n := 0
		for _, a := range cs.Actions() {
			if a.GetResource().Resource == "leases" && (a.GetVerb() == "create" || a.GetVerb() == "update") {
				n++
			}
		}
		return n
	}
	beat()
	l, err := cs.CoordinationV1().Leases("kube-node-lease").Get(ctx, "n1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *l.Spec.HolderIdentity != "n1" || *l.Spec.LeaseDurationSeconds != 6 || !l.Spec.RenewTime.Time.Equal(clk.Now()) ||
		len(l.OwnerReferences) != 1 || l.OwnerReferences[0].Kind != "Node" || l.OwnerReferences[0].UID != "uid-n1" {
		t.Fatalf("lease %+v", l)
	}
	first := l.Spec.RenewTime.Time
	for range 3 { // heartbeats within the renew interval (2s)
		clk.Step(500 * time.Millisecond)
		beat()
	}
	if w := leaseWrites(); w != 1 {
		t.Fatalf("%d lease writes for heartbeats within one renew interval, want 1", w)
	}
	clk.Step(500 * time.Millisecond)
	beat()
	if w := leaseWrites(); w != 2 {
		t.Fatalf("%d lease writes after the renew interval, want 2", w)
	}
	l, _ = cs.CoordinationV1().Leases("kube-node-lease").Get(ctx, "n1", metav1.GetOptions{})
	if got := l.Spec.RenewTime.Time.Sub(first); got != 2*time.Second {
		t.Fatalf("renewTime moved by %v, want 2s", got)
	}
}

// A running controller acknowledges heartbeats (an agent's fence counts on
// it) once it has recorded them: bus.Notify returns, and the node is seen.
// Without a controller nobody acknowledges.
func TestHeartbeatsAcknowledged(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := bus.Start(ctx, bus.Config{Name: "lifecycle-ack", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cp, err := srv.Connect(ctx, "control-plane")
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	agent, err := srv.ConnectNode(ctx, "agent-n1")
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Close()
	subject, err := bus.SubjectHeartbeat("n1")
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.Notify(ctx, agent, subject, protocol.Heartbeat{Node: "n1"}); !errors.Is(err, bus.ErrNoResponders) {
		t.Fatalf("no controller: %v, want ErrNoResponders", err)
	}
	cs := fake.NewSimpleClientset(readyNode("n1"))
	c, err := Start(ctx, Config{Bus: cp, Client: cs, GracePeriod: time.Hour, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	if err := cp.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := bus.Notify(ctx, agent, subject, protocol.Heartbeat{Node: "n1"}); err != nil {
		t.Fatalf("heartbeat not acknowledged: %v", err)
	}
	c.mu.Lock()
	_, seen := c.lastSeen["n1"]
	c.mu.Unlock()
	if !seen {
		t.Fatal("acknowledged before the node was recorded as seen")
	}
}

// After a control plane restart (a new controller), a node not heard from
// yet gets StartupGracePeriod from the controller's start, not the short
// grace period: its agent is reconnecting. One heard from once is back on
// the grace period.
func TestStartupGracePeriodAfterRestart(t *testing.T) {
	ctx := context.Background()
	c, cs, clk := testController(t, readyNode("n1"), readyNode("n2")) // grace 4s, startup default 20s
	clk.Step(5 * time.Second)
	c.heartbeat(ctx, "skiff.heartbeat.n2", protocol.Heartbeat{Node: "n2"})
	clk.Step(5 * time.Second) // n1: 10s since start, never heard; n2: 5s silent
	c.checkSilence(ctx)
	if r := condition(getNode(t, cs, "n1"), corev1.NodeReady); r.Status != corev1.ConditionTrue {
		t.Fatalf("n1 marked %s within the startup grace period", r.Status)
	}
	if r := condition(getNode(t, cs, "n2"), corev1.NodeReady); r.Status != corev1.ConditionUnknown {
		t.Fatalf("n2, heard from and then silent past the grace period: %s", r.Status)
	}
	clk.Step(10*time.Second + time.Millisecond)
	c.checkSilence(ctx)
	if r := condition(getNode(t, cs, "n1"), corev1.NodeReady); r.Status != corev1.ConditionUnknown {
		t.Fatalf("n1 silent past the startup grace period: %s", r.Status)
	}
}
