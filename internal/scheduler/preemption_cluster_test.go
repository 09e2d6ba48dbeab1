package scheduler_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiffhq/skiff/internal/controllers/controllertest"
	"github.com/skiffhq/skiff/internal/testutil"
)

// TestPreemptionOnFakeNode: through the real scheduler and API, a pod of
// preemptionPolicy Never waits with Kubernetes' message and takes
// nothing; a pod of the same priority that may preempt gets the
// low-priority pod deleted (with a Preempted event), is nominated, and is
// bound to the node once the pod is gone.
func TestPreemptionOnFakeNode(t *testing.T) {
	c := controllertest.Start(t)
	c.AddNode(t, "full", nil, controllertest.Resources("1", "1Gi", 10))
	c.StartKubelet(t, "full")
	schedulerSees(t, c, "full", "Insufficient cpu")
	ctx := context.Background()
	never := corev1.PreemptNever
	for _, pc := range []*schedulingv1.PriorityClass{
		{ObjectMeta: metav1.ObjectMeta{Name: "low"}, Value: 10},
		{ObjectMeta: metav1.ObjectMeta{Name: "high"}, Value: 1000},
		{ObjectMeta: metav1.ObjectMeta{Name: "high-polite"}, Value: 1000, PreemptionPolicy: &never},
	} {
		if _, err := c.Client.SchedulingV1().PriorityClasses().Create(ctx, pc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	withClass := func(class, cpu string) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			p.Spec.PriorityClassName = class
			p.Spec.NodeSelector = controllertest.FakeNodeSelector
			p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)}
		}
	}
	createPod(t, c, "low", withClass("low", "800m"))
	low := waitBound(t, c, "low")

	createPod(t, c, "polite", withClass("high-polite", "600m"))
	c.WaitEvent(t, "default", "Pod", "polite", "FailedScheduling", func(m string) bool {
		return strings.HasSuffix(m, "Insufficient cpu, 1 node(s) didn't match Pod's node affinity/selector. "+
			"preemption: not eligible due to preemptionPolicy=Never.")
	})
	if p, err := c.Client.CoreV1().Pods("default").Get(ctx, "low", metav1.GetOptions{}); err != nil || p.DeletionTimestamp != nil {
		t.Fatalf("a Never pod preempted: %v %v", err, p.DeletionTimestamp)
	}

	createPod(t, c, "urgent", withClass("high", "500m"))
	urgent := waitBound(t, c, "urgent")
	if urgent.Spec.NodeName != "full" || urgent.Status.NominatedNodeName != "full" {
		t.Errorf("urgent on %q nominated %q, want full and full", urgent.Spec.NodeName, urgent.Status.NominatedNodeName)
	}
	if _, err := c.Client.CoreV1().Pods("default").Get(ctx, "low", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the victim is still there: %v", err)
	}
	want := fmt.Sprintf("Preempted by pod %s on node full", urgent.UID)
	testutil.Eventually(t, controllertest.Timeout, func() error {
		evs, err := c.Client.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.uid=" + string(low.UID)})
		if err != nil {
			return err
		}
		for _, ev := range evs.Items {
			if ev.Reason == "Preempted" && ev.Message == want {
				return nil
			}
		}
		return fmt.Errorf("no Preempted event among %d", len(evs.Items))
	})
	if p, err := c.Client.CoreV1().Pods("default").Get(ctx, "polite", metav1.GetOptions{}); err != nil || p.Spec.NodeName != "" {
		t.Errorf("polite: %v bound to %q, want still pending", err, p.Spec.NodeName)
	}
}
