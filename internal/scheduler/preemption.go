package scheduler

import (
	"context"
	"fmt"
	"math"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	policylisters "k8s.io/client-go/listers/policy/v1"
	"k8s.io/client-go/tools/cache"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"

	"github.com/skiffhq/skiff/internal/controllers/controller"
)

// Preemption, as Kubernetes' DefaultPreemption plugin: a pod that fits
// nowhere may have pods of lower priority deleted to make room. The pod
// is not placed in the same attempt: it is nominated to the node
// (status.nominatedNodeName) and placed, like any pod, once its victims
// are gone.

// Messages of preemption, in Kubernetes' words; the FailedScheduling
// message gets "preemption: " and them as its last sentence.
const (
	msgNotHelpful      = "Preemption is not helpful for scheduling"
	msgNoVictims       = "No preemption victims found for incoming pod"
	msgPolicyNever     = "not eligible due to preemptionPolicy=Never."
	msgTerminatingPods = "not eligible due to a terminating pod on the nominated node."
)

// resolvableFilters are the filters whose failure removing pods can fix
// (Kubernetes' nodesWherePreemptionMightHelp skips the nodes any other
// filter rejects: no deletion changes a taint or a label). Host ports and
// inter-pod anti-affinity belong here once the scheduler checks them.
var resolvableFilters = map[string]bool{"NodeResourcesFit": true, "NodePorts": true, "InterPodAffinity": true}

// preemptor is what preemption reads beyond the scheduler's own state.
type preemptor struct {
	pods cache.Indexer                           // the pod informer's, indexed by node name
	pdbs policylisters.PodDisruptionBudgetLister // nil: no budgets to respect
}

// newPreemptor indexes the pod informer by node, to list a node's pods.
func newPreemptor(cfg Config) (*preemptor, error) {
	inf := cfg.Pods.Informer()
	if err := controller.AddNodeNameIndex(inf); err != nil {
		return nil, fmt.Errorf("scheduler: %w", err)
	}
	p := &preemptor{pods: inf.GetIndexer()}
	if cfg.PodDisruptionBudgets != nil {
		p.pdbs = cfg.PodDisruptionBudgets.Lister()
	}
	return p, nil
}

// candidate is a node where the pod fits once victims are gone.
type candidate struct {
	node       string
	victims    []*corev1.Pod // highest priority first
	violations int           // victims whose deletion breaks a budget
}

// preemptionPlan is what a preemption will do: the victims to delete on
// one node, or why there is none to do (msg, for FailedScheduling).
type preemptionPlan struct {
	best candidate
	msg  string
}

// planPreemption is the pure half of preemption, run while the cache is
// held so that infos (the cache's nodes) hold still: whether pod, which
// fits nowhere, may preempt, and the best node and victims if so. nil when
// preemption is off.
func (s *Scheduler) planPreemption(pod *corev1.Pod, claims *claimConstraints, infos map[string]*nodeInfo) (*preemptionPlan, error) {
	if s.preemption == nil {
		return nil, nil
	}
	if msg := s.preemption.eligible(pod); msg != "" {
		return &preemptionPlan{msg: "preemption: " + msg}, nil
	}
	pdbs, err := s.preemption.budgets()
	if err != nil {
		return nil, err
	}
	cands, reasons := findCandidates(pod, claims, infos, s.preemption.podsOn, pdbs)
	if len(cands) == 0 {
		return &preemptionPlan{msg: "preemption: " + unschedulableMessage(len(infos), reasons)}, nil
	}
	return &preemptionPlan{best: pickCandidate(cands)}, nil
}

