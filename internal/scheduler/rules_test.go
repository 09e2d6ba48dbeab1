package scheduler

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

const zoneKey = corev1.LabelTopologyZone

// cluster is n nodes node-0..node-(n-1), hostname-labelled, in zones
// zone-(i%zones), with room for 110 pods each.
func cluster(n, zones int) map[string]*nodeInfo {
	m := map[string]*nodeInfo{}
	for i := range n {
		name := fmt.Sprintf("node-%d", i)
		lbls := map[string]string{corev1.LabelHostname: name}
		if zones > 0 {
			lbls[zoneKey] = fmt.Sprintf("zone-%d", i%zones)
		}
		m[name] = &nodeInfo{node: testNode(name, lbls, "4", "8Gi", 110)}
	}
	return m
}

var uids int

// labelled is a request-less pod with labels, a UID and a name of its own.
func labelled(lbls map[string]string) *corev1.Pod {
	uids++
	p := testPod("", "")
	p.Name, p.UID, p.Labels = fmt.Sprintf("p%d", uids), types.UID(fmt.Sprintf("uid-%d", uids)), lbls
	return p
}

func term(key string, lbls map[string]string) corev1.PodAffinityTerm {
	return corev1.PodAffinityTerm{TopologyKey: key, LabelSelector: &metav1.LabelSelector{MatchLabels: lbls}}
}

func withPort(p *corev1.Pod, port int32, ip string) *corev1.Pod {
	p.Spec.Containers[0].Ports = append(p.Spec.Containers[0].Ports, corev1.ContainerPort{ContainerPort: 8080, HostPort: port, HostIP: ip})
	return p
}

