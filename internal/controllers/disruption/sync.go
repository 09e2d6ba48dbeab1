package disruption

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/cache"

	"github.com/skiffhq/skiff/internal/controllers/controller"
)

var (
	rsKind     = appsv1.SchemeGroupVersion.WithKind("ReplicaSet")
	deployKind = appsv1.SchemeGroupVersion.WithKind("Deployment")
	setKind    = appsv1.SchemeGroupVersion.WithKind("StatefulSet")
)

// sync recomputes one budget's status and writes it when it changed.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	pdb, err := c.pdbs.PodDisruptionBudgets(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	all, err := c.pods.Pods(ns).List(labels.Everything())
	if err != nil {
		return err
	}
	var pods []*corev1.Pod
	for _, p := range all {
		if Covers(pdb, p) {
			pods = append(pods, p)
		}
	}
	if len(pods) == 0 {
		c.recorder.Event(pdb, corev1.EventTypeNormal, "NoPods", "No matching pods found")
	}
	now := time.Now()
	st, recheck := Status(pdb, pods, c.scales.scaleOf, now)
	if recheck > 0 {
		// A disrupted pod's entry expires then, and counts as healthy again.
		c.queue.AddAfter(key, recheck)
	}
	if equality.Semantic.DeepEqual(st, pdb.Status) {
		return nil
	}
	cp := pdb.DeepCopy()
	cp.Status = st
	_, err = c.client.PolicyV1().PodDisruptionBudgets(ns).UpdateStatus(ctx, cp, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil // gone, or changed: its event brings it back
	}
	if err != nil {
		return fmt.Errorf("update status of PodDisruptionBudget %s: %w", key, err)
	}
	return nil
}

// ScaleFunc returns the replicas that the controller of pod wants, or
// false when the pod has none or its scale is unknown.
type ScaleFunc func(pod *corev1.Pod) (owner types.UID, replicas int32, ok bool)

// Status computes a budget's status from the pods its selector matches, as
// Kubernetes' disruption controller does, and after how long it must be
// computed again (0: only on a change) for a disrupted pod's entry to
// expire. The conditions keep their transition times (SetStatusCondition).
//
// expectedPods is the pod count for an integer minAvailable; otherwise the
// sum of the scales of the pods' controllers, a pod with no controller (or
// one whose scale is unknown) counting as one, which Kubernetes would
// refuse to compute (it then allows no disruption at all).
func Status(pdb *policyv1.PodDisruptionBudget, pods []*corev1.Pod, scale ScaleFunc, now time.Time) (policyv1.PodDisruptionBudgetStatus, time.Duration) {
	expected, desired := expectedAndDesired(pdb, pods, scale)
	disrupted, recheck := disruptedPods(pdb, pods, now)
	healthy := int32(0)
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			continue
		}
		if _, gone := disrupted[p.Name]; gone {
			continue
		}
		if controller.IsPodReady(p) {
			healthy++
		}
	}
	allowed := max(healthy-desired, 0)
	if expected <= 0 {
		allowed = 0
	}
	st := policyv1.PodDisruptionBudgetStatus{
		ObservedGeneration: pdb.Generation, DisruptedPods: disrupted, DisruptionsAllowed: allowed,
		CurrentHealthy: healthy, DesiredHealthy: desired, ExpectedPods: expected,
		Conditions: append([]metav1.Condition(nil), pdb.Status.Conditions...),
	}
	cond := metav1.Condition{Type: policyv1.DisruptionAllowedCondition, Status: metav1.ConditionFalse,
		Reason: policyv1.InsufficientPodsReason, ObservedGeneration: pdb.Generation}
	if allowed > 0 {
		cond.Status, cond.Reason = metav1.ConditionTrue, policyv1.SufficientPodsReason
	}
	apimeta.SetStatusCondition(&st.Conditions, cond)
	return st, recheck
}

// expectedAndDesired is Kubernetes' getExpectedPodCount. A budget with
// neither field is minAvailable 1, as API defaulting makes it there.
func expectedAndDesired(pdb *policyv1.PodDisruptionBudget, pods []*corev1.Pod, scale ScaleFunc) (expected, desired int32) {
	minAvailable := pdb.Spec.MinAvailable
	if minAvailable == nil && pdb.Spec.MaxUnavailable == nil {
		one := intstr.FromInt32(1)
		minAvailable = &one
	}
	switch {
	case pdb.Spec.MaxUnavailable != nil:
		expected = expectedScale(pods, scale)
		maxUnavailable, err := intstr.GetScaledValueFromIntOrPercent(pdb.Spec.MaxUnavailable, int(expected), true)
		if err != nil {
			return expected, expected // unreadable: allow nothing
		}
		desired = max(expected-int32(maxUnavailable), 0)
	case minAvailable.Type == intstr.Int:
		expected, desired = int32(len(pods)), minAvailable.IntVal
	default:
		expected = expectedScale(pods, scale)
		v, err := intstr.GetScaledValueFromIntOrPercent(minAvailable, int(expected), true)
		if err != nil {
			return expected, expected
		}
		desired = int32(v)
	}
	return expected, desired
}

// expectedScale sums the scale of each controller of the pods once; pods
// without a known scale count one each.
func expectedScale(pods []*corev1.Pod, scale ScaleFunc) int32 {
	seen := map[types.UID]bool{}
	total := int32(0)
	for _, p := range pods {
		owner, replicas, ok := scale(p)
		switch {
		case !ok:
			total++
		case !seen[owner]:
			seen[owner] = true
			total += replicas
		}
	}
	return total
}

// disruptedPods is Kubernetes' buildDisruptedPodMap: the entries an
// eviction made for pods that still exist and are not yet terminating,
// dropped DeletionTimeout after the eviction; and how long until the
// next one expires.
func disruptedPods(pdb *policyv1.PodDisruptionBudget, pods []*corev1.Pod, now time.Time) (map[string]metav1.Time, time.Duration) {
	if len(pdb.Status.DisruptedPods) == 0 {
		return nil, 0
	}
	var out map[string]metav1.Time
	var recheck time.Duration
	for _, p := range pods {
		at, ok := pdb.Status.DisruptedPods[p.Name]
		if !ok || p.DeletionTimestamp != nil {
			continue
		}
		left := at.Add(DeletionTimeout).Sub(now)
		if left <= 0 {
			continue
		}
		if out == nil {
			out = map[string]metav1.Time{}
		}
		out[p.Name] = at
		if recheck == 0 || left < recheck {
			recheck = left
		}
	}
	return out, recheck
}

// scaleOf finds the replicas of pod's controller: a Deployment's through
// its ReplicaSet, a ReplicaSet's, a StatefulSet's.
func (f scaleFinder) scaleOf(pod *corev1.Pod) (types.UID, int32, bool) {
	ref := metav1.GetControllerOf(pod)
	if ref == nil {
		return "", 0, false
	}
	if rs, ok := controller.Resolve(ref, rsKind, f.rss.ReplicaSets(pod.Namespace).Get); ok {
		if d, ok := controller.Resolve(metav1.GetControllerOf(rs), deployKind, f.deploys.Deployments(pod.Namespace).Get); ok {
			return d.UID, replicasOf(d.Spec.Replicas), true
		}
		return rs.UID, replicasOf(rs.Spec.Replicas), true
	}
	if s, ok := controller.Resolve(ref, setKind, f.sets.StatefulSets(pod.Namespace).Get); ok {
		return s.UID, replicasOf(s.Spec.Replicas), true
	}
	return "", 0, false
}

func replicasOf(r *int32) int32 {
	if r == nil {
		return 1
	}
	return *r
}
