package tainteviction

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
)

var t0 = time.Unix(1_000_000, 0)

func taintedNode(name string, key string, added time.Time) *corev1.Node {
	at := metav1.NewTime(added)
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.NodeSpec{Taints: []corev1.Taint{
		{Key: key, Effect: corev1.TaintEffectNoSchedule},
		{Key: key, Effect: corev1.TaintEffectNoExecute, TimeAdded: &at}}}}
}

func podOn(name, node string, tols ...corev1.Toleration) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name)},
		Spec:   corev1.PodSpec{NodeName: node, Tolerations: tols, Containers: []corev1.Container{{Name: "c", Image: "i"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning}}
}

func unreachableFor(secs *int64) corev1.Toleration {
	return corev1.Toleration{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists,
		Effect: corev1.TaintEffectNoExecute, TolerationSeconds: secs}
}

type harness struct {
	c        *Controller
	cs       *fake.Clientset
	clk      *clocktesting.FakeClock
	recorder *record.FakeRecorder
}

func newHarness(t *testing.T, forceAfter time.Duration, objs ...runtime.Object) *harness {
	t.Helper()
	cs := fake.NewSimpleClientset(objs...)
	f := informers.NewSharedInformerFactory(cs, 0)
	rec := record.NewFakeRecorder(100)
	clk := clocktesting.NewFakeClock(t0)
	c, err := New(Config{Client: cs, Pods: f.Core().V1().Pods(), Nodes: f.Core().V1().Nodes(), Recorder: rec,
		ForceDeleteAfter: forceAfter, Clock: clk, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop); f.Shutdown() })
	f.Start(stop)
	if !cache.WaitForCacheSync(stop, f.Core().V1().Pods().Informer().HasSynced, f.Core().V1().Nodes().Informer().HasSynced) {
		t.Fatal("informers did not sync")
	}
	return &harness{c: c, cs: cs, clk: clk, recorder: rec}
}

// syncPod runs one sync of the pod against the informers' view of the
// fake API (the informer is refreshed from the fake client first).
func (h *harness) syncPod(t *testing.T, name string) time.Duration {
	t.Helper()
	p, err := h.cs.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
	if err == nil {
		_ = h.c.cfg.Pods.Informer().GetStore().Update(p)
	}
	next, err := h.c.sync(context.Background(), "default/"+name)
	if err != nil {
		t.Fatal(err)
	}
	return next
}

