package scheduler

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
)

// RuntimeLabelPrefix + a RuntimeClass name labels the nodes that offer that
// runtime ("skiff.dev/runtime-wasm": "true"). It is the label the node agent
// puts on its Node for each runtime it has (agent.RuntimeLabelPrefix; a
// test holds the two equal without the control plane importing the agent).
const RuntimeLabelPrefix = "skiff.dev/runtime-"

// The taints a node's conditions stand for, as Kubernetes' node lifecycle
// controller applies them: a pod lands on a node that is not Ready only if
// it tolerates them, as DaemonSet pods do.
var (
	notReadyTaint    = corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoSchedule}
	unreachableTaint = corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoSchedule}
	cordonTaint      = corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule}
	// A node under memory pressure is evicting pods: new ones go elsewhere.
	memoryPressureTaint = corev1.Taint{Key: corev1.TaintNodeMemoryPressure, Effect: corev1.TaintEffectNoSchedule}
)

// A filter says why pod cannot go on node, or nothing if it can. Reasons
// are phrased as Kubernetes' scheduler phrases them after the node count
// ("1 node(s) didn't match ..."), so FailedScheduling reads the same.
type filter struct {
	name string
	fn   func(pod *corev1.Pod, req resources, n *nodeInfo) []string
}

// filters run in this order and the first that fails decides a node's
// reasons, as in Kubernetes (cheap checks before resource arithmetic).
var filters = []filter{
	{"NodeUnschedulable", fitsUnschedulable},
	{"TaintToleration", fitsTaints},
	{"NodeAffinity", fitsAffinity},
	{"RuntimeClass", fitsRuntimeClass},
	{"NodeResourcesFit", fitsResources},
}

func fitsUnschedulable(pod *corev1.Pod, _ resources, n *nodeInfo) []string {
	if n.node.Spec.Unschedulable && !tolerates(pod.Spec.Tolerations, &cordonTaint) {
		return []string{"node(s) were unschedulable"}
	}
	return nil
}

// fitsTaints checks the node's NoSchedule and NoExecute taints, and the
// taints its Ready and MemoryPressure conditions stand for.
func fitsTaints(pod *corev1.Pod, _ resources, n *nodeInfo) []string {
	taints := n.node.Spec.Taints
	switch readyStatus(n.node) {
	case corev1.ConditionTrue:
	case corev1.ConditionFalse:
		taints = append(taints[:len(taints):len(taints)], notReadyTaint)
	default:
		taints = append(taints[:len(taints):len(taints)], unreachableTaint)
	}
	if conditionStatus(n.node, corev1.NodeMemoryPressure) == corev1.ConditionTrue {
		taints = append(taints[:len(taints):len(taints)], memoryPressureTaint)
	}
	for i := range taints {
		t := &taints[i]
		if t.Effect != corev1.TaintEffectNoSchedule && t.Effect != corev1.TaintEffectNoExecute {
			continue
		}
		if !tolerates(pod.Spec.Tolerations, t) {
			return []string{fmt.Sprintf("node(s) had untolerated taint {%s: %s}", t.Key, t.Value)}
		}
	}
	return nil
}

func readyStatus(n *corev1.Node) corev1.ConditionStatus {
	return conditionStatus(n, corev1.NodeReady)
}

func conditionStatus(n *corev1.Node, t corev1.NodeConditionType) corev1.ConditionStatus {
	for _, c := range n.Status.Conditions {
		if c.Type == t {
			return c.Status
		}
	}
	return corev1.ConditionUnknown
}

func tolerates(tols []corev1.Toleration, t *corev1.Taint) bool {
	for i := range tols {
		if tols[i].ToleratesTaint(t) {
			return true
		}
	}
	return false
}

const affinityReason = "node(s) didn't match Pod's node affinity/selector"

// fitsAffinity checks spec.nodeSelector and the required node affinity:
// any one of its terms must match, and a term matches when all its
// expressions and fields do.
func fitsAffinity(pod *corev1.Pod, _ resources, n *nodeInfo) []string {
	nodeLabels := labels.Set(n.node.Labels)
	if len(pod.Spec.NodeSelector) > 0 && !labels.SelectorFromSet(pod.Spec.NodeSelector).Matches(nodeLabels) {
		return []string{affinityReason}
	}
	a := pod.Spec.Affinity
	if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return nil
	}
	for _, term := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		if termMatches(term, n.node) {
			return nil
		}
	}
	return []string{affinityReason}
}

func termMatches(term corev1.NodeSelectorTerm, node *corev1.Node) bool {
	if len(term.MatchExpressions) == 0 && len(term.MatchFields) == 0 {
		return false // an empty term matches nothing, as in Kubernetes
	}
	if len(term.MatchExpressions) > 0 {
		sel, err := requirementsSelector(term.MatchExpressions)
		if err != nil || !sel.Matches(labels.Set(node.Labels)) {
			return false
		}
	}
	if len(term.MatchFields) > 0 {
		sel, err := requirementsSelector(term.MatchFields)
		// metadata.name is the one field Kubernetes allows here.
		if err != nil || !sel.Matches(fields.Set{"metadata.name": node.Name}) {
			return false
		}
	}
	return true
}

var operators = map[corev1.NodeSelectorOperator]selection.Operator{
	corev1.NodeSelectorOpIn: selection.In, corev1.NodeSelectorOpNotIn: selection.NotIn,
	corev1.NodeSelectorOpExists: selection.Exists, corev1.NodeSelectorOpDoesNotExist: selection.DoesNotExist,
	corev1.NodeSelectorOpGt: selection.GreaterThan, corev1.NodeSelectorOpLt: selection.LessThan,
}

func requirementsSelector(reqs []corev1.NodeSelectorRequirement) (labels.Selector, error) {
	sel := labels.NewSelector()
	for _, r := range reqs {
		op, ok := operators[r.Operator]
		if !ok {
			return nil, fmt.Errorf("unknown node selector operator %q", r.Operator)
		}
		req, err := labels.NewRequirement(r.Key, op, r.Values)
		if err != nil {
			return nil, err
		}
		sel = sel.Add(*req)
	}
	return sel, nil
}

// fitsRuntimeClass places a pod that names a runtime class only on nodes
// that offer that runtime.
func fitsRuntimeClass(pod *corev1.Pod, _ resources, n *nodeInfo) []string {
	rc := pod.Spec.RuntimeClassName
	if rc == nil || *rc == "" {
		return nil
	}
	if n.node.Labels[RuntimeLabelPrefix+*rc] != "true" {
		return []string{fmt.Sprintf("node(s) didn't offer runtime class %q", *rc)}
	}
	return nil
}

// fitsResources checks that the pod's requests fit in what the node's
// allocatable leaves after the requests of the pods already on it.
func fitsResources(_ *corev1.Pod, req resources, n *nodeInfo) []string {
	var out []string
	alloc := n.node.Status.Allocatable
	if int64(n.pods+1) > alloc.Pods().Value() {
		out = append(out, "Too many pods")
	}
	if req.milliCPU > 0 && n.requested.milliCPU+req.milliCPU > alloc.Cpu().MilliValue() {
		out = append(out, "Insufficient cpu")
	}
	if req.memory > 0 && n.requested.memory+req.memory > alloc.Memory().Value() {
		out = append(out, "Insufficient memory")
	}
	return out
}
