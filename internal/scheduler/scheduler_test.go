package scheduler_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiffhq/skiff/internal/controllers/controllertest"
	"github.com/skiffhq/skiff/internal/scheduler"
	"github.com/skiffhq/skiff/internal/testutil"
	skiffrt "github.com/skiffhq/skiff/runtime"
)

func createPod(t *testing.T, c *controllertest.Cluster, name string, mutate func(*corev1.Pod)) *corev1.Pod {
	t.Helper()
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.invalid/app:1"}}}}
	if mutate != nil {
		mutate(p)
	}
	p, err := c.Client.CoreV1().Pods("default").Create(context.Background(), p, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func waitBound(t *testing.T, c *controllertest.Cluster, name string) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	testutil.Eventually(t, controllertest.Timeout, func() error {
		p, err := c.Client.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if p.Spec.NodeName == "" {
			return fmt.Errorf("pod %s not bound: %+v", name, p.Status.Conditions)
		}
		pod = p
		return nil
	})
	return pod
}

var probes atomic.Int64

// schedulerSees waits until the scheduler's view of node has a change the
// test made through the API: the scheduler reads an informer, which may lag
// behind. A probe pod pinned to the node asks for more cpu than a node has,
// so it never binds, and the filters stop at the first reason, in their
// order: its FailedScheduling names want once the view has the change
// ("Insufficient cpu" once the node is there and Ready, "were
// unschedulable" for a cordon, "untolerated taint {k: v}" for a taint).
// The scheduler retries the probe on every node change, so a view that
// catches up after the first attempt is seen too. The view then also has
// every change made before this one: an informer applies them in order.
func schedulerSees(t *testing.T, c *controllertest.Cluster, node, want string) {
	t.Helper()
	name := fmt.Sprintf("probe-%d", probes.Add(1))
	createPod(t, c, name, func(p *corev1.Pod) {
		p.Spec.NodeSelector = map[string]string{corev1.LabelHostname: node}
		p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1000")}
	})
	c.WaitEvent(t, "default", "Pod", name, "FailedScheduling", func(m string) bool { return strings.Contains(m, want) })
	if err := c.Client.CoreV1().Pods("default").Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
}

func podScheduled(p *corev1.Pod) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == corev1.PodScheduled {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// A pod with no constraints lands on the engine's own node, with the
// Scheduled event kubectl describe shows and PodScheduled=True.
func TestSchedulesToEngineNode(t *testing.T) {
	c := controllertest.Start(t)
	createPod(t, c, "plain", nil)
	p := waitBound(t, c, "plain")
	if p.Spec.NodeName != c.Node {
		t.Fatalf("bound to %q, want the engine's node %q", p.Spec.NodeName, c.Node)
	}
	if cond := podScheduled(p); cond == nil || cond.Status != corev1.ConditionTrue {
		t.Fatalf("PodScheduled: %+v", cond)
	}
	want := fmt.Sprintf("Successfully assigned default/plain to %s", c.Node)
	ev := c.WaitEvent(t, "default", "Pod", "plain", "Scheduled", func(m string) bool { return m == want })
	if ev.Source.Component != scheduler.Name || ev.Type != corev1.EventTypeNormal {
		t.Fatalf("event %+v", ev)
	}

	// Another scheduler's pods are left alone.
	createPod(t, c, "other", func(p *corev1.Pod) { p.Spec.SchedulerName = "someone-else" })
	createPod(t, c, "after", nil) // scheduled after "other" was seen
	waitBound(t, c, "after")
	p, err := c.Client.CoreV1().Pods("default").Get(context.Background(), "other", metav1.GetOptions{})
	if err != nil || p.Spec.NodeName != "" {
		t.Fatalf("pod for another scheduler: node %q, %v", p.Spec.NodeName, err)
	}
}

// A pod whose nodeSelector matches no node gets FailedScheduling with
// Kubernetes' message and PodScheduled=False (Unschedulable), and is bound
// once a node gets the label.
func TestUnschedulableUntilLabelAppears(t *testing.T) {
	c := controllertest.Start(t)
	c.AddNode(t, "fake-1", nil, nil)
	schedulerSees(t, c, "fake-1", "Insufficient cpu") // else the message counts one node
	createPod(t, c, "picky", func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"disk": "ssd"} })
	want := "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector. " +
		"preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
	ev := c.WaitEvent(t, "default", "Pod", "picky", "FailedScheduling", nil)
	if ev.Message != want || ev.Type != corev1.EventTypeWarning {
		t.Fatalf("FailedScheduling %q (%s), want %q", ev.Message, ev.Type, want)
	}
	testutil.Eventually(t, controllertest.Timeout, func() error {
		p, err := c.Client.CoreV1().Pods("default").Get(context.Background(), "picky", metav1.GetOptions{})
		if err != nil {
			return err
		}
		cond := podScheduled(p)
		if cond == nil || cond.Status != corev1.ConditionFalse || cond.Reason != corev1.PodReasonUnschedulable || cond.Message != want {
			return fmt.Errorf("PodScheduled %+v", cond)
		}
		if p.Spec.NodeName != "" {
			return fmt.Errorf("bound to %s", p.Spec.NodeName)
		}
		return nil
	})

	n, err := c.Client.CoreV1().Nodes().Get(context.Background(), "fake-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Labels["disk"] = "ssd"
	if _, err := c.Client.CoreV1().Nodes().Update(context.Background(), n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := waitBound(t, c, "picky")
	if p.Spec.NodeName != "fake-1" {
		t.Fatalf("bound to %s", p.Spec.NodeName)
	}
	if cond := podScheduled(p); cond == nil || cond.Status != corev1.ConditionTrue {
		t.Fatalf("PodScheduled after binding: %+v", cond)
	}
}

// Requests are counted against allocatable, including pods just bound
// (which the scheduler's informer may not show yet), and a pod that did
// not fit is placed when room is freed.
func TestResourcesAndRetryOnPodDeletion(t *testing.T) {
	c := controllertest.Start(t)
	c.AddNode(t, "small", nil, controllertest.Resources("1", "1Gi", 10))
	c.StartKubelet(t, "small") // completes deletions of pods bound to it
	// Else both pods could find no node and, retried together when the
	// scheduler sees "small", land in either order.
	schedulerSees(t, c, "small", "Insufficient cpu")
	req := func(p *corev1.Pod) {
		p.Spec.NodeSelector = controllertest.FakeNodeSelector
		p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("600m")}
	}
	createPod(t, c, "first", req)
	createPod(t, c, "second", req)
	ev := c.WaitEvent(t, "default", "Pod", "second", "FailedScheduling", nil)
	if want := "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) didn't match Pod's node affinity/selector. " +
		"preemption: 0/2 nodes are available: 1 No preemption victims found for incoming pod, 1 Preemption is not helpful for scheduling."; ev.Message != want {
		t.Fatalf("FailedScheduling %q, want %q", ev.Message, want)
	}
	if p := waitBound(t, c, "first"); p.Spec.NodeName != "small" {
		t.Fatalf("first on %s", p.Spec.NodeName)
	}
	if err := c.Client.CoreV1().Pods("default").Delete(context.Background(), "first", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if p := waitBound(t, c, "second"); p.Spec.NodeName != "small" {
		t.Fatalf("second on %s", p.Spec.NodeName)
	}
}

// Tainted, cordoned and runtime-less nodes are passed over. (The pods
// stay on fake nodes: the engine's own node may offer wasm.)
func TestTaintsCordonAndRuntimeClass(t *testing.T) {
	c := controllertest.Start(t)
	c.AddNode(t, "tainted", nil, nil)
	c.AddNode(t, "plain", nil, controllertest.Resources("1", "1Gi", 10))
	c.AddNode(t, "wasm-node", map[string]string{skiffrt.NodeLabel("wasm"): skiffrt.NodeLabelValue}, controllertest.Resources("1", "1Gi", 10))
	n, _ := c.Client.CoreV1().Nodes().Get(context.Background(), "tainted", metav1.GetOptions{})
	n.Spec.Taints = []corev1.Taint{{Key: "dedicated", Value: "infra", Effect: corev1.TaintEffectNoSchedule}}
	if _, err := c.Client.CoreV1().Nodes().Update(context.Background(), n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The pods below must meet the nodes as set up, taint included, not an
	// older view (a pod created at once landed on "tainted" about once in
	// ten runs).
	schedulerSees(t, c, "tainted", "untolerated taint {dedicated: infra}")
	// The roomier "tainted" would win on score: the taint keeps it out.
	// The others tie, and the tie goes by name.
	createPod(t, c, "fake-only", func(p *corev1.Pod) { p.Spec.NodeSelector = controllertest.FakeNodeSelector })
	if p := waitBound(t, c, "fake-only"); p.Spec.NodeName != "plain" {
		t.Fatalf("fake-only on %s", p.Spec.NodeName)
	}
	createPod(t, c, "tolerant", func(p *corev1.Pod) {
		p.Spec.NodeSelector = controllertest.FakeNodeSelector
		p.Spec.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpExists}}
	})
	if p := waitBound(t, c, "tolerant"); p.Spec.NodeName != "tainted" {
		t.Fatalf("tolerant on %s", p.Spec.NodeName)
	}
	wasm := "wasm"
	wasmPod := func(p *corev1.Pod) {
		p.Spec.NodeSelector = controllertest.FakeNodeSelector
		p.Spec.RuntimeClassName = &wasm
	}
	createPod(t, c, "wasm-pod", wasmPod)
	if p := waitBound(t, c, "wasm-pod"); p.Spec.NodeName != "wasm-node" {
		t.Fatalf("wasm pod on %s", p.Spec.NodeName)
	}

	// Cordon the one wasm node: the next wasm pod waits, and says why.
	n, _ = c.Client.CoreV1().Nodes().Get(context.Background(), "wasm-node", metav1.GetOptions{})
	n.Spec.Unschedulable = true
	if _, err := c.Client.CoreV1().Nodes().Update(context.Background(), n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	schedulerSees(t, c, "wasm-node", "were unschedulable")
	createPod(t, c, "wasm-2", wasmPod)
	ev := c.WaitEvent(t, "default", "Pod", "wasm-2", "FailedScheduling", nil)
	want := `0/4 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, ` +
		`1 node(s) didn't offer runtime class "wasm", 1 node(s) had untolerated taint {dedicated: infra}, ` +
		`1 node(s) were unschedulable. preemption: 0/4 nodes are available: 4 Preemption is not helpful for scheduling.`
	if ev.Message != want {
		t.Fatalf("FailedScheduling %q, want %q", ev.Message, want)
	}
}

// Through the real engine: pods with required anti-affinity created in a
// burst land one per node, though each decision runs before the previous
// binding is seen (the cache's assumed pods keep them apart), and the one
// too many gets Kubernetes' words for it.
func TestAntiAffinityEndToEnd(t *testing.T) {
	c := controllertest.Start(t)
	for _, n := range []string{"aa-0", "aa-1", "aa-2"} {
		c.AddNode(t, n, nil, nil)
		schedulerSees(t, c, n, "Insufficient cpu")
	}
	web := map[string]string{"app": "web"}
	spread := func(p *corev1.Pod) {
		p.Labels = web
		p.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
				TopologyKey: corev1.LabelHostname, LabelSelector: &metav1.LabelSelector{MatchLabels: web}}}}}
	}
	for i := range 4 {
		createPod(t, c, fmt.Sprintf("web-%d", i), spread)
	}
	seen := map[string]string{}
	for i := range 4 {
		name := fmt.Sprintf("web-%d", i)
		p := waitBound(t, c, name)
		if other, ok := seen[p.Spec.NodeName]; ok {
			t.Fatalf("%s and %s both on %s", other, name, p.Spec.NodeName)
		}
		seen[p.Spec.NodeName] = name
	}
	createPod(t, c, "web-4", spread)
	want := "0/4 nodes are available: 4 node(s) didn't match pod anti-affinity rules. " +
		"preemption: 0/4 nodes are available: 4 No preemption victims found for incoming pod."
	if ev := c.WaitEvent(t, "default", "Pod", "web-4", "FailedScheduling", nil); ev.Message != want {
		t.Fatalf("FailedScheduling %q, want %q", ev.Message, want)
	}
}

