package scheduler

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/skiffhq/skiff/internal/controllers/controller"
)

var preemptEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func preemptNode(name, cpu string) *corev1.Node {
	alloc := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu),
		corev1.ResourceMemory: resource.MustParse("8Gi"), corev1.ResourcePods: resource.MustParse("110")}
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelHostname: name}},
		Status: corev1.NodeStatus{Allocatable: alloc, Capacity: alloc,
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}
}

// preemptPod is a pod of priority prio asking cpu, bound to node (if any),
// started start minutes after the epoch.
func preemptPod(name, node string, prio int32, cpu string, start int) *corev1.Pod {
	st := metav1.NewTime(preemptEpoch.Add(time.Duration(start) * time.Minute))
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name),
		Labels: map[string]string{"app": name}, CreationTimestamp: st},
		Spec: corev1.PodSpec{NodeName: node, Priority: &prio, Containers: []corev1.Container{{Name: "c",
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, StartTime: &st}}
}

// cluster builds the scheduler's view of nodes and their pods.
func preemptCluster(nodes []*corev1.Node, pods []*corev1.Pod) (map[string]*nodeInfo, func(string) []*corev1.Pod) {
	infos := map[string]*nodeInfo{}
	for _, n := range nodes {
		infos[n.Name] = &nodeInfo{node: n}
	}
	on := map[string][]*corev1.Pod{}
	for _, p := range pods {
		infos[p.Spec.NodeName].place(p)
		on[p.Spec.NodeName] = append(on[p.Spec.NodeName], p)
	}
	return infos, func(n string) []*corev1.Pod { return on[n] }
}

func names(pods []*corev1.Pod) string {
	var out []string
	for _, p := range pods {
		out = append(out, p.Name)
	}
	return strings.Join(out, ",")
}

func budget(app string, allowed int32) *policyv1.PodDisruptionBudget {
	one := intstr.FromInt32(1)
	return &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: app, Namespace: "default"},
		Spec:   policyv1.PodDisruptionBudgetSpec{MinAvailable: &one, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}},
		Status: policyv1.PodDisruptionBudgetStatus{DisruptionsAllowed: allowed}}
}

// TestSelectVictims: the fewest pods go, the more important given back
// first; pods of equal or higher priority never go; pods a budget protects
// are given back before the others; a node where even all lower-priority
// pods gone is not enough yields the filters' reasons.
func TestSelectVictims(t *testing.T) {
	n := preemptNode("n", "4")
	for _, tc := range []struct {
		name       string
		pods       []*corev1.Pod
		pdbs       []*policyv1.PodDisruptionBudget
		preemptor  *corev1.Pod
		victims    string
		violations int
		reason     string
	}{
		{"most important given back first",
			[]*corev1.Pod{preemptPod("low1", "n", 1, "1", 0), preemptPod("low2", "n", 2, "1", 0), preemptPod("low3", "n", 3, "2", 0)},
			nil, preemptPod("hi", "", 50, "2", 0), "low2,low1", 0, ""},
		{"only as many as needed",
			[]*corev1.Pod{preemptPod("a", "n", 1, "1", 0), preemptPod("b", "n", 1, "1", 1), preemptPod("c", "n", 1, "1", 2), preemptPod("d", "n", 1, "1", 3)},
			nil, preemptPod("hi", "", 50, "1", 0), "d", 0, ""},
		{"equal and higher priority stay",
			[]*corev1.Pod{preemptPod("same", "n", 50, "2", 0), preemptPod("higher", "n", 60, "1", 0), preemptPod("low", "n", 1, "1", 0)},
			nil, preemptPod("hi", "", 50, "1", 0), "low", 0, ""},
		{"a budget keeps a pod of lower priority",
			[]*corev1.Pod{preemptPod("guarded", "n", 1, "2", 0), preemptPod("free", "n", 5, "2", 0)},
			[]*policyv1.PodDisruptionBudget{budget("guarded", 0)}, preemptPod("hi", "", 50, "2", 0), "free", 0, ""},
		{"a budget that allows one lets it go",
			[]*corev1.Pod{preemptPod("guarded", "n", 1, "2", 0), preemptPod("free", "n", 5, "2", 0)},
			[]*policyv1.PodDisruptionBudget{budget("guarded", 1)}, preemptPod("hi", "", 50, "2", 0), "guarded", 0, ""},
		{"violations counted when nothing else helps",
			[]*corev1.Pod{preemptPod("guarded", "n", 1, "4", 0)},
			[]*policyv1.PodDisruptionBudget{budget("guarded", 0)}, preemptPod("hi", "", 50, "2", 0), "guarded", 1, ""},
		{"no lower priority pods",
			[]*corev1.Pod{preemptPod("same", "n", 50, "4", 0)},
			nil, preemptPod("hi", "", 50, "1", 0), "", 0, msgNoVictims},
		{"not enough even with all gone",
			[]*corev1.Pod{preemptPod("higher", "n", 60, "3", 0), preemptPod("low", "n", 1, "1", 0)},
			nil, preemptPod("hi", "", 50, "2", 0), "", 0, "Insufficient cpu"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, why := selectVictims(tc.preemptor, nil, n, tc.pods, tc.pdbs)
			if tc.reason != "" {
				if len(why) != 1 || why[0] != tc.reason {
					t.Fatalf("reasons %v, want %q", why, tc.reason)
				}
				return
			}
			if why != nil {
				t.Fatalf("no candidate: %v", why)
			}
			if got := names(c.victims); got != tc.victims || c.violations != tc.violations {
				t.Errorf("victims %q (%d violations), want %q (%d)", got, c.violations, tc.victims, tc.violations)
			}
		})
	}
}

