package apiserver

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// maxDisruptedPods bounds status.disruptedPods, as Kubernetes'
// MaxDisruptedPodSize: a budget is not a log.
const maxDisruptedPods = 2000

// spendDisruptionBudgets is the budget half of Kubernetes' eviction REST
// handler. A pod that is finished, Pending or already terminating needs no
// budget. Otherwise each budget covering the pod must allow a disruption
// (its status as the disruption controller computed it, for the budget's
// current generation): it is spent here, disruptionsAllowed one less and
// the pod listed in disruptedPods, so two evictions racing cannot both use
// the last disruption, and the controller counts the pod as gone until it
// is. A dry run checks the budgets but spends nothing. A Ready-less pod is let go without spending when the budget is met
// anyway (IfHealthyBudget) or always (AlwaysAllow).
func (s *Server) spendDisruptionBudgets(ctx context.Context, pod *corev1.Pod, dry bool) error {
	if pod.DeletionTimestamp != nil || pod.Status.Phase == corev1.PodSucceeded ||
		pod.Status.Phase == corev1.PodFailed || pod.Status.Phase == corev1.PodPending {
		return nil
	}
	res, _ := s.reg.Get(schema.GroupVersionResource{Group: "policy", Version: "v1", Resource: "poddisruptionbudgets"})
	objs, err := s.objs.list(ctx, res, pod.Namespace)
	if err != nil {
		return fmt.Errorf("list PodDisruptionBudgets of namespace %s: %w", pod.Namespace, err)
	}
	ready := podReady(pod)
	for _, obj := range objs {
		pdb := obj.(*policyv1.PodDisruptionBudget)
		if !covers(pdb, pod) {
			continue
		}
		if !ready {
			policy := policyv1.IfHealthyBudget
			if p := pdb.Spec.UnhealthyPodEvictionPolicy; p != nil {
				policy = *p
			}
			if policy == policyv1.AlwaysAllow ||
				(pdb.Status.CurrentHealthy >= pdb.Status.DesiredHealthy && pdb.Status.DesiredHealthy > 0) {
				continue
			}
		}
		if err := s.spendBudget(ctx, pdb, pod.Name, dry); err != nil {
			return err
		}
	}
	return nil
}

// spendBudget takes one disruption from pdb for the pod named, or answers
// why not: 429 while the budget allows none (or its status is older than
// its spec), as Kubernetes' checkAndDecrement.
func (s *Server) spendBudget(ctx context.Context, pdb *policyv1.PodDisruptionBudget, podName string, dry bool) error {
	tooMany := func(cause string) error {
		err := apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 10)
		err.ErrStatus.Details.Causes = append(err.ErrStatus.Details.Causes,
			metav1.StatusCause{Type: policyv1.DisruptionBudgetCause, Message: cause})
		return err
	}
	res, _ := s.reg.Get(schema.GroupVersionResource{Group: "policy", Version: "v1", Resource: "poddisruptionbudgets"})
	switch {
	case pdb.Status.ObservedGeneration < pdb.Generation:
		return tooMany("observedGeneration must be greater than or equal to generation")
	case pdb.Status.DisruptionsAllowed < 0:
		return apierrors.NewForbidden(res.GroupResource(), pdb.Name, fmt.Errorf("pdb disruptions allowed is negative"))
	case len(pdb.Status.DisruptedPods) > maxDisruptedPods:
		return apierrors.NewForbidden(res.GroupResource(), pdb.Name, fmt.Errorf("DisruptedPods map too big - too many evictions not confirmed by PDB controller"))
	case pdb.Status.DisruptionsAllowed == 0:
		return tooMany(fmt.Sprintf("The disruption budget %s needs %d healthy pods and has %d currently",
			pdb.Name, pdb.Status.DesiredHealthy, pdb.Status.CurrentHealthy))
	}
	if dry {
		return nil
	}
	cp := pdb.DeepCopy()
	cp.Status.DisruptionsAllowed--
	if cp.Status.DisruptionsAllowed == 0 {
		apimeta.SetStatusCondition(&cp.Status.Conditions, metav1.Condition{Type: policyv1.DisruptionAllowedCondition,
			Status: metav1.ConditionFalse, Reason: policyv1.InsufficientPodsReason, ObservedGeneration: cp.Status.ObservedGeneration})
	}
	if cp.Status.DisruptedPods == nil {
		cp.Status.DisruptedPods = map[string]metav1.Time{}
	}
	cp.Status.DisruptedPods[podName] = metav1.NewTime(time.Now())
	rv, err := parseRV(pdb.ResourceVersion)
	if err != nil {
		return err
	}
	// Conditional on the version read: a concurrent eviction or status
	// write makes this one a 429 to retry, never a double spend.
	if _, err := s.objs.update(ctx, res, pdb.Namespace, pdb.Name, cp, rv); err != nil {
		if apierrors.IsConflict(err) {
			return tooMany("the disruption budget " + pdb.Name + " changed meanwhile; try again")
		}
		return fmt.Errorf("spend the disruption budget %s: %w", pdb.Name, err)
	}
	return nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// covers reports whether pdb selects pod, as the disruption controller
// counts (disruption.Covers): in policy/v1 an empty selector matches every
// pod of the namespace and a missing one none.
func covers(pdb *policyv1.PodDisruptionBudget, pod *corev1.Pod) bool {
	if pdb.Spec.Selector == nil {
		return false
	}
	sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	return err == nil && sel.Matches(labels.Set(pod.Labels))
}
