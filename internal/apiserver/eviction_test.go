package apiserver

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
)

// TestEvictionSpendsBudget: an eviction takes one disruption from the
// budget's status and lists the pod in disruptedPods, so a second eviction
// right after it is refused (429) although no controller has recounted
// yet; a budget whose status is older than its spec allows nothing.
func TestEvictionSpendsBudget(t *testing.T) {
	_, cfg := newTestServer(t, 1000)
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pods := cs.CoreV1().Pods("default")
	for _, name := range []string{"a", "b", "c"} {
		p, err := pods.Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "web"}},
			Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "c", Image: "example.com/a:1"}}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p.Status.Phase = corev1.PodRunning
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
		if _, err := pods.UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	two := intstr.FromInt32(2)
	pdbs := cs.PolicyV1().PodDisruptionBudgets("default")
	pdb, err := pdbs.Create(ctx, &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: &two,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	evict := func(name string) error {
		return pods.EvictV1(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: name}})
	}
	if err := evict("a"); !apierrors.IsTooManyRequests(err) {
		t.Fatalf("eviction before the budget's status is computed: %v, want 429", err)
	}
	// What the disruption controller would write for 3 healthy pods.
	pdb.Status = policyv1.PodDisruptionBudgetStatus{ObservedGeneration: pdb.Generation, DisruptionsAllowed: 1,
		CurrentHealthy: 3, DesiredHealthy: 2, ExpectedPods: 3}
	if _, err := pdbs.UpdateStatus(ctx, pdb, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A dry run (kubectl drain --dry-run=server) spends nothing and
	// deletes nothing.
	if err := pods.EvictV1(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: "a"},
		DeleteOptions: &metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}}}); err != nil {
		t.Fatalf("dry-run eviction: %v", err)
	}
	if got, err := pdbs.Get(ctx, "web", metav1.GetOptions{}); err != nil || got.Status.DisruptionsAllowed != 1 {
		t.Fatalf("budget after a dry run: %v %+v", err, got.Status)
	}
	if p, err := pods.Get(ctx, "a", metav1.GetOptions{}); err != nil || p.DeletionTimestamp != nil {
		t.Fatalf("a dry-run eviction deleted the pod: %v", err)
	}
	if err := evict("a"); err != nil {
		t.Fatalf("first eviction: %v", err)
	}
	got, err := pdbs.Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, listed := got.Status.DisruptedPods["a"]; got.Status.DisruptionsAllowed != 0 || !listed {
		t.Fatalf("budget after an eviction: allowed %d disrupted %v, want 0 and a listed", got.Status.DisruptionsAllowed, got.Status.DisruptedPods)
	}
	err = evict("b")
	if !apierrors.IsTooManyRequests(err) {
		t.Fatalf("second eviction: %v, want 429", err)
	}
	if st, ok := err.(apierrors.APIStatus); !ok || len(st.Status().Details.Causes) == 0 ||
		st.Status().Details.Causes[0].Type != policyv1.DisruptionBudgetCause {
		t.Errorf("429 without the DisruptionBudget cause: %#v", err)
	}
	if _, err := pods.Get(ctx, "b", metav1.GetOptions{}); err != nil {
		t.Errorf("refused eviction deleted the pod: %v", err)
	}
}
