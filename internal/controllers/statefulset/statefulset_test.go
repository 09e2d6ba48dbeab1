package statefulset

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/skiffhq/skiff/internal/controllers/controller"
)

// harness drives one controller against a fake clientset: before each
// sync its listers are rebuilt from the clientset, so each sync sees every
// earlier write, as a caught-up informer would.
type harness struct {
	t  *testing.T
	cs *fake.Clientset
	c  *Controller
}

func newHarness(t *testing.T, set *appsv1.StatefulSet) *harness {
	cs := fake.NewClientset()
	if _, err := cs.AppsV1().StatefulSets(set.Namespace).Create(context.Background(), set, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, cs: cs, c: &Controller{client: cs, recorder: record.NewFakeRecorder(1000), log: slog.Default(),
		queue: controller.NewQueue("statefulset-test")}}
}

func (h *harness) refresh() {
	ctx := context.Background()
	idx := func() cache.Indexer {
		return cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	}
	sets, pods, revs, claims := idx(), idx(), idx(), idx()
	sl, _ := h.cs.AppsV1().StatefulSets("").List(ctx, metav1.ListOptions{})
	for i := range sl.Items {
		_ = sets.Add(&sl.Items[i])
	}
	pl, _ := h.cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	for i := range pl.Items {
		_ = pods.Add(&pl.Items[i])
	}
	rl, _ := h.cs.AppsV1().ControllerRevisions("").List(ctx, metav1.ListOptions{})
	for i := range rl.Items {
		_ = revs.Add(&rl.Items[i])
	}
	cl, _ := h.cs.CoreV1().PersistentVolumeClaims("").List(ctx, metav1.ListOptions{})
	for i := range cl.Items {
		_ = claims.Add(&cl.Items[i])
	}
	h.c.sets, h.c.pods = appslisters.NewStatefulSetLister(sets), corelisters.NewPodLister(pods)
	h.c.revisions, h.c.claims = appslisters.NewControllerRevisionLister(revs), corelisters.NewPersistentVolumeClaimLister(claims)
}

func (h *harness) sync() {
	h.t.Helper()
	h.refresh()
	if err := h.c.sync(context.Background(), "default/db"); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) pods() map[string]*corev1.Pod {
	pl, _ := h.cs.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{})
	out := map[string]*corev1.Pod{}
	for i := range pl.Items {
		out[pl.Items[i].Name] = &pl.Items[i]
	}
	return out
}

func (h *harness) names() []string {
	var out []string
	for n := range h.pods() {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func (h *harness) ready(names ...string) {
	h.t.Helper()
	for _, n := range names {
		p, err := h.cs.CoreV1().Pods("default").Get(context.Background(), n, metav1.GetOptions{})
		if err != nil {
			h.t.Fatal(err)
		}
		p.Status.Phase = corev1.PodRunning
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
		if _, err := h.cs.CoreV1().Pods("default").UpdateStatus(context.Background(), p, metav1.UpdateOptions{}); err != nil {
			h.t.Fatal(err)
		}
	}
}

func (h *harness) set() *appsv1.StatefulSet {
	s, err := h.cs.AppsV1().StatefulSets("default").Get(context.Background(), "db", metav1.GetOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

func (h *harness) update(fn func(*appsv1.StatefulSet)) {
	h.t.Helper()
	s := h.set()
	fn(s)
	s.Generation++
	if _, err := h.cs.AppsV1().StatefulSets("default").Update(context.Background(), s, metav1.UpdateOptions{}); err != nil {
		h.t.Fatal(err)
	}
}

func newSet(n int32, policy appsv1.PodManagementPolicyType) *appsv1.StatefulSet {
	zero := int32(0)
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "default", UID: "set-uid", Generation: 1},
		Spec: appsv1.StatefulSetSpec{
			Replicas: &n, ServiceName: "db-headless", PodManagementPolicy: policy,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: &zero}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "db"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "db", Image: "db:1",
					VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}}}}},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{ObjectMeta: metav1.ObjectMeta{Name: "data"},
				Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}}}},
		},
	}
}

