package daemonset

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
)

// defaultTolerations are the ones Kubernetes adds to every daemon pod
// (AddOrUpdateDaemonPodTolerations): a daemon stays on a node that is not
// ready or unreachable, and lands on one under disk, memory or PID pressure
// or cordoned. Host-network pods also tolerate network-unavailable.
func defaultTolerations(hostNetwork bool) []corev1.Toleration {
	out := []corev1.Toleration{
		{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
		{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
		{Key: corev1.TaintNodeDiskPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
		{Key: corev1.TaintNodeMemoryPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
		{Key: corev1.TaintNodePIDPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
		{Key: corev1.TaintNodeUnschedulable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
	}
	if hostNetwork {
		out = append(out, corev1.Toleration{Key: corev1.TaintNodeNetworkUnavailable, Operator: corev1.TolerationOpExists,
			Effect: corev1.TaintEffectNoSchedule})
	}
	return out
}

// addTolerations adds the default tolerations spec lacks (an equal one
// already there is kept, as Kubernetes' helper does).
func addTolerations(spec *corev1.PodSpec) {
	for _, t := range defaultTolerations(spec.HostNetwork) {
		found := false
		for i := range spec.Tolerations {
			if spec.Tolerations[i].MatchToleration(&t) {
				found = true
				break
			}
		}
		if !found {
			spec.Tolerations = append(spec.Tolerations, t)
		}
	}
}

// fit decides where one DaemonSet's pods belong, from its template.
type fit struct {
	affinity    nodeaffinity.RequiredNodeAffinity
	tolerations []corev1.Toleration
}

func newFit(ds *appsv1.DaemonSet) *fit {
	pod := &corev1.Pod{Spec: *ds.Spec.Template.Spec.DeepCopy()}
	addTolerations(&pod.Spec)
	return &fit{affinity: nodeaffinity.GetRequiredNodeAffinity(pod), tolerations: pod.Spec.Tolerations}
}

// node reports whether a daemon pod should run on n (it matches and
// tolerates its NoSchedule and NoExecute taints) and whether one already
// there should keep running (it matches and tolerates the NoExecute ones:
// a new NoSchedule taint keeps new pods off but evicts nobody). A cordoned
// node is only a NoSchedule taint, which daemon pods tolerate.
func (f *fit) node(n *corev1.Node) (shouldRun, shouldContinue bool) {
	if ok, _ := f.affinity.Match(n); !ok {
		return false, false
	}
	taints := n.Spec.Taints
	if n.Spec.Unschedulable {
		taints = append(taints[:len(taints):len(taints)],
			corev1.Taint{Key: corev1.TaintNodeUnschedulable, Effect: corev1.TaintEffectNoSchedule})
	}
	if _, bad := corev1helpers.FindMatchingUntoleratedTaint(taints, f.tolerations, func(t *corev1.Taint) bool {
		return t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute
	}); !bad {
		return true, true
	}
	_, bad := corev1helpers.FindMatchingUntoleratedTaint(taints, f.tolerations, func(t *corev1.Taint) bool {
		return t.Effect == corev1.TaintEffectNoExecute
	})
	return false, !bad
}

// targetNode is the node a daemon pod is for: its nodeName once bound,
// before that the one its metadata.name affinity names ("" if neither).
func targetNode(p *corev1.Pod) string {
	if p.Spec.NodeName != "" {
		return p.Spec.NodeName
	}
	a := p.Spec.Affinity
	if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return ""
	}
	terms := a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	if len(terms) != 1 {
		return ""
	}
	for _, f := range terms[0].MatchFields {
		if f.Key == metav1.ObjectNameField && f.Operator == corev1.NodeSelectorOpIn && len(f.Values) == 1 {
			return f.Values[0]
		}
	}
	return ""
}

// pinToNode makes spec's required node affinity select node alone, by
// metadata.name, as Kubernetes' ReplaceDaemonSetPodNodeNameNodeAffinity
// does: the template's own terms were checked by the controller already,
// and the preferred terms stay.
func pinToNode(spec *corev1.PodSpec, node string) {
	if spec.Affinity == nil {
		spec.Affinity = &corev1.Affinity{}
	}
	if spec.Affinity.NodeAffinity == nil {
		spec.Affinity.NodeAffinity = &corev1.NodeAffinity{}
	}
	spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution = &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchFields: []corev1.NodeSelectorRequirement{{
			Key: metav1.ObjectNameField, Operator: corev1.NodeSelectorOpIn, Values: []string{node}}}}},
	}
}
