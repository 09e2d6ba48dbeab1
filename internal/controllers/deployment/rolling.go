package deployment

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
)

// rolloutRolling moves d one step towards its new ReplicaSet: scale the
// new one up within maxSurge, else scale old ones down within
// maxUnavailable, and once complete prune the history.
func (c *Controller) rolloutRolling(ctx context.Context, d *appsv1.Deployment, rsList []*appsv1.ReplicaSet) error {
	newRS, oldRSs, err := c.replicaSetsAndRevision(ctx, d, rsList, true)
	if err != nil {
		return err
	}
	allRSs := append(oldRSs[:len(oldRSs):len(oldRSs)], newRS)
	scaled, err := c.reconcileNewReplicaSet(ctx, allRSs, newRS, d)
	if err != nil {
		return err
	}
	if scaled {
		return c.syncRolloutStatus(ctx, allRSs, newRS, d)
	}
	scaled, err = c.reconcileOldReplicaSets(ctx, allRSs, activeRSs(oldRSs), newRS, d)
	if err != nil {
		return err
	}
	if scaled {
		return c.syncRolloutStatus(ctx, allRSs, newRS, d)
	}
	if complete(d, &d.Status) {
		if err := c.cleanup(ctx, oldRSs, d); err != nil {
			return err
		}
	}
	return c.syncRolloutStatus(ctx, allRSs, newRS, d)
}

func (c *Controller) reconcileNewReplicaSet(ctx context.Context, allRSs []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet, d *appsv1.Deployment) (bool, error) {
	want := replicasOf(d.Spec.Replicas)
	switch n := specReplicas(newRS); {
	case n == want:
		return false, nil
	case n > want:
		return c.scaleReplicaSet(ctx, newRS, want, d)
	}
	return c.scaleReplicaSet(ctx, newRS, newRSReplicas(d, allRSs, newRS), d)
}

// newRSReplicas is the size the new ReplicaSet may grow to now: for
// RollingUpdate, up to d's replicas while all ReplicaSets together stay
// within replicas+maxSurge; for Recreate, d's replicas.
func newRSReplicas(d *appsv1.Deployment, allRSs []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) int32 {
	want := replicasOf(d.Spec.Replicas)
	if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType {
		return want
	}
	current := sumSpec(allRSs)
	maxTotal := want + maxSurge(d)
	if current >= maxTotal {
		return specReplicas(newRS)
	}
	return specReplicas(newRS) + min(maxTotal-current, want-specReplicas(newRS))
}

// reconcileOldReplicaSets scales old ReplicaSets down as far as
// maxUnavailable allows: first their replicas that are not available
// (removing those costs no availability), then available ones down to
// replicas-maxUnavailable available in all.
func (c *Controller) reconcileOldReplicaSets(ctx context.Context, allRSs, oldRSs []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet, d *appsv1.Deployment) (bool, error) {
	if sumSpec(oldRSs) == 0 {
		return false, nil
	}
	minAvailable := replicasOf(d.Spec.Replicas) - maxUnavailable(d)
	newUnavailable := specReplicas(newRS) - newRS.Status.AvailableReplicas
	maxScaledDown := sumSpec(allRSs) - minAvailable - newUnavailable
	if maxScaledDown <= 0 {
		return false, nil
	}
	oldRSs, cleaned, err := c.cleanupUnhealthy(ctx, oldRSs, d, maxScaledDown)
	if err != nil {
		return false, err
	}
	allRSs = append(oldRSs[:len(oldRSs):len(oldRSs)], newRS)
	scaledDown, err := c.scaleDownOld(ctx, allRSs, oldRSs, d)
	if err != nil {
		return false, err
	}
	return cleaned+scaledDown > 0, nil
}

// cleanupUnhealthy removes up to limit unavailable replicas from the old
// ReplicaSets, oldest first. It returns the ReplicaSets as now sized.
func (c *Controller) cleanupUnhealthy(ctx context.Context, oldRSs []*appsv1.ReplicaSet, d *appsv1.Deployment, limit int32) ([]*appsv1.ReplicaSet, int32, error) {
	oldRSs = append([]*appsv1.ReplicaSet(nil), oldRSs...)
	byCreation(oldRSs)
	var total int32
	for i, rs := range oldRSs {
		if total >= limit {
			break
		}
		n := specReplicas(rs)
		if n == 0 || n == rs.Status.AvailableReplicas {
			continue
		}
		down := min(limit-total, n-rs.Status.AvailableReplicas)
		if _, err := c.scaleReplicaSet(ctx, rs, n-down, d); err != nil {
			return nil, total, err
		}
		cp := rs.DeepCopy()
		cp.Spec.Replicas = ptrTo(n - down)
		oldRSs[i] = cp
		total += down
	}
	return oldRSs, total, nil
}

// scaleDownOld scales old ReplicaSets down, oldest first, by as many
// available replicas as exceed replicas-maxUnavailable.
func (c *Controller) scaleDownOld(ctx context.Context, allRSs, oldRSs []*appsv1.ReplicaSet, d *appsv1.Deployment) (int32, error) {
	minAvailable := replicasOf(d.Spec.Replicas) - maxUnavailable(d)
	available := sumStatus(allRSs, statusAvailable)
	if available <= minAvailable {
		return 0, nil
	}
	toRemove := available - minAvailable
	oldRSs = append([]*appsv1.ReplicaSet(nil), oldRSs...)
	byCreation(oldRSs)
	var total int32
	for _, rs := range oldRSs {
		if total >= toRemove {
			break
		}
		n := specReplicas(rs)
		if n == 0 {
			continue
		}
		down := min(n, toRemove-total)
		if _, err := c.scaleReplicaSet(ctx, rs, n-down, d); err != nil {
			return total, err
		}
		total += down
	}
	return total, nil
}

func ptrTo[T any](v T) *T { return &v }