func (h *harness) pod(t *testing.T, name string) *corev1.Pod {
	t.Helper()
	p, err := h.cs.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// deletes counts the delete calls the controller made, by grace period
// ("graceful" or "0").
func deletes(cs *fake.Clientset) (graceful, force int) {
	for _, a := range cs.Actions() {
		if d, ok := a.(interface {
			GetDeleteOptions() metav1.DeleteOptions
		}); ok && a.GetVerb() == "delete" {
			if g := d.GetDeleteOptions().GracePeriodSeconds; g != nil && *g == 0 {
				force++
			} else {
				graceful++
			}
		}
	}
	return
}

// A pod that does not tolerate the node's NoExecute taint goes at once, with
// the DisruptionTarget condition set before the delete and the
// TaintManagerEviction event.
func TestUntoleratedPodEvictedAtOnce(t *testing.T) {
	h := newHarness(t, 0, taintedNode("n1", corev1.TaintNodeUnreachable, t0), podOn("p", "n1"))
	h.syncPod(t, "p")
	if g, _ := deletes(h.cs); g != 1 {
		t.Fatalf("deletes: %d, want 1 (actions %v)", g, h.cs.Actions())
	}
	var marked bool
	for _, a := range h.cs.Actions() {
		if a.GetVerb() == "update" && a.GetSubresource() == "status" {
			p := a.(interface{ GetObject() runtime.Object }).GetObject().(*corev1.Pod)
			for _, c := range p.Status.Conditions {
				marked = marked || c.Type == corev1.DisruptionTarget && c.Status == corev1.ConditionTrue && c.Reason == ConditionReason
			}
		}
		if a.GetVerb() == "delete" && !marked {
			t.Fatal("deleted before the DisruptionTarget condition was written")
		}
	}
	if !marked {
		t.Fatal("no DisruptionTarget condition written")
	}
	select {
	case ev := <-h.recorder.Events:
		if !strings.Contains(ev, EventReason) || !strings.Contains(ev, "default/p") {
			t.Errorf("event %q", ev)
		}
	default:
		t.Error("no event")
	}
}

// A pod tolerating the taint for N seconds stays until timeAdded+N, counted
// from the end of the taint's stored second (timeAdded is stored to the
// second) rather than from when the controller looked, so a new leader keeps
// the count, then
// goes; a toleration without seconds keeps it for ever; a taint on another
// key or a node without NoExecute taints evicts nothing.
func TestTolerationSecondsCountFromTimeAdded(t *testing.T) {
	h := newHarness(t, 0, taintedNode("n1", corev1.TaintNodeUnreachable, t0.Add(-2*time.Second)),
		podOn("timed", "n1", unreachableFor(ptr.To[int64](3))),
		podOn("forever", "n1", unreachableFor(nil)),
		podOn("other-key", "n1", corev1.Toleration{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists,
			Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](100)}),
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n2"}}, podOn("healthy", "n2"))

	if next := h.syncPod(t, "timed"); next != 2*time.Second {
		t.Errorf("timed pod: look again in %v, want 2s (3s from a taint added at most 1s ago)", next)
	}
	if next := h.syncPod(t, "forever"); next != 0 {
		t.Errorf("forever pod: look again in %v", next)
	}
	h.syncPod(t, "healthy")
	if g, _ := deletes(h.cs); g != 0 {
		t.Fatalf("deleted before due: %v", h.cs.Actions())
	}
	h.syncPod(t, "other-key") // tolerates not-ready only: unreachable evicts it at once
	if g, _ := deletes(h.cs); g != 1 || h.pod(t, "other-key") != nil {
		t.Fatalf("pod tolerating another key: deletes %d", g)
	}

	h.clk.Step(1999 * time.Millisecond)
	h.syncPod(t, "timed")
	if h.pod(t, "timed") == nil {
		t.Fatal("gone")
	}
	if g, _ := deletes(h.cs); g != 1 {
		t.Fatal("timed pod evicted before its toleration ran out")
	}
	h.clk.Step(time.Millisecond)
	h.syncPod(t, "timed")
	h.syncPod(t, "forever")
	if h.pod(t, "timed") != nil || h.pod(t, "forever") == nil || h.pod(t, "healthy") == nil {
		t.Fatalf("after the toleration: timed %v forever %v healthy %v", h.pod(t, "timed") != nil,
			h.pod(t, "forever") != nil, h.pod(t, "healthy") != nil)
	}
}

// Of several matching tolerations the least seconds win; of several
// taints, the first due.
func TestLeastTolerationWins(t *testing.T) {
	taints := []corev1.Taint{
		{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute, TimeAdded: ptr.To(metav1.NewTime(t0))},
		{Key: "custom", Effect: corev1.TaintEffectNoExecute, TimeAdded: ptr.To(metav1.NewTime(t0.Add(time.Second)))},
	}
	tols := []corev1.Toleration{unreachableFor(ptr.To[int64](10)), unreachableFor(ptr.To[int64](5)),
		{Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](2)}}
	due, ok := evictionTime(tols, taints, t0)
	// unreachable: min(10,5,2)=2 from t0; custom: 2 from t0+1s.
	if !ok || !due.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("due %v ok %v, want t0+2s", due.Sub(t0), ok)
	}
	if _, ok := evictionTime([]corev1.Toleration{{Operator: corev1.TolerationOpExists}}, taints, t0); ok {
		t.Fatal("an empty-key Exists toleration without seconds tolerates every taint for ever")
	}
}

