package scheduler

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Kubernetes' InterPodAffinity plugin: required pod affinity and
// anti-affinity of the incoming pod, and existing pods' required
// anti-affinity against it, filter; preferred terms (and existing pods'
// required affinity, at weight 1) score.

// hardPodAffinityWeight is the score an existing pod's required affinity
// term gives a node where the incoming pod matches it (Kubernetes'
// InterPodAffinityArgs default).
const hardPodAffinityWeight = 1

type topoPair struct{ key, value string }

// affinityTerm is a pod affinity term parsed once per decision.
type affinityTerm struct {
	namespaces    map[string]bool
	allNamespaces bool
	selector      labels.Selector
	topologyKey   string
	weight        int64
}

// newTerm parses t, written in pod's spec. A namespaceSelector that is
// empty selects every namespace; one with requirements would need the
// namespaces' labels, which the scheduler does not watch: it adds none
// (the term then reads only its listed namespaces). A selector that does
// not parse matches nothing, as in Kubernetes.
func newTerm(pod *corev1.Pod, t *corev1.PodAffinityTerm, weight int32) affinityTerm {
	at := affinityTerm{topologyKey: t.TopologyKey, weight: int64(weight), namespaces: map[string]bool{}}
	for _, ns := range t.Namespaces {
		at.namespaces[ns] = true
	}
	if t.NamespaceSelector == nil {
		if len(t.Namespaces) == 0 {
			at.namespaces[pod.Namespace] = true
		}
	} else if len(t.NamespaceSelector.MatchLabels) == 0 && len(t.NamespaceSelector.MatchExpressions) == 0 {
		at.allNamespaces = true
	}
	sel, err := metav1.LabelSelectorAsSelector(t.LabelSelector)
	if err != nil {
		sel = labels.Nothing()
	}
	at.selector = sel
	return at
}

func (t *affinityTerm) matches(pod *corev1.Pod) bool {
	return (t.allNamespaces || t.namespaces[pod.Namespace]) && t.selector.Matches(labels.Set(pod.Labels))
}

// podTerms are a pod's parsed affinity terms.
type podTerms struct {
	affinity, anti                   []affinityTerm // required
	preferredAffinity, preferredAnti []affinityTerm
}

func termsOf(pod *corev1.Pod) podTerms {
	var pt podTerms
	a := pod.Spec.Affinity
	if a == nil {
		return pt
	}
	if pa := a.PodAffinity; pa != nil {
		for i := range pa.RequiredDuringSchedulingIgnoredDuringExecution {
			pt.affinity = append(pt.affinity, newTerm(pod, &pa.RequiredDuringSchedulingIgnoredDuringExecution[i], 0))
		}
		for i := range pa.PreferredDuringSchedulingIgnoredDuringExecution {
			w := &pa.PreferredDuringSchedulingIgnoredDuringExecution[i]
			pt.preferredAffinity = append(pt.preferredAffinity, newTerm(pod, &w.PodAffinityTerm, w.Weight))
		}
	}
	if pa := a.PodAntiAffinity; pa != nil {
		for i := range pa.RequiredDuringSchedulingIgnoredDuringExecution {
			pt.anti = append(pt.anti, newTerm(pod, &pa.RequiredDuringSchedulingIgnoredDuringExecution[i], 0))
		}
		for i := range pa.PreferredDuringSchedulingIgnoredDuringExecution {
			w := &pa.PreferredDuringSchedulingIgnoredDuringExecution[i]
			pt.preferredAnti = append(pt.preferredAnti, newTerm(pod, &w.PodAffinityTerm, w.Weight))
		}
	}
	return pt
}

func (pt *podTerms) any() bool {
	return len(pt.affinity)+len(pt.anti)+len(pt.preferredAffinity)+len(pt.preferredAnti) > 0
}

// hasPodAffinity: pod carries pod affinity or anti-affinity terms, so
// every decision checks it against the incoming pod.
func hasPodAffinity(pod *corev1.Pod) bool {
	a := pod.Spec.Affinity
	return a != nil && (a.PodAffinity != nil || a.PodAntiAffinity != nil)
}

// interPodState is the plugin's PreFilter and PreScore state: counts per
// topology pair over the cluster.
type interPodState struct {
	terms podTerms
	// existingAnti: pairs where an existing pod's required anti-affinity
	// matches the incoming pod.
	existingAnti map[topoPair]int
	// affinity, anti: pairs holding pods that match the incoming pod's
	// required affinity, anti-affinity terms.
	affinity, anti map[topoPair]int
	// score: the preferred terms' weights summed per pair.
	score map[topoPair]int64
}

// newInterPodState counts over infos. A pod with no affinity terms costs
// O(nodes + pods with affinity terms): only those pods can reject or
// attract it, as Kubernetes' snapshot keeps them apart for this reason.
func newInterPodState(pod *corev1.Pod, infos map[string]*nodeInfo) *interPodState {
	s := &interPodState{terms: termsOf(pod), existingAnti: map[topoPair]int{}, affinity: map[topoPair]int{},
		anti: map[topoPair]int{}, score: map[topoPair]int64{}}
	own := s.terms.any()
	for _, n := range infos {
		nodeLabels := n.node.Labels
		if own {
			for _, e := range n.list {
				s.countIncoming(e, nodeLabels)
			}
		}
		for _, e := range n.withAffinity {
			s.countExisting(pod, e, nodeLabels)
		}
	}
	return s
}

