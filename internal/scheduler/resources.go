package scheduler

import (
	"maps"
	"slices"

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
func (r *resources) sub(o resources) { r.milliCPU -= o.milliCPU; r.memory -= o.memory }

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
	ports    []hostPort        // host ports the pod asks for
	inter    *interPodState    // inter-pod affinity counts over the cluster
	spread   *spreadState      // topology spread counts over the cluster
	// spreadScore: soft spread constraints' counts, over the nodes that
	// passed the filters; nil without such constraints.
	spreadScore       *spreadScorer
	preferred         *nodeaffinity.PreferredSchedulingTerms
	preferTolerations []corev1.Toleration
}

func newPodInfo(pod *corev1.Pod) *podInfo {
	return &podInfo{pod: pod, requests: podRequests(pod, false), nonZero: podRequests(pod, true),
		affinity: nodeaffinity.GetRequiredNodeAffinity(pod), ports: hostPorts(pod),
		preferred: preferredTerms(pod), preferTolerations: preferTolerations(pod)}
}

// nodeInfo is a node with the pods placed on it (bound, or assumed bound by
// this scheduler) and what they take of it. The scheduler's cache keeps one
// per node up to date from informer events, so a decision reads these
// sums and never lists pods.
type nodeInfo struct {
	node      *corev1.Node
	pods      int
	requested resources // real requests: for fitting
	nonZero   resources // with scoring defaults: for ranking
	// list holds the pods themselves, for the label matching of inter-pod
	// affinity and topology spread; withAffinity those of them that carry
	// pod affinity or anti-affinity terms, which every decision must check
	// against the incoming pod (Kubernetes' PodsWithAffinity).
	list         []*corev1.Pod
	withAffinity []*corev1.Pod
	ports        map[hostPort]int // host ports in use, by how many pods

	// alloc is node's allocatable as integers, worked out once per Node
	// object (allocFor) rather than per decision: a decision reads it for
	// every node, and a ResourceList lookup and Quantity conversion cost
	// more than the arithmetic. Node objects are never changed in place
	// (the informer's are shared and read-only): a changed node is a new
	// object, which recomputes it.
	allocFor *corev1.Node
	alloc    allocatable
}

type allocatable struct {
	milliCPU, memory, pods int64
}

// allocatable is the node's allocatable, cached per Node object.
func (n *nodeInfo) allocatable() allocatable {
	if n.allocFor != n.node {
		a := n.node.Status.Allocatable
		n.alloc = allocatable{milliCPU: a.Cpu().MilliValue(), memory: a.Memory().Value(), pods: a.Pods().Value()}
		n.allocFor = n.node
	}
	return n.alloc
}

func (n *nodeInfo) place(pod *corev1.Pod) {
	n.pods++
	n.requested.add(podRequests(pod, false))
	n.nonZero.add(podRequests(pod, true))
	n.list = append(n.list, pod)
	if hasPodAffinity(pod) {
		n.withAffinity = append(n.withAffinity, pod)
	}
	for _, hp := range hostPorts(pod) {
		if n.ports == nil {
			n.ports = map[hostPort]int{}
		}
		n.ports[hp]++
	}
}

// remove undoes place for the pod with pod's UID (or, for pods without a
// UID as in tests, its namespace and name), subtracting what was added for
// the copy placed, which may differ from pod. It reports whether the pod
// was there.
func (n *nodeInfo) remove(pod *corev1.Pod) bool {
	i := slices.IndexFunc(n.list, func(q *corev1.Pod) bool { return samePod(q, pod) })
	if i < 0 {
		return false
	}
	placed := n.list[i]
	n.list = slices.Delete(n.list, i, i+1)
	if j := slices.Index(n.withAffinity, placed); j >= 0 {
		n.withAffinity = slices.Delete(n.withAffinity, j, j+1)
	}
	n.pods--
	n.requested.sub(podRequests(placed, false))
	n.nonZero.sub(podRequests(placed, true))
	for _, hp := range hostPorts(placed) {
		if n.ports[hp]--; n.ports[hp] <= 0 {
			delete(n.ports, hp)
		}
	}
	return true
}

// clone is a copy whose place and remove leave n alone (what a what-if,
// such as preemption's, changes).
func (n *nodeInfo) clone() *nodeInfo {
	c := *n
	c.list = slices.Clone(n.list)
	c.withAffinity = slices.Clone(n.withAffinity)
	c.ports = maps.Clone(n.ports)
	return &c
}

func samePod(a, b *corev1.Pod) bool {
	if a.UID != "" || b.UID != "" {
		return a.UID == b.UID
	}
	return a == b || (a.Namespace == b.Namespace && a.Name == b.Name)
}

// occupies reports whether a pod bound to a node still holds its share:
// until it has finished or is gone.
func occupies(pod *corev1.Pod) bool {
	return pod.Spec.NodeName != "" && pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed
}
