package statefulset

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"github.com/skiffhq/skiff/internal/controllers/controller"
)

// The labels every pod of a StatefulSet carries, as in Kubernetes.
const (
	podNameLabel  = appsv1.StatefulSetPodNameLabel // statefulset.kubernetes.io/pod-name
	podIndexLabel = appsv1.PodIndexLabel           // apps.kubernetes.io/pod-index
)

func labelsEverything() labels.Selector { return labels.Everything() }

// sync brings one StatefulSet's pods and claims towards its spec, one step
// of the ordered policy at a time, and writes its status.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	set, err := c.sets.StatefulSets(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	} else if err != nil {
		return err
	}
	sel, err := metav1.LabelSelectorAsSelector(set.Spec.Selector)
	if err != nil || sel.Empty() {
		c.log.Warn("statefulset has an unusable selector", "statefulset", key, "err", err)
		return nil
	}
	all, err := c.pods.Pods(ns).List(labels.Everything())
	if err != nil {
		return err
	}
	pods, err := c.claimPods(ctx, set, sel, all)
	if err != nil {
		return err
	}
	if set.DeletionTimestamp != nil {
		return nil // the garbage collector takes the pods
	}
	owned, err := c.ownedRevisions(set)
	if err != nil {
		return err
	}
	current, update, collisions, err := c.revisionsOf(ctx, set, owned)
	if err != nil {
		return err
	}
	manageErr := c.manage(ctx, set, pods, current, update)
	if set.Spec.MinReadySeconds > 0 {
		// Ready but not yet available: that comes with time alone.
		for _, p := range pods {
			if controller.IsPodReady(p) && !controller.IsPodAvailable(p, set.Spec.MinReadySeconds, time.Now()) {
				c.queue.AddAfter(key, time.Duration(set.Spec.MinReadySeconds)*time.Second+time.Second)
				break
			}
		}
	}
	if err := c.writeStatus(ctx, set, current, update, collisions); err != nil {
		return errors.Join(manageErr, err)
	}
	if manageErr != nil {
		return manageErr
	}
	owned, err = c.ownedRevisions(set)
	if err != nil {
		return err
	}
	return c.truncateHistory(ctx, set, owned, pods, current, update)
}

// claimPods adopts and releases pods, and keeps those that are members of
// the set by name.
func (c *Controller) claimPods(ctx context.Context, set *appsv1.StatefulSet, sel labels.Selector, all []*corev1.Pod) ([]*corev1.Pod, error) {
	pc := c.client.CoreV1().Pods(set.Namespace)
	cl := &controller.Claimer{Owner: set, Kind: kind, Selector: sel,
		CanAdopt: func(ctx context.Context) error {
			fresh, err := c.client.AppsV1().StatefulSets(set.Namespace).Get(ctx, set.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			return controller.CheckOwner(set, fresh)
		},
		Patch: func(ctx context.Context, name string, patch []byte) error {
			_, err := pc.Patch(ctx, name, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
			return err
		},
	}
	var members []*corev1.Pod
	for _, p := range all {
		if _, ok := ordinalOf(set, p); ok {
			members = append(members, p)
		}
	}
	return controller.Claim(ctx, cl, members)
}

// ordinalOf is the pod's ordinal if its name is <set>-<ordinal>.
func ordinalOf(set *appsv1.StatefulSet, pod *corev1.Pod) (int, bool) {
	rest, ok := strings.CutPrefix(pod.Name, set.Name+"-")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(rest)
	if err != nil || i < 0 || strconv.Itoa(i) != rest {
		return 0, false
	}
	return i, true
}

func replicas(set *appsv1.StatefulSet) int {
	if set.Spec.Replicas == nil {
		return 1
	}
	return int(*set.Spec.Replicas)
}

func startOrdinal(set *appsv1.StatefulSet) int {
	if set.Spec.Ordinals == nil {
		return 0
	}
	return int(set.Spec.Ordinals.Start)
}

func podName(set *appsv1.StatefulSet, ord int) string { return fmt.Sprintf("%s-%d", set.Name, ord) }

// ClaimName is the claim of template t for the set's pod of ordinal ord.
func ClaimName(t string, set *appsv1.StatefulSet, ord int) string {
	return fmt.Sprintf("%s-%s-%d", t, set.Name, ord)
}

func runningAndReady(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodRunning && controller.IsPodReady(p)
}

// runningAndAvailable: Running and Ready for minReadySeconds, what the
// ordered policy waits for before the next ordinal, as in Kubernetes.
func runningAndAvailable(set *appsv1.StatefulSet, p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodRunning && controller.IsPodAvailable(p, set.Spec.MinReadySeconds, time.Now())
}

func terminating(p *corev1.Pod) bool { return p.DeletionTimestamp != nil }

func finished(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded
}

func revisionOf(p *corev1.Pod) string { return p.Labels[appsv1.ControllerRevisionHashLabelKey] }

// newPod builds the pod of ordinal ord from the revision's template.
func (c *Controller) newPod(set *appsv1.StatefulSet, rev *appsv1.ControllerRevision, ord int) (*corev1.Pod, error) {
	tmpl, err := templateOf(rev)
	if err != nil {
		return nil, err
	}
	pod, err := controller.PodFromTemplate(tmpl, set.Namespace, "", controller.NewControllerRef(set, kind))
	if err != nil {
		return nil, err
	}
	name := podName(set, ord)
	pod.GenerateName, pod.Name = "", name
	if pod.Labels == nil {
		pod.Labels = map[string]string{}
	}
	pod.Labels[podNameLabel] = name
	pod.Labels[podIndexLabel] = strconv.Itoa(ord)
	pod.Labels[appsv1.ControllerRevisionHashLabelKey] = rev.Name
	pod.Spec.Hostname = name
	pod.Spec.Subdomain = set.Spec.ServiceName
	// Each claim template is a persistentVolumeClaim volume of its name,
	// replacing a template volume of the same name.
	for _, t := range set.Spec.VolumeClaimTemplates {
		vol := corev1.Volume{Name: t.Name, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: ClaimName(t.Name, set, ord)}}}
		replaced := false
		for i := range pod.Spec.Volumes {
			if pod.Spec.Volumes[i].Name == t.Name {
				pod.Spec.Volumes[i], replaced = vol, true
			}
		}
		if !replaced {
			pod.Spec.Volumes = append(pod.Spec.Volumes, vol)
		}
	}
	return pod, nil
}