// TestPickCandidate: each of Kubernetes' criteria decides when the ones
// before it tie.
func TestPickCandidate(t *testing.T) {
	v := func(prio int32, start int) *corev1.Pod {
		return preemptPod(fmt.Sprintf("v%d-%d", prio, start), "x", prio, "1", start)
	}
	for _, tc := range []struct {
		name  string
		cands []candidate
		want  string
	}{
		{"fewest budget violations", []candidate{
			{node: "a", victims: []*corev1.Pod{v(1, 0)}, violations: 1},
			{node: "b", victims: []*corev1.Pod{v(9, 0), v(8, 0)}}}, "b"},
		{"lowest highest victim priority", []candidate{
			{node: "a", victims: []*corev1.Pod{v(5, 0)}},
			{node: "b", victims: []*corev1.Pod{v(3, 0), v(3, 1), v(2, 0)}}}, "b"},
		{"smallest priority sum", []candidate{
			{node: "a", victims: []*corev1.Pod{v(5, 0), v(4, 0)}},
			{node: "b", victims: []*corev1.Pod{v(5, 0), v(1, 0)}}}, "b"},
		{"fewest victims", []candidate{
			{node: "a", victims: []*corev1.Pod{v(-5, 0), v(-5, 1)}},
			{node: "b", victims: []*corev1.Pod{v(-5, 0)}}}, "b"},
		{"latest start of the top victims", []candidate{
			{node: "a", victims: []*corev1.Pod{v(5, 10)}},
			{node: "b", victims: []*corev1.Pod{v(5, 20)}}}, "b"},
		{"then by name", []candidate{
			{node: "b", victims: []*corev1.Pod{v(5, 10)}},
			{node: "a", victims: []*corev1.Pod{v(5, 10)}}}, "a"},
	} {
		if got := pickCandidate(tc.cands).node; got != tc.want {
			t.Errorf("%s: picked %s, want %s", tc.name, got, tc.want)
		}
	}
}

