package agent

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
)

// What limits the memory of a pod on this node, in the order they apply:
//
//  1. the container's resources.limits.memory, as the user wrote it or as a
//     namespace's LimitRange default filled it in at create (the API
//     server's LimitRanger);
//  2. otherwise the node's default (Config.DefaultPodMemoryLimit): the pod
//     keeps the spec its user wrote, the node caps the container anyway;
//  3. admission: a pod whose limits, defaults included, do not fit in what
//     the node's allocatable memory leaves beside the running pods' limits
//     is rejected (Failed, OutOfmemory), as the kubelet rejects a pod that
//     does not fit;
//  4. eviction: when the node runs low on memory all the same (the engine
//     itself, other processes), pods are evicted by how far their use
//     exceeds their request (eviction.go).

// DefaultPodMemoryLimit is the limit of a Wasm container that sets none
// (Config.DefaultPodMemoryLimit): 512 MiB. It is far above what Wasm
// services usually hold (an idle Go wasip1 guest ~4 MiB), so a pod that was
// fine without a limit stays fine, and far below Wasm's 4 GiB, so one
// runaway pod cannot take a small node; it costs address space, not
// memory, until the guest uses it. A node that wants more pods without
// limits than its memory divided by 512 MiB lowers it.
const DefaultPodMemoryLimit = 512 << 20

// DefaultEvictionMemoryAvailable is the hard eviction threshold
// (Config.EvictionMemoryAvailable): 100 MiB, the kubelet's
// memory.available<100Mi.
const DefaultEvictionMemoryAvailable = 100 << 20

// containerMemoryLimit is the memory limit the node enforces on c: its own
// limits.memory, or the node's default; 0 means none.
func (a *Agent) containerMemoryLimit(c *corev1.Container) int64 {
	if q, ok := c.Resources.Limits[corev1.ResourceMemory]; ok && q.Sign() > 0 {
		return q.Value()
	}
	return max(a.cfg.DefaultPodMemoryLimit, 0)
}

// podMemoryLimit is the memory the node must be able to give the pod at
// once: the containers' limits (defaults included) and those of restartable
// init containers (sidecars), which run beside them, or the largest init
// container's if that is more, plus the pod overhead; as the scheduler sums
// requests. unlimited is true when a container has no limit at all (the
// node default is turned off): its use cannot be accounted for.
func (a *Agent) podMemoryLimit(pod *corev1.Pod) (bytes int64, unlimited bool) {
	var sum, initMax int64
	for i := range pod.Spec.Containers {
		l := a.containerMemoryLimit(&pod.Spec.Containers[i])
		unlimited = unlimited || l == 0
		sum += l
	}
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		l := a.containerMemoryLimit(c)
		unlimited = unlimited || l == 0
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			sum += l
			continue
		}
		initMax = max(initMax, l)
	}
	sum = max(sum, initMax)
	if pod.Spec.Overhead != nil {
		sum += pod.Spec.Overhead.Memory().Value()
	}
	return sum, unlimited
}

// podMemoryRequest is the pod's memory request as the scheduler counts it:
// a container with a limit and no request requests its limit (API
// defaulting makes it so); a container with neither requests nothing. The
// node's default limit is not a request.
func podMemoryRequest(pod *corev1.Pod) int64 {
	get := func(c *corev1.Container) int64 {
		if q, ok := c.Resources.Requests[corev1.ResourceMemory]; ok {
			return q.Value()
		}
		if q, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
			return q.Value()
		}
		return 0
	}
	var sum, initMax int64
	for i := range pod.Spec.Containers {
		sum += get(&pod.Spec.Containers[i])
	}
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			sum += get(c)
			continue
		}
		initMax = max(initMax, get(c))
	}
	return max(sum, initMax)
}

// Reasons and messages of a pod the node refuses or evicts, as the kubelet
// words them.
const (
	// ReasonOutOfMemory is the kubelet's "OutOf" + the resource name.
	ReasonOutOfMemory = "OutOfmemory"
	// ReasonEvicted is a pod's status.reason after an eviction.
	ReasonEvicted = "Evicted"
)

// admitMemory is the node's admission of a pod asking for requested bytes
// (its limits, defaults included) beside running pods holding used bytes,
// on a node with capacity bytes of allocatable memory. When it does not
// fit, msg is the kubelet's InsufficientResourceError wording.
func admitMemory(requested, used, capacity int64) (msg string, ok bool) {
	if requested+used <= capacity {
		return "", true
	}
	return fmt.Sprintf("Node didn't have enough resource: memory, requested: %d, used: %d, capacity: %d",
		requested, used, capacity), false
}
