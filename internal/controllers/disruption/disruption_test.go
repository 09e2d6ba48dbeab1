package disruption_test

import (
	"context"
	"fmt"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/skiffhq/skiff/internal/controllers/controllertest"
	"github.com/skiffhq/skiff/internal/testutil"
)

// TestBudgetStatus runs the disruption controller in a real engine: a
// budget of maxUnavailable 1 over a ReplicaSet of 3 on a fake node gets
// expectedPods 3 (the scale), desiredHealthy 2 and one disruption allowed;
// a pod that stops being Ready takes it away, and an eviction of another
// is then refused with 429.
func TestBudgetStatus(t *testing.T) {
	c := controllertest.Start(t)
	c.AddNode(t, "pdb-node", nil, nil)
	kubelet := c.StartKubelet(t, "pdb-node")
	ctx := context.Background()
	replicas := int32(3)
	sel := map[string]string{"app": "guarded"}
	if _, err := c.Client.AppsV1().ReplicaSets("default").Create(ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "guarded"},
		Spec: appsv1.ReplicaSetSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: sel},
				Spec: corev1.PodSpec{NodeSelector: controllertest.FakeNodeSelector,
					Containers: []corev1.Container{{Name: "app", Image: "example.invalid/app:1"}}}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	one := intstr.FromInt32(1)
	pdbs := c.Client.PolicyV1().PodDisruptionBudgets("default")
	if _, err := pdbs.Create(ctx, &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "guard"},
		Spec: policyv1.PodDisruptionBudgetSpec{MaxUnavailable: &one, Selector: &metav1.LabelSelector{MatchLabels: sel}}},
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitBudget := func(healthy, allowed int32) {
		t.Helper()
		testutil.Eventually(t, controllertest.Timeout, func() error {
			pdb, err := pdbs.Get(ctx, "guard", metav1.GetOptions{})
			if err != nil {
				return err
			}
			st := pdb.Status
			if st.ObservedGeneration != pdb.Generation || st.ExpectedPods != 3 || st.DesiredHealthy != 2 ||
				st.CurrentHealthy != healthy || st.DisruptionsAllowed != allowed {
				return fmt.Errorf("status %+v, want expected 3 desired 2 healthy %d allowed %d", st, healthy, allowed)
			}
			return nil
		})
	}
	waitBudget(3, 1)

	pods, err := c.Client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=guarded"})
	if err != nil || len(pods.Items) != 3 {
		t.Fatalf("pods: %v %v", len(pods.Items), err)
	}
	sick := pods.Items[0].Name
	kubelet.SetReady(func(p *corev1.Pod) bool { return p.Name != sick })
	// The fake kubelet only ever marks pods Ready; this one it no longer
	// will, so report it not Ready as a kubelet would.
	p := pods.Items[0].DeepCopy()
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == corev1.PodReady {
			p.Status.Conditions[i].Status = corev1.ConditionFalse
		}
	}
	if _, err := c.Client.CoreV1().Pods("default").UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitBudget(2, 0)
	healthy := pods.Items[1].Name
	err = c.Client.CoreV1().Pods("default").EvictV1(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: healthy}})
	if !apierrors.IsTooManyRequests(err) {
		t.Fatalf("evicting %s with no disruption allowed: %v, want 429", healthy, err)
	}
}
