package scheduler

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
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

// podRequests is Kubernetes' effective request of a pod: the sum over its
// containers (and restartable init containers, which run beside them),
// or the largest init container's if that is more, plus the pod overhead.
// A container with a limit and no request requests its limit, as API
// defaulting makes it. nonZero applies the scoring defaults.
func podRequests(pod *corev1.Pod, nonZero bool) resources {
	var sum resources
	for i := range pod.Spec.Containers {
		sum.add(containerRequests(&pod.Spec.Containers[i], nonZero))
	}
	var initMax resources
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		r := containerRequests(c, nonZero)
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			sum.add(r) // a sidecar runs for the pod's whole life
			continue
		}
		initMax.milliCPU = max(initMax.milliCPU, r.milliCPU)
		initMax.memory = max(initMax.memory, r.memory)
	}
	sum.milliCPU = max(sum.milliCPU, initMax.milliCPU)
	sum.memory = max(sum.memory, initMax.memory)
	if pod.Spec.Overhead != nil {
		sum.milliCPU += pod.Spec.Overhead.Cpu().MilliValue()
		sum.memory += pod.Spec.Overhead.Memory().Value()
	}
	return sum
}

func containerRequests(c *corev1.Container, nonZero bool) resources {
	get := func(name corev1.ResourceName) (resource.Quantity, bool) {
		if q, ok := c.Resources.Requests[name]; ok {
			return q, true
		}
		q, ok := c.Resources.Limits[name]
		return q, ok
	}
	var r resources
	if q, ok := get(corev1.ResourceCPU); ok {
		r.milliCPU = q.MilliValue()
	} else if nonZero {
		r.milliCPU = defaultMilliCPU
	}
	if q, ok := get(corev1.ResourceMemory); ok {
		r.memory = q.Value()
	} else if nonZero {
		r.memory = defaultMemory
	}
	return r
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

// score ranks a node that fits (higher is better): Kubernetes'
// LeastAllocated, the mean free share of cpu and memory after placing the
// pod, 0 to 100.
func score(n *nodeInfo, nonZeroReq resources) int64 {
	alloc := n.node.Status.Allocatable
	free := func(capacity, used int64) int64 {
		if capacity <= 0 || used > capacity {
			return 0
		}
		return (capacity - used) * 100 / capacity
	}
	cpu := free(alloc.Cpu().MilliValue(), n.nonZero.milliCPU+nonZeroReq.milliCPU)
	mem := free(alloc.Memory().Value(), n.nonZero.memory+nonZeroReq.memory)
	return (cpu + mem) / 2
}
