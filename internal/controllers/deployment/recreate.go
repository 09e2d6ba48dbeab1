package deployment

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// rolloutRecreate stops every old pod before the new ReplicaSet starts:
// scale the old ReplicaSets to zero, wait until none of their pods runs,
// then create and scale up the new one.
func (c *Controller) rolloutRecreate(ctx context.Context, d *appsv1.Deployment, rsList []*appsv1.ReplicaSet, pods map[types.UID][]*corev1.Pod) error {
	newRS, oldRSs, err := c.replicaSetsAndRevision(ctx, d, rsList, false)
	if err != nil {
		return err
	}
	allRSs := append(oldRSs[:len(oldRSs):len(oldRSs)], newRS)
	scaled := false
	for _, rs := range activeRSs(oldRSs) {
		ok, err := c.scaleReplicaSet(ctx, rs, 0, d)
		if err != nil {
			return err
		}
		scaled = scaled || ok
	}
	if scaled || oldPodsRunning(newRS, oldRSs, pods) {
		return c.syncRolloutStatus(ctx, allRSs, newRS, d)
	}
	if newRS == nil {
		if newRS, oldRSs, err = c.replicaSetsAndRevision(ctx, d, rsList, true); err != nil {
			return err
		}
		allRSs = append(oldRSs[:len(oldRSs):len(oldRSs)], newRS)
	}
	if _, err := c.scaleReplicaSet(ctx, newRS, replicasOf(d.Spec.Replicas), d); err != nil {
		return err
	}
	if complete(d, &d.Status) {
		if err := c.cleanup(ctx, oldRSs, d); err != nil {
			return err
		}
	}
	return c.syncRolloutStatus(ctx, allRSs, newRS, d)
}

// oldPodsRunning reports whether an old ReplicaSet still has a pod that
// has not finished, terminating ones included: Recreate promises the old
// and new pods never run together.
func oldPodsRunning(newRS *appsv1.ReplicaSet, oldRSs []*appsv1.ReplicaSet, pods map[types.UID][]*corev1.Pod) bool {
	if sumStatus(oldRSs, statusReplicas) > 0 {
		return true
	}
	for uid, list := range pods {
		if newRS != nil && newRS.UID == uid {
			continue
		}
		for _, p := range list {
			if p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
				return true
			}
		}
	}
	return false
}