// The filters Kubernetes' default profile has, over many nodes, each with
// the FailedScheduling text Kubernetes 1.32 writes, word for word.
func TestPlacementRules(t *testing.T) {
	app := map[string]string{"app": "web"}
	for _, tc := range []struct {
		name  string
		nodes func() map[string]*nodeInfo
		pod   func() *corev1.Pod
		want  string // node, or "" for any node in allow
		allow func(n string) bool
	}{
		{"host port taken on all but one", func() map[string]*nodeInfo {
			m := cluster(20, 0)
			for name, n := range m {
				if name != "node-7" {
					n.place(withPort(labelled(nil), 80, ""))
				}
			}
			return m
		}, func() *corev1.Pod { return withPort(labelled(nil), 80, "") }, "node-7", nil},
		{"host port on another address or protocol is free", func() map[string]*nodeInfo {
			m := cluster(3, 0)
			m["node-0"].place(withPort(labelled(nil), 80, "127.110.0.1"))
			m["node-1"].place(withPort(labelled(nil), 80, ""))
			udp := withPort(labelled(nil), 80, "")
			udp.Spec.Containers[0].Ports[0].Protocol = corev1.ProtocolUDP
			m["node-2"].place(udp)
			m["node-2"].place(withPort(labelled(nil), 80, "127.110.0.9"))
			return m
		}, func() *corev1.Pod { return withPort(labelled(nil), 80, "127.110.0.2") }, "", func(n string) bool { return n == "node-0" || n == "node-2" }},
		{"required anti-affinity: one per node", func() map[string]*nodeInfo {
			m := cluster(10, 0)
			for i := range 9 {
				m[fmt.Sprintf("node-%d", i)].place(labelled(app))
			}
			return m
		}, func() *corev1.Pod {
			p := labelled(app)
			p.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{term(corev1.LabelHostname, app)}}}
			return p
		}, "node-9", nil},
		{"required affinity: into the zone of the matching pod", func() map[string]*nodeInfo {
			m := cluster(30, 3)
			m["node-4"].place(labelled(map[string]string{"app": "db"})) // zone-1
			return m
		}, func() *corev1.Pod {
			p := labelled(app)
			p.Spec.Affinity = &corev1.Affinity{PodAffinity: &corev1.PodAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{term(zoneKey, map[string]string{"app": "db"})}}}
			return p
		}, "", func(n string) bool { var i int; fmt.Sscanf(n, "node-%d", &i); return i%3 == 1 }},
		{"required affinity to itself: the first of a group goes anywhere", func() map[string]*nodeInfo { return cluster(5, 0) },
			func() *corev1.Pod {
				p := labelled(app)
				p.Spec.Affinity = &corev1.Affinity{PodAffinity: &corev1.PodAffinity{
					RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{term(corev1.LabelHostname, app)}}}
				return p
			}, "", func(string) bool { return true }},
		{"an existing pod's anti-affinity keeps the pod out of its zone", func() map[string]*nodeInfo {
			m := cluster(6, 2)
			e := labelled(nil)
			e.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{term(zoneKey, app)}}}
			m["node-0"].place(e) // zone-0: nodes 0, 2, 4
			return m
		}, func() *corev1.Pod { return labelled(app) }, "", func(n string) bool { return n == "node-1" || n == "node-3" || n == "node-5" }},
		{"spread DoNotSchedule: the zone with fewest", func() map[string]*nodeInfo {
			m := cluster(9, 3)
			for _, n := range []string{"node-0", "node-3", "node-1", "node-4"} { // zones 0 and 1 have 2
				m[n].place(labelled(app))
			}
			return m
		}, func() *corev1.Pod {
			p := labelled(app)
			p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: zoneKey,
				WhenUnsatisfiable: corev1.DoNotSchedule, LabelSelector: &metav1.LabelSelector{MatchLabels: app}}}
			return p
		}, "", func(n string) bool { var i int; fmt.Sscanf(n, "node-%d", &i); return i%3 == 2 }},
		{"spread: nodes the pod's node selector excludes are no domain (nodeAffinityPolicy Honor)", func() map[string]*nodeInfo {
			m := cluster(4, 0)
			m["node-0"].place(labelled(app))
			m["node-1"].place(labelled(app))
			m["node-2"].node.Labels["pool"] = "a"
			m["node-3"].node.Labels["pool"] = "a"
			m["node-2"].place(labelled(app))
			return m
		}, func() *corev1.Pod {
			p := labelled(app)
			p.Spec.NodeSelector = map[string]string{"pool": "a"}
			p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: corev1.LabelHostname,
				WhenUnsatisfiable: corev1.DoNotSchedule, LabelSelector: &metav1.LabelSelector{MatchLabels: app}}}
			return p
		}, "node-3", nil},
		{"spread nodeTaintsPolicy: Ignore counts a tainted empty node as the minimum, Honor does not", func() map[string]*nodeInfo {
			m := cluster(3, 0)
			m["node-0"].place(labelled(app))
			m["node-1"].place(labelled(app))
			m["node-1"].place(labelled(app))
			m["node-2"].node.Spec.Taints = []corev1.Taint{{Key: "gpu", Effect: corev1.TaintEffectNoSchedule}}
			return m
		}, func() *corev1.Pod {
			// Ignore (the default) would make node-2's 0 the minimum, so
			// node-0 (1+1-0 > 1) would fail and no node would fit.
			p := labelled(app)
			honor := corev1.NodeInclusionPolicyHonor
			p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: corev1.LabelHostname,
				WhenUnsatisfiable: corev1.DoNotSchedule, LabelSelector: &metav1.LabelSelector{MatchLabels: app}, NodeTaintsPolicy: &honor}}
			return p
		}, "node-0", nil},
		{"spread matchLabelKeys: only pods of the same revision count", func() map[string]*nodeInfo {
			m := cluster(2, 0)
			m["node-0"].place(labelled(map[string]string{"app": "web", "rev": "1"}))
			m["node-0"].place(labelled(map[string]string{"app": "web", "rev": "1"}))
			m["node-1"].place(labelled(map[string]string{"app": "web", "rev": "2"}))
			return m
		}, func() *corev1.Pod {
			p := labelled(map[string]string{"app": "web", "rev": "2"})
			p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: corev1.LabelHostname,
				WhenUnsatisfiable: corev1.DoNotSchedule, LabelSelector: &metav1.LabelSelector{MatchLabels: app}, MatchLabelKeys: []string{"rev"}}}
			return p
		}, "node-0", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, msg := placeWith(tc.pod(), nil, tc.nodes())
			if got == "" {
				t.Fatalf("not placed: %s", msg)
			}
			if tc.allow != nil && !tc.allow(got) || tc.allow == nil && got != tc.want {
				t.Fatalf("placed on %s", got)
			}
		})
	}
}

