package scheduler

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	resourcehelper "k8s.io/component-helpers/resource"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
)

// resources is what a pod asks of a node, as the scheduler counts it.
type resources struct {
	milliCPU int64
	memory   int64
}

func (r *resources) add(o resources) { r.milliCPU += o.milliCPU; r.memory += o.memory }

// Kubernetes' scheduler scores a container that requests nothing as if it
// asked for this much, so that request-less pods still spread instead of
// piling onto one node; fitting uses the real (zero) requests.
const (
	defaultMilliCPU = 100
	defaultMemory   = 200 * 1024 * 1024
)

var nonZeroDefaults = corev1.ResourceList{
	corev1.ResourceCPU:    *resource.NewMilliQuantity(defaultMilliCPU, resource.DecimalSI),
	corev1.ResourceMemory: *resource.NewQuantity(defaultMemory, resource.BinarySI),
}

// podRequests is Kubernetes' effective request of a pod (component-helpers'
// PodRequests, which the kubelet and the Kubernetes scheduler share): its
// containers and sidecars, or an init container's peak if that is more,
// plus the pod overhead. A container with a limit and no request requests
// its limit because API defaulting wrote it so. nonZero applies the scoring
// defaults to what a container does not request. Pod-level resources are
// left out, as Kubernetes 1.32 leaves them by default (an alpha feature).
func podRequests(pod *corev1.Pod, nonZero bool) resources {
	opts := resourcehelper.PodResourcesOptions{SkipPodLevelResources: true}
	if nonZero {
		opts.NonMissingContainerRequests = nonZeroDefaults
	}
	rl := resourcehelper.PodRequests(pod, opts)
	return resources{milliCPU: rl.Cpu().MilliValue(), memory: rl.Memory().Value()}
}

// podInfo is what the filters and scores read of the pod being placed,
// worked out once per attempt (Kubernetes' PreFilter state).
type podInfo struct {
	pod      *corev1.Pod
	requests resources // real requests: for fitting
	nonZero  resources // with scoring defaults: for ranking
	affinity nodeaffinity.RequiredNodeAffinity
	claims   *claimConstraints // nil: no claims to honour
}

func newPodInfo(pod *corev1.Pod) *podInfo {
	return &podInfo{pod: pod, requests: podRequests(pod, false), nonZero: podRequests(pod, true),
		affinity: nodeaffinity.GetRequiredNodeAffinity(pod)}
}

// nodeInfo is a node with what the pods placed on it request.
type nodeInfo struct {
	node      *corev1.Node
	pods      int
	requested resources // real requests: for fitting
	nonZero   resources // with scoring defaults: for ranking
}

func (n *nodeInfo) place(pod *corev1.Pod) {
	n.pods++
	n.requested.add(podRequests(pod, false))
	n.nonZero.add(podRequests(pod, true))
}

// occupies reports whether a pod bound to a node still holds its share:
// until it has finished or is gone.
func occupies(pod *corev1.Pod) bool {
	return pod.Spec.NodeName != "" && pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed
}