// countIncoming adds existing pod e, on a node with nodeLabels, to the
// incoming pod's own terms.
func (s *interPodState) countIncoming(e *corev1.Pod, nodeLabels map[string]string) {
	add := func(m map[topoPair]int, terms []affinityTerm) {
		for i := range terms {
			t := &terms[i]
			if v, ok := nodeLabels[t.topologyKey]; ok && t.matches(e) {
				m[topoPair{t.topologyKey, v}]++
			}
		}
	}
	add(s.affinity, s.terms.affinity)
	add(s.anti, s.terms.anti)
	s.addScore(s.terms.preferredAffinity, e, nodeLabels, 1)
	s.addScore(s.terms.preferredAnti, e, nodeLabels, -1)
}

// countExisting adds the terms of existing pod e that match the incoming
// pod.
func (s *interPodState) countExisting(pod, e *corev1.Pod, nodeLabels map[string]string) {
	et := termsOf(e)
	for i := range et.anti {
		t := &et.anti[i]
		if v, ok := nodeLabels[t.topologyKey]; ok && t.matches(pod) {
			s.existingAnti[topoPair{t.topologyKey, v}]++
		}
	}
	for i := range et.affinity {
		et.affinity[i].weight = hardPodAffinityWeight
	}
	s.addScore(et.affinity, pod, nodeLabels, 1)
	s.addScore(et.preferredAffinity, pod, nodeLabels, 1)
	s.addScore(et.preferredAnti, pod, nodeLabels, -1)
}

func (s *interPodState) addScore(terms []affinityTerm, pod *corev1.Pod, nodeLabels map[string]string, sign int64) {
	for i := range terms {
		t := &terms[i]
		if t.weight == 0 {
			continue
		}
		if v, ok := nodeLabels[t.topologyKey]; ok && t.matches(pod) {
			s.score[topoPair{t.topologyKey, v}] += sign * t.weight
		}
	}
}

// fitsInterPodAffinity is the plugin's filter, its three checks in
// Kubernetes' order and words.
func fitsInterPodAffinity(p *podInfo, n *nodeInfo) []string {
	s := p.inter
	if s == nil {
		return nil
	}
	if !s.satisfiesAffinity(p.pod, n.node) {
		return []string{"node(s) didn't match pod affinity rules"}
	}
	if len(s.anti) > 0 {
		for _, t := range s.terms.anti {
			if v, ok := n.node.Labels[t.topologyKey]; ok && s.anti[topoPair{t.topologyKey, v}] > 0 {
				return []string{"node(s) didn't match pod anti-affinity rules"}
			}
		}
	}
	if len(s.existingAnti) > 0 {
		for k, v := range n.node.Labels {
			if s.existingAnti[topoPair{k, v}] > 0 {
				return []string{"node(s) didn't satisfy existing pods anti-affinity rules"}
			}
		}
	}
	return nil
}

// satisfiesAffinity: every required affinity term has a matching pod in
// the node's domain. The first pod of a group that wants to be together
// may go to any node with the topology labels when no pod matches yet and
// it matches its own terms.
func (s *interPodState) satisfiesAffinity(pod *corev1.Pod, node *corev1.Node) bool {
	podsExist := true
	for _, t := range s.terms.affinity {
		v, ok := node.Labels[t.topologyKey]
		if !ok {
			return false
		}
		if s.affinity[topoPair{t.topologyKey, v}] <= 0 {
			podsExist = false
		}
	}
	if podsExist {
		return true
	}
	if len(s.affinity) > 0 {
		return false
	}
	for _, t := range s.terms.affinity {
		if !t.matches(pod) {
			return false
		}
	}
	return true
}

// interPodScore sums the weights of the node's domains.
func interPodScore(p *podInfo, n *nodeInfo) int64 {
	if p.inter == nil || len(p.inter.score) == 0 {
		return 0
	}
	var sum int64
	for k, v := range n.node.Labels {
		sum += p.inter.score[topoPair{k, v}]
	}
	return sum
}

// normalizeMinMax maps scores onto 0..maxNodeScore between their minimum
// and maximum, as InterPodAffinity's NormalizeScore does.
func normalizeMinMax(_ *podInfo, _ []*nodeInfo, scores []int64) {
	if len(scores) == 0 {
		return
	}
	lo, hi := scores[0], scores[0]
	for _, s := range scores {
		lo, hi = min(lo, s), max(hi, s)
	}
	for i, s := range scores {
		if hi > lo {
			scores[i] = int64(float64(maxNodeScore) * float64(s-lo) / float64(hi-lo))
		} else {
			scores[i] = 0
		}
	}
}