// revisionFor is the revision a new pod of ordinal ord gets: below the
// partition the current one, else the update revision.
func revisionFor(set *appsv1.StatefulSet, ord int, current, update *appsv1.ControllerRevision) *appsv1.ControllerRevision {
	if set.Spec.UpdateStrategy.Type != appsv1.OnDeleteStatefulSetStrategyType {
		if ru := set.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.Partition != nil && ord < startOrdinal(set)+int(*ru.Partition) {
			return current
		}
	}
	return update
}

// ensureClaims creates the pod's missing claims, before the pod.
func (c *Controller) ensureClaims(ctx context.Context, set *appsv1.StatefulSet, ord int) error {
	for _, t := range set.Spec.VolumeClaimTemplates {
		name := ClaimName(t.Name, set, ord)
		if _, err := c.claims.PersistentVolumeClaims(set.Namespace).Get(name); err == nil {
			continue
		} else if !apierrors.IsNotFound(err) {
			return err
		}
		pvc := &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: set.Namespace,
				Labels: copyLabels(t.Labels, set.Spec.Selector.MatchLabels), Annotations: copyLabels(t.Annotations)},
			Spec: *t.Spec.DeepCopy(),
		}
		if rp := set.Spec.PersistentVolumeClaimRetentionPolicy; rp != nil && rp.WhenDeleted == appsv1.DeletePersistentVolumeClaimRetentionPolicyType {
			// The claims go with the set.
			pvc.OwnerReferences = []metav1.OwnerReference{*controller.NewControllerRef(set, kind)}
		}
		_, err := c.client.CoreV1().PersistentVolumeClaims(set.Namespace).Create(ctx, pvc, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			continue
		}
		if err != nil {
			c.recorder.Eventf(set, corev1.EventTypeWarning, "FailedCreate", "create Claim %s for Pod %s in StatefulSet %s failed error: %v",
				name, podName(set, ord), set.Name, err)
			return fmt.Errorf("create claim %s: %w", name, err)
		}
		c.recorder.Eventf(set, corev1.EventTypeNormal, "SuccessfulCreate", "create Claim %s Pod %s in StatefulSet %s success",
			name, podName(set, ord), set.Name)
	}
	return nil
}

func (c *Controller) createPod(ctx context.Context, set *appsv1.StatefulSet, ord int, rev *appsv1.ControllerRevision) error {
	if err := c.ensureClaims(ctx, set, ord); err != nil {
		return err
	}
	pod, err := c.newPod(set, rev, ord)
	if err != nil {
		return err
	}
	_, err = c.client.CoreV1().Pods(set.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil // the cache lags, or its predecessor is still going
	}
	if err != nil {
		c.recorder.Eventf(set, corev1.EventTypeWarning, "FailedCreate", "create Pod %s in StatefulSet %s failed error: %v", pod.Name, set.Name, err)
		return fmt.Errorf("create pod %s: %w", pod.Name, err)
	}
	c.recorder.Eventf(set, corev1.EventTypeNormal, "SuccessfulCreate", "create Pod %s in StatefulSet %s successful", pod.Name, set.Name)
	return nil
}

