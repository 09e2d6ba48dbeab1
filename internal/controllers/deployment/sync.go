package deployment

import (
	"context"
	"fmt"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"github.com/skiffhq/skiff/internal/controllers/controller"
)

// sync reconciles one Deployment.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	cached, err := c.dLister.Deployments(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil // its ReplicaSets go with it (ownerReferences)
	}
	if err != nil {
		return err
	}
	d := cached.DeepCopy() // never change the informer's copy
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		c.log.Warn("deployment has an invalid selector", "deployment", key, "err", err)
		return nil
	}
	if sel.Empty() {
		c.recorder.Event(d, corev1.EventTypeWarning, "SelectingAll",
			"This deployment is selecting all pods. A non-empty selector is required.")
		if d.Status.ObservedGeneration < d.Generation {
			d.Status.ObservedGeneration = d.Generation
			return c.updateStatus(ctx, d)
		}
		return nil
	}
	rsList, err := c.claimReplicaSets(ctx, d, sel)
	if err != nil {
		return err
	}
	if d.DeletionTimestamp != nil {
		newRS, oldRSs, err := c.replicaSetsAndRevision(ctx, d, rsList, false)
		if err != nil {
			return err
		}
		return c.syncStatus(ctx, append(oldRSs, newRS), newRS, d)
	}
	if err := c.checkPausedCondition(ctx, d); err != nil {
		return err
	}
	if d.Spec.Paused {
		return c.syncScale(ctx, d, rsList)
	}
	scaling, err := c.isScalingEvent(ctx, d, rsList)
	if err != nil {
		return err
	}
	if scaling {
		return c.syncScale(ctx, d, rsList)
	}
	// An opted-in Deployment remembers what became available, and goes back
	// to it when a rollout is stuck (selfrollback.go); the write brings it
	// back here.
	if wrote, err := c.recordAvailable(ctx, d); wrote || err != nil {
		return err
	}
	if wrote, err := c.rollBackIfStuck(ctx, d, rsList); wrote || err != nil {
		return err
	}
	if d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
		return c.rolloutRecreate(ctx, d, rsList, c.podsByReplicaSet(d, sel, rsList))
	}
	return c.rolloutRolling(ctx, d, rsList)
}

