package scheduler

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	skiffrt "github.com/skiffhq/skiff/runtime"
)

func testNode(name string, lbls map[string]string, cpu, mem string, pods int64) *corev1.Node {
	alloc := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem),
		corev1.ResourcePods: *resource.NewQuantity(pods, resource.DecimalSI)}
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbls},
		Status: corev1.NodeStatus{Allocatable: alloc,
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}
}

func testPod(cpu, mem string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c"}}}}
	if cpu != "" || mem != "" {
		p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{}
	}
	if cpu != "" {
		p.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse(cpu)
	}
	if mem != "" {
		p.Spec.Containers[0].Resources.Requests[corev1.ResourceMemory] = resource.MustParse(mem)
	}
	return p
}

func infos(nodes ...*corev1.Node) map[string]*nodeInfo {
	m := map[string]*nodeInfo{}
	for _, n := range nodes {
		m[n.Name] = &nodeInfo{node: n}
	}
	return m
}

// One table for the whole pipeline: each filter, the score and the
// FailedScheduling message.
func TestPlace(t *testing.T) {
	wasm := "wasm"
	for _, tc := range []struct {
		name  string
		pod   func() *corev1.Pod
		nodes func() map[string]*nodeInfo
		want  string // node, or the message when none fits
	}{
		{"no nodes", func() *corev1.Pod { return testPod("", "") },
			func() map[string]*nodeInfo { return infos() }, "no nodes available to schedule pods"},
		{"least allocated wins", func() *corev1.Pod { return testPod("100m", "") },
			func() map[string]*nodeInfo {
				m := infos(testNode("a", nil, "4", "8Gi", 110), testNode("b", nil, "4", "8Gi", 110))
				m["a"].place(testPod("2", "1Gi"))
				return m
			}, "b"},
		{"request-less pods still spread", func() *corev1.Pod { return testPod("", "") },
			func() map[string]*nodeInfo {
				m := infos(testNode("a", nil, "1", "1Gi", 110), testNode("b", nil, "1", "1Gi", 110))
				m["a"].place(testPod("", ""))
				m["a"].place(testPod("", ""))
				return m
			}, "b"},
		{"node selector", func() *corev1.Pod {
			p := testPod("", "")
			p.Spec.NodeSelector = map[string]string{"disk": "ssd"}
			return p
		}, func() map[string]*nodeInfo {
			return infos(testNode("a", nil, "4", "8Gi", 110), testNode("b", map[string]string{"disk": "ssd"}, "4", "8Gi", 110))
		}, "b"},
		{"node selector matches none", func() *corev1.Pod {
			p := testPod("", "")
			p.Spec.NodeSelector = map[string]string{"disk": "ssd"}
			return p
		}, func() map[string]*nodeInfo { return infos(testNode("a", nil, "4", "8Gi", 110)) },
			"0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."},
		{"required affinity: one term of In and Gt", func() *corev1.Pod {
			p := testPod("", "")
			p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{
					{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"x"}}}},
					{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "gen", Operator: corev1.NodeSelectorOpGt, Values: []string{"3"}}}},
				}}}}
			return p
		}, func() map[string]*nodeInfo {
			return infos(testNode("a", map[string]string{"zone": "y", "gen": "2"}, "4", "8Gi", 110),
				testNode("b", map[string]string{"zone": "y", "gen": "5"}, "4", "8Gi", 110))
		}, "b"},
		{"affinity by field metadata.name", func() *corev1.Pod {
			p := testPod("", "")
			p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{
					{MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"a"}}}},
				}}}}
			return p
		}, func() map[string]*nodeInfo {
			return infos(testNode("a", nil, "1", "1Gi", 110), testNode("b", nil, "4", "8Gi", 110))
		}, "a"},
		{"cordoned node", func() *corev1.Pod { return testPod("", "") }, func() map[string]*nodeInfo {
			n := testNode("a", nil, "4", "8Gi", 110)
			n.Spec.Unschedulable = true
			return infos(n)
		}, "0/1 nodes are available: 1 node(s) were unschedulable."},
		{"taint not tolerated, then tolerated", func() *corev1.Pod {
			p := testPod("", "")
			p.Spec.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "edge", Effect: corev1.TaintEffectNoSchedule}}
			return p
		}, func() map[string]*nodeInfo {
			a := testNode("a", nil, "4", "8Gi", 110)
			a.Spec.Taints = []corev1.Taint{{Key: "gpu", Value: "yes", Effect: corev1.TaintEffectNoSchedule}}
			b := testNode("b", nil, "1", "1Gi", 110)
			b.Spec.Taints = []corev1.Taint{{Key: "dedicated", Value: "edge", Effect: corev1.TaintEffectNoSchedule},
				{Key: "soft", Effect: corev1.TaintEffectPreferNoSchedule}}
			return infos(a, b)
		}, "b"},
		{"not ready and unreachable nodes", func() *corev1.Pod { return testPod("", "") }, func() map[string]*nodeInfo {
			a := testNode("a", nil, "4", "8Gi", 110)
			a.Status.Conditions[0].Status = corev1.ConditionFalse
			b := testNode("b", nil, "4", "8Gi", 110)
			b.Status.Conditions = nil
			return infos(a, b)
		}, "0/2 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, " +
			"1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }."},
		{"not ready tolerated", func() *corev1.Pod {
			p := testPod("", "")
			p.Spec.Tolerations = []corev1.Toleration{{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists}}
			return p
		}, func() map[string]*nodeInfo {
			a := testNode("a", nil, "4", "8Gi", 110)
			a.Status.Conditions[0].Status = corev1.ConditionFalse
			return infos(a)
		}, "a"},
		{"memory pressure keeps new pods off", func() *corev1.Pod { return testPod("", "") }, func() map[string]*nodeInfo {
			a := testNode("a", nil, "4", "8Gi", 110)
			a.Status.Conditions = append(a.Status.Conditions, corev1.NodeCondition{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionTrue})
			b := testNode("b", nil, "1", "1Gi", 110)
			b.Status.Conditions = append(b.Status.Conditions, corev1.NodeCondition{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse})
			return infos(a, b)
		}, "b"},
		{"runtime class", func() *corev1.Pod {
			p := testPod("", "")
			p.Spec.RuntimeClassName = &wasm
			return p
		}, func() map[string]*nodeInfo {
			return infos(testNode("a", nil, "8", "8Gi", 110), testNode("b", map[string]string{skiffrt.NodeLabel("wasm"): skiffrt.NodeLabelValue}, "1", "1Gi", 110))
		}, "b"},
		{"runtime class offered nowhere", func() *corev1.Pod {
			p := testPod("", "")
			p.Spec.RuntimeClassName = &wasm
			return p
		}, func() map[string]*nodeInfo { return infos(testNode("a", nil, "8", "8Gi", 110)) },
			`0/1 nodes are available: 1 node(s) didn't offer runtime class "wasm".`},
		{"resources: each shortage named", func() *corev1.Pod { return testPod("1500m", "3Gi") }, func() map[string]*nodeInfo {
			m := infos(testNode("a", nil, "2", "4Gi", 110), testNode("b", nil, "1", "8Gi", 110), testNode("c", nil, "4", "8Gi", 1))
			m["a"].place(testPod("1", "2Gi"))
			m["c"].place(testPod("", ""))
			return m
		}, "0/3 nodes are available: 1 Insufficient memory, 1 Too many pods, 2 Insufficient cpu."},
		{"init containers: the larger of their maximum and the sum", func() *corev1.Pod {
			p := testPod("500m", "")
			p.Spec.InitContainers = []corev1.Container{{Name: "i", Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1500m")}}}}
			return p
		}, func() map[string]*nodeInfo { return infos(testNode("a", nil, "1", "8Gi", 110)) },
			"0/1 nodes are available: 1 Insufficient cpu."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			node, msg := place(tc.pod(), tc.nodes())
			got := node
			if node == "" {
				got = msg
			}
			if got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestPodRequests(t *testing.T) {
	p := testPod("200m", "")
	// "lim" set only a limit; API defaulting made it its request too
	// (validation_test.go holds that), which is what the scheduler reads.
	p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "lim", Resources: corev1.ResourceRequirements{
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")},
		Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")}}})
	always := corev1.ContainerRestartPolicyAlways
	p.Spec.InitContainers = []corev1.Container{{Name: "sidecar", RestartPolicy: &always, Resources: corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m")}}}}
	p.Spec.Overhead = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m")}
	if r := podRequests(p, false); r.milliCPU != 260 || r.memory != 64<<20 {
		t.Fatalf("requests %+v", r)
	}
	// Scoring gives each container what it does not request: the memory
	// of "c" and "sidecar", the cpu of "lim".
	if r := podRequests(p, true); r.milliCPU != 260+defaultMilliCPU || r.memory != 64<<20+2*defaultMemory {
		t.Fatalf("non-zero requests %+v", r)
	}
}

// Each score, one table: what it gives a node for a pod.
func TestScores(t *testing.T) {
	for _, tc := range []struct {
		score string
		desc  string
		pod   *corev1.Pod
		node  func() *nodeInfo
		want  int64
	}{
		{"NodeResourcesFit", "a quarter of each taken", testPod("1", "2Gi"),
			func() *nodeInfo { return &nodeInfo{node: testNode("n", nil, "4", "8Gi", 110)} }, (75 + 75) / 2},
		{"NodeResourcesFit", "nothing requested counts as 100m and 200Mi, on the node too", testPod("", ""), func() *nodeInfo {
			n := &nodeInfo{node: testNode("n", nil, "1", "1000Mi", 110)}
			n.place(testPod("", ""))
			return n
		}, (80 + 60) / 2},
		{"NodeResourcesFit", "over-committed cpu scores 0, not below", testPod("3", ""), func() *nodeInfo {
			return &nodeInfo{node: testNode("n", nil, "2", "8Gi", 110)}
		}, (0 + 97) / 2},
		{"NodeResourcesFit", "no allocatable", testPod("1", "1Gi"), func() *nodeInfo {
			return &nodeInfo{node: testNode("n", nil, "0", "0", 110)}
		}, 0},
	} {
		t.Run(tc.score+"/"+tc.desc, func(t *testing.T) {
			i := slices.IndexFunc(scores, func(s score) bool { return s.name == tc.score })
			if i < 0 {
				t.Fatalf("no score %q", tc.score)
			}
			if got := scores[i].fn(newPodInfo(tc.pod), tc.node()); got != tc.want || got < 0 || got > maxNodeScore {
				t.Fatalf("%s = %d, want %d", tc.score, got, tc.want)
			}
		})
	}
	// Every score has a name of its own and a weight.
	seen := map[string]bool{}
	for _, s := range scores {
		if seen[s.name] || s.weight <= 0 {
			t.Errorf("score %q: duplicate name or weight %d", s.name, s.weight)
		}
		seen[s.name] = true
	}
}