func want(t *testing.T, step string, got []string, w ...string) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(w) {
		t.Fatalf("%s: pods %v, want %v", step, got, w)
	}
}

// TestOrderedReady: pods come one at a time, each with its claim made
// first, its stable name, hostname and subdomain; scale-down takes the
// highest ordinal first, one at a time, and keeps the claims.
func TestOrderedReady(t *testing.T) {
	h := newHarness(t, newSet(3, appsv1.OrderedReadyPodManagement))
	h.sync()
	want(t, "first sync", h.names(), "db-0")
	h.sync()
	want(t, "db-0 not ready", h.names(), "db-0")
	p := h.pods()["db-0"]
	if p.Spec.Hostname != "db-0" || p.Spec.Subdomain != "db-headless" || p.Labels[podNameLabel] != "db-0" ||
		p.Labels[podIndexLabel] != "0" || p.Labels[appsv1.ControllerRevisionHashLabelKey] == "" {
		t.Errorf("pod identity: hostname %q subdomain %q labels %v", p.Spec.Hostname, p.Spec.Subdomain, p.Labels)
	}
	if v := p.Spec.Volumes; len(v) != 1 || v[0].PersistentVolumeClaim == nil || v[0].PersistentVolumeClaim.ClaimName != "data-db-0" {
		t.Errorf("pod volumes = %+v", v)
	}
	if ref := metav1.GetControllerOf(p); ref == nil || ref.Kind != "StatefulSet" || ref.Name != "db" {
		t.Errorf("pod controller = %+v", ref)
	}
	if _, err := h.cs.CoreV1().PersistentVolumeClaims("default").Get(context.Background(), "data-db-0", metav1.GetOptions{}); err != nil {
		t.Errorf("claim of db-0: %v", err)
	}
	h.ready("db-0")
	h.sync()
	want(t, "db-0 ready", h.names(), "db-0", "db-1")
	h.ready("db-1")
	h.sync()
	want(t, "db-1 ready", h.names(), "db-0", "db-1", "db-2")
	h.ready("db-2")
	h.sync()
	st := h.set().Status
	if st.Replicas != 3 || st.ReadyReplicas != 3 || st.AvailableReplicas != 3 || st.CurrentReplicas != 3 || st.UpdatedReplicas != 3 ||
		st.CurrentRevision == "" || st.CurrentRevision != st.UpdateRevision || st.ObservedGeneration != 1 {
		t.Errorf("status = %+v", st)
	}
	revs, _ := h.cs.AppsV1().ControllerRevisions("default").List(context.Background(), metav1.ListOptions{})
	if len(revs.Items) != 1 || revs.Items[0].Name != st.UpdateRevision || revs.Items[0].Revision != 1 {
		t.Errorf("revisions = %+v", revs.Items)
	}

	// A failed pod is replaced under the same name, keeping its claim.
	h.update(func(s *appsv1.StatefulSet) { one := int32(1); s.Spec.Replicas = &one })
	h.sync()
	want(t, "scale to 1", h.names(), "db-0", "db-1")
	h.sync()
	want(t, "scale to 1, second step", h.names(), "db-0")
	claims, _ := h.cs.CoreV1().PersistentVolumeClaims("default").List(context.Background(), metav1.ListOptions{})
	if len(claims.Items) != 3 {
		t.Errorf("claims after scale-down: %d, want all 3 kept", len(claims.Items))
	}
}