// FailedScheduling reads as Kubernetes 1.32 writes it: reasons counted per
// node, sorted, each node counted once under the first filter it fails.
func TestFailedSchedulingMessages(t *testing.T) {
	app := map[string]string{"app": "web"}
	anti := func() *corev1.Pod {
		p := withPort(labelled(app), 80, "")
		p.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{term(corev1.LabelHostname, app)}}}
		return p
	}
	for _, tc := range []struct {
		name  string
		nodes func() map[string]*nodeInfo
		pod   func() *corev1.Pod
		want  string
	}{
		{"ports and anti-affinity", func() map[string]*nodeInfo {
			m := cluster(5, 0)
			for i := range 5 {
				if i < 3 {
					m[fmt.Sprintf("node-%d", i)].place(withPort(labelled(nil), 80, ""))
				} else {
					m[fmt.Sprintf("node-%d", i)].place(labelled(app))
				}
			}
			return m
		}, anti, "0/5 nodes are available: 2 node(s) didn't match pod anti-affinity rules, 3 node(s) didn't have free ports for the requested pod ports."},
		{"pod affinity matches nowhere", func() map[string]*nodeInfo {
			m := cluster(4, 0)
			m["node-0"].place(labelled(map[string]string{"app": "db"}))
			return m
		}, func() *corev1.Pod {
			p := labelled(app)
			p.Spec.Affinity = &corev1.Affinity{PodAffinity: &corev1.PodAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{term("rack", map[string]string{"app": "db"})}}}
			return p
		}, "0/4 nodes are available: 4 node(s) didn't match pod affinity rules."},
		{"existing anti-affinity", func() map[string]*nodeInfo {
			m := cluster(3, 1)
			e := labelled(nil)
			e.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{term(zoneKey, app)}}}
			m["node-2"].place(e)
			return m
		}, func() *corev1.Pod { return labelled(app) }, "0/3 nodes are available: 3 node(s) didn't satisfy existing pods anti-affinity rules."},
		{"spread skew and missing label", func() map[string]*nodeInfo {
			m := cluster(4, 2)
			delete(m["node-3"].node.Labels, zoneKey)
			m["node-0"].place(labelled(app))
			m["node-2"].place(labelled(app)) // zone-0 has 2, zone-1 (node-1) 0
			m["node-1"].node.Spec.Unschedulable = true
			return m
		}, func() *corev1.Pod {
			p := labelled(app)
			p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: zoneKey,
				WhenUnsatisfiable: corev1.DoNotSchedule, LabelSelector: &metav1.LabelSelector{MatchLabels: app}}}
			return p
		}, "0/4 nodes are available: 1 node(s) didn't match pod topology spread constraints (missing required label), 1 node(s) were unschedulable, 2 node(s) didn't match pod topology spread constraints."},
		{"spread nodeTaintsPolicy Ignore (default): the tainted empty node is the minimum", func() map[string]*nodeInfo {
			m := cluster(3, 0)
			m["node-0"].place(labelled(app))
			m["node-1"].place(labelled(app))
			m["node-1"].place(labelled(app))
			m["node-2"].node.Spec.Taints = []corev1.Taint{{Key: "gpu", Effect: corev1.TaintEffectNoSchedule}}
			return m
		}, func() *corev1.Pod {
			p := labelled(app)
			p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: corev1.LabelHostname,
				WhenUnsatisfiable: corev1.DoNotSchedule, LabelSelector: &metav1.LabelSelector{MatchLabels: app}}}
			return p
		}, "0/3 nodes are available: 1 node(s) had untolerated taint {gpu: }, 2 node(s) didn't match pod topology spread constraints."},
		{"minDomains above the domains makes the global minimum 0", func() map[string]*nodeInfo {
			m := cluster(2, 2)
			m["node-0"].place(labelled(app))
			m["node-1"].place(labelled(app))
			return m
		}, func() *corev1.Pod {
			p := labelled(app)
			three := int32(3)
			p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: zoneKey, MinDomains: &three,
				WhenUnsatisfiable: corev1.DoNotSchedule, LabelSelector: &metav1.LabelSelector{MatchLabels: app}}}
			return p
		}, "0/2 nodes are available: 2 node(s) didn't match pod topology spread constraints."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, msg := placeWith(tc.pod(), nil, tc.nodes())
			if got != "" || msg != tc.want {
				t.Fatalf("placed on %q, message\n%s\nwant\n%s", got, msg, tc.want)
			}
		})
	}
}

