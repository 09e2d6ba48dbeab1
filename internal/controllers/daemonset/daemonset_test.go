package daemonset_test

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/util/retry"

	"github.com/skiffhq/skiff/internal/controllers/controllertest"
	"github.com/skiffhq/skiff/internal/testutil"
)

func newDS(name string) *appsv1.DaemonSet {
	sel := map[string]string{"app": name}
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: sel},
				Spec: corev1.PodSpec{NodeSelector: map[string]string{controllertest.FakeNodeLabel: "true", "role": "edge"},
					Containers: []corev1.Container{{Name: "app", Image: "example.invalid/agent:1"}}},
			},
		},
	}
}

var edge = map[string]string{"role": "edge"}

// podsByNode maps each node to the names of the DaemonSet's active pods bound there.
func podsByNode(t *testing.T, c *controllertest.Cluster, app string) map[string][]corev1.Pod {
	out := map[string][]corev1.Pod{}
	for _, p := range c.ActivePods(t, "default", map[string]string{"app": app}) {
		out[p.Spec.NodeName] = append(out[p.Spec.NodeName], p)
	}
	return out
}

// waitNodes waits until the DaemonSet has exactly one active pod, bound, on
// each of nodes, each carrying hash (if not "") and nothing else, and its
// status says so for the latest generation.
func waitNodes(t *testing.T, c *controllertest.Cluster, name string, nodes []string, hash func() string) {
	t.Helper()
	testutil.Eventually(t, controllertest.Timeout, func() error {
		byNode := podsByNode(t, c, name)
		var have []string
		for n, ps := range byNode {
			if len(ps) != 1 {
				return fmt.Errorf("node %q has %d pods", n, len(ps))
			}
			if h := hash(); h != "" && ps[0].Labels[appsv1.DefaultDaemonSetUniqueLabelKey] != h {
				return fmt.Errorf("pod %s on %s has hash %q, want %q", ps[0].Name, n, ps[0].Labels[appsv1.DefaultDaemonSetUniqueLabelKey], h)
			}
			have = append(have, n)
		}
		sort.Strings(have)
		if fmt.Sprint(have) != fmt.Sprint(nodes) {
			return fmt.Errorf("pods on %v, want %v", have, nodes)
		}
		ds, err := c.Client.AppsV1().DaemonSets("default").Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		st, n := ds.Status, int32(len(nodes))
		if st.ObservedGeneration != ds.Generation || st.DesiredNumberScheduled != n || st.CurrentNumberScheduled != n ||
			st.NumberReady != n || st.NumberAvailable != n || st.UpdatedNumberScheduled != n || st.NumberMisscheduled != 0 ||
			st.NumberUnavailable != 0 {
			return fmt.Errorf("generation %d, status %+v", ds.Generation, st)
		}
		return nil
	})
}

// currentHash is the hash of the DaemonSet's newest ControllerRevision.
func currentHash(t *testing.T, c *controllertest.Cluster, name string) func() string {
	return func() string {
		l, err := c.Client.AppsV1().ControllerRevisions("default").List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var best *appsv1.ControllerRevision
		for i := range l.Items {
			r := &l.Items[i]
			if ref := metav1.GetControllerOf(r); ref != nil && ref.Name == name && (best == nil || r.Revision > best.Revision) {
				best = r
			}
		}
		if best == nil {
			return "no revision yet"
		}
		return best.Labels[appsv1.DefaultDaemonSetUniqueLabelKey]
	}
}

