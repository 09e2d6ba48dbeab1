package controller

import (
	"fmt"
	"sort"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// PodDeletionCostAnnotation lets a user rank pods for scale-down: lower
// cost goes first (Kubernetes' controller.kubernetes.io/pod-deletion-cost).
const PodDeletionCostAnnotation = "controller.kubernetes.io/pod-deletion-cost"

// NodeNameIndex names the pod informer index IndexByNodeName keeps: the
// pods bound to each node, for the control plane's answers to node agents.
const NodeNameIndex = "spec.nodeName"

// IndexByNodeName indexes a bound pod by its node (cache.IndexFunc).
func IndexByNodeName(obj any) ([]string, error) {
	if p, ok := obj.(*corev1.Pod); ok && p.Spec.NodeName != "" {
		return []string{p.Spec.NodeName}, nil
	}
	return nil, nil
}

// AddNodeNameIndex adds IndexByNodeName to a pod informer unless an earlier
// user of the same shared informer has: client-go refuses an index added
// twice, and the scheduler and the dispatcher share the term's informer.
func AddNodeNameIndex(inf cache.SharedIndexInformer) error {
	if _, ok := inf.GetIndexer().GetIndexers()[NodeNameIndex]; ok {
		return nil
	}
	return inf.AddIndexers(cache.Indexers{NodeNameIndex: IndexByNodeName})
}

// PodReadyCondition is the pod's Ready condition, or nil.
func PodReadyCondition(p *corev1.Pod) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == corev1.PodReady {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// IsPodReady reports whether the pod's Ready condition is True.
func IsPodReady(p *corev1.Pod) bool {
	c := PodReadyCondition(p)
	return c != nil && c.Status == corev1.ConditionTrue
}

// IsPodAvailable reports whether the pod has been ready for at least
// minReadySeconds at now, Kubernetes' definition of an available replica.
func IsPodAvailable(p *corev1.Pod, minReadySeconds int32, now time.Time) bool {
	c := PodReadyCondition(p)
	if c == nil || c.Status != corev1.ConditionTrue {
		return false
	}
	if minReadySeconds <= 0 {
		return true
	}
	return !c.LastTransitionTime.IsZero() &&
		c.LastTransitionTime.Add(time.Duration(minReadySeconds)*time.Second).Before(now)
}

// IsPodActive reports whether the pod counts as a replica: not finished
// and not being deleted.
func IsPodActive(p *corev1.Pod) bool {
	return p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed && p.DeletionTimestamp == nil
}

// FilterActivePods keeps the active pods.
func FilterActivePods(pods []*corev1.Pod) []*corev1.Pod {
	out := make([]*corev1.Pod, 0, len(pods))
	for _, p := range pods {
		if IsPodActive(p) {
			out = append(out, p)
		}
	}
	return out
}

// PodKey is the namespace/name key of a pod.
func PodKey(p *corev1.Pod) string { return p.Namespace + "/" + p.Name }

// SortForDeletion orders pods so that the ones a scale-down should remove
// first come first, as Kubernetes ranks them: unscheduled before
// scheduled, pending before unknown before running, not ready before
// ready, lower deletion cost first, ready for less time before ready for
// longer, more restarts before fewer, newer before older.
func SortForDeletion(pods []*corev1.Pod) {
	sort.SliceStable(pods, func(i, j int) bool { return deleteBefore(pods[i], pods[j]) })
}

func deleteBefore(a, b *corev1.Pod) bool {
	if (a.Spec.NodeName == "") != (b.Spec.NodeName == "") {
		return a.Spec.NodeName == ""
	}
	if ra, rb := phaseRank(a.Status.Phase), phaseRank(b.Status.Phase); ra != rb {
		return ra < rb
	}
	if IsPodReady(a) != IsPodReady(b) {
		return !IsPodReady(a)
	}
	if ca, cb := deletionCost(a), deletionCost(b); ca != cb {
		return ca < cb
	}
	if IsPodReady(a) {
		ta, tb := PodReadyCondition(a).LastTransitionTime, PodReadyCondition(b).LastTransitionTime
		if !ta.Equal(&tb) {
			return tb.Before(&ta) // a became ready later: it has been ready for less time
		}
	}
	if ra, rb := maxRestarts(a), maxRestarts(b); ra != rb {
		return ra > rb
	}
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return b.CreationTimestamp.Before(&a.CreationTimestamp)
	}
	return a.Name < b.Name
}

func phaseRank(p corev1.PodPhase) int {
	switch p {
	case corev1.PodPending, "":
		return 0
	case corev1.PodUnknown:
		return 1
	case corev1.PodRunning:
		return 2
	}
	return 3
}

func deletionCost(p *corev1.Pod) int32 {
	v, err := strconv.ParseInt(p.Annotations[PodDeletionCostAnnotation], 10, 32)
	if err != nil {
		return 0
	}
	return int32(v)
}

func maxRestarts(p *corev1.Pod) int32 {
	var n int32
	for _, cs := range p.Status.ContainerStatuses {
		n = max(n, cs.RestartCount)
	}
	return n
}

// PodFromTemplate builds a pod for controller from its template: the
// template's labels, annotations, finalizers and spec, a generated name
// with prefix, and controllerRef as its only controller.
func PodFromTemplate(t *corev1.PodTemplateSpec, namespace, prefix string, controllerRef *metav1.OwnerReference) (*corev1.Pod, error) {
	if len(t.Labels) == 0 {
		return nil, fmt.Errorf("pod template has no labels: its pods could not be selected")
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: prefix,
			Namespace:    namespace,
			Labels:       copyMap(t.Labels),
			Annotations:  copyMap(t.Annotations),
			Finalizers:   append([]string(nil), t.Finalizers...),
		},
		Spec: *t.Spec.DeepCopy(),
	}
	if controllerRef != nil {
		pod.OwnerReferences = []metav1.OwnerReference{*controllerRef}
	}
	return pod, nil
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