// A pod evicted from an unreachable node stays Terminating (its agent cannot
// finish the delete) until ForceDeleteAfter has passed since the taint was
// added, the agents' fence: then it is deleted with grace 0, and not a
// moment before. Without ForceDeleteAfter it stays, as in Kubernetes.
func TestTerminatingPodOfUnreachableNodeForceDeletedAfterFence(t *testing.T) {
	p := podOn("web-0", "n1")
	p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "web", UID: "s", Controller: ptr.To(true)}}
	now := metav1.NewTime(t0)
	p.DeletionTimestamp, p.DeletionGracePeriodSeconds = &now, ptr.To[int64](30)
	h := newHarness(t, 5*time.Second, taintedNode("n1", corev1.TaintNodeUnreachable, t0.Add(-2*time.Second)), p)
	if next := h.syncPod(t, "web-0"); next != 4*time.Second {
		t.Fatalf("look again in %v, want 4s", next)
	}
	h.clk.Step(3999 * time.Millisecond)
	h.syncPod(t, "web-0")
	if _, f := deletes(h.cs); f != 0 {
		t.Fatal("force-deleted before the fence")
	}
	h.clk.Step(time.Millisecond)
	h.syncPod(t, "web-0")
	if _, f := deletes(h.cs); f != 1 || h.pod(t, "web-0") != nil {
		t.Fatalf("not force-deleted after the fence: %v", h.cs.Actions())
	}

	// A not-ready node (its agent is there and finishes deletes itself) and
	// a controller without ForceDeleteAfter leave Terminating pods alone.
	q := podOn("q", "n2")
	q.DeletionTimestamp = &now
	h2 := newHarness(t, 5*time.Second, taintedNode("n2", corev1.TaintNodeNotReady, t0.Add(-time.Hour)), q)
	h2.syncPod(t, "q")
	h3 := newHarness(t, 0, taintedNode("n2", corev1.TaintNodeUnreachable, t0.Add(-time.Hour)), q)
	h3.syncPod(t, "q")
	if _, f := deletes(h2.cs); f != 0 {
		t.Error("force-deleted from a not-ready node")
	}
	if _, f := deletes(h3.cs); f != 0 {
		t.Error("force-deleted without ForceDeleteAfter")
	}
}

// A taint's timeAdded is stored to the second: the count starts at the end
// of that second, or at the controller's first sight of the taint if that
// came earlier (never before the taint was really added), and the first
// sight is kept across later looks and forgotten with the taint.
func TestTaintTimeNeverEarly(t *testing.T) {
	h := newHarness(t, 0)
	fresh := corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoExecute, TimeAdded: ptr.To(metav1.NewTime(t0))}
	old := corev1.Taint{Key: "old", Effect: corev1.TaintEffectNoExecute, TimeAdded: ptr.To(metav1.NewTime(t0.Add(-10 * time.Second)))}
	got := h.c.observe("n", []corev1.Taint{fresh, old}, t0.Add(300*time.Millisecond))
	if !got[0].TimeAdded.Time.Equal(t0.Add(300*time.Millisecond)) || !got[1].TimeAdded.Time.Equal(t0.Add(-9*time.Second)) {
		t.Fatalf("first look: %v %v", got[0].TimeAdded.Sub(t0), got[1].TimeAdded.Sub(t0))
	}
	got = h.c.observe("n", []corev1.Taint{fresh}, t0.Add(2*time.Second))
	if !got[0].TimeAdded.Time.Equal(t0.Add(300 * time.Millisecond)) {
		t.Fatalf("second look moved the count: %v", got[0].TimeAdded.Sub(t0))
	}
	h.c.observe("n", nil, t0.Add(3*time.Second))
	if len(h.c.seen) != 0 {
		t.Fatalf("taints gone, still remembered: %v", h.c.seen)
	}
}
