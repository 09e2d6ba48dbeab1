package scheduler

import (
	"math"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
)

// Kubernetes' PodTopologySpread plugin: DoNotSchedule constraints filter,
// ScheduleAnyway constraints score. The system default constraints
// Kubernetes adds to pods without any (spreading by the pod's Services and
// ReplicaSets) are not applied: see docs/rationale.md.

type spreadConstraint struct {
	maxSkew     int32
	key         string
	selector    labels.Selector
	minDomains  int32
	honorNodeAf bool // nodeAffinityPolicy Honor (the default)
	honorTaints bool // nodeTaintsPolicy Honor (default Ignore)
}

// spreadConstraints parses pod's constraints with the given action.
// matchLabelKeys add the pod's own values of those keys to the selector.
func spreadConstraints(pod *corev1.Pod, action corev1.UnsatisfiableConstraintAction) []spreadConstraint {
	var out []spreadConstraint
	for _, c := range pod.Spec.TopologySpreadConstraints {
		if c.WhenUnsatisfiable != action {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(c.LabelSelector)
		if err != nil {
			sel = labels.Nothing()
		}
		for _, k := range c.MatchLabelKeys {
			if v, ok := pod.Labels[k]; ok {
				if r, err := labels.NewRequirement(k, selection.In, []string{v}); err == nil {
					sel = sel.Add(*r)
				}
			}
		}
		sc := spreadConstraint{maxSkew: c.MaxSkew, key: c.TopologyKey, selector: sel, minDomains: 1,
			honorNodeAf: c.NodeAffinityPolicy == nil || *c.NodeAffinityPolicy == corev1.NodeInclusionPolicyHonor,
			honorTaints: c.NodeTaintsPolicy != nil && *c.NodeTaintsPolicy == corev1.NodeInclusionPolicyHonor}
		if c.MinDomains != nil {
			sc.minDomains = *c.MinDomains
		}
		out = append(out, sc)
	}
	return out
}

// includes: node n counts toward c's domains for pod p.
func (c *spreadConstraint) includes(p *podInfo, n *corev1.Node) bool {
	if c.honorNodeAf {
		if ok, _ := p.affinity.Match(n); !ok {
			return false
		}
	}
	if c.honorTaints {
		if _, bad := corev1helpers.FindMatchingUntoleratedTaint(n.Spec.Taints, p.pod.Spec.Tolerations, doNotSchedule); bad {
			return false
		}
	}
	return true
}

func hasAllKeys(n *corev1.Node, cs []spreadConstraint) bool {
	for _, c := range cs {
		if _, ok := n.Labels[c.key]; !ok {
			return false
		}
	}
	return true
}

// countMatching counts the pods of ns on n that match sel, leaving out
// those being deleted, as Kubernetes does.
func countMatching(n *nodeInfo, sel labels.Selector, ns string) int {
	count := 0
	for _, q := range n.list {
		if q.DeletionTimestamp == nil && q.Namespace == ns && sel.Matches(labels.Set(q.Labels)) {
			count++
		}
	}
	return count
}

// spreadState is the plugin's PreFilter state for the hard constraints:
// matching pods per domain, over the nodes each constraint includes.
type spreadState struct {
	hard   []spreadConstraint
	counts []map[string]int // per hard constraint: domain value → matching pods
	soft   []spreadConstraint
}

func newSpreadState(p *podInfo, infos map[string]*nodeInfo) *spreadState {
	s := &spreadState{hard: spreadConstraints(p.pod, corev1.DoNotSchedule),
		soft: spreadConstraints(p.pod, corev1.ScheduleAnyway)}
	if len(s.hard) == 0 {
		return s
	}
	s.counts = make([]map[string]int, len(s.hard))
	for i := range s.counts {
		s.counts[i] = map[string]int{}
	}
	for _, n := range infos {
		if !hasAllKeys(n.node, s.hard) {
			continue
		}
		for i := range s.hard {
			c := &s.hard[i]
			if !c.includes(p, n.node) {
				continue
			}
			s.counts[i][n.node.Labels[c.key]] += countMatching(n, c.selector, p.pod.Namespace)
		}
	}
	return s
}

// minMatch is the fewest matching pods in a domain of constraint i, or 0
// while there are fewer domains than minDomains.
func (s *spreadState) minMatch(i int) int {
	if len(s.counts[i]) < int(s.hard[i].minDomains) {
		return 0
	}
	m := math.MaxInt
	for _, n := range s.counts[i] {
		m = min(m, n)
	}
	if m == math.MaxInt {
		return 0
	}
	return m
}

// fitsSpread is the filter: placing the pod on n keeps every hard
// constraint's skew within maxSkew.
func fitsSpread(p *podInfo, n *nodeInfo) []string {
	s := p.spread
	if s == nil || len(s.hard) == 0 {
		return nil
	}
	for i := range s.hard {
		c := &s.hard[i]
		v, ok := n.node.Labels[c.key]
		if !ok {
			return []string{"node(s) didn't match pod topology spread constraints (missing required label)"}
		}
		self := 0
		if c.selector.Matches(labels.Set(p.pod.Labels)) {
			self = 1
		}
		if s.counts[i][v]+self-s.minMatch(i) > int(c.maxSkew) {
			return []string{"node(s) didn't match pod topology spread constraints"}
		}
	}
	return nil
}

// spreadScorer is the plugin's PreScore state for the soft constraints,
// over the nodes that passed the filters.
type spreadScorer struct {
	ignored map[*nodeInfo]bool // feasible nodes without every key: score 0
	counts  []map[string]int64 // per soft constraint: domain → matching pods
	weights []float64          // per soft constraint: log(domains+2)
	c       []spreadConstraint
}

func newSpreadScorer(p *podInfo, fit []*nodeInfo, infos map[string]*nodeInfo) *spreadScorer {
	cs := p.spread.soft
	s := &spreadScorer{ignored: map[*nodeInfo]bool{}, counts: make([]map[string]int64, len(cs)),
		weights: make([]float64, len(cs)), c: cs}
	for i := range cs {
		s.counts[i] = map[string]int64{}
	}
	for _, n := range fit {
		if !hasAllKeys(n.node, cs) {
			s.ignored[n] = true
			continue
		}
		for i, c := range cs {
			s.counts[i][n.node.Labels[c.key]] += 0 // a candidate domain
		}
	}
	for i := range cs {
		s.weights[i] = math.Log(float64(len(s.counts[i]) + 2))
	}
	for _, n := range infos {
		if !hasAllKeys(n.node, cs) {
			continue
		}
		for i := range cs {
			c := &cs[i]
			v := n.node.Labels[c.key]
			if _, ok := s.counts[i][v]; !ok || !c.includes(p, n.node) {
				continue
			}
			s.counts[i][v] += int64(countMatching(n, c.selector, p.pod.Namespace))
		}
	}
	return s
}

// spreadScore is the raw score: fewer matching pods in the node's domains
// is better, so the normalization reverses it.
func spreadScore(p *podInfo, n *nodeInfo) int64 {
	s := p.spreadScore
	if s == nil || s.ignored[n] {
		return 0
	}
	var score float64
	for i, c := range s.c {
		if v, ok := n.node.Labels[c.key]; ok {
			score += float64(s.counts[i][v])*s.weights[i] + float64(c.maxSkew-1)
		}
	}
	return int64(math.Round(score))
}

func normalizeSpread(p *podInfo, fit []*nodeInfo, scores []int64) {
	s := p.spreadScore
	if s == nil {
		for i := range scores {
			scores[i] = 0
		}
		return
	}
	var lo, hi int64 = math.MaxInt64, 0
	for i, n := range fit {
		if !s.ignored[n] {
			lo, hi = min(lo, scores[i]), max(hi, scores[i])
		}
	}
	for i, n := range fit {
		switch {
		case s.ignored[n]:
			scores[i] = 0
		case hi == 0:
			scores[i] = maxNodeScore
		default:
			scores[i] = maxNodeScore * (hi + lo - scores[i]) / hi
		}
	}
}