func (c *Controller) claimReplicaSets(ctx context.Context, d *appsv1.Deployment, sel labels.Selector) ([]*appsv1.ReplicaSet, error) {
	all, err := c.rsLister.ReplicaSets(d.Namespace).List(labels.Everything())
	if err != nil {
		return nil, err
	}
	rsc := c.client.AppsV1().ReplicaSets(d.Namespace)
	cl := &controller.Claimer{Owner: d, Kind: kind, Selector: sel,
		CanAdopt: func(ctx context.Context) error {
			fresh, err := c.client.AppsV1().Deployments(d.Namespace).Get(ctx, d.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			return controller.CheckOwner(d, fresh)
		},
		Patch: func(ctx context.Context, name string, patch []byte) error {
			_, err := rsc.Patch(ctx, name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
			return err
		},
	}
	return controller.Claim(ctx, cl, all)
}

// podsByReplicaSet groups the pods of d's ReplicaSets by ReplicaSet UID.
func (c *Controller) podsByReplicaSet(d *appsv1.Deployment, sel labels.Selector, rsList []*appsv1.ReplicaSet) map[types.UID][]*corev1.Pod {
	out := make(map[types.UID][]*corev1.Pod, len(rsList))
	for _, rs := range rsList {
		out[rs.UID] = nil
	}
	pods, err := c.pods.Pods(d.Namespace).List(sel)
	if err != nil {
		return out
	}
	for _, p := range pods {
		ref := metav1.GetControllerOf(p)
		if ref == nil {
			continue
		}
		if _, ok := out[ref.UID]; ok {
			out[ref.UID] = append(out[ref.UID], p)
		}
	}
	return out
}

// replicaSetsAndRevision splits d's ReplicaSets into the new one (whose
// template is d's, creating it if create and there is none) and the old
// ones, and brings the revision annotations of the new one and of d up to
// date.
func (c *Controller) replicaSetsAndRevision(ctx context.Context, d *appsv1.Deployment, rsList []*appsv1.ReplicaSet, create bool) (*appsv1.ReplicaSet, []*appsv1.ReplicaSet, error) {
	sorted := append([]*appsv1.ReplicaSet(nil), rsList...)
	byCreation(sorted)
	var existing *appsv1.ReplicaSet
	var old []*appsv1.ReplicaSet
	for _, rs := range sorted {
		// The oldest match wins, should several have d's template.
		if existing == nil && equalIgnoreHash(&rs.Spec.Template, &d.Spec.Template) {
			existing = rs
			continue
		}
		old = append(old, rs)
	}
	newRS, err := c.newReplicaSet(ctx, d, existing, old, create)
	return newRS, old, err
}

func (c *Controller) newReplicaSet(ctx context.Context, d *appsv1.Deployment, existing *appsv1.ReplicaSet, old []*appsv1.ReplicaSet, create bool) (*appsv1.ReplicaSet, error) {
	newRevision := maxRevision(old) + 1
	if existing != nil {
		rs := existing.DeepCopy()
		annotationsChanged := setNewRSAnnotations(d, rs, newRevision, true)
		if annotationsChanged || rs.Spec.MinReadySeconds != d.Spec.MinReadySeconds {
			rs.Spec.MinReadySeconds = d.Spec.MinReadySeconds
			// The Deployment's own revision follows on the sync this
			// update brings.
			return c.client.AppsV1().ReplicaSets(rs.Namespace).Update(ctx, rs, metav1.UpdateOptions{})
		}
		if err := c.setRevision(ctx, d, rs.Annotations[RevisionAnnotation]); err != nil {
			return nil, err
		}
		if hasProgressDeadline(d) && getCondition(d.Status, appsv1.DeploymentProgressing) == nil {
			setCondition(&d.Status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, reasonFoundNewRS,
				fmt.Sprintf("Found new replica set %q", rs.Name), c.now()))
			if err := c.updateStatus(ctx, d); err != nil {
				return nil, err
			}
		}
		return rs, nil
	}
	if !create {
		return nil, nil
	}

	hash := templateHash(&d.Spec.Template, d.Status.CollisionCount)
	template := d.Spec.Template.DeepCopy()
	if template.Labels == nil {
		template.Labels = map[string]string{}
	}
	template.Labels[appsv1.DefaultDeploymentUniqueLabelKey] = hash
	selector := d.Spec.Selector.DeepCopy()
	if selector.MatchLabels == nil {
		selector.MatchLabels = map[string]string{}
	}
	selector.MatchLabels[appsv1.DefaultDeploymentUniqueLabelKey] = hash
	rsLabels := make(map[string]string, len(template.Labels))
	for k, v := range template.Labels {
		rsLabels[k] = v
	}
	zero := int32(0)
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Name: d.Name + "-" + hash, Namespace: d.Namespace, Labels: rsLabels,
			OwnerReferences: []metav1.OwnerReference{*controller.NewControllerRef(d, kind)},
		},
		Spec: appsv1.ReplicaSetSpec{Replicas: &zero, MinReadySeconds: d.Spec.MinReadySeconds, Selector: selector, Template: *template},
	}
	n := newRSReplicas(d, append(old[:len(old):len(old)], rs), rs)
	rs.Spec.Replicas = &n
	setNewRSAnnotations(d, rs, newRevision, false)

	created, err := c.client.AppsV1().ReplicaSets(d.Namespace).Create(ctx, rs, metav1.CreateOptions{})
	switch {
	case apierrors.IsAlreadyExists(err):
		// Either ours, which the informer has not shown yet, or a hash
		// collision with another template: then a new collision count
		// gives the next sync another name.
		cur, getErr := c.client.AppsV1().ReplicaSets(d.Namespace).Get(ctx, rs.Name, metav1.GetOptions{})
		if getErr != nil {
			return nil, getErr
		}
		if equalIgnoreHash(&cur.Spec.Template, &d.Spec.Template) {
			switch ref := metav1.GetControllerOf(cur); {
			case ref != nil && ref.UID == d.UID:
				return cur, nil
			case ref == nil:
				// An orphan of d's template (left by a Deployment
				// deleted with propagation Orphan) that the informer
				// has not yet shown released: the next sync adopts it.
				return nil, fmt.Errorf("replica set %s is an orphan with this template: adopting it on the next sync", cur.Name)
			}
		}
		cc := int32(0)
		if d.Status.CollisionCount != nil {
			cc = *d.Status.CollisionCount
		}
		cc++
		d.Status.CollisionCount = &cc
		if uErr := c.updateStatus(ctx, d); uErr != nil {
			return nil, uErr
		}
		return nil, fmt.Errorf("replica set name %s is taken by another template: collision count now %d", rs.Name, cc)
	case err != nil:
		msg := fmt.Sprintf("Failed to create new replica set %q: %v", rs.Name, err)
		c.recorder.Event(d, corev1.EventTypeWarning, "FailedCreate", msg)
		if hasProgressDeadline(d) {
			setCondition(&d.Status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionFalse, reasonFailedRSCreate, msg, c.now()))
			_ = c.updateStatus(ctx, d) // the create error is the one to report
		}
		return nil, err
	}
	if n > 0 {
		c.recorder.Eventf(d, corev1.EventTypeNormal, eventScalingReplicaSet, "Scaled up replica set %s from 0 to %d", created.Name, n)
	}
	if err := c.setRevision(ctx, d, strconv.FormatInt(newRevision, 10)); err != nil {
		return nil, err
	}
	if hasProgressDeadline(d) {
		setCondition(&d.Status, newCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, reasonNewRSCreated,
			fmt.Sprintf("Created new replica set %q", created.Name), c.now()))
		if err := c.updateStatus(ctx, d); err != nil {
			return nil, err
		}
	}
	return created, nil
}

