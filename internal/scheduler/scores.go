package scheduler

// maxNodeScore is the best a score can give a node, as Kubernetes'
// framework.MaxNodeScore.
const maxNodeScore = 100

// A score ranks a node that passed every filter, from 0 to maxNodeScore
// (best). Each is a plugin of Kubernetes' default profile, computed the
// same way, so a pod lands where Kubernetes would put it.
type score struct {
	name   string
	weight int64
	fn     func(p *podInfo, n *nodeInfo) int64
}

// scores are summed, each times its weight (its weight in Kubernetes'
// default profile); the node with the highest sum wins.
var scores = []score{
	{"NodeResourcesLeastAllocated", 1, leastAllocated},
}

// totalScore is a node's weighted sum over scores.
func totalScore(p *podInfo, n *nodeInfo) int64 {
	var sum int64
	for _, s := range scores {
		sum += s.weight * s.fn(p, n)
	}
	return sum
}

// leastAllocated is Kubernetes' NodeResourcesFit score with its default
// LeastAllocated strategy: the mean free share of cpu and memory after
// placing the pod, counting requests with the scoring defaults, so empty
// nodes win and request-less pods still spread.
func leastAllocated(p *podInfo, n *nodeInfo) int64 {
	alloc := n.node.Status.Allocatable
	free := func(capacity, used int64) int64 {
		if capacity <= 0 || used > capacity {
			return 0
		}
		return (capacity - used) * maxNodeScore / capacity
	}
	cpu := free(alloc.Cpu().MilliValue(), n.nonZero.milliCPU+p.nonZero.milliCPU)
	mem := free(alloc.Memory().Value(), n.nonZero.memory+p.nonZero.memory)
	return (cpu + mem) / 2
}