func (c *Controller) deletePod(ctx context.Context, set *appsv1.StatefulSet, pod *corev1.Pod) error {
	err := c.client.CoreV1().Pods(set.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &pod.UID}})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	if err != nil {
		c.recorder.Eventf(set, corev1.EventTypeWarning, "FailedDelete", "delete Pod %s in StatefulSet %s failed error: %v", pod.Name, set.Name, err)
		return fmt.Errorf("delete pod %s: %w", pod.Name, err)
	}
	c.recorder.Eventf(set, corev1.EventTypeNormal, "SuccessfulDelete", "delete Pod %s in StatefulSet %s successful", pod.Name, set.Name)
	return nil
}

// ensureIdentity puts back the labels that name a pod's ordinal, if an
// adopted pod lacks them or someone took them off (Service selectors may
// use them).
func (c *Controller) ensureIdentity(ctx context.Context, pod *corev1.Pod, ord int) error {
	if terminating(pod) || (pod.Labels[podNameLabel] == pod.Name && pod.Labels[podIndexLabel] == strconv.Itoa(ord)) {
		return nil
	}
	patch := fmt.Appendf(nil, `{"metadata":{"labels":{%q:%q,%q:%q}}}`, podNameLabel, pod.Name, podIndexLabel, strconv.Itoa(ord))
	if _, err := c.client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil &&
		!apierrors.IsNotFound(err) {
		return fmt.Errorf("label pod %s with its identity: %w", pod.Name, err)
	}
	return nil
}

// releaseClaimsOnScaleDown gives a condemned pod's claims the pod as owner
// when whenScaled is Delete, so they go with it.
func (c *Controller) releaseClaimsOnScaleDown(ctx context.Context, set *appsv1.StatefulSet, pod *corev1.Pod, ord int) error {
	rp := set.Spec.PersistentVolumeClaimRetentionPolicy
	if rp == nil || rp.WhenScaled != appsv1.DeletePersistentVolumeClaimRetentionPolicyType {
		return nil
	}
	for _, t := range set.Spec.VolumeClaimTemplates {
		name := ClaimName(t.Name, set, ord)
		pvc, err := c.claims.PersistentVolumeClaims(set.Namespace).Get(name)
		if apierrors.IsNotFound(err) {
			continue
		} else if err != nil {
			return err
		}
		has := false
		for _, r := range pvc.OwnerReferences {
			has = has || r.UID == pod.UID
		}
		if has {
			continue
		}
		cp := pvc.DeepCopy()
		cp.OwnerReferences = append(cp.OwnerReferences, metav1.OwnerReference{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID})
		if _, err := c.client.CoreV1().PersistentVolumeClaims(set.Namespace).Update(ctx, cp, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("claim %s owned by pod %s: %w", name, pod.Name, err)
		}
	}
	return nil
}

