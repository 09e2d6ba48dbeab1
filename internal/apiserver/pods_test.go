package apiserver

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
)

func TestBindingEvictionAndGracefulDelete(t *testing.T) {
	_, cfg := newTestServer(t, 1000)
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	pods := cs.CoreV1().Pods("default")
	newPod := func(name string, labels map[string]string) {
		t.Helper()
		if _, err := pods.Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "example.com/a:1"}}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	bind := func(name, node string) error {
		return pods.Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: name},
			Target: corev1.ObjectReference{Kind: "Node", Name: node}}, metav1.CreateOptions{})
	}

	newPod("a", map[string]string{"app": "guarded"})
	if err := bind("a", "node-1"); err != nil {
		t.Fatal(err)
	}
	p, _ := pods.Get(ctx, "a", metav1.GetOptions{})
	if p.Spec.NodeName != "node-1" || len(p.Status.Conditions) == 0 || p.Status.Conditions[0].Type != corev1.PodScheduled {
		t.Fatalf("bound pod: node %q conditions %+v", p.Spec.NodeName, p.Status.Conditions)
	}
	if err := bind("a", "node-2"); !apierrors.IsConflict(err) {
		t.Fatalf("second binding: %v", err)
	}

	// A disruption budget that allows nothing blocks the eviction with 429.
	one := intstr.FromInt32(1)
	if _, err := cs.PolicyV1().PodDisruptionBudgets("default").Create(ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "guard"},
		Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: &one,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "guarded"}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	evict := func(name string) error {
		return pods.EvictV1(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: name}})
	}
	// A Pending pod needs no budget (Kubernetes' canIgnorePDB): make it
	// run, as its node would.
	p.Status.Phase = corev1.PodRunning
	if _, err := pods.UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := evict("a"); !apierrors.IsTooManyRequests(err) {
		t.Fatalf("eviction against a budget: %v", err)
	}
	newPod("b", nil)
	if err := evict("b"); err != nil {
		t.Fatalf("eviction of an unguarded pod: %v", err)
	}
	if _, err := pods.Get(ctx, "b", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("evicted pod still there: %v", err)
	}

	// A pod on a node is deleted gracefully: it stays, terminating, until
	// its agent (or a forced delete) removes it.
	if err := pods.Delete(ctx, "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	p, err := pods.Get(ctx, "a", metav1.GetOptions{})
	if err != nil || p.DeletionTimestamp == nil || p.DeletionGracePeriodSeconds == nil || *p.DeletionGracePeriodSeconds != 30 {
		t.Fatalf("gracefully deleted pod: %+v %v", p.ObjectMeta, err)
	}
	zero := int64(0)
	if err := pods.Delete(ctx, "a", metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	if _, err := pods.Get(ctx, "a", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("force-deleted pod still there: %v", err)
	}
	// An unscheduled pod goes at once, as in Kubernetes.
	newPod("c", nil)
	if err := pods.Delete(ctx, "c", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := pods.Get(ctx, "c", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("unscheduled pod still there after delete: %v", err)
	}
}
