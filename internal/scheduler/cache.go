package scheduler

import (
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
)

// podCache is the scheduler's indexed view of the cluster, Kubernetes'
// scheduler cache in small: a nodeInfo per node kept up to date from the
// pod and node informers' events, plus the pods this scheduler assumed
// (decided and sent to bind, not yet seen bound). A decision reads it
// under mu, so it costs O(nodes), never a list of every pod.
//
// Threading: the informers' handlers and the binding goroutines change it,
// the scheduling worker reads it; every method takes mu, except those
// named ...Locked whose caller holds it.
type podCache struct {
	mu sync.Mutex
	// nodes are the nodes the informer has shown, with their pods.
	nodes map[string]*nodeInfo
	// orphans hold pods bound to nodes the informer has not shown (yet,
	// or any more): they count again if their node comes (back).
	orphans map[string]*nodeInfo
	pods    map[types.UID]cachedPod
	// nominated are the unbound pods preemption nominated to a node
	// (status.nominatedNodeName): the room their victims free is kept for
	// them (withNominatedLocked).
	nominated map[types.UID]*corev1.Pod
}

type cachedPod struct {
	pod     *corev1.Pod // the copy placed on its nodeInfo
	assumed bool        // bound by us, not yet seen bound
}

func newPodCache() *podCache {
	return &podCache{nodes: map[string]*nodeInfo{}, orphans: map[string]*nodeInfo{}, pods: map[types.UID]cachedPod{},
		nominated: map[types.UID]*corev1.Pod{}}
}

// infoLocked is the nodeInfo pods on node count in, made if missing.
func (c *podCache) infoLocked(node string) *nodeInfo {
	if n := c.nodes[node]; n != nil {
		return n
	}
	n := c.orphans[node]
	if n == nil {
		n = &nodeInfo{}
		c.orphans[node] = n
	}
	return n
}

func (c *podCache) addLocked(pod *corev1.Pod, assumed bool) {
	c.infoLocked(pod.Spec.NodeName).place(pod)
	c.pods[pod.UID] = cachedPod{pod: pod, assumed: assumed}
}

func (c *podCache) removeLocked(uid types.UID) {
	cp, ok := c.pods[uid]
	if !ok {
		return
	}
	delete(c.pods, uid)
	name := cp.pod.Spec.NodeName
	if n := c.nodes[name]; n != nil {
		n.remove(cp.pod)
		return
	}
	if n := c.orphans[name]; n != nil {
		if n.remove(cp.pod); n.pods == 0 {
			delete(c.orphans, name)
		}
	}
}

// setPod records the informer's latest view of pod: it counts on its node
// while it is bound and has not finished. A pod we assumed keeps its
// assumed place until the informer shows it bound, finished or deleted.
func (c *podCache) setPod(pod *corev1.Pod) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if pod.Spec.NodeName == "" && pod.Status.NominatedNodeName != "" && pod.DeletionTimestamp == nil && !finished(pod) {
		c.nominated[pod.UID] = pod
	} else {
		delete(c.nominated, pod.UID)
	}
	if cp, ok := c.pods[pod.UID]; ok {
		if cp.assumed && pod.Spec.NodeName == "" && !finished(pod) {
			return // the bind is in flight
		}
		c.removeLocked(pod.UID)
	}
	if occupies(pod) {
		c.addLocked(pod, false)
	}
}

// deletePod forgets pod, bound or assumed.
func (c *podCache) deletePod(pod *corev1.Pod) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.nominated, pod.UID)
	c.removeLocked(pod.UID)
}

// assumeLocked counts pod (a copy with its chosen node) on that node
// before the binding is written, so the next decision sees it.
func (c *podCache) assumeLocked(pod *corev1.Pod) {
	c.removeLocked(pod.UID)
	c.addLocked(pod, true)
}

// withNominatedLocked is the nodes as pod must see them: with the pods
// nominated to a node whose priority is at least pod's counted on it, as
// Kubernetes' addNominatedPods, so the room a preemption freed is kept for
// the pod that paid for it rather than taken by the next pod of lower
// priority (a victim's own replacement, often), which would only be
// preempted again. Without such pods it is the cache's own map; with them,
// a copy in which only their nodes are cloned: the cache is never changed.
func (c *podCache) withNominatedLocked(pod *corev1.Pod) map[string]*nodeInfo {
	prio := corev1helpers.PodPriority(pod)
	var extra []*corev1.Pod
	for uid, n := range c.nominated {
		if uid != pod.UID && corev1helpers.PodPriority(n) >= prio && c.nodes[n.Status.NominatedNodeName] != nil {
			extra = append(extra, n)
		}
	}
	if len(extra) == 0 {
		return c.nodes
	}
	infos := make(map[string]*nodeInfo, len(c.nodes))
	for name, n := range c.nodes {
		infos[name] = n
	}
	cloned := map[string]bool{}
	for _, n := range extra {
		name := n.Status.NominatedNodeName
		if !cloned[name] {
			infos[name], cloned[name] = infos[name].clone(), true
		}
		infos[name].place(n)
	}
	return infos
}

// forget drops an assumption whose binding failed; a pod the informer
// has meanwhile shown bound stays.
func (c *podCache) forget(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cp, ok := c.pods[uid]; ok && cp.assumed {
		c.removeLocked(uid)
	}
}

// isAssumed: the pod was sent to bind and is not yet seen bound.
func (c *podCache) isAssumed(uid types.UID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pods[uid].assumed
}

// setNode records the informer's latest view of node.
func (c *podCache) setNode(node *corev1.Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.nodes[node.Name]; n != nil {
		n.node = node
		return
	}
	n := c.orphans[node.Name]
	delete(c.orphans, node.Name)
	if n == nil {
		n = &nodeInfo{}
	}
	n.node = node
	c.nodes[node.Name] = n
}

// deleteNode stops offering node; its pods wait as orphans.
func (c *podCache) deleteNode(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodes[name]
	if n == nil {
		return
	}
	delete(c.nodes, name)
	if n.pods > 0 {
		n.node = nil
		c.orphans[name] = n
	}
}

func finished(pod *corev1.Pod) bool {
	return pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
}