// preempt carries out a plan: deletes its victims and nominates pod to
// their node. It returns the pod as it now is (nominated, if preemption
// went ahead) and the message to add to FailedScheduling ("" if
// preemption went ahead).
func (s *Scheduler) preempt(ctx context.Context, pod *corev1.Pod, plan *preemptionPlan) (*corev1.Pod, string, error) {
	if plan == nil {
		return pod, "", nil
	}
	if plan.msg != "" {
		return pod, plan.msg, nil
	}
	best := plan.best
	for _, v := range best.victims {
		if err := s.evictVictim(ctx, pod, v, best.node); err != nil {
			return pod, "", err
		}
	}
	s.unnominateLower(ctx, pod, best.node)
	s.log.Info("preempting", "pod", controller.PodKey(pod), "node", best.node, "victims", len(best.victims), "budget_violations", best.violations)
	if pod.Status.NominatedNodeName == best.node {
		return pod, "", nil
	}
	cp := pod.DeepCopy()
	cp.Status.NominatedNodeName = best.node
	updated, err := s.client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, cp, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return pod, "", nil // gone or changed: its next attempt sees the freed room anyway
	}
	if err != nil {
		return pod, "", fmt.Errorf("nominate %s for %s: %w", best.node, controller.PodKey(pod), err)
	}
	return updated, "", nil
}

// unnominateLower clears the nomination of pods of lower priority than pod
// to node, as Kubernetes' prepareCandidate does: the room they waited for
// is now pod's, and they had better look elsewhere (or preempt again).
// Failures are logged only: a stale nomination costs a retry, not a wrong
// placement.
func (s *Scheduler) unnominateLower(ctx context.Context, pod *corev1.Pod, node string) {
	prio := corev1helpers.PodPriority(pod)
	for _, o := range s.preemption.pods.List() {
		n, ok := o.(*corev1.Pod)
		if !ok || n.Status.NominatedNodeName != node || n.UID == pod.UID || n.Spec.NodeName != "" ||
			corev1helpers.PodPriority(n) >= prio {
			continue
		}
		cp := n.DeepCopy()
		cp.Status.NominatedNodeName = ""
		_, err := s.client.CoreV1().Pods(n.Namespace).UpdateStatus(ctx, cp, metav1.UpdateOptions{})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			s.log.Warn("clear a nomination", "pod", controller.PodKey(n), "node", node, "err", err)
		}
	}
}

// eligible is Kubernetes' PodEligibleToPreemptOthers: "" if pod may
// preempt, else why not. A pod whose earlier preemption is still under way
// (a lower-priority pod on its nominated node terminating) waits for it
// rather than take more victims.
func (p *preemptor) eligible(pod *corev1.Pod) string {
	if pod.Spec.PreemptionPolicy != nil && *pod.Spec.PreemptionPolicy == corev1.PreemptNever {
		return msgPolicyNever
	}
	if node := pod.Status.NominatedNodeName; node != "" {
		prio := corev1helpers.PodPriority(pod)
		for _, v := range p.podsOn(node) {
			if v.DeletionTimestamp != nil && corev1helpers.PodPriority(v) < prio {
				return msgTerminatingPods
			}
		}
	}
	return ""
}

// podsOn lists the pods bound to node that hold room on it.
func (p *preemptor) podsOn(node string) []*corev1.Pod {
	objs, err := p.pods.ByIndex(controller.NodeNameIndex, node)
	if err != nil {
		return nil
	}
	out := make([]*corev1.Pod, 0, len(objs))
	for _, o := range objs {
		if pod, ok := o.(*corev1.Pod); ok && occupies(pod) {
			out = append(out, pod)
		}
	}
	return out
}

func (p *preemptor) budgets() ([]*policyv1.PodDisruptionBudget, error) {
	if p.pdbs == nil {
		return nil, nil
	}
	pdbs, err := p.pdbs.List(labels.Everything())
	if err != nil {
		return nil, fmt.Errorf("list PodDisruptionBudgets: %w", err)
	}
	return pdbs, nil
}