// setRevision writes rev as d's revision annotation if it says another.
// Annotations go through the main resource: a status update keeps only
// the status.
func (c *Controller) setRevision(ctx context.Context, d *appsv1.Deployment, rev string) error {
	if rev == "" || d.Annotations[RevisionAnnotation] == rev {
		return nil
	}
	if d.Annotations == nil {
		d.Annotations = map[string]string{}
	}
	d.Annotations[RevisionAnnotation] = rev
	status := d.Status
	out, err := c.client.AppsV1().Deployments(d.Namespace).Update(ctx, d, metav1.UpdateOptions{})
	if err != nil {
		return err
	}
	*d = *out
	d.Status = status // what this sync has decided so far
	return nil
}

// updateStatus writes d's status and keeps d current.
func (c *Controller) updateStatus(ctx context.Context, d *appsv1.Deployment) error {
	out, err := c.client.AppsV1().Deployments(d.Namespace).UpdateStatus(ctx, d, metav1.UpdateOptions{})
	if err != nil {
		return err
	}
	*d = *out
	return nil
}

// isScalingEvent reports that d's replicas changed since its active
// ReplicaSets were last sized: then they are scaled in proportion rather
// than rolled.
func (c *Controller) isScalingEvent(ctx context.Context, d *appsv1.Deployment, rsList []*appsv1.ReplicaSet) (bool, error) {
	newRS, oldRSs, err := c.replicaSetsAndRevision(ctx, d, rsList, false)
	if err != nil {
		return false, err
	}
	for _, rs := range activeRSs(append(oldRSs, newRS)) {
		if desired, ok := intAnnotation(rs, DesiredReplicasAnnotation); ok && desired != replicasOf(d.Spec.Replicas) {
			return true, nil
		}
	}
	return false, nil
}

// syncScale scales without rolling: on a scaling event, and for a paused
// Deployment.
func (c *Controller) syncScale(ctx context.Context, d *appsv1.Deployment, rsList []*appsv1.ReplicaSet) error {
	newRS, oldRSs, err := c.replicaSetsAndRevision(ctx, d, rsList, false)
	if err != nil {
		return err
	}
	if err := c.scale(ctx, d, newRS, oldRSs); err != nil {
		return err
	}
	if d.Spec.Paused {
		if err := c.cleanup(ctx, oldRSs, d); err != nil {
			return err
		}
	}
	return c.syncStatus(ctx, append(oldRSs, newRS), newRS, d)
}

// scale resizes d's ReplicaSets to d's replicas: the one active (or the
// latest) ReplicaSet alone, or, mid-rollout, all active ones in proportion
// to their size, so a rollout in progress keeps its shape.
func (c *Controller) scale(ctx context.Context, d *appsv1.Deployment, newRS *appsv1.ReplicaSet, oldRSs []*appsv1.ReplicaSet) error {
	want := replicasOf(d.Spec.Replicas)
	if rs := activeOrLatest(newRS, oldRSs); rs != nil {
		_, err := c.scaleReplicaSet(ctx, rs, want, d)
		return err
	}
	if isSaturated(d, newRS) {
		for _, old := range activeRSs(oldRSs) {
			if _, err := c.scaleReplicaSet(ctx, old, 0, d); err != nil {
				return err
			}
		}
		return nil
	}
	if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType {
		return nil
	}
	all := activeRSs(append(oldRSs, newRS))
	allowed := int32(0)
	if want > 0 {
		allowed = want + maxSurge(d)
	}
	toAdd := allowed - sumSpec(all)
	bySize(all, toAdd > 0)
	sizes := make(map[string]int32, len(all))
	added := int32(0)
	for _, rs := range all {
		p := proportion(rs, d, toAdd, added)
		sizes[rs.Name] = specReplicas(rs) + p
		added += p
	}
	// Rounding leaves a remainder: the largest ReplicaSet takes it.
	if toAdd != added && len(all) > 0 {
		sizes[all[0].Name] = max(sizes[all[0].Name]+toAdd-added, 0)
	}
	for _, rs := range all {
		if _, err := c.scaleReplicaSet(ctx, rs, sizes[rs.Name], d); err != nil {
			return err
		}
	}
	return nil
}