// TestOrderedWaitsForUnhealthy: scale-down waits while another pod is not
// Ready.
func TestOrderedWaitsForUnhealthy(t *testing.T) {
	h := newHarness(t, newSet(2, appsv1.OrderedReadyPodManagement))
	h.sync()
	h.ready("db-0")
	h.sync()
	h.ready("db-1")
	h.update(func(s *appsv1.StatefulSet) { one := int32(1); s.Spec.Replicas = &one })
	p := h.pods()["db-0"]
	p.Status.Conditions[0].Status = corev1.ConditionFalse
	if _, err := h.cs.CoreV1().Pods("default").UpdateStatus(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.sync()
	want(t, "db-0 unready", h.names(), "db-0", "db-1")
	h.ready("db-0")
	h.sync()
	want(t, "db-0 ready again", h.names(), "db-0")
}

// TestParallel: every pod at once, and every condemned one at once.
func TestParallel(t *testing.T) {
	h := newHarness(t, newSet(3, appsv1.ParallelPodManagement))
	h.sync()
	want(t, "parallel", h.names(), "db-0", "db-1", "db-2")
	h.update(func(s *appsv1.StatefulSet) { zero := int32(0); s.Spec.Replicas = &zero })
	h.sync()
	want(t, "parallel scale to 0", h.names())
}

// TestRollingUpdatePartition: a new template rolls from the highest
// ordinal down to the partition, one Ready pod at a time; the ones below
// keep the current revision until the partition drops.
func TestRollingUpdatePartition(t *testing.T) {
	h := newHarness(t, newSet(3, appsv1.OrderedReadyPodManagement))
	for i := 0; i < 3; i++ {
		h.sync()
		h.ready(fmt.Sprintf("db-%d", i))
	}
	h.sync()
	old := h.set().Status.CurrentRevision
	h.update(func(s *appsv1.StatefulSet) {
		one := int32(1)
		s.Spec.Template.Spec.Containers[0].Image = "db:2"
		s.Spec.UpdateStrategy.RollingUpdate.Partition = &one
	})
	h.sync()
	want(t, "db-2 deleted for the update", h.names(), "db-0", "db-1")
	h.sync()
	want(t, "db-2 recreated", h.names(), "db-0", "db-1", "db-2")
	st := h.set().Status
	if st.UpdateRevision == old || st.CurrentRevision != old {
		t.Fatalf("revisions: current %s update %s, old %s", st.CurrentRevision, st.UpdateRevision, old)
	}
	if p := h.pods()["db-2"]; p.Spec.Containers[0].Image != "db:2" || p.Labels[appsv1.ControllerRevisionHashLabelKey] != st.UpdateRevision {
		t.Errorf("db-2: image %s revision %s", p.Spec.Containers[0].Image, p.Labels[appsv1.ControllerRevisionHashLabelKey])
	}
	h.sync()
	want(t, "db-2 not ready: db-1 waits", h.names(), "db-0", "db-1", "db-2")
	h.ready("db-2")
	h.sync()
	h.sync()
	want(t, "db-1, at the partition, updated", h.names(), "db-0", "db-1", "db-2")
	if p := h.pods()["db-1"]; p.Spec.Containers[0].Image != "db:2" {
		t.Errorf("db-1 image %s, want db:2 (ordinal 1 is at the partition)", p.Spec.Containers[0].Image)
	}
	h.ready("db-1")
	h.sync()
	if p := h.pods()["db-0"]; p.Spec.Containers[0].Image != "db:1" {
		t.Errorf("db-0 image %s, want db:1 below the partition", p.Spec.Containers[0].Image)
	}
	// Partition 0: db-0 follows, and the update revision becomes current.
	h.update(func(s *appsv1.StatefulSet) { zero := int32(0); s.Spec.UpdateStrategy.RollingUpdate.Partition = &zero })
	h.sync()
	h.sync()
	h.ready("db-0")
	h.sync()
	st = h.set().Status
	if p := h.pods()["db-0"]; p.Spec.Containers[0].Image != "db:2" {
		t.Errorf("db-0 image %s after partition 0", p.Spec.Containers[0].Image)
	}
	if st.CurrentRevision != st.UpdateRevision || st.UpdatedReplicas != 3 || st.CurrentReplicas != 3 {
		t.Errorf("status after the rollout = %+v", st)
	}
}

// TestOnDelete: a new template changes no pod until it is deleted.
func TestOnDelete(t *testing.T) {
	set := newSet(2, appsv1.ParallelPodManagement)
	set.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType}
	h := newHarness(t, set)
	h.sync()
	h.ready("db-0", "db-1")
	h.update(func(s *appsv1.StatefulSet) { s.Spec.Template.Spec.Containers[0].Image = "db:2" })
	h.sync()
	h.sync()
	for _, p := range h.pods() {
		if p.Spec.Containers[0].Image != "db:1" {
			t.Fatalf("%s updated without a delete", p.Name)
		}
	}
	if err := h.cs.CoreV1().Pods("default").Delete(context.Background(), "db-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	h.sync()
	if p := h.pods()["db-1"]; p == nil || p.Spec.Containers[0].Image != "db:2" {
		t.Fatalf("db-1 after delete: %+v", p)
	}
	h.sync() // the status counts what the last sync saw
	if st := h.set().Status; st.UpdatedReplicas != 1 || st.CurrentRevision == st.UpdateRevision {
		t.Errorf("status = %+v", st)
	}
}

// TestClaimRetentionWhenScaled: whenScaled Delete gives a condemned pod's
// claims to the pod, so they go with it.
func TestClaimRetentionWhenScaled(t *testing.T) {
	set := newSet(2, appsv1.ParallelPodManagement)
	set.Spec.PersistentVolumeClaimRetentionPolicy = &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
		WhenDeleted: appsv1.DeletePersistentVolumeClaimRetentionPolicyType, WhenScaled: appsv1.DeletePersistentVolumeClaimRetentionPolicyType}
	h := newHarness(t, set)
	h.sync()
	c0, _ := h.cs.CoreV1().PersistentVolumeClaims("default").Get(context.Background(), "data-db-0", metav1.GetOptions{})
	if ref := metav1.GetControllerOf(c0); ref == nil || ref.Name != "db" {
		t.Errorf("claim owner with whenDeleted Delete = %+v", c0.OwnerReferences)
	}
	h.update(func(s *appsv1.StatefulSet) { one := int32(1); s.Spec.Replicas = &one })
	h.sync()
	c1, _ := h.cs.CoreV1().PersistentVolumeClaims("default").Get(context.Background(), "data-db-1", metav1.GetOptions{})
	found := false
	for _, r := range c1.OwnerReferences {
		found = found || (r.Kind == "Pod" && r.Name == "db-1")
	}
	if !found {
		t.Errorf("condemned claim owners = %+v", c1.OwnerReferences)
	}
}