// TestPreemptionOverManyNodes: of 60 full nodes, most hold pods of middle
// priority, some of high priority, one of a taint the pod does not
// tolerate; the node whose victims matter least is chosen, and the
// message when no node can be had names each node's reason, as
// Kubernetes words it.
func TestPreemptionOverManyNodes(t *testing.T) {
	var nodes []*corev1.Node
	var pods []*corev1.Pod
	for i := range 60 {
		name := fmt.Sprintf("node-%02d", i)
		n := preemptNode(name, "2")
		prio := int32(10 + i%7) // middle priorities
		switch {
		case i%10 == 3:
			prio = 1000 // not preemptible by the pod
		case i == 41:
			prio = 2 // the cheapest victims
		case i == 17:
			n.Spec.Taints = []corev1.Taint{{Key: "dedicated", Value: "x", Effect: corev1.TaintEffectNoSchedule}}
			prio = 0 // cheaper still, but behind a taint
		}
		nodes = append(nodes, n)
		pods = append(pods, preemptPod(name+"-a", name, prio, "1", i), preemptPod(name+"-b", name, prio, "1", i))
	}
	infos, podsOn := preemptCluster(nodes, pods)
	hi := preemptPod("hi", "", 100, "1", 0)
	if node, _ := place(hi, infos); node != "" {
		t.Fatalf("placed on %s: the nodes should be full", node)
	}
	cands, _ := findCandidates(hi, nil, infos, podsOn, nil)
	if len(cands) != 60-6-1 {
		t.Errorf("%d candidates, want 53 (60 less 6 of higher priority, less the tainted one)", len(cands))
	}
	best := pickCandidate(cands)
	if best.node != "node-41" || len(best.victims) != 1 {
		t.Errorf("chose %s with victims %s, want node-41 with one", best.node, names(best.victims))
	}

	// Nothing is lower than this pod's priority anywhere it may go.
	lo := preemptPod("lo", "", 1, "1", 0)
	cands, reasons := findCandidates(lo, nil, infos, podsOn, nil)
	if len(cands) != 0 {
		t.Fatalf("candidates for the lowest pod: %v", cands)
	}
	got := "preemption: " + unschedulableMessage(len(infos), reasons)
	want := "preemption: 0/60 nodes are available: 1 Preemption is not helpful for scheduling, 59 No preemption victims found for incoming pod."
	if got != want {
		t.Errorf("message\n %s\nwant\n %s", got, want)
	}
}

// TestNominatedRoomIsKept: a node's room freed for a nominated pod is not
// given to a pod of lower priority, but is to one of higher.
func TestNominatedRoomIsKept(t *testing.T) {
	nominated := preemptPod("nominated", "", 100, "2", 0)
	nominated.Status = corev1.PodStatus{Phase: corev1.PodPending, NominatedNodeName: "n"}
	for _, tc := range []struct {
		pod  *corev1.Pod
		want string
	}{
		{preemptPod("lower", "", 10, "1", 0), ""},
		{preemptPod("equal", "", 100, "1", 0), ""},
		{preemptPod("higher", "", 200, "1", 0), "n"},
		{nominated, "n"}, // its own room
	} {
		c := newPodCache()
		c.nodes, _ = preemptCluster([]*corev1.Node{preemptNode("n", "2")}, nil)
		c.setPod(nominated)
		if got, _ := place(tc.pod, c.withNominatedLocked(tc.pod)); got != tc.want {
			t.Errorf("%s placed on %q, want %q", tc.pod.Name, got, tc.want)
		}
		if n := c.nodes["n"]; n.pods != 0 {
			t.Errorf("the cache's own node counts %d pods after %s looked: the nominated pod leaked into it", n.pods, tc.pod.Name)
		}
	}
	// A nominated pod that is bound (or gone) holds no room any more.
	c := newPodCache()
	c.nodes, _ = preemptCluster([]*corev1.Node{preemptNode("n", "2")}, nil)
	c.setPod(nominated)
	c.deletePod(nominated)
	lower := preemptPod("lower", "", 10, "1", 0)
	if got, _ := place(lower, c.withNominatedLocked(lower)); got != "n" {
		t.Errorf("room still kept for a deleted nominated pod")
	}
}

// BenchmarkPreemption: one preemption decision over 100 full nodes of 30
// pods each, all of lower priority than the pod (the dry run's worst case:
// every node a candidate).
func BenchmarkPreemption(b *testing.B) {
	var nodes []*corev1.Node
	var pods []*corev1.Pod
	for i := range 100 {
		name := fmt.Sprintf("node-%03d", i)
		nodes = append(nodes, preemptNode(name, "3"))
		for j := range 30 {
			pods = append(pods, preemptPod(fmt.Sprintf("%s-%d", name, j), name, int32(j%5), "100m", j))
		}
	}
	infos, podsOn := preemptCluster(nodes, pods)
	hi := preemptPod("hi", "", 100, "500m", 0)
	b.ResetTimer()
	for range b.N {
		cands, _ := findCandidates(hi, nil, infos, podsOn, nil)
		if c := pickCandidate(cands); len(c.victims) != 5 {
			b.Fatalf("victims %d, want 5", len(c.victims))
		}
	}
}