// proportion is rs's share of toAdd (negative to remove): its size
// scaled by the ratio of d's new to old maximum size, within what is left.
func proportion(rs *appsv1.ReplicaSet, d *appsv1.Deployment, toAdd, added int32) int32 {
	if specReplicas(rs) == 0 || toAdd == 0 || toAdd == added {
		return 0
	}
	fraction := rsFraction(rs, d)
	left := toAdd - added
	if toAdd > 0 {
		return min(fraction, left)
	}
	return max(fraction, left)
}

func rsFraction(rs *appsv1.ReplicaSet, d *appsv1.Deployment) int32 {
	want := replicasOf(d.Spec.Replicas)
	if want == 0 {
		return -specReplicas(rs)
	}
	newMax := want + maxSurge(d)
	oldMax, ok := intAnnotation(rs, MaxReplicasAnnotation)
	if !ok || oldMax == 0 {
		oldMax = d.Status.Replicas
	}
	if oldMax == 0 {
		return 0
	}
	return roundHalfAway(float64(specReplicas(rs)*newMax)/float64(oldMax)) - specReplicas(rs)
}

// activeOrLatest is the one ReplicaSet to scale when at most one is
// active: the active one, else the new one, else the newest old one. Nil
// when several are active.
func activeOrLatest(newRS *appsv1.ReplicaSet, oldRSs []*appsv1.ReplicaSet) *appsv1.ReplicaSet {
	if newRS == nil && len(oldRSs) == 0 {
		return nil
	}
	old := append([]*appsv1.ReplicaSet(nil), oldRSs...)
	byCreation(old)
	active := activeRSs(append(old[:len(old):len(old)], newRS))
	switch len(active) {
	case 0:
		if newRS != nil {
			return newRS
		}
		return old[len(old)-1]
	case 1:
		return active[0]
	}
	return nil
}

// isSaturated reports that the new ReplicaSet alone is d: sized for it
// and all available.
func isSaturated(d *appsv1.Deployment, rs *appsv1.ReplicaSet) bool {
	if rs == nil {
		return false
	}
	want := replicasOf(d.Spec.Replicas)
	desired, ok := intAnnotation(rs, DesiredReplicasAnnotation)
	return ok && desired == want && specReplicas(rs) == want && rs.Status.AvailableReplicas == want
}

// scaleReplicaSet sets rs's replicas (and the size annotations) and
// records a ScalingReplicaSet event on d when the size changed. It
// reports whether it did.
func (c *Controller) scaleReplicaSet(ctx context.Context, rs *appsv1.ReplicaSet, n int32, d *appsv1.Deployment) (bool, error) {
	from := specReplicas(rs)
	cp := rs.DeepCopy()
	annotationsChanged := setReplicasAnnotations(cp, replicasOf(d.Spec.Replicas), replicasOf(d.Spec.Replicas)+maxSurge(d))
	if from == n && !annotationsChanged {
		return false, nil
	}
	cp.Spec.Replicas = &n
	if _, err := c.client.AppsV1().ReplicaSets(cp.Namespace).Update(ctx, cp, metav1.UpdateOptions{}); err != nil {
		return false, err
	}
	if from == n {
		return false, nil
	}
	op := "up"
	if n < from {
		op = "down"
	}
	c.recorder.Eventf(d, corev1.EventTypeNormal, eventScalingReplicaSet, "Scaled %s replica set %s from %d to %d", op, rs.Name, from, n)
	return true, nil
}

// cleanup deletes the oldest old ReplicaSets beyond revisionHistoryLimit,
// only those scaled to zero and settled.
func (c *Controller) cleanup(ctx context.Context, oldRSs []*appsv1.ReplicaSet, d *appsv1.Deployment) error {
	if d.Spec.RevisionHistoryLimit == nil {
		return nil
	}
	var cleanable []*appsv1.ReplicaSet
	for _, rs := range oldRSs {
		if rs != nil && rs.DeletionTimestamp == nil {
			cleanable = append(cleanable, rs)
		}
	}
	diff := len(cleanable) - int(*d.Spec.RevisionHistoryLimit)
	if diff <= 0 {
		return nil
	}
	byRevision(cleanable)
	for _, rs := range cleanable[:diff] {
		if rs.Status.Replicas != 0 || specReplicas(rs) != 0 || rs.Generation > rs.Status.ObservedGeneration {
			continue
		}
		err := c.client.AppsV1().ReplicaSets(rs.Namespace).Delete(ctx, rs.Name, metav1.DeleteOptions{
			Preconditions: &metav1.Preconditions{UID: &rs.UID}})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete old replica set %s: %w", rs.Name, err)
		}
	}
	return nil
}