// evictVictim does to one victim what Kubernetes' prepareCandidate does:
// the DisruptionTarget condition first (so its owner and the agent know
// why it goes), then a delete with its own grace period, and a Preempted
// event.
func (s *Scheduler) evictVictim(ctx context.Context, pod, victim *corev1.Pod, node string) error {
	if victim.DeletionTimestamp == nil {
		cp := victim.DeepCopy()
		cond := corev1.PodCondition{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue,
			Reason: corev1.PodReasonPreemptionByScheduler, LastTransitionTime: metav1.Now(),
			Message: fmt.Sprintf("%s: preempting to accommodate a higher priority pod", Name)}
		replaced := false
		for i := range cp.Status.Conditions {
			if cp.Status.Conditions[i].Type == corev1.DisruptionTarget {
				cp.Status.Conditions[i], replaced = cond, true
			}
		}
		if !replaced {
			cp.Status.Conditions = append(cp.Status.Conditions, cond)
		}
		_, err := s.client.CoreV1().Pods(victim.Namespace).UpdateStatus(ctx, cp, metav1.UpdateOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil && !apierrors.IsConflict(err) {
			return fmt.Errorf("mark victim %s: %w", controller.PodKey(victim), err)
		}
	}
	uid := victim.UID
	err := s.client.CoreV1().Pods(victim.Namespace).Delete(ctx, victim.Name,
		metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil // gone already, or another pod by that name now
	}
	if err != nil {
		return fmt.Errorf("delete victim %s: %w", controller.PodKey(victim), err)
	}
	s.recorder.Eventf(victim, corev1.EventTypeNormal, "Preempted", "Preempted by pod %v on node %v", pod.UID, node)
	return nil
}

// findCandidates is Kubernetes' DryRunPreemption over every node where
// preemption might help: the nodes where the pod fits once victims are
// gone, and, for the message when there is none, why each node fails.
func findCandidates(pod *corev1.Pod, claims *claimConstraints, infos map[string]*nodeInfo,
	podsOn func(node string) []*corev1.Pod, pdbs []*policyv1.PodDisruptionBudget) ([]candidate, map[string]int) {
	p := newPodInfo(pod)
	p.claims = claims
	reasons := map[string]int{}
	var out []candidate
	names := make([]string, 0, len(infos))
	for name := range infos {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if !mightHelp(p, infos[name]) {
			reasons[msgNotHelpful]++
			continue
		}
		c, why := selectVictims(pod, claims, infos[name].node, podsOn(name), pdbs)
		if why != nil {
			for _, r := range why {
				reasons[r]++
			}
			continue
		}
		out = append(out, c)
	}
	return out, reasons
}

// mightHelp reports whether every filter that fails pod on n is one whose
// failure removing pods can fix.
func mightHelp(p *podInfo, n *nodeInfo) bool {
	for _, f := range filters {
		if !resolvableFilters[f.name] && len(f.fn(p, n)) > 0 {
			return false
		}
	}
	return true
}

// selectVictims is Kubernetes' SelectVictimsOnNode: remove every pod of
// lower priority; if the pod then fits, give back as many as possible,
// most important first (those whose deletion would break a budget before
// the others), and what cannot be given back are the victims. The reasons
// say why the node cannot be had.
func selectVictims(pod *corev1.Pod, claims *claimConstraints, node *corev1.Node, pods []*corev1.Pod,
	pdbs []*policyv1.PodDisruptionBudget) (candidate, []string) {
	prio := corev1helpers.PodPriority(pod)
	var kept, potential []*corev1.Pod
	for _, v := range pods {
		if corev1helpers.PodPriority(v) < prio {
			potential = append(potential, v)
		} else {
			kept = append(kept, v)
		}
	}
	if len(potential) == 0 {
		return candidate{}, []string{msgNoVictims}
	}
	// The node's state goes through nodeInfo's own place: a pod given
	// back is added to it; only when that fails is it built again from
	// the pods that stay, so no copy of a nodeInfo is ever needed.
	build := func() *nodeInfo {
		ni := &nodeInfo{node: node}
		for _, k := range kept {
			ni.place(k)
		}
		return ni
	}
	ni := build()
	fits := func() bool {
		name, _ := placeWith(pod, claims, map[string]*nodeInfo{node.Name: ni})
		return name != ""
	}
	if !fits() {
		return candidate{}, filterReasons(pod, claims, ni)
	}
	sort.SliceStable(potential, func(i, j int) bool { return moreImportant(potential[i], potential[j]) })
	violating, safe := splitByBudget(potential, pdbs)
	c := candidate{node: node.Name}
	reprieve := func(v *corev1.Pod) bool {
		ni.place(v)
		if fits() {
			kept = append(kept, v)
			return true
		}
		ni = build()
		c.victims = append(c.victims, v)
		return false
	}
	for _, v := range violating {
		if !reprieve(v) {
			c.violations++
		}
	}
	for _, v := range safe {
		reprieve(v)
	}
	sort.SliceStable(c.victims, func(i, j int) bool { return moreImportant(c.victims[i], c.victims[j]) })
	return c, nil
}

// filterReasons runs the filters as placement does and returns the first
// failure's reasons.
func filterReasons(pod *corev1.Pod, claims *claimConstraints, n *nodeInfo) []string {
	p := newPodInfo(pod)
	p.claims = claims
	for _, f := range filters {
		if why := f.fn(p, n); len(why) > 0 {
			return why
		}
	}
	return nil
}

// moreImportant is Kubernetes' MoreImportantPod: higher priority, then
// the one that started earlier.
func moreImportant(a, b *corev1.Pod) bool {
	pa, pb := corev1helpers.PodPriority(a), corev1helpers.PodPriority(b)
	if pa != pb {
		return pa > pb
	}
	return startTime(a).Before(startTime(b))
}

func startTime(p *corev1.Pod) time.Time {
	if p.Status.StartTime != nil {
		return p.Status.StartTime.Time
	}
	return p.CreationTimestamp.Time
}

// splitByBudget is Kubernetes' filterPodsWithPDBViolation: walking the
// pods in order, each takes one disruption from every budget that covers
// it; a pod for which some budget has none left would violate it. A pod an
// eviction already counted (status.disruptedPods) takes nothing. An empty
// selector covers nothing here, as in Kubernetes' preemption.
func splitByBudget(pods []*corev1.Pod, pdbs []*policyv1.PodDisruptionBudget) (violating, safe []*corev1.Pod) {
	allowed := make([]int32, len(pdbs))
	sels := make([]labels.Selector, len(pdbs))
	for i, pdb := range pdbs {
		allowed[i] = pdb.Status.DisruptionsAllowed
		if sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector); err == nil && pdb.Spec.Selector != nil {
			sels[i] = sel
		}
	}
	for _, pod := range pods {
		violates := false
		for i, pdb := range pdbs {
			if pdb.Namespace != pod.Namespace || sels[i] == nil || sels[i].Empty() || !sels[i].Matches(labels.Set(pod.Labels)) {
				continue
			}
			if _, counted := pdb.Status.DisruptedPods[pod.Name]; counted {
				continue
			}
			allowed[i]--
			if allowed[i] < 0 {
				violates = true
			}
		}
		if violates {
			violating = append(violating, pod)
		} else {
			safe = append(safe, pod)
		}
	}
	return violating, safe
}

