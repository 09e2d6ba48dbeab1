package scheduler

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"

	skiffrt "github.com/skiffhq/skiff/runtime"
)

// The taints a node's conditions stand for, as Kubernetes' node lifecycle
// controller applies them: a pod lands on a node that is not Ready only if
// it tolerates them, as DaemonSet pods do.
var (
	notReadyTaint    = corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoSchedule}
	unreachableTaint = corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoSchedule}
	cordonTaint      = corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule}
	diskTaint        = corev1.Taint{Key: corev1.TaintNodeDiskPressure, Effect: corev1.TaintEffectNoSchedule}
	// A node under memory pressure is evicting pods: new ones go elsewhere.
	memoryPressureTaint = corev1.Taint{Key: corev1.TaintNodeMemoryPressure, Effect: corev1.TaintEffectNoSchedule}
)

// A filter says why pod cannot go on node, or nothing if it can. Reasons
// are phrased as Kubernetes' scheduler phrases them after the node count
// ("1 node(s) didn't match ..."), so FailedScheduling reads the same.
type filter struct {
	name string
	fn   func(p *podInfo, n *nodeInfo) []string
}

// filters run in this order and the first that fails decides a node's
// reasons, as in Kubernetes (cheap checks before resource arithmetic).
var filters = []filter{
	{"NodeUnschedulable", fitsUnschedulable},
	{"TaintToleration", fitsTaints},
	{"NodeAffinity", fitsAffinity},
	{"RuntimeClass", fitsRuntimeClass},
	{"NodePorts", fitsPorts},
	{"VolumeBinding", fitsVolumes},
	{"NodeResourcesFit", fitsResources},
	{"PodTopologySpread", fitsSpread},
	{"InterPodAffinity", fitsInterPodAffinity},
}

func fitsUnschedulable(p *podInfo, n *nodeInfo) []string {
	if n.node.Spec.Unschedulable && !corev1helpers.TolerationsTolerateTaint(p.pod.Spec.Tolerations, &cordonTaint) {
		return []string{"node(s) were unschedulable"}
	}
	return nil
}

// fitsTaints checks the node's NoSchedule and NoExecute taints, and the
// taints its Ready, DiskPressure and MemoryPressure conditions stand for.
func fitsTaints(p *podInfo, n *nodeInfo) []string {
	taints := n.node.Spec.Taints
	switch readyStatus(n.node) {
	case corev1.ConditionTrue:
	case corev1.ConditionFalse:
		taints = append(taints[:len(taints):len(taints)], notReadyTaint)
	default:
		taints = append(taints[:len(taints):len(taints)], unreachableTaint)
	}
	if conditionStatus(n.node, corev1.NodeDiskPressure) == corev1.ConditionTrue {
		// The node refuses new pods while its disk is nearly full.
		taints = append(taints[:len(taints):len(taints)], diskTaint)
	}
	if conditionStatus(n.node, corev1.NodeMemoryPressure) == corev1.ConditionTrue {
		taints = append(taints[:len(taints):len(taints)], memoryPressureTaint)
	}
	t, untolerated := corev1helpers.FindMatchingUntoleratedTaint(taints, p.pod.Spec.Tolerations, doNotSchedule)
	if untolerated {
		return []string{fmt.Sprintf("node(s) had untolerated taint {%s: %s}", t.Key, t.Value)}
	}
	return nil
}

// doNotSchedule selects the taints that keep pods off a node, as
// Kubernetes' DoNotScheduleTaintsFilterFunc: PreferNoSchedule only scores.
func doNotSchedule(t *corev1.Taint) bool {
	return t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute
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

// fitsAffinity checks spec.nodeSelector and the required node affinity:
// any one of its terms must match, and a term matches when all its
// expressions and fields do. A term that does not parse matches nothing,
// as in Kubernetes (validation keeps such terms out of the API anyway).
func fitsAffinity(p *podInfo, n *nodeInfo) []string {
	if ok, _ := p.affinity.Match(n.node); !ok {
		return []string{"node(s) didn't match Pod's node affinity/selector"}
	}
	return nil
}

// fitsRuntimeClass places a pod that names a runtime class only on nodes
// that offer that runtime: their agent labels them so (runtime.NodeLabel).
func fitsRuntimeClass(p *podInfo, n *nodeInfo) []string {
	rc := p.pod.Spec.RuntimeClassName
	if rc == nil || *rc == "" {
		return nil
	}
	if n.node.Labels[skiffrt.NodeLabel(*rc)] != skiffrt.NodeLabelValue {
		return []string{fmt.Sprintf("node(s) didn't offer runtime class %q", *rc)}
	}
	return nil
}

// fitsResources checks that the pod's requests fit in what the node's
// allocatable leaves after the requests of the pods already on it.
func fitsResources(p *podInfo, n *nodeInfo) []string {
	var out []string
	alloc := n.allocatable()
	if int64(n.pods+1) > alloc.pods {
		out = append(out, "Too many pods")
	}
	if p.requests.milliCPU > 0 && n.requested.milliCPU+p.requests.milliCPU > alloc.milliCPU {
		out = append(out, "Insufficient cpu")
	}
	if p.requests.memory > 0 && n.requested.memory+p.requests.memory > alloc.memory {
		out = append(out, "Insufficient memory")
	}
	return out
}