// TestOrderedWaitsForMinReadySeconds: the next ordinal waits until the
// one before has been Ready for minReadySeconds.
func TestOrderedWaitsForMinReadySeconds(t *testing.T) {
	set := newSet(2, appsv1.OrderedReadyPodManagement)
	set.Spec.MinReadySeconds = 30
	h := newHarness(t, set)
	h.sync()
	h.ready("db-0")
	h.sync()
	want(t, "db-0 ready, not available", h.names(), "db-0")
	p := h.pods()["db-0"]
	p.Status.Conditions[0].LastTransitionTime = metav1.NewTime(time.Now().Add(-time.Minute))
	if _, err := h.cs.CoreV1().Pods("default").UpdateStatus(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.sync()
	want(t, "db-0 available", h.names(), "db-0", "db-1")
}

// TestAdoptsOrphanAndLabelsIt: an orphan pod named for an ordinal and
// matching the selector is adopted and given its identity labels.
func TestAdoptsOrphanAndLabelsIt(t *testing.T) {
	set := newSet(1, appsv1.ParallelPodManagement)
	h := newHarness(t, set)
	orphan := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "db-0", Namespace: "default", Labels: map[string]string{"app": "db"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "db", Image: "db:1"}}}}
	if _, err := h.cs.CoreV1().Pods("default").Create(context.Background(), orphan, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.sync()
	p := h.pods()["db-0"]
	if ref := metav1.GetControllerOf(p); ref == nil || ref.Name != "db" {
		t.Errorf("orphan not adopted: %+v", p.OwnerReferences)
	}
	h.sync()
	p = h.pods()["db-0"]
	if p.Labels[podNameLabel] != "db-0" || p.Labels[podIndexLabel] != "0" {
		t.Errorf("labels = %v", p.Labels)
	}
}
