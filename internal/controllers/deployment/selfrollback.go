package deployment

import (
	"context"
	"fmt"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Self-rollback, beyond Kubernetes: a Deployment that opts in goes back to
// its last revision that became available when a rollout exceeds its
// progress deadline, and says so in an event. docs/rationale.md says why it
// is opt-in.
const (
	// RollbackOnFailureAnnotation opts a Deployment in ("true").
	RollbackOnFailureAnnotation = "skiff.dev/rollback-on-progress-deadline"
	// LastAvailableRevisionAnnotation is the revision that last became
	// available (Progressing: NewReplicaSetAvailable), which the controller
	// records for the rollback.
	LastAvailableRevisionAnnotation = "skiff.dev/last-available-revision"
	// reasonRolledBack is the event's reason.
	reasonRolledBack = "RolledBackOnProgressDeadline"
)

// recordAvailable notes on an opted-in d that its current revision became
// available; it reports whether it wrote d.
func (c *Controller) recordAvailable(ctx context.Context, d *appsv1.Deployment) (bool, error) {
	if d.Annotations[RollbackOnFailureAnnotation] != "true" {
		return false, nil
	}
	cond := getCondition(d.Status, appsv1.DeploymentProgressing)
	rev := d.Annotations[RevisionAnnotation]
	if cond == nil || cond.Reason != reasonNewRSAvailable || rev == "" || d.Annotations[LastAvailableRevisionAnnotation] == rev {
		return false, nil
	}
	d.Annotations[LastAvailableRevisionAnnotation] = rev
	out, err := c.client.AppsV1().Deployments(d.Namespace).Update(ctx, d, metav1.UpdateOptions{})
	if err != nil {
		return false, fmt.Errorf("record the available revision of %s/%s: %w", d.Namespace, d.Name, err)
	}
	*d = *out
	return true, nil
}

// rollBackIfStuck rolls an opted-in d whose rollout exceeded its progress
// deadline back to the template of its last available revision; it reports
// whether it wrote d.
func (c *Controller) rollBackIfStuck(ctx context.Context, d *appsv1.Deployment, rsList []*appsv1.ReplicaSet) (bool, error) {
	if d.Annotations[RollbackOnFailureAnnotation] != "true" {
		return false, nil
	}
	cond := getCondition(d.Status, appsv1.DeploymentProgressing)
	if cond == nil || cond.Status != corev1.ConditionFalse || cond.Reason != reasonTimedOut {
		return false, nil
	}
	want, err := strconv.ParseInt(d.Annotations[LastAvailableRevisionAnnotation], 10, 64)
	if err != nil || want == revision(d.Annotations) {
		return false, nil // nothing became available yet, or the stuck revision is that one
	}
	var target *appsv1.ReplicaSet
	for _, rs := range rsList {
		if revision(rs.Annotations) == want {
			target = rs
		}
	}
	if target == nil {
		c.recorder.Eventf(d, corev1.EventTypeWarning, reasonRolledBack,
			"Rollout exceeded its progress deadline, but revision %d, the last available one, is gone", want)
		return false, nil
	}
	tmpl := target.Spec.Template.DeepCopy()
	delete(tmpl.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
	stuck := revision(d.Annotations)
	d.Spec.Template = *tmpl
	out, err := c.client.AppsV1().Deployments(d.Namespace).Update(ctx, d, metav1.UpdateOptions{})
	if err != nil {
		return false, fmt.Errorf("roll %s/%s back: %w", d.Namespace, d.Name, err)
	}
	*d = *out
	c.recorder.Eventf(d, corev1.EventTypeWarning, reasonRolledBack,
		"Revision %d exceeded its progress deadline; rolled back to revision %d, the last that became available", stuck, want)
	return true, nil
}
