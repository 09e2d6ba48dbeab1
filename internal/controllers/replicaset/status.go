package replicaset

import (
	"context"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/skiffhq/skiff/internal/controllers/controller"
)

// calculateStatus is what rs's status should say about pods (its active,
// claimed pods) at now.
func calculateStatus(rs *appsv1.ReplicaSet, pods []*corev1.Pod, manageErr error, now time.Time) appsv1.ReplicaSetStatus {
	st := *rs.Status.DeepCopy()
	st.Replicas = int32(len(pods))
	st.FullyLabeledReplicas, st.ReadyReplicas, st.AvailableReplicas = 0, 0, 0
	templateLabels := labels.Set(rs.Spec.Template.Labels).AsSelectorPreValidated()
	for _, p := range pods {
		if templateLabels.Matches(labels.Set(p.Labels)) {
			st.FullyLabeledReplicas++
		}
		if controller.IsPodReady(p) {
			st.ReadyReplicas++
			if controller.IsPodAvailable(p, rs.Spec.MinReadySeconds, now) {
				st.AvailableReplicas++
			}
		}
	}
	st.ObservedGeneration = rs.Generation

	// ReplicaFailure says why pods could not be created or deleted, and
	// goes when that works again.
	failure := failureCondition(st.Conditions)
	switch {
	case manageErr != nil && failure == nil:
		reason := "FailedCreate"
		if len(pods) > int(replicas(rs)) {
			reason = "FailedDelete"
		}
		st.Conditions = append(st.Conditions, appsv1.ReplicaSetCondition{
			Type: appsv1.ReplicaSetReplicaFailure, Status: corev1.ConditionTrue, Reason: reason,
			Message: manageErr.Error(), LastTransitionTime: metav1.NewTime(now),
		})
	case manageErr == nil && failure != nil:
		var keep []appsv1.ReplicaSetCondition
		for _, c := range st.Conditions {
			if c.Type != appsv1.ReplicaSetReplicaFailure {
				keep = append(keep, c)
			}
		}
		st.Conditions = keep
	}
	return st
}

func failureCondition(cs []appsv1.ReplicaSetCondition) *appsv1.ReplicaSetCondition {
	for i := range cs {
		if cs[i].Type == appsv1.ReplicaSetReplicaFailure {
			return &cs[i]
		}
	}
	return nil
}

// updateStatus writes st unless rs already says it, retrying once on a
// fresh copy if rs was stale.
func (c *Controller) updateStatus(ctx context.Context, rs *appsv1.ReplicaSet, st appsv1.ReplicaSetStatus) (*appsv1.ReplicaSet, error) {
	if equality.Semantic.DeepEqual(rs.Status, st) {
		return rs, nil
	}
	client := c.client.AppsV1().ReplicaSets(rs.Namespace)
	for attempt := 0; ; attempt++ {
		rs.Status = st
		out, err := client.UpdateStatus(ctx, rs, metav1.UpdateOptions{})
		if err == nil || attempt == 1 {
			return out, err
		}
		if rs, err = client.Get(ctx, rs.Name, metav1.GetOptions{}); err != nil {
			return nil, err
		}
	}
}
