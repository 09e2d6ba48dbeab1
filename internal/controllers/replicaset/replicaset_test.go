package replicaset_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/skiffhq/skiff/internal/controllers/controller"
	"github.com/skiffhq/skiff/internal/controllers/controllertest"
	"github.com/skiffhq/skiff/internal/controllers/replicaset"
	"github.com/skiffhq/skiff/internal/testutil"
)

func newRS(name string, replicas int32, app string) *appsv1.ReplicaSet {
	sel := map[string]string{"app": app}
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app, "tier": "web"}},
				Spec: corev1.PodSpec{NodeSelector: controllertest.FakeNodeSelector,
					Containers: []corev1.Container{{Name: "app", Image: "example.invalid/app:1"}}},
			},
		},
	}
}

func scale(t *testing.T, c *controllertest.Cluster, name string, n int32) {
	t.Helper()
	rsc := c.Client.AppsV1().ReplicaSets("default")
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error { // the controller writes the status meanwhile
		sc, err := rsc.GetScale(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		sc.Spec.Replicas = n
		_, err = rsc.UpdateScale(context.Background(), name, sc, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// waitStatus waits until the ReplicaSet's status, for its latest
// generation, satisfies ok.
func waitStatus(t *testing.T, c *controllertest.Cluster, name string, ok func(st appsv1.ReplicaSetStatus, spec int32) bool) *appsv1.ReplicaSet {
	t.Helper()
	var rs *appsv1.ReplicaSet
	testutil.Eventually(t, controllertest.Timeout, func() error {
		got, err := c.Client.AppsV1().ReplicaSets("default").Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if got.Status.ObservedGeneration != got.Generation || !ok(got.Status, *got.Spec.Replicas) {
			return fmt.Errorf("generation %d, spec %d, status %+v", got.Generation, *got.Spec.Replicas, got.Status)
		}
		rs = got
		return nil
	})
	return rs
}

func allReady(st appsv1.ReplicaSetStatus, n int32) bool {
	return st.Replicas == n && st.FullyLabeledReplicas == n && st.ReadyReplicas == n && st.AvailableReplicas == n
}

func names(pods []corev1.Pod) []string {
	var out []string
	for _, p := range pods {
		out = append(out, p.Name)
	}
	sort.Strings(out)
	return out
}

// A ReplicaSet creates its pods (owned, generated names, bound by the
// scheduler), reports them ready and available, replaces a pod deleted by
// hand, and scales up and down, deleting the not-ready pods first.
func TestReplicaSetLifecycle(t *testing.T) {
	c := controllertest.Start(t)
	c.AddNode(t, "fake-1", nil, nil)
	k := c.StartKubelet(t, "fake-1")
	ctx := context.Background()
	rs, err := c.Client.AppsV1().ReplicaSets("default").Create(ctx, newRS("web", 3, "web"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, c, "web", allReady)
	sel := map[string]string{"app": "web"}
	pods := c.ActivePods(t, "default", sel)
	if len(pods) != 3 {
		t.Fatalf("%d pods: %v", len(pods), names(pods))
	}
	for _, p := range pods {
		ref := metav1.GetControllerOf(&p)
		if ref == nil || ref.UID != rs.UID || ref.Kind != "ReplicaSet" || ref.APIVersion != "apps/v1" ||
			ref.BlockOwnerDeletion == nil || !*ref.BlockOwnerDeletion {
			t.Fatalf("pod %s owner %+v", p.Name, p.OwnerReferences)
		}
		if !strings.HasPrefix(p.Name, "web-") || p.GenerateName != "web-" || p.Labels["tier"] != "web" {
			t.Fatalf("pod %s: generateName %q labels %v", p.Name, p.GenerateName, p.Labels)
		}
		if p.Spec.NodeName != "fake-1" {
			t.Fatalf("pod %s on node %q", p.Name, p.Spec.NodeName)
		}
	}
	c.WaitEvent(t, "default", "ReplicaSet", "web", "SuccessfulCreate", func(m string) bool { return strings.HasPrefix(m, "Created pod: web-") })

	// A pod deleted by hand is replaced.
	victim := pods[0].Name
	if err := c.Client.CoreV1().Pods("default").Delete(ctx, victim, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, controllertest.Timeout, func() error {
		now := c.ActivePods(t, "default", sel)
		for _, p := range now {
			if p.Name == victim {
				return fmt.Errorf("%s still active", victim)
			}
		}
		if len(now) != 3 {
			return fmt.Errorf("%d active pods", len(now))
		}
		return nil
	})
	waitStatus(t, c, "web", allReady)

	// Scale up while the kubelet holds the new pods back, then down: the
	// two not-ready pods are the ones to go.
	ready := map[string]bool{}
	for _, p := range c.ActivePods(t, "default", sel) {
		ready[p.Name] = true
	}
	k.SetReady(func(p *corev1.Pod) bool { return ready[p.Name] })
	scale(t, c, "web", 5)
	waitStatus(t, c, "web", func(st appsv1.ReplicaSetStatus, n int32) bool {
		return n == 5 && st.Replicas == 5 && st.ReadyReplicas == 3
	})
	scale(t, c, "web", 3)
	waitStatus(t, c, "web", allReady)
	for _, p := range c.ActivePods(t, "default", sel) {
		if !ready[p.Name] {
			t.Fatalf("kept not-ready pod %s, deleted a ready one", p.Name)
		}
	}
	c.WaitEvent(t, "default", "ReplicaSet", "web", "SuccessfulDelete", nil)

	scale(t, c, "web", 0)
	waitStatus(t, c, "web", func(st appsv1.ReplicaSetStatus, n int32) bool { return n == 0 && st.Replicas == 0 })
	testutil.Eventually(t, controllertest.Timeout, func() error {
		if pods := c.Pods(t, "default", sel); len(pods) != 0 {
			return fmt.Errorf("pods left: %v", names(pods))
		}
		return nil
	})
}

// A ReplicaSet adopts a matching orphan instead of creating a pod for it,
// and releases a pod whose labels stop matching (replacing it).
func TestReplicaSetAdoptsAndReleases(t *testing.T) {
	c := controllertest.Start(t)
	c.AddNode(t, "fake-1", nil, nil)
	c.StartKubelet(t, "fake-1")
	ctx := context.Background()
	tmpl := newRS("x", 1, "adopt").Spec.Template
	orphan := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "orphan", Namespace: "default", Labels: tmpl.Labels}, Spec: tmpl.Spec}
	if _, err := c.Client.CoreV1().Pods("default").Create(ctx, orphan, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The controller must meet the ReplicaSet with the orphan in its pod
	// cache, or it creates two pods first and adopts the orphan as a
	// surplus third. The scheduler reads the same cache (one informer
	// factory per term): once it has bound the orphan, the cache has it.
	testutil.Eventually(t, controllertest.Timeout, func() error {
		p, err := c.Client.CoreV1().Pods("default").Get(ctx, "orphan", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if p.Spec.NodeName == "" {
			return fmt.Errorf("orphan not bound yet")
		}
		return nil
	})
	rs, err := c.Client.AppsV1().ReplicaSets("default").Create(ctx, newRS("adopt", 2, "adopt"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, c, "adopt", allReady)
	sel := map[string]string{"app": "adopt"}
	pods := c.ActivePods(t, "default", sel)
	if len(pods) != 2 {
		t.Fatalf("pods %v", names(pods))
	}
	got, err := c.Client.CoreV1().Pods("default").Get(ctx, "orphan", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ref := metav1.GetControllerOf(got); ref == nil || ref.UID != rs.UID {
		t.Fatalf("orphan not adopted: %+v", got.OwnerReferences)
	}

	// Relabel the adopted pod out of the selector.
	got.Labels = map[string]string{"app": "elsewhere"}
	if _, err := c.Client.CoreV1().Pods("default").Update(ctx, got, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, controllertest.Timeout, func() error {
		p, err := c.Client.CoreV1().Pods("default").Get(ctx, "orphan", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if ref := metav1.GetControllerOf(p); ref != nil {
			return fmt.Errorf("still owned: %+v", p.OwnerReferences)
		}
		if n := len(c.ActivePods(t, "default", sel)); n != 2 {
			return fmt.Errorf("%d pods selected", n)
		}
		return nil
	})
	waitStatus(t, c, "adopt", allReady)
}

// Available replicas wait minReadySeconds after ready.
func TestReplicaSetMinReadySeconds(t *testing.T) {
	c := controllertest.Start(t)
	c.AddNode(t, "fake-1", nil, nil)
	c.StartKubelet(t, "fake-1")
	rs := newRS("slow", 2, "slow")
	rs.Spec.MinReadySeconds = 3
	if _, err := c.Client.AppsV1().ReplicaSets("default").Create(context.Background(), rs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// However slow the machine, a status seen before the pods have been
	// ready for minReadySeconds must not call them available.
	testutil.Eventually(t, controllertest.Timeout, func() error {
		got, err := c.Client.AppsV1().ReplicaSets("default").Get(context.Background(), "slow", metav1.GetOptions{})
		if err != nil {
			return err
		}
		seen := time.Now()
		var latestReady time.Time
		pods := c.ActivePods(t, "default", map[string]string{"app": "slow"})
		for i := range pods {
			if cond := controller.PodReadyCondition(&pods[i]); cond != nil && cond.LastTransitionTime.After(latestReady) {
				latestReady = cond.LastTransitionTime.Time
			}
		}
		if got.Status.AvailableReplicas == 2 && seen.Before(latestReady.Add(2*time.Second)) {
			t.Fatalf("available %d at %v, pods ready since %v", got.Status.AvailableReplicas, seen, latestReady)
		}
		if got.Status.ReadyReplicas != 2 || got.Status.AvailableReplicas != 2 {
			return fmt.Errorf("status %+v", got.Status)
		}
		return nil
	})
}

func TestConfigRequired(t *testing.T) {
	if _, err := replicaset.New(replicaset.Config{}); err == nil {
		t.Fatal("New accepted an empty config")
	}
}
