package disruption

import (
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func testPods(ready, unready int, owner types.UID) []*corev1.Pod {
	var out []*corev1.Pod
	for i := range ready + unready {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p%d", i), Namespace: "ns"}}
		if owner != "" {
			yes := true
			p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "rs", UID: owner, Controller: &yes}}
		}
		if i < ready {
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
		}
		out = append(out, p)
	}
	return out
}

// TestStatus: desiredHealthy and expectedPods follow Kubernetes for each
// form of the budget; the pods being deleted or disrupted are not healthy.
func TestStatus(t *testing.T) {
	pct := func(s string) *intstr.IntOrString { v := intstr.FromString(s); return &v }
	num := func(n int32) *intstr.IntOrString { v := intstr.FromInt32(n); return &v }
	scale := func(replicas int32) ScaleFunc {
		return func(p *corev1.Pod) (types.UID, int32, bool) {
			if ref := metav1.GetControllerOf(p); ref != nil {
				return ref.UID, replicas, true
			}
			return "", 0, false
		}
	}
	now := time.Now()
	for _, tc := range []struct {
		name                                string
		spec                                policyv1.PodDisruptionBudgetSpec
		pods                                []*corev1.Pod
		scale                               ScaleFunc
		disrupted                           map[string]metav1.Time
		expected, desired, healthy, allowed int32
	}{
		{"minAvailable int counts pods", policyv1.PodDisruptionBudgetSpec{MinAvailable: num(2)},
			testPods(3, 1, "rs1"), scale(10), nil, 4, 2, 3, 1},
		{"minAvailable percent of the scale, rounded up", policyv1.PodDisruptionBudgetSpec{MinAvailable: pct("50%")},
			testPods(3, 0, "rs1"), scale(5), nil, 5, 3, 3, 0},
		{"maxUnavailable of the scale", policyv1.PodDisruptionBudgetSpec{MaxUnavailable: num(1)},
			testPods(3, 0, "rs1"), scale(3), nil, 3, 2, 3, 1},
		{"maxUnavailable percent, pods without owner count one", policyv1.PodDisruptionBudgetSpec{MaxUnavailable: pct("50%")},
			testPods(4, 0, ""), scale(0), nil, 4, 2, 4, 2},
		{"neither: minAvailable 1", policyv1.PodDisruptionBudgetSpec{},
			testPods(2, 0, ""), scale(0), nil, 2, 1, 2, 1},
		{"disrupted pods are not healthy", policyv1.PodDisruptionBudgetSpec{MinAvailable: num(1)},
			testPods(3, 0, ""), scale(0), map[string]metav1.Time{"p0": metav1.NewTime(now), "gone": metav1.NewTime(now)}, 3, 1, 2, 1},
		{"expired disruptions are healthy again", policyv1.PodDisruptionBudgetSpec{MinAvailable: num(1)},
			testPods(3, 0, ""), scale(0), map[string]metav1.Time{"p0": metav1.NewTime(now.Add(-DeletionTimeout - time.Second))}, 3, 1, 3, 2},
		{"no pods", policyv1.PodDisruptionBudgetSpec{MaxUnavailable: num(1)}, nil, scale(0), nil, 0, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pdb := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "b", Namespace: "ns", Generation: 3}, Spec: tc.spec}
			pdb.Status.DisruptedPods = tc.disrupted
			st, _ := Status(pdb, tc.pods, tc.scale, now)
			if st.ExpectedPods != tc.expected || st.DesiredHealthy != tc.desired || st.CurrentHealthy != tc.healthy || st.DisruptionsAllowed != tc.allowed {
				t.Errorf("expected %d desired %d healthy %d allowed %d, want %d %d %d %d", st.ExpectedPods, st.DesiredHealthy,
					st.CurrentHealthy, st.DisruptionsAllowed, tc.expected, tc.desired, tc.healthy, tc.allowed)
			}
			if st.ObservedGeneration != 3 {
				t.Errorf("observedGeneration %d, want 3", st.ObservedGeneration)
			}
			if len(st.Conditions) != 1 || st.Conditions[0].Type != policyv1.DisruptionAllowedCondition ||
				(st.Conditions[0].Status == metav1.ConditionTrue) != (tc.allowed > 0) {
				t.Errorf("conditions %+v for %d allowed", st.Conditions, tc.allowed)
			}
		})
	}
	// A disrupted pod that is already terminating leaves the map.
	pods := testPods(2, 0, "")
	pods[0].DeletionTimestamp = &metav1.Time{Time: now}
	pdb := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "b", Namespace: "ns"},
		Status: policyv1.PodDisruptionBudgetStatus{DisruptedPods: map[string]metav1.Time{"p0": metav1.NewTime(now), "p1": metav1.NewTime(now)}}}
	st, recheck := Status(pdb, pods, scale(0), now)
	if _, ok := st.DisruptedPods["p0"]; ok || len(st.DisruptedPods) != 1 || recheck <= 0 || recheck > DeletionTimeout {
		t.Errorf("disrupted %v recheck %v, want only p1 and a recheck within %v", st.DisruptedPods, recheck, DeletionTimeout)
	}
}
