package scheduler

import (
	"math"

	corev1 "k8s.io/api/core/v1"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
)

// maxNodeScore is the best a score can give a node, as Kubernetes'
// framework.MaxNodeScore.
const maxNodeScore = 100

// A score ranks the nodes that passed every filter. fn gives a node's raw
// score; normalize, when set, maps the raw scores of all those nodes onto
// 0..maxNodeScore in place (Kubernetes' NormalizeScore), since some
// plugins only rank relative to the other candidates. Each is a plugin of
// Kubernetes' default profile, computed the same way, so a pod lands
// where Kubernetes would put it.
type score struct {
	name      string
	weight    int64
	fn        func(p *podInfo, n *nodeInfo) int64
	normalize func(p *podInfo, fit []*nodeInfo, scores []int64)
}

// scores are summed, each times its weight in Kubernetes' default
// profile; the node with the highest sum wins.
var scores = []score{
	{"TaintToleration", 3, preferNoScheduleTaints, normalizeReverse},
	{"NodeAffinity", 2, preferredNodeAffinity, normalizeMax},
	{"NodeResourcesFit", 1, leastAllocated, nil},
	{"PodTopologySpread", 2, spreadScore, normalizeSpread},
	{"InterPodAffinity", 2, interPodScore, normalizeMinMax},
	{"NodeResourcesBalancedAllocation", 1, balancedAllocation, nil},
}

// scoreNodes is the weighted sum over scores of each node in fit (every
// one passed the filters), in fit's order.
func scoreNodes(p *podInfo, fit []*nodeInfo) []int64 {
	total := make([]int64, len(fit))
	raw := make([]int64, len(fit))
	for _, s := range scores {
		for i, n := range fit {
			raw[i] = s.fn(p, n)
		}
		if s.normalize != nil {
			s.normalize(p, fit, raw)
		}
		for i := range fit {
			total[i] += s.weight * raw[i]
		}
	}
	return total
}

// leastAllocated is Kubernetes' NodeResourcesFit score with its default
// LeastAllocated strategy: the mean free share of cpu and memory after
// placing the pod, counting requests with the scoring defaults, so empty
// nodes win and request-less pods still spread.
func leastAllocated(p *podInfo, n *nodeInfo) int64 {
	alloc := n.allocatable()
	free := func(capacity, used int64) int64 {
		if capacity <= 0 || used > capacity {
			return 0
		}
		return (capacity - used) * maxNodeScore / capacity
	}
	cpu := free(alloc.milliCPU, n.nonZero.milliCPU+p.nonZero.milliCPU)
	mem := free(alloc.memory, n.nonZero.memory+p.nonZero.memory)
	return (cpu + mem) / 2
}

// balancedAllocation is Kubernetes' NodeResourcesBalancedAllocation:
// nodes whose cpu and memory would be used in like shares after placing
// the pod score higher (the real requests, as Kubernetes counts them).
func balancedAllocation(p *podInfo, n *nodeInfo) int64 {
	alloc := n.allocatable()
	frac := func(capacity, used int64) float64 {
		if capacity <= 0 {
			return 1
		}
		return min(float64(used)/float64(capacity), 1)
	}
	cpu := frac(alloc.milliCPU, n.requested.milliCPU+p.requests.milliCPU)
	mem := frac(alloc.memory, n.requested.memory+p.requests.memory)
	std := math.Abs((cpu - mem) / 2)
	return int64((1 - std) * maxNodeScore)
}

// preferNoScheduleTaints counts the node's PreferNoSchedule taints the pod
// does not tolerate (TaintToleration's score: fewer is better).
func preferNoScheduleTaints(p *podInfo, n *nodeInfo) int64 {
	var count int64
	for i := range n.node.Spec.Taints {
		t := &n.node.Spec.Taints[i]
		if t.Effect != corev1.TaintEffectPreferNoSchedule {
			continue
		}
		if !corev1helpers.TolerationsTolerateTaint(p.preferTolerations, t) {
			count++
		}
	}
	return count
}

// preferredNodeAffinity sums the weights of the pod's preferred node
// affinity terms the node matches.
func preferredNodeAffinity(p *podInfo, n *nodeInfo) int64 {
	if p.preferred == nil {
		return 0
	}
	return p.preferred.Score(n.node)
}

// preferredTerms parses pod's preferred node affinity; nil when it has
// none or they do not parse (they then score nothing, as in Kubernetes,
// where validation keeps such terms out anyway).
func preferredTerms(pod *corev1.Pod) *nodeaffinity.PreferredSchedulingTerms {
	a := pod.Spec.Affinity
	if a == nil || a.NodeAffinity == nil || len(a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution) == 0 {
		return nil
	}
	t, err := nodeaffinity.NewPreferredSchedulingTerms(a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution)
	if err != nil {
		return nil
	}
	return t
}

// preferTolerations are the pod's tolerations that can tolerate a
// PreferNoSchedule taint.
func preferTolerations(pod *corev1.Pod) []corev1.Toleration {
	var out []corev1.Toleration
	for _, t := range pod.Spec.Tolerations {
		if t.Effect == "" || t.Effect == corev1.TaintEffectPreferNoSchedule {
			out = append(out, t)
		}
	}
	return out
}

// normalizeMax is Kubernetes' DefaultNormalizeScore: scores scaled so the
// highest is maxNodeScore.
func normalizeMax(_ *podInfo, _ []*nodeInfo, scores []int64) { defaultNormalize(scores, false) }

// normalizeReverse is DefaultNormalizeScore reversed: the lowest raw score
// gets maxNodeScore.
func normalizeReverse(_ *podInfo, _ []*nodeInfo, scores []int64) { defaultNormalize(scores, true) }

func defaultNormalize(scores []int64, reverse bool) {
	var hi int64
	for _, s := range scores {
		hi = max(hi, s)
	}
	for i, s := range scores {
		switch {
		case hi == 0 && reverse:
			scores[i] = maxNodeScore
		case hi == 0:
		case reverse:
			scores[i] = maxNodeScore - maxNodeScore*s/hi
		default:
			scores[i] = maxNodeScore * s / hi
		}
	}
}