// pickCandidate is Kubernetes' pickOneNodeForPreemption: fewest budget
// violations; then the lowest highest-victim priority; then the smallest
// sum of victim priorities; then the fewest victims; then the node whose
// most important victims started last; then by name.
func pickCandidate(cands []candidate) candidate {
	sum := func(c candidate) int64 {
		var s int64
		for _, v := range c.victims {
			// Shifted so that negative priorities still add up to more
			// victims costing more.
			s += int64(corev1helpers.PodPriority(v)) + int64(math.MaxInt32) + 1
		}
		return s
	}
	top := func(c candidate) int32 {
		if len(c.victims) == 0 {
			return math.MinInt32
		}
		return corev1helpers.PodPriority(c.victims[0])
	}
	// The earliest start among the victims of the top priority.
	earliest := func(c candidate) time.Time {
		var t time.Time
		for _, v := range c.victims {
			if corev1helpers.PodPriority(v) != top(c) {
				break
			}
			if st := startTime(v); t.IsZero() || st.Before(t) {
				t = st
			}
		}
		return t
	}
	best := cands[0]
	for _, c := range cands[1:] {
		if better(c, best, sum, top, earliest) {
			best = c
		}
	}
	return best
}

func better(a, b candidate, sum func(candidate) int64, top func(candidate) int32, earliest func(candidate) time.Time) bool {
	if a.violations != b.violations {
		return a.violations < b.violations
	}
	if ta, tb := top(a), top(b); ta != tb {
		return ta < tb
	}
	if sa, sb := sum(a), sum(b); sa != sb {
		return sa < sb
	}
	if len(a.victims) != len(b.victims) {
		return len(a.victims) < len(b.victims)
	}
	if ea, eb := earliest(a), earliest(b); !ea.Equal(eb) {
		return ea.After(eb)
	}
	return a.node < b.node
}
