package scheduler

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
)

func newTestScheduler(t *testing.T) *Scheduler {
	t.Helper()
	cs := fake.NewSimpleClientset()
	f := informers.NewSharedInformerFactory(cs, 0)
	s, err := New(Config{Client: cs, Pods: f.Core().V1().Pods(), Nodes: f.Core().V1().Nodes(), Recorder: record.NewFakeRecorder(1000)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.queue.ShutDown)
	return s
}

// cacheModel is what the cache must hold, recounted from scratch: the
// informer's latest pods and nodes, and the pods assumed and not yet seen
// bound.
type cacheModel struct {
	view    map[types.UID]*corev1.Pod
	assumed map[types.UID]*corev1.Pod
	nodes   map[string]*corev1.Node
}

func (m *cacheModel) recount() map[string]*nodeInfo {
	out := map[string]*nodeInfo{}
	info := func(name string) *nodeInfo {
		if out[name] == nil {
			out[name] = &nodeInfo{node: m.nodes[name]}
		}
		return out[name]
	}
	for _, p := range m.view {
		if occupies(p) {
			info(p.Spec.NodeName).place(p)
		}
	}
	for _, p := range m.assumed {
		info(p.Spec.NodeName).place(p)
	}
	return out
}

// summary is a nodeInfo as comparable text.
func summary(n *nodeInfo) string {
	var uids, aff []string
	for _, p := range n.list {
		uids = append(uids, string(p.UID))
	}
	for _, p := range n.withAffinity {
		aff = append(aff, string(p.UID))
	}
	slices.Sort(uids)
	slices.Sort(aff)
	ports := fmt.Sprint(n.ports)
	if len(n.ports) == 0 {
		ports = "none"
	}
	name := "<no node>"
	if n.node != nil {
		name = n.node.Name
	}
	return fmt.Sprintf("%s pods=%d req=%+v nz=%+v ports=%s list=%v aff=%v", name, n.pods, n.requested, n.nonZero, ports, uids, aff)
}

func compareCache(t *testing.T, step int, op string, c *podCache, m *cacheModel) {
	t.Helper()
	want := m.recount()
	got := map[string]*nodeInfo{}
	for name, n := range c.nodes {
		got[name] = n
	}
	for name, n := range c.orphans {
		if got[name] != nil {
			t.Fatalf("step %d (%s): node %s both known and orphan", step, op, name)
		}
		got[name] = n
	}
	for name := range m.nodes {
		if got[name] == nil {
			t.Fatalf("step %d (%s): node %s missing from the cache", step, op, name)
		}
	}
	for name := range c.nodes {
		if m.nodes[name] == nil {
			t.Fatalf("step %d (%s): deleted node %s still offered", step, op, name)
		}
	}
	for name, n := range got {
		w := want[name]
		if w == nil {
			w = &nodeInfo{node: m.nodes[name]}
		}
		if g, ws := summary(n), summary(w); g != ws {
			t.Fatalf("step %d (%s): node %s\ncache   %s\nrecount %s", step, op, name, g, ws)
		}
	}
	for name, w := range want {
		if got[name] == nil && w.pods > 0 {
			t.Fatalf("step %d (%s): node %s with %d pods missing from the cache", step, op, name, w.pods)
		}
	}
}

// The cache, fed the informer events and the scheduler's assumptions in a
// random order, holds at every step what a recount from scratch gives:
// pods by node, requests, host ports, the pods with affinity terms.
func TestCacheMatchesRecount(t *testing.T) {
	s := newTestScheduler(t)
	c := s.cache
	m := &cacheModel{view: map[types.UID]*corev1.Pod{}, assumed: map[types.UID]*corev1.Pod{}, nodes: map[string]*corev1.Node{}}
	rng := rand.New(rand.NewPCG(1, 2))
	nodeName := func() string { return fmt.Sprintf("node-%d", rng.IntN(8)) }
	pick := func(ok func(*corev1.Pod) bool) *corev1.Pod {
		var c []*corev1.Pod
		for _, p := range m.view {
			if ok(p) {
				c = append(c, p)
			}
		}
		if len(c) == 0 {
			return nil
		}
		slices.SortFunc(c, func(a, b *corev1.Pod) int { return cmpStr(string(a.UID), string(b.UID)) })
		return c[rng.IntN(len(c))]
	}
	// update is an informer update event of p to cur.
	update := func(p, cur *corev1.Pod) {
		m.view[cur.UID] = cur
		if cur.Spec.NodeName != "" || finished(cur) {
			delete(m.assumed, cur.UID)
		}
		s.updatePod(p, cur)
	}
	for step := range 3000 {
		var op string
		switch r := rng.IntN(11); r {
		case 0, 1: // a pod is created, pending or already bound
			op = "add pod"
			p := labelled(map[string]string{"app": fmt.Sprint(rng.IntN(3))})
			p.Spec.Containers[0].Resources.Requests = testPod(fmt.Sprintf("%dm", rng.IntN(500)), fmt.Sprintf("%dMi", rng.IntN(500))).Spec.Containers[0].Resources.Requests
			if rng.IntN(3) == 0 {
				withPort(p, int32(80+rng.IntN(3)), "")
			}
			if rng.IntN(3) == 0 {
				p.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
					RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{term(corev1.LabelHostname, p.Labels)}}}
			}
			if rng.IntN(2) == 0 {
				p.Spec.NodeName = nodeName()
			}
			m.view[p.UID] = p
			s.addPod(p)
		case 2: // the scheduler assumes a pending pod
			op = "assume"
			p := pick(func(p *corev1.Pod) bool { return p.Spec.NodeName == "" && !finished(p) && m.assumed[p.UID] == nil })
			if p == nil {
				continue
			}
			b := p.DeepCopy()
			b.Spec.NodeName = nodeName()
			m.assumed[p.UID] = b
			c.mu.Lock()
			c.assumeLocked(b)
			c.mu.Unlock()
		case 3: // its binding fails
			op = "forget"
			p := pick(func(p *corev1.Pod) bool { return m.assumed[p.UID] != nil })
			if p == nil {
				continue
			}
			delete(m.assumed, p.UID)
			c.forget(p.UID)
		case 4: // the informer shows a pod bound (where we assumed, or elsewhere)
			op = "seen bound"
			p := pick(func(p *corev1.Pod) bool { return p.Spec.NodeName == "" && !finished(p) })
			if p == nil {
				continue
			}
			cur := p.DeepCopy()
			cur.Spec.NodeName = nodeName()
			if a := m.assumed[p.UID]; a != nil && rng.IntN(4) > 0 {
				cur.Spec.NodeName = a.Spec.NodeName
			}
			update(p, cur)
		case 5: // a status or label change of a pending pod, possibly assumed
			op = "pending pod relabelled"
			p := pick(func(p *corev1.Pod) bool { return p.Spec.NodeName == "" })
			if p == nil {
				continue
			}
			cur := p.DeepCopy()
			cur.Labels = map[string]string{"app": fmt.Sprint(rng.IntN(3))}
			update(p, cur)
		case 6: // a bound pod finishes, or is relabelled
			op = "bound pod finishes or changes"
			p := pick(func(p *corev1.Pod) bool { return p.Spec.NodeName != "" && !finished(p) })
			if p == nil {
				continue
			}
			cur := p.DeepCopy()
			if rng.IntN(2) == 0 {
				cur.Status.Phase = corev1.PodSucceeded
			} else {
				cur.Labels = map[string]string{"app": fmt.Sprint(rng.IntN(3))}
			}
			update(p, cur)
		case 7: // a pod is deleted
			op = "delete pod"
			p := pick(func(*corev1.Pod) bool { return true })
			if p == nil {
				continue
			}
			delete(m.view, p.UID)
			delete(m.assumed, p.UID)
			s.deletePod(p)
		case 8, 9: // a node is added or changes
			op = "set node"
			name := nodeName()
			n := testNode(name, map[string]string{corev1.LabelHostname: name, "gen": fmt.Sprint(step)}, "4", "8Gi", 110)
			m.nodes[name] = n
			c.setNode(n)
		case 10:
			op = "delete node"
			name := nodeName()
			delete(m.nodes, name)
			c.deleteNode(name)
		}
		compareCache(t, step, op, c, m)
	}
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
