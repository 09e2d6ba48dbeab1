package deployment_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/util/retry"

	"github.com/skiffhq/skiff/internal/controllers/controller"
	"github.com/skiffhq/skiff/internal/controllers/controllertest"
	"github.com/skiffhq/skiff/internal/controllers/deployment"
	"github.com/skiffhq/skiff/internal/testutil"
)

const ns = "default"

func newDeployment(name string, replicas int32, image string) *appsv1.Deployment {
	sel := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: sel},
				Spec: corev1.PodSpec{NodeSelector: controllertest.FakeNodeSelector,
					Containers: []corev1.Container{{Name: "app", Image: image}}},
			},
		},
	}
}

func surge(d *appsv1.Deployment, s, u int32) *appsv1.Deployment {
	ms, mu := intstr.FromInt32(s), intstr.FromInt32(u)
	d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
		RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &ms, MaxUnavailable: &mu}}
	return d
}

func condition(d *appsv1.Deployment, t appsv1.DeploymentConditionType) *appsv1.DeploymentCondition {
	for i := range d.Status.Conditions {
		if d.Status.Conditions[i].Type == t {
			return &d.Status.Conditions[i]
		}
	}
	return nil
}

// waitComplete waits for what kubectl rollout status waits for, and for
// the conditions of a finished rollout.
func waitComplete(t *testing.T, c *controllertest.Cluster, name string) *appsv1.Deployment {
	t.Helper()
	var d *appsv1.Deployment
	testutil.Eventually(t, controllertest.Timeout, func() error {
		got, err := c.Client.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		st, want := got.Status, *got.Spec.Replicas
		if st.ObservedGeneration < got.Generation || st.UpdatedReplicas != want || st.Replicas != want ||
			st.AvailableReplicas != want || st.ReadyReplicas != want {
			return fmt.Errorf("generation %d, want %d replicas, status %+v", got.Generation, want, st)
		}
		av, pr := condition(got, appsv1.DeploymentAvailable), condition(got, appsv1.DeploymentProgressing)
		if av == nil || av.Status != corev1.ConditionTrue || av.Reason != "MinimumReplicasAvailable" {
			return fmt.Errorf("Available %+v", av)
		}
		if pr == nil || pr.Status != corev1.ConditionTrue || pr.Reason != "NewReplicaSetAvailable" {
			return fmt.Errorf("Progressing %+v", pr)
		}
		d = got
		return nil
	})
	return d
}