// rank is each node's normalized score under the named plugin, over the
// nodes given (all assumed to pass the filters).
func rank(t *testing.T, plugin string, pod *corev1.Pod, m map[string]*nodeInfo, names ...string) []int64 {
	t.Helper()
	var s *score
	for i := range scores {
		if scores[i].name == plugin {
			s = &scores[i]
		}
	}
	if s == nil {
		t.Fatalf("no score %q", plugin)
	}
	p := newPodInfo(pod)
	p.inter, p.spread = newInterPodState(pod, m), newSpreadState(p, m)
	fit := make([]*nodeInfo, len(names))
	for i, n := range names {
		fit[i] = m[n]
	}
	if len(p.spread.soft) > 0 {
		p.spreadScore = newSpreadScorer(p, fit, m)
	}
	out := make([]int64, len(fit))
	for i, n := range fit {
		out[i] = s.fn(p, n)
	}
	if s.normalize != nil {
		s.normalize(p, fit, out)
	}
	return out
}

func TestScoresNormalized(t *testing.T) {
	app := map[string]string{"app": "web"}
	eq := func(t *testing.T, got []int64, want ...int64) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("scores %v, want %v", got, want)
		}
	}
	t.Run("TaintToleration prefers fewer untolerated PreferNoSchedule taints", func(t *testing.T) {
		m := cluster(3, 0)
		soft := func(k string) corev1.Taint {
			return corev1.Taint{Key: k, Effect: corev1.TaintEffectPreferNoSchedule}
		}
		m["node-1"].node.Spec.Taints = []corev1.Taint{soft("a")}
		m["node-2"].node.Spec.Taints = []corev1.Taint{soft("a"), soft("b"), {Key: "c", Effect: corev1.TaintEffectNoSchedule}}
		eq(t, rank(t, "TaintToleration", labelled(nil), m, "node-0", "node-1", "node-2"), 100, 50, 0)
		p := labelled(nil)
		p.Spec.Tolerations = []corev1.Toleration{{Key: "b", Operator: corev1.TolerationOpExists}}
		eq(t, rank(t, "TaintToleration", p, m, "node-0", "node-1", "node-2"), 100, 0, 0)
	})
	t.Run("NodeAffinity sums matching preferred weights", func(t *testing.T) {
		m := cluster(3, 0)
		m["node-1"].node.Labels["disk"] = "ssd"
		m["node-2"].node.Labels["disk"], m["node-2"].node.Labels["gpu"] = "ssd", "yes"
		pref := func(k, v string, w int32) corev1.PreferredSchedulingTerm {
			return corev1.PreferredSchedulingTerm{Weight: w, Preference: corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{
				{Key: k, Operator: corev1.NodeSelectorOpIn, Values: []string{v}}}}}
		}
		p := labelled(nil)
		p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{
			pref("disk", "ssd", 20), pref("gpu", "yes", 60)}}}
		eq(t, rank(t, "NodeAffinity", p, m, "node-0", "node-1", "node-2"), 0, 25, 100)
	})
	t.Run("InterPodAffinity: preferred affinity, preferred anti-affinity, existing pods' terms", func(t *testing.T) {
		m := cluster(3, 0)
		m["node-0"].place(labelled(map[string]string{"app": "cache"}))
		m["node-2"].place(labelled(app))
		p := labelled(app)
		p.Spec.Affinity = &corev1.Affinity{
			PodAffinity: &corev1.PodAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{
				{Weight: 10, PodAffinityTerm: term(corev1.LabelHostname, map[string]string{"app": "cache"})}}},
			PodAntiAffinity: &corev1.PodAntiAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{
				{Weight: 10, PodAffinityTerm: term(corev1.LabelHostname, app)}}}}
		eq(t, rank(t, "InterPodAffinity", p, m, "node-0", "node-1", "node-2"), 100, 50, 0)
		// An existing pod that prefers the incoming pod's company draws it
		// even when the incoming pod says nothing.
		m = cluster(2, 0)
		e := labelled(nil)
		e.Spec.Affinity = &corev1.Affinity{PodAffinity: &corev1.PodAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{
			{Weight: 5, PodAffinityTerm: term(corev1.LabelHostname, app)}}}}
		m["node-1"].place(e)
		eq(t, rank(t, "InterPodAffinity", labelled(app), m, "node-0", "node-1"), 0, 100)
	})
	t.Run("PodTopologySpread ScheduleAnyway prefers the emptier domain", func(t *testing.T) {
		m := cluster(4, 2)
		m["node-0"].place(labelled(app))
		m["node-2"].place(labelled(app))
		m["node-1"].place(labelled(app))
		p := labelled(app)
		p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: zoneKey,
			WhenUnsatisfiable: corev1.ScheduleAnyway, LabelSelector: &metav1.LabelSelector{MatchLabels: app}}}
		got := rank(t, "PodTopologySpread", p, m, "node-0", "node-1", "node-2", "node-3")
		// zone-0 holds 2, zone-1 holds 1: raw 2·ln4≈3 and 1·ln4≈1.
		eq(t, got, 33, 100, 33, 100)
	})
	t.Run("BalancedAllocation prefers like shares of cpu and memory", func(t *testing.T) {
		m := cluster(2, 0)
		m["node-0"].place(testPod("2", ""))
		m["node-1"].place(testPod("1", "2Gi"))
		eq(t, rank(t, "NodeResourcesBalancedAllocation", testPod("1", "2Gi"), m, "node-0", "node-1"), 75, 100) // cpu 3/4 and memory 1/4: 1-|0.75-0.25|/2
	})
}

// The whole pipeline picks by the weighted sum: a PreferNoSchedule taint
// (weight 3) outweighs a fuller node (NodeResourcesFit, weight 1).
func TestWeightsDecide(t *testing.T) {
	m := cluster(2, 0)
	m["node-0"].node.Spec.Taints = []corev1.Taint{{Key: "a", Effect: corev1.TaintEffectPreferNoSchedule}}
	m["node-1"].place(testPod("1", "2Gi"))
	if got, msg := placeWith(testPod("100m", ""), nil, m); got != "node-1" {
		t.Fatalf("placed on %q %s", got, msg)
	}
	if !strings.HasPrefix(scores[0].name, "TaintToleration") || scores[0].weight != 3 {
		t.Fatalf("scores[0] = %+v", scores[0])
	}
}