// manage takes the next steps towards the spec: create what is missing,
// replace what failed, remove the condemned, roll out the update revision.
// With OrderedReady it stops at the first pod not yet Running and Ready.
func (c *Controller) manage(ctx context.Context, set *appsv1.StatefulSet, pods []*corev1.Pod, current, update *appsv1.ControllerRevision) error {
	start, n := startOrdinal(set), replicas(set)
	monotonic := set.Spec.PodManagementPolicy != appsv1.ParallelPodManagement
	byOrd := map[int]*corev1.Pod{}
	var condemned []int
	for _, p := range pods {
		ord, _ := ordinalOf(set, p)
		byOrd[ord] = p
		if ord < start || ord >= start+n {
			condemned = append(condemned, ord)
		}
	}
	sort.Sort(sort.Reverse(sort.IntSlice(condemned)))

	// Replicas, lowest ordinal first.
	var errs []error
	for ord := start; ord < start+n; ord++ {
		pod := byOrd[ord]
		switch {
		case pod == nil:
			if err := c.createPod(ctx, set, ord, revisionFor(set, ord, current, update)); err != nil {
				errs = append(errs, err)
			}
			if monotonic {
				return errors.Join(errs...)
			}
			continue
		case finished(pod) && !terminating(pod):
			// Failed or Succeeded: replaced, once gone.
			if err := c.deletePod(ctx, set, pod); err != nil {
				errs = append(errs, err)
			}
			if monotonic {
				return errors.Join(errs...)
			}
			continue
		}
		if err := c.ensureClaims(ctx, set, ord); err != nil {
			errs = append(errs, err)
		}
		if err := c.ensureIdentity(ctx, pod, ord); err != nil {
			errs = append(errs, err)
		}
		if monotonic && (terminating(pod) || !runningAndAvailable(set, pod)) {
			return errors.Join(errs...) // wait for it before the next
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}

	// Condemned, highest ordinal first; ordered: one at a time, with every
	// other pod healthy.
	for _, ord := range condemned {
		pod := byOrd[ord]
		if terminating(pod) {
			if monotonic {
				return nil
			}
			continue
		}
		if monotonic && !c.othersHealthy(set, pods, pod) {
			return nil
		}
		if err := c.releaseClaimsOnScaleDown(ctx, set, pod, ord); err != nil {
			return err
		}
		if err := c.deletePod(ctx, set, pod); err != nil {
			return err
		}
		if monotonic {
			return nil
		}
	}
	if len(condemned) > 0 && monotonic {
		return nil
	}

	if set.Spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType {
		return nil
	}
	// RollingUpdate: from the highest ordinal down to the partition, one
	// pod at a time, each replaced only when all are Running and Ready.
	partition := 0
	if ru := set.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.Partition != nil {
		partition = int(*ru.Partition)
	}
	for ord := start + n - 1; ord >= start+partition; ord-- {
		pod := byOrd[ord]
		if pod == nil {
			return nil
		}
		if revisionOf(pod) != update.Name {
			if terminating(pod) {
				return nil
			}
			if !c.othersHealthy(set, pods, nil) {
				return nil
			}
			return c.deletePod(ctx, set, pod)
		}
		if terminating(pod) || !runningAndAvailable(set, pod) {
			return nil // wait for the updated pod
		}
	}
	return nil
}

// othersHealthy: every pod of the set but except is Running, Ready and not
// terminating.
func (c *Controller) othersHealthy(set *appsv1.StatefulSet, pods []*corev1.Pod, except *corev1.Pod) bool {
	for _, p := range pods {
		if p == except {
			continue
		}
		if terminating(p) || !runningAndReady(p) {
			return false
		}
	}
	return true
}

// writeStatus computes the status from a fresh look at the pods and writes
// it when it changed.
func (c *Controller) writeStatus(ctx context.Context, set *appsv1.StatefulSet, current, update *appsv1.ControllerRevision, collisions int32) error {
	sel, _ := metav1.LabelSelectorAsSelector(set.Spec.Selector)
	all, err := c.pods.Pods(set.Namespace).List(sel)
	if err != nil {
		return err
	}
	st := appsv1.StatefulSetStatus{ObservedGeneration: set.Generation, CurrentRevision: current.Name,
		UpdateRevision: update.Name, CollisionCount: &collisions, Conditions: set.Status.Conditions}
	now := time.Now()
	for _, p := range all {
		if ref := metav1.GetControllerOf(p); ref == nil || ref.UID != set.UID {
			continue
		}
		if _, ok := ordinalOf(set, p); !ok || terminating(p) {
			continue
		}
		st.Replicas++
		if controller.IsPodReady(p) {
			st.ReadyReplicas++
			if controller.IsPodAvailable(p, set.Spec.MinReadySeconds, now) {
				st.AvailableReplicas++
			}
		}
		if revisionOf(p) == current.Name {
			st.CurrentReplicas++
		}
		if revisionOf(p) == update.Name {
			st.UpdatedReplicas++
		}
	}
	// A finished rolling update: the update revision becomes current.
	if set.Spec.UpdateStrategy.Type != appsv1.OnDeleteStatefulSetStrategyType &&
		st.UpdatedReplicas == int32(replicas(set)) && st.ReadyReplicas == int32(replicas(set)) && st.Replicas == int32(replicas(set)) {
		st.CurrentRevision, st.CurrentReplicas = update.Name, st.UpdatedReplicas
	}
	if statusEqual(set.Status, st) {
		return nil
	}
	cp := set.DeepCopy()
	cp.Status = st
	_, err = c.client.AppsV1().StatefulSets(set.Namespace).UpdateStatus(ctx, cp, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil // the change brings the set back to the queue
	}
	if err != nil {
		return fmt.Errorf("update status of statefulset %s/%s: %w", set.Namespace, set.Name, err)
	}
	return nil
}

func statusEqual(a, b appsv1.StatefulSetStatus) bool {
	return a.ObservedGeneration == b.ObservedGeneration && a.Replicas == b.Replicas && a.ReadyReplicas == b.ReadyReplicas &&
		a.CurrentReplicas == b.CurrentReplicas && a.UpdatedReplicas == b.UpdatedReplicas &&
		a.AvailableReplicas == b.AvailableReplicas && a.CurrentRevision == b.CurrentRevision &&
		a.UpdateRevision == b.UpdateRevision && a.CollisionCount != nil && b.CollisionCount != nil &&
		*a.CollisionCount == *b.CollisionCount
}