// replicaSets lists the Deployment's ReplicaSets, oldest revision first.
func replicaSets(t *testing.T, c *controllertest.Cluster, d *appsv1.Deployment) []appsv1.ReplicaSet {
	t.Helper()
	l, err := c.Client.AppsV1().ReplicaSets(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=" + d.Name})
	if err != nil {
		t.Fatal(err)
	}
	var out []appsv1.ReplicaSet
	for _, rs := range l.Items {
		if ref := metav1.GetControllerOf(&rs); ref != nil && ref.UID == d.UID {
			out = append(out, rs)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Annotations[deployment.RevisionAnnotation] < out[j].Annotations[deployment.RevisionAnnotation]
	})
	return out
}

// newReplicaSet is the ReplicaSet with the Deployment's revision.
func newReplicaSet(t *testing.T, c *controllertest.Cluster, d *appsv1.Deployment) appsv1.ReplicaSet {
	t.Helper()
	for _, rs := range replicaSets(t, c, d) {
		if rs.Annotations[deployment.RevisionAnnotation] == d.Annotations[deployment.RevisionAnnotation] {
			return rs
		}
	}
	t.Fatalf("no ReplicaSet of revision %q", d.Annotations[deployment.RevisionAnnotation])
	return appsv1.ReplicaSet{}
}

func updateDeployment(t *testing.T, c *controllertest.Cluster, name string, change func(*appsv1.Deployment)) {
	t.Helper()
	testutil.Eventually(t, controllertest.Timeout, func() error { // retried on conflicts with the controller
		d, err := c.Client.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		change(d)
		_, err = c.Client.AppsV1().Deployments(ns).Update(context.Background(), d, metav1.UpdateOptions{})
		return err
	})
}

func scaleDeployment(t *testing.T, c *controllertest.Cluster, name string, n int32) {
	t.Helper()
	dc := c.Client.AppsV1().Deployments(ns)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error { // the controller writes the status meanwhile
		sc, err := dc.GetScale(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		sc.Spec.Replicas = n
		_, err = dc.UpdateScale(context.Background(), name, sc, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A Deployment gets one ReplicaSet <name>-<hash> whose pods carry the
// hash; it completes once the pods are ready, and scales through the
// scale subresource.
func TestDeploymentCreatesReplicaSetAndScales(t *testing.T) {
	c := controllertest.Start(t)
	c.AddNode(t, "fake-1", nil, nil)
	c.StartKubelet(t, "fake-1")
	created, err := c.Client.AppsV1().Deployments(ns).Create(context.Background(), newDeployment("web", 3, "example.invalid/web:1"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d := waitComplete(t, c, "web")
	if d.Annotations[deployment.RevisionAnnotation] != "1" {
		t.Fatalf("deployment annotations %v", d.Annotations)
	}
	rss := replicaSets(t, c, created)
	if len(rss) != 1 {
		t.Fatalf("%d replica sets", len(rss))
	}
	rs := rss[0]
	hash := rs.Labels[appsv1.DefaultDeploymentUniqueLabelKey]
	if hash == "" || rs.Name != "web-"+hash || rs.Spec.Selector.MatchLabels[appsv1.DefaultDeploymentUniqueLabelKey] != hash ||
		rs.Spec.Template.Labels[appsv1.DefaultDeploymentUniqueLabelKey] != hash || rs.Annotations[deployment.RevisionAnnotation] != "1" {
		t.Fatalf("replica set %s: labels %v selector %v annotations %v", rs.Name, rs.Labels, rs.Spec.Selector, rs.Annotations)
	}
	if ref := metav1.GetControllerOf(&rs); ref.Kind != "Deployment" || ref.BlockOwnerDeletion == nil || !*ref.BlockOwnerDeletion {
		t.Fatalf("owner %+v", ref)
	}
	pods := c.ActivePods(t, ns, map[string]string{"app": "web"})
	if len(pods) != 3 {
		t.Fatalf("%d pods", len(pods))
	}
	for _, p := range pods {
		if p.Labels[appsv1.DefaultDeploymentUniqueLabelKey] != hash || !strings.HasPrefix(p.Name, rs.Name+"-") || p.Spec.NodeName != "fake-1" {
			t.Fatalf("pod %s labels %v node %q", p.Name, p.Labels, p.Spec.NodeName)
		}
	}
	c.WaitEvent(t, ns, "Deployment", "web", "ScalingReplicaSet", func(m string) bool {
		return m == fmt.Sprintf("Scaled up replica set %s from 0 to 3", rs.Name)
	})

	scaleDeployment(t, c, "web", 5)
	waitComplete(t, c, "web")
	c.WaitEvent(t, ns, "Deployment", "web", "ScalingReplicaSet", func(m string) bool {
		return m == fmt.Sprintf("Scaled up replica set %s from 3 to 5", rs.Name)
	})
	scaleDeployment(t, c, "web", 2)
	waitComplete(t, c, "web")
	c.WaitEvent(t, ns, "Deployment", "web", "ScalingReplicaSet", func(m string) bool {
		return m == fmt.Sprintf("Scaled down replica set %s from 5 to 2", rs.Name)
	})
	if rss := replicaSets(t, c, created); len(rss) != 1 || *rss[0].Spec.Replicas != 2 {
		t.Fatalf("after scaling: %d replica sets", len(rss))
	}
}

// A rolling update with maxSurge 1 and maxUnavailable 0 adds one new pod
// at a time and removes an old one only when a new one is available: it
// waits while the new pods are not ready, and finishes with the old
// ReplicaSet at zero once they are. A restart (template annotation) is one
// more revision, revisionHistoryLimit prunes the oldest, and going back to
// an earlier template reuses its ReplicaSet under a new revision.
func TestDeploymentRollingUpdate(t *testing.T) {
	c := controllertest.Start(t)
	c.AddNode(t, "fake-1", nil, nil)
	k := c.StartKubelet(t, "fake-1")
	d := surge(newDeployment("roll", 4, "example.invalid/roll:1"), 1, 0)
	d.Spec.RevisionHistoryLimit = new(int32)
	*d.Spec.RevisionHistoryLimit = 1
	created, err := c.Client.AppsV1().Deployments(ns).Create(context.Background(), d, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v1 := newReplicaSet(t, c, waitComplete(t, c, "roll"))
	v1Hash := v1.Labels[appsv1.DefaultDeploymentUniqueLabelKey]

	// Hold the new pods back: only v1's become ready.
	k.SetReady(func(p *corev1.Pod) bool { return p.Labels[appsv1.DefaultDeploymentUniqueLabelKey] == v1Hash })
	updateDeployment(t, c, "roll", func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "example.invalid/roll:2" })
	sel := map[string]string{"app": "roll"}
	// checkBudget holds the strategy's promise on one consistent list of
	// pods: never more than 4+1 pods, never fewer than 4-0 ready.
	checkBudget := func() {
		var active, ready int
		for _, p := range c.ActivePods(t, ns, sel) {
			active++
			if controller.IsPodReady(&p) {
				ready++
			}
		}
		if active > 5 || ready < 4 {
			t.Fatalf("%d pods, %d ready: outside maxSurge 1 / maxUnavailable 0", active, ready)
		}
	}
	testutil.Eventually(t, controllertest.Timeout, func() error {
		checkBudget()
		got, err := c.Client.AppsV1().Deployments(ns).Get(context.Background(), "roll", metav1.GetOptions{})
		if err != nil {
			return err
		}
		pr := condition(got, appsv1.DeploymentProgressing)
		if got.Annotations[deployment.RevisionAnnotation] != "2" || got.Status.UpdatedReplicas != 1 || got.Status.Replicas != 5 ||
			got.Status.ObservedGeneration != got.Generation || pr == nil || pr.Reason != "ReplicaSetUpdated" {
			return fmt.Errorf("annotations %v status %+v", got.Annotations, got.Status)
		}
		return nil
	})
	// Stuck by design: the old ReplicaSet keeps its 4 while the surge pod
	// is not ready (looked at a few times, bounded).
	for range 5 {
		checkBudget()
		rss := replicaSets(t, c, created)
		if len(rss) != 2 || *rss[0].Spec.Replicas != 4 || *rss[1].Spec.Replicas != 1 {
			t.Fatalf("replica sets while new pods are not ready: %v", sizes(rss))
		}
		time.Sleep(100 * time.Millisecond)
	}

	k.SetReady(func(*corev1.Pod) bool { return true })
	testutil.Eventually(t, controllertest.Timeout, func() error {
		checkBudget()
		got, err := c.Client.AppsV1().Deployments(ns).Get(context.Background(), "roll", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if pr := condition(got, appsv1.DeploymentProgressing); pr == nil || pr.Reason != "NewReplicaSetAvailable" {
			return fmt.Errorf("not done: %+v", got.Status)
		}
		return nil
	})
	done := waitComplete(t, c, "roll")
	rss := replicaSets(t, c, created)
	if len(rss) != 2 || *rss[0].Spec.Replicas != 0 || rss[0].Status.Replicas != 0 || *rss[1].Spec.Replicas != 4 ||
		rss[1].Annotations[deployment.RevisionAnnotation] != "2" || done.Annotations[deployment.RevisionAnnotation] != "2" {
		t.Fatalf("after the rollout: %v", sizes(rss))
	}
	v2 := rss[1]
	for _, p := range c.ActivePods(t, ns, sel) {
		if p.Spec.Containers[0].Image != "example.invalid/roll:2" {
			t.Fatalf("pod %s still runs %s", p.Name, p.Spec.Containers[0].Image)
		}
	}

	// kubectl rollout restart: a template annotation.
	updateDeployment(t, c, "roll", func(d *appsv1.Deployment) {
		d.Spec.Template.Annotations = map[string]string{"kubectl.kubernetes.io/restartedAt": time.Now().Format(time.RFC3339)}
	})
	done = waitComplete(t, c, "roll")
	if done.Annotations[deployment.RevisionAnnotation] != "3" {
		t.Fatalf("revision after restart: %v", done.Annotations)
	}
	// History limit 1: v1's ReplicaSet goes, v2's stays.
	testutil.Eventually(t, controllertest.Timeout, func() error {
		rss := replicaSets(t, c, created)
		if len(rss) != 2 || rss[0].UID != v2.UID {
			return fmt.Errorf("replica sets %v", sizes(rss))
		}
		return nil
	})

	// Back to v2's template: its ReplicaSet is new again, as revision 4.
	updateDeployment(t, c, "roll", func(d *appsv1.Deployment) { d.Spec.Template.Annotations = nil })
	done = waitComplete(t, c, "roll")
	cur := newReplicaSet(t, c, done)
	if cur.UID != v2.UID || cur.Annotations[deployment.RevisionAnnotation] != "4" ||
		cur.Annotations[deployment.RevisionHistoryAnnotation] != "2" {
		t.Fatalf("rollback: %s annotations %v", cur.Name, cur.Annotations)
	}
}

func sizes(rss []appsv1.ReplicaSet) []string {
	var out []string
	for _, rs := range rss {
		out = append(out, fmt.Sprintf("%s(rev %s) spec %d status %d/%d available", rs.Name,
			rs.Annotations[deployment.RevisionAnnotation], *rs.Spec.Replicas, rs.Status.Replicas, rs.Status.AvailableReplicas))
	}
	return out
}

// Recreate removes every old pod before the first new one is created.
func TestDeploymentRecreate(t *testing.T) {
	c := controllertest.Start(t)
	c.AddNode(t, "fake-1", nil, nil)
	c.StartKubelet(t, "fake-1")
	d := newDeployment("rec", 3, "example.invalid/rec:1")
	d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	if _, err := c.Client.AppsV1().Deployments(ns).Create(context.Background(), d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	oldHash := newReplicaSet(t, c, waitComplete(t, c, "rec")).Labels[appsv1.DefaultDeploymentUniqueLabelKey]

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := c.Client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{LabelSelector: "app=rec"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	var mu sync.Mutex
	var order []string // "-" old pod deleted, "+" new pod created
	go func() {
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			old := p.Labels[appsv1.DefaultDeploymentUniqueLabelKey] == oldHash
			mu.Lock()
			switch {
			case ev.Type == watch.Deleted && old:
				order = append(order, "-"+p.Name)
			case ev.Type == watch.Added && !old:
				order = append(order, "+"+p.Name)
			}
			mu.Unlock()
		}
	}()
	// The watch starts from now: existing pods come as ADDED old ones,
	// which are not recorded.
	updateDeployment(t, c, "rec", func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "example.invalid/rec:2" })
	done := waitComplete(t, c, "rec")
	if done.Annotations[deployment.RevisionAnnotation] != "2" {
		t.Fatalf("revision %v", done.Annotations)
	}
	testutil.Eventually(t, controllertest.Timeout, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(order) < 6 {
			return fmt.Errorf("events so far %v", order)
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	for i, e := range order[:3] {
		if !strings.HasPrefix(e, "-") {
			t.Fatalf("new pod created before the old ones were gone: %v (at %d)", order, i)
		}
	}
}

// A paused Deployment scales but does not roll; resumed, it rolls.
func TestDeploymentPaused(t *testing.T) {
	c := controllertest.Start(t)
	c.AddNode(t, "fake-1", nil, nil)
	c.StartKubelet(t, "fake-1")
	created, err := c.Client.AppsV1().Deployments(ns).Create(context.Background(), newDeployment("p", 2, "example.invalid/p:1"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitComplete(t, c, "p")
	updateDeployment(t, c, "p", func(d *appsv1.Deployment) {
		d.Spec.Paused = true
		d.Spec.Template.Spec.Containers[0].Image = "example.invalid/p:2"
		d.Spec.Replicas = new(int32)
		*d.Spec.Replicas = 3
	})
	testutil.Eventually(t, controllertest.Timeout, func() error {
		got, err := c.Client.AppsV1().Deployments(ns).Get(context.Background(), "p", metav1.GetOptions{})
		if err != nil {
			return err
		}
		pr := condition(got, appsv1.DeploymentProgressing)
		if got.Status.ObservedGeneration != got.Generation || got.Status.AvailableReplicas != 3 || pr == nil ||
			pr.Reason != "DeploymentPaused" || pr.Status != corev1.ConditionUnknown {
			return fmt.Errorf("status %+v", got.Status)
		}
		return nil
	})
	rss := replicaSets(t, c, created)
	if len(rss) != 1 || *rss[0].Spec.Replicas != 3 || rss[0].Spec.Template.Spec.Containers[0].Image != "example.invalid/p:1" {
		t.Fatalf("paused: %v", sizes(rss))
	}
	updateDeployment(t, c, "p", func(d *appsv1.Deployment) { d.Spec.Paused = false })
	done := waitComplete(t, c, "p")
	if done.Annotations[deployment.RevisionAnnotation] != "2" {
		t.Fatalf("after resume: %v", done.Annotations)
	}
	for _, p := range c.ActivePods(t, ns, map[string]string{"app": "p"}) {
		if p.Spec.Containers[0].Image != "example.invalid/p:2" {
			t.Fatalf("pod %s runs %s", p.Name, p.Spec.Containers[0].Image)
		}
	}
}

// A Deployment adopts an orphan ReplicaSet of its template (as left by a
// Deployment deleted with propagation Orphan) and keeps its pods rather
// than rolling new ones.
func TestDeploymentAdoptsOrphanReplicaSet(t *testing.T) {
	c := controllertest.Start(t)
	c.AddNode(t, "fake-1", nil, nil)
	c.StartKubelet(t, "fake-1")
	ctx := context.Background()
	d := newDeployment("adopt", 2, "example.invalid/a:1")
	withHash := func(m map[string]string) map[string]string {
		out := map[string]string{appsv1.DefaultDeploymentUniqueLabelKey: "old"}
		for k, v := range m {
			out[k] = v
		}
		return out
	}
	tmpl := *d.Spec.Template.DeepCopy()
	tmpl.Labels = withHash(tmpl.Labels)
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "adopt-old", Namespace: ns, Labels: tmpl.Labels},
		Spec: appsv1.ReplicaSetSpec{Replicas: d.Spec.Replicas, Template: tmpl,
			Selector: &metav1.LabelSelector{MatchLabels: withHash(d.Spec.Selector.MatchLabels)}}}
	rs, err := c.Client.AppsV1().ReplicaSets(ns).Create(ctx, rs, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sel := map[string]string{"app": "adopt"}
	var before []string
	testutil.Eventually(t, controllertest.Timeout, func() error {
		before = nil
		for _, p := range c.ActivePods(t, ns, sel) {
			if controller.IsPodReady(&p) {
				before = append(before, p.Name)
			}
		}
		if len(before) != 2 {
			return fmt.Errorf("ready pods %v", before)
		}
		return nil
	})
	created, err := c.Client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	done := waitComplete(t, c, "adopt")
	rss := replicaSets(t, c, created)
	if len(rss) != 1 || rss[0].UID != rs.UID || done.Annotations[deployment.RevisionAnnotation] != "1" ||
		rss[0].Annotations[deployment.RevisionAnnotation] != "1" {
		t.Fatalf("adopted: %v", sizes(rss))
	}
	var after []string
	for _, p := range c.ActivePods(t, ns, sel) {
		after = append(after, p.Name)
	}
	sort.Strings(before)
	sort.Strings(after)
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatalf("pods replaced: %v, then %v", before, after)
	}
}

// A rollout whose pods never become ready is reported stuck after
// progressDeadlineSeconds (Progressing=False, ProgressDeadlineExceeded),
// which makes kubectl rollout status fail; with no event to wake the
// controller, its own requeue must notice.
func TestDeploymentProgressDeadline(t *testing.T) {
	c := controllertest.Start(t)
	c.AddNode(t, "fake-1", nil, nil)
	k := c.StartKubelet(t, "fake-1")
	k.SetReady(func(*corev1.Pod) bool { return false })
	d := newDeployment("stuck", 1, "example.invalid/stuck:1")
	d.Spec.ProgressDeadlineSeconds = new(int32)
	*d.Spec.ProgressDeadlineSeconds = 2
	if _, err := c.Client.AppsV1().Deployments(ns).Create(context.Background(), d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, controllertest.Timeout, func() error {
		got, err := c.Client.AppsV1().Deployments(ns).Get(context.Background(), "stuck", metav1.GetOptions{})
		if err != nil {
			return err
		}
		pr, av := condition(got, appsv1.DeploymentProgressing), condition(got, appsv1.DeploymentAvailable)
		if pr == nil || pr.Status != corev1.ConditionFalse || pr.Reason != "ProgressDeadlineExceeded" {
			return fmt.Errorf("Progressing %+v", pr)
		}
		if av == nil || av.Status != corev1.ConditionFalse || av.Reason != "MinimumReplicasUnavailable" {
			return fmt.Errorf("Available %+v", av)
		}
		return nil
	})
	// Ready at last: the rollout completes after all.
	k.SetReady(func(*corev1.Pod) bool { return true })
	waitComplete(t, c, "stuck")
}

// TestDeploymentRollsBackOnProgressDeadline: a Deployment that opts in goes
// back to its last available revision when a rollout exceeds its progress
// deadline; one that does not stays stuck, as on Kubernetes.
func TestDeploymentRollsBackOnProgressDeadline(t *testing.T) {
	c := controllertest.Start(t)
	c.AddNode(t, "fake-1", nil, nil)
	k := c.StartKubelet(t, "fake-1")
	k.SetReady(func(p *corev1.Pod) bool { return p.Spec.Containers[0].Image != "example.invalid/app:2" })
	ctx := context.Background()
	for _, name := range []string{"self", "plain"} {
		d := newDeployment(name, 2, "example.invalid/app:1")
		d.Spec.ProgressDeadlineSeconds = new(int32)
		*d.Spec.ProgressDeadlineSeconds = 2
		if name == "self" {
			d.Annotations = map[string]string{deployment.RollbackOnFailureAnnotation: "true"}
		}
		if _, err := c.Client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitComplete(t, c, name)
	}
	testutil.Eventually(t, controllertest.Timeout, func() error {
		got, err := c.Client.AppsV1().Deployments(ns).Get(ctx, "self", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if got.Annotations[deployment.LastAvailableRevisionAnnotation] != "1" {
			return fmt.Errorf("annotations %v", got.Annotations)
		}
		return nil
	})
	for _, name := range []string{"self", "plain"} {
		updateDeployment(t, c, name, func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "example.invalid/app:2" })
	}
	// The opted-in one comes back to app:1 and completes on its old
	// revision, renumbered; the other reports the deadline and stays.
	testutil.Eventually(t, controllertest.Timeout, func() error {
		got, err := c.Client.AppsV1().Deployments(ns).Get(ctx, "self", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if img := got.Spec.Template.Spec.Containers[0].Image; img != "example.invalid/app:1" {
			return fmt.Errorf("template image %s", img)
		}
		return nil
	})
	self := waitComplete(t, c, "self")
	if rev := self.Annotations[deployment.RevisionAnnotation]; rev != "3" {
		t.Errorf("revision after the rollback = %q, want 3 (revision 1 renumbered)", rev)
	}
	testutil.Eventually(t, controllertest.Timeout, func() error {
		got, err := c.Client.AppsV1().Deployments(ns).Get(ctx, "plain", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if pr := condition(got, appsv1.DeploymentProgressing); pr == nil || pr.Reason != "ProgressDeadlineExceeded" {
			return fmt.Errorf("Progressing %+v", pr)
		}
		if img := got.Spec.Template.Spec.Containers[0].Image; img != "example.invalid/app:2" {
			t.Fatalf("a Deployment that did not opt in was rolled back to %s", img)
		}
		return nil
	})
}