func updateDS(t *testing.T, c *controllertest.Cluster, name string, mutate func(*appsv1.DaemonSet)) {
	t.Helper()
	dsc := c.Client.AppsV1().DaemonSets("default")
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		ds, err := dsc.Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		mutate(ds)
		_, err = dsc.Update(context.Background(), ds, metav1.UpdateOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

func updateNode(t *testing.T, c *controllertest.Cluster, name string, mutate func(*corev1.Node)) {
	t.Helper()
	nc := c.Client.CoreV1().Nodes()
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := nc.Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		mutate(n)
		_, err = nc.Update(context.Background(), n, metav1.UpdateOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// One engine for the DaemonSet's whole life: a pod on each matching node
// (placed by the scheduler through the metadata.name affinity), a node
// joining and one leaving the selector, taints, a rolling update with
// maxUnavailable, one with maxSurge, and OnDelete.
func TestDaemonSet(t *testing.T) {
	c := controllertest.Start(t)
	nodes := []string{"fake-a", "fake-b", "fake-c", "fake-other"}
	c.AddNode(t, "fake-a", edge, nil)
	c.AddNode(t, "fake-b", edge, nil)
	c.AddNode(t, "fake-other", map[string]string{"role": "core"}, nil)
	k := c.StartKubelet(t, nodes...)
	ctx := context.Background()
	ds, err := c.Client.AppsV1().DaemonSets("default").Create(ctx, newDS("agent"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	hash := currentHash(t, c, "agent")
	waitNodes(t, c, "agent", []string{"fake-a", "fake-b"}, hash)
	for _, ps := range podsByNode(t, c, "agent") {
		p := ps[0]
		ref := metav1.GetControllerOf(&p)
		if ref == nil || ref.UID != ds.UID || ref.Kind != "DaemonSet" {
			t.Fatalf("pod %s owner %+v", p.Name, p.OwnerReferences)
		}
		if p.Labels["pod-template-generation"] != "1" {
			t.Fatalf("pod %s labels %v", p.Name, p.Labels)
		}
		terms := p.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
		if len(terms) != 1 || terms[0].MatchFields[0].Key != "metadata.name" || terms[0].MatchFields[0].Values[0] != p.Spec.NodeName {
			t.Fatalf("pod %s on %s affinity %+v", p.Name, p.Spec.NodeName, terms)
		}
		tolerated := false
		for _, tol := range p.Spec.Tolerations {
			tolerated = tolerated || tol.Key == corev1.TaintNodeUnreachable && tol.Effect == corev1.TaintEffectNoExecute
		}
		if !tolerated {
			t.Fatalf("pod %s lacks the daemon tolerations: %+v", p.Name, p.Spec.Tolerations)
		}
	}
	c.WaitEvent(t, "default", "DaemonSet", "agent", "SuccessfulCreate", nil)

	t.Run("nodes join and leave", func(t *testing.T) {
		c.AddNode(t, "fake-c", edge, nil)
		waitNodes(t, c, "agent", []string{"fake-a", "fake-b", "fake-c"}, hash)
		updateNode(t, c, "fake-c", func(n *corev1.Node) { n.Labels["role"] = "core" })
		waitNodes(t, c, "agent", []string{"fake-a", "fake-b"}, hash)
		updateNode(t, c, "fake-c", func(n *corev1.Node) { n.Labels["role"] = "edge" })
		waitNodes(t, c, "agent", []string{"fake-a", "fake-b", "fake-c"}, hash)
	})

	t.Run("taints", func(t *testing.T) {
		// NoSchedule keeps new pods off but evicts nobody; NoExecute does.
		updateNode(t, c, "fake-c", func(n *corev1.Node) {
			n.Spec.Taints = []corev1.Taint{{Key: "dedicated", Effect: corev1.TaintEffectNoSchedule}}
		})
		testutil.Eventually(t, controllertest.Timeout, func() error {
			got, err := c.Client.AppsV1().DaemonSets("default").Get(ctx, "agent", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if got.Status.DesiredNumberScheduled != 2 || got.Status.NumberMisscheduled != 1 {
				return fmt.Errorf("status %+v", got.Status)
			}
			return nil
		})
		if ps := podsByNode(t, c, "agent")["fake-c"]; len(ps) != 1 {
			t.Fatalf("NoSchedule taint evicted the daemon pod: %d left", len(ps))
		}
		updateNode(t, c, "fake-c", func(n *corev1.Node) {
			n.Spec.Taints = []corev1.Taint{{Key: "dedicated", Effect: corev1.TaintEffectNoExecute}}
		})
		waitNodes(t, c, "agent", []string{"fake-a", "fake-b"}, hash)
		updateNode(t, c, "fake-c", func(n *corev1.Node) { n.Spec.Taints = nil })
		waitNodes(t, c, "agent", []string{"fake-a", "fake-b", "fake-c"}, hash)
	})

	all := []string{"fake-a", "fake-b", "fake-c"}
	// images counts the active pods by node and image.
	images := func() map[string][]string {
		out := map[string][]string{}
		for n, ps := range podsByNode(t, c, "agent") {
			for _, p := range ps {
				out[n] = append(out[n], p.Spec.Containers[0].Image)
			}
			sort.Strings(out[n])
		}
		return out
	}
	// holdBack checks that, with the new pods held unready by the kubelet,
	// the rollout stops at want (per node, its pods' images) for a while,
	// then lets every pod become ready.
	holdBack := func(t *testing.T, want func(map[string][]string) error) {
		t.Helper()
		testutil.Eventually(t, controllertest.Timeout, func() error { return want(images()) })
		time.Sleep(time.Second) // several syncs: the rollout must go no further
		if err := want(images()); err != nil {
			t.Fatalf("the rollout went past its bound: %v", err)
		}
		k.SetReady(func(*corev1.Pod) bool { return true })
	}
	count := func(m map[string][]string, images ...string) int {
		n := 0
		for _, imgs := range m {
			if fmt.Sprint(imgs) == fmt.Sprint(images) {
				n++
			}
		}
		return n
	}

	t.Run("rolling update", func(t *testing.T) {
		before := hash()
		k.SetReady(func(p *corev1.Pod) bool { return p.Spec.Containers[0].Image != "example.invalid/agent:2" })
		updateDS(t, c, "agent", func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.Containers[0].Image = "example.invalid/agent:2" })
		// maxUnavailable 1: one node gets a new pod, which stays unready;
		// the other two keep their old ones.
		holdBack(t, func(m map[string][]string) error {
			if count(m, "example.invalid/agent:2") != 1 || count(m, "example.invalid/agent:1") != 2 {
				return fmt.Errorf("pods by node %v", m)
			}
			return nil
		})
		waitNodes(t, c, "agent", all, hash)
		if hash() == before {
			t.Fatal("no new revision")
		}
		for _, ps := range podsByNode(t, c, "agent") {
			if ps[0].Spec.Containers[0].Image != "example.invalid/agent:2" || ps[0].Labels["pod-template-generation"] != "2" {
				t.Fatalf("pod %s not updated: %s %v", ps[0].Name, ps[0].Spec.Containers[0].Image, ps[0].Labels)
			}
		}
	})

	t.Run("rolling update with surge", func(t *testing.T) {
		k.SetReady(func(p *corev1.Pod) bool { return p.Spec.Containers[0].Image != "example.invalid/agent:3" })
		updateDS(t, c, "agent", func(ds *appsv1.DaemonSet) {
			ds.Spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateDaemonSet{
				MaxSurge: ptr(intstr.FromInt32(1)), MaxUnavailable: ptr(intstr.FromInt32(0))}
			ds.Spec.Template.Spec.Containers[0].Image = "example.invalid/agent:3"
		})
		// maxSurge 1, maxUnavailable 0: one node runs a new pod beside its
		// old one until the new one is available; no old pod goes before.
		holdBack(t, func(m map[string][]string) error {
			if count(m, "example.invalid/agent:2", "example.invalid/agent:3") != 1 || count(m, "example.invalid/agent:2") != 2 {
				return fmt.Errorf("pods by node %v", m)
			}
			return nil
		})
		waitNodes(t, c, "agent", all, hash)
	})

	t.Run("rollback reuses the revision", func(t *testing.T) {
		updateDS(t, c, "agent", func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.Containers[0].Image = "example.invalid/agent:2" })
		waitNodes(t, c, "agent", all, hash)
		l, err := c.Client.AppsV1().ControllerRevisions("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(l.Items) != 3 {
			t.Fatalf("%d revisions, want 3 (1, 2 reused as 4, 3)", len(l.Items))
		}
	})

	t.Run("OnDelete", func(t *testing.T) {
		updateDS(t, c, "agent", func(ds *appsv1.DaemonSet) {
			ds.Spec.UpdateStrategy = appsv1.DaemonSetUpdateStrategy{Type: appsv1.OnDeleteDaemonSetStrategyType}
			ds.Spec.Template.Spec.Containers[0].Image = "example.invalid/agent:5"
		})
		newHash := ""
		testutil.Eventually(t, controllertest.Timeout, func() error {
			got, err := c.Client.AppsV1().DaemonSets("default").Get(ctx, "agent", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if got.Status.ObservedGeneration != got.Generation || got.Status.UpdatedNumberScheduled != 0 {
				return fmt.Errorf("generation %d status %+v", got.Generation, got.Status)
			}
			newHash = hash()
			return nil
		})
		victim := podsByNode(t, c, "agent")["fake-a"][0]
		if victim.Labels[appsv1.DefaultDaemonSetUniqueLabelKey] == newHash {
			t.Fatal("OnDelete replaced a pod by itself")
		}
		if err := c.Client.CoreV1().Pods("default").Delete(ctx, victim.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, controllertest.Timeout, func() error {
			ps := podsByNode(t, c, "agent")["fake-a"]
			if len(ps) != 1 || ps[0].Name == victim.Name || ps[0].Labels[appsv1.DefaultDaemonSetUniqueLabelKey] != newHash {
				return fmt.Errorf("fake-a has %d pods", len(ps))
			}
			return nil
		})
		for _, n := range []string{"fake-b", "fake-c"} {
			if ps := podsByNode(t, c, "agent")[n]; len(ps) != 1 || ps[0].Labels[appsv1.DefaultDaemonSetUniqueLabelKey] == newHash {
				t.Fatalf("OnDelete replaced the pod on %s", n)
			}
		}
	})

	t.Run("node deleted", func(t *testing.T) {
		if err := c.Client.CoreV1().Nodes().Delete(ctx, "fake-c", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, controllertest.Timeout, func() error {
			if ps := podsByNode(t, c, "agent")["fake-c"]; len(ps) != 0 {
				return fmt.Errorf("%d pods left for the deleted node", len(ps))
			}
			got, err := c.Client.AppsV1().DaemonSets("default").Get(ctx, "agent", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if got.Status.DesiredNumberScheduled != 2 {
				return fmt.Errorf("status %+v", got.Status)
			}
			return nil
		})
	})
}

func ptr[T any](v T) *T { return &v }