// Through the real engine: pods asking for the same host port, created in
// a burst, take one fake node each (the host ports of pods assumed but not
// yet seen bound count), and the rest wait with Kubernetes' words.
func TestHostPortsEndToEnd(t *testing.T) {
	c := controllertest.Start(t)
	nodes := []string{"hp-0", "hp-1", "hp-2"}
	for _, n := range nodes {
		c.AddNode(t, n, nil, nil)
		schedulerSees(t, c, n, "Insufficient cpu")
	}
	withPort := func(p *corev1.Pod) {
		p.Spec.NodeSelector = map[string]string{controllertest.FakeNodeLabel: "true"}
		p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 8080, HostPort: 18080}}
	}
	for i := range 5 {
		createPod(t, c, fmt.Sprintf("hp-%d", i), withPort)
	}
	want := "0/4 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 3 node(s) didn't have free ports for the requested pod ports. " +
		"preemption: 0/4 nodes are available: 1 Preemption is not helpful for scheduling, 3 No preemption victims found for incoming pod."
	var bound []string
	testutil.Eventually(t, controllertest.Timeout, func() error {
		bound = bound[:0]
		waiting := 0
		for i := range 5 {
			p, err := c.Client.CoreV1().Pods("default").Get(context.Background(), fmt.Sprintf("hp-%d", i), metav1.GetOptions{})
			if err != nil {
				return err
			}
			if p.Spec.NodeName != "" {
				bound = append(bound, p.Spec.NodeName)
			} else if cond := podScheduled(p); cond != nil && cond.Message == want {
				waiting++
			}
		}
		if len(bound) != 3 || waiting != 2 {
			return fmt.Errorf("bound to %v, %d waiting with the message", bound, waiting)
		}
		return nil
	})
	seen := map[string]bool{}
	for _, n := range bound {
		if seen[n] {
			t.Fatalf("two pods with host port 18080 on %s: %v", n, bound)
		}
		seen[n] = true
	}
}
