package engine

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiffhq/skiff/internal/sleeper"
	"github.com/skiffhq/skiff/internal/testutil"
)

// TestPreemptionRespectsBudget runs real Wasm pods on the engine's own
// node: two low-priority pods fill 80% of its cpu, the later one guarded
// by a PodDisruptionBudget that allows no disruption. A high-priority pod
// asking half the cpu fits nowhere, so the scheduler preempts: the
// unguarded pod (which, having started first, would otherwise be the one
// kept) is marked DisruptionTarget, gets a Preempted event and goes; the
// high-priority pod is nominated to the node and runs there; the guarded
// pod keeps running.
func TestPreemptionRespectsBudget(t *testing.T) {
	host := testRegistry(t, map[string][]byte{"sleeper:1": sleeper.Module()})
	e := startEngine(t, Config{DataDir: t.TempDir(), NodeName: "preempt-1", PodCIDR: "127.112.0.0/18",
		ClusterPodCIDR: "127.112.0.0/16", ServiceCIDR: "127.113.0.0/16"})
	cs, err := e.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var node *corev1.Node
	testutil.Eventually(t, 30*time.Second, func() error {
		node, err = cs.CoreV1().Nodes().Get(ctx, "preempt-1", metav1.GetOptions{})
		return err
	})
	milli := node.Status.Allocatable.Cpu().MilliValue()
	if milli < 10 {
		t.Fatalf("node allocatable cpu %dm", milli)
	}
	for name, v := range map[string]int32{"low": 100, "high": 1000} {
		if _, err := cs.SchedulingV1().PriorityClasses().Create(ctx, &schedulingv1.PriorityClass{
			ObjectMeta: metav1.ObjectMeta{Name: name}, Value: v}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	pod := func(name, class string, cpu int64) *corev1.Pod {
		grace := int64(1)
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": name}},
			Spec: corev1.PodSpec{PriorityClassName: class, TerminationGracePeriodSeconds: &grace,
				Containers: []corev1.Container{{Name: "s", Image: host + "/sleeper:1",
					Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
						corev1.ResourceCPU: *resource.NewMilliQuantity(cpu, resource.DecimalSI)}}}}}}
	}
	running := func(p *corev1.Pod) bool {
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				return true
			}
		}
		return false
	}
	// The victim first: of two equal pods, the one that started earlier is
	// the more important, so without the budget the guarded one would go.
	for _, name := range []string{"victim", "guarded"} {
		if _, err := cs.CoreV1().Pods("default").Create(ctx, pod(name, "low", milli*4/10), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitPod(t, cs, "default", name, 60*time.Second, "runs", running)
		time.Sleep(1100 * time.Millisecond) // start times are kept to the second
	}
	one := intstr.FromInt32(1)
	if _, err := cs.PolicyV1().PodDisruptionBudgets("default").Create(ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "guarded"},
		Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: &one,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "guarded"}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, func() error {
		pdb, err := cs.PolicyV1().PodDisruptionBudgets("default").Get(ctx, "guarded", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if pdb.Status.ObservedGeneration != pdb.Generation || pdb.Status.CurrentHealthy != 1 || pdb.Status.DisruptionsAllowed != 0 {
			return fmt.Errorf("budget status %+v", pdb.Status)
		}
		return nil
	})

	victim, err := cs.CoreV1().Pods("default").Get(ctx, "victim", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := cs.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=victim",
		ResourceVersion: victim.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if _, err := cs.CoreV1().Pods("default").Create(ctx, pod("urgent", "high", milli*5/10), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// The victim is marked, then deleted.
	marked, deleted := false, false
	for !deleted {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatal("watch of the victim ended")
			}
			p, _ := ev.Object.(*corev1.Pod)
			if p == nil {
				continue
			}
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.DisruptionTarget && c.Status == corev1.ConditionTrue && c.Reason == corev1.PodReasonPreemptionByScheduler {
					marked = true
				}
			}
			deleted = ev.Type == watch.Deleted
		case <-ctx.Done():
			t.Fatalf("the victim was not deleted (marked %v)", marked)
		}
	}
	if !marked {
		t.Error("the victim was deleted without the DisruptionTarget condition")
	}
	urgent := waitPod(t, cs, "default", "urgent", 60*time.Second, "runs on the node", func(p *corev1.Pod) bool {
		return p.Spec.NodeName == "preempt-1" && running(p)
	})
	if urgent.Status.NominatedNodeName != "preempt-1" {
		t.Errorf("urgent's nominatedNodeName = %q, want preempt-1", urgent.Status.NominatedNodeName)
	}
	guarded, err := cs.CoreV1().Pods("default").Get(ctx, "guarded", metav1.GetOptions{})
	if err != nil || guarded.DeletionTimestamp != nil || !running(guarded) {
		t.Errorf("the guarded pod did not keep running: %v %+v", err, guarded)
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		evs, err := cs.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.uid=" + string(victim.UID)})
		if err != nil {
			return err
		}
		want := fmt.Sprintf("Preempted by pod %s on node preempt-1", urgent.UID)
		for _, ev := range evs.Items {
			if ev.Reason == "Preempted" && ev.Message == want {
				return nil
			}
		}
		return fmt.Errorf("no Preempted event %q among %d", want, len(evs.Items))
	})
}