// TestPreemptActs: preempt marks the victim DisruptionTarget, deletes it,
// records Preempted, nominates the pod and clears the nomination of a
// pod of lower priority waiting for the same node; a pod of
// preemptionPolicy Never does nothing.
func TestPreemptActs(t *testing.T) {
	node := preemptNode("n", "2")
	victim := preemptPod("victim", "n", 1, "2", 0)
	waiting := preemptPod("waiting", "", 5, "1", 0)
	waiting.Status = corev1.PodStatus{Phase: corev1.PodPending, NominatedNodeName: "n"}
	hi := preemptPod("hi", "", 100, "1", 0)
	hi.Status = corev1.PodStatus{Phase: corev1.PodPending}
	polite := preemptPod("polite", "", 100, "1", 0)
	never := corev1.PreemptNever
	polite.Spec.PreemptionPolicy = &never
	cs := fake.NewSimpleClientset(victim, waiting, hi, polite)
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{controller.NodeNameIndex: controller.IndexByNodeName})
	for _, p := range []*corev1.Pod{victim, waiting, hi, polite} {
		if err := idx.Add(p); err != nil {
			t.Fatal(err)
		}
	}
	rec := record.NewFakeRecorder(10)
	s := &Scheduler{client: cs, recorder: rec, log: slog.New(slog.DiscardHandler), preemption: &preemptor{pods: idx}}
	ctx := context.Background()
	infos, _ := preemptCluster([]*corev1.Node{node}, []*corev1.Pod{victim})

	if _, msg, err := planAndPreempt(t, s, ctx, polite, infos); err != nil || msg != "preemption: "+msgPolicyNever {
		t.Fatalf("Never: %q %v", msg, err)
	}
	if len(cs.Actions()) != 0 {
		t.Fatalf("a Never pod acted: %v", cs.Actions())
	}

	got, msg, err := planAndPreempt(t, s, ctx, hi, infos)
	if err != nil || msg != "" {
		t.Fatalf("preempt: %q %v", msg, err)
	}
	if got.Status.NominatedNodeName != "n" {
		t.Errorf("returned pod nominated to %q, want n", got.Status.NominatedNodeName)
	}
	var marked, deleted, cleared bool
	for _, a := range cs.Actions() {
		switch a := a.(type) {
		case k8stesting.UpdateAction:
			p := a.GetObject().(*corev1.Pod)
			if p.Name == "victim" {
				for _, c := range p.Status.Conditions {
					marked = marked || (c.Type == corev1.DisruptionTarget && c.Reason == corev1.PodReasonPreemptionByScheduler)
				}
			}
			if p.Name == "waiting" && p.Status.NominatedNodeName == "" {
				cleared = true
			}
		case k8stesting.DeleteAction:
			if a.GetName() == "victim" {
				if !marked {
					t.Error("victim deleted before it was marked")
				}
				deleted = true
			}
		}
	}
	if !marked || !deleted || !cleared {
		t.Errorf("marked %v deleted %v lower nomination cleared %v; actions %v", marked, deleted, cleared, cs.Actions())
	}
	if ev := <-rec.Events; !strings.Contains(ev, "Preempted Preempted by pod uid-hi on node n") {
		t.Errorf("event %q", ev)
	}
}

// planAndPreempt plans a preemption for pod over infos and carries it out.
func planAndPreempt(t *testing.T, s *Scheduler, ctx context.Context, pod *corev1.Pod, infos map[string]*nodeInfo) (*corev1.Pod, string, error) {
	t.Helper()
	plan, err := s.planPreemption(pod, &claimConstraints{}, infos)
	if err != nil {
		return pod, "", err
	}
	return s.preempt(ctx, pod, plan)
}
