package daemonset

import (
	"reflect"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func newDS(mutate func(*appsv1.DaemonSet)) *appsv1.DaemonSet {
	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "d", Namespace: "default", Generation: 3},
		Spec: appsv1.DaemonSetSpec{Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "d"}},
			Spec:       corev1.PodSpec{NodeSelector: map[string]string{"role": "edge"}}}}}
	if mutate != nil {
		mutate(ds)
	}
	return ds
}

func node(name string, lbls map[string]string, taints ...corev1.Taint) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbls}, Spec: corev1.NodeSpec{Taints: taints}}
}

var edge = map[string]string{"role": "edge"}

// Which nodes a daemon pod belongs on, and which it may stay on.
func TestFitNode(t *testing.T) {
	f := newFit(newDS(nil))
	for _, tc := range []struct {
		name           string
		n              *corev1.Node
		run, continue_ bool
	}{
		{"matching", node("a", edge), true, true},
		{"selector mismatch", node("b", map[string]string{"role": "core"}), false, false},
		{"NoSchedule taint", node("c", edge, corev1.Taint{Key: "k", Effect: corev1.TaintEffectNoSchedule}), false, true},
		{"NoExecute taint", node("d", edge, corev1.Taint{Key: "k", Effect: corev1.TaintEffectNoExecute}), false, false},
		{"PreferNoSchedule taint", node("e", edge, corev1.Taint{Key: "k", Effect: corev1.TaintEffectPreferNoSchedule}), true, true},
		{"not-ready NoExecute is tolerated", node("f", edge, corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoExecute}), true, true},
		{"memory pressure is tolerated", node("g", edge, corev1.Taint{Key: corev1.TaintNodeMemoryPressure, Effect: corev1.TaintEffectNoSchedule}), true, true},
		{"cordoned is tolerated", func() *corev1.Node { n := node("h", edge); n.Spec.Unschedulable = true; return n }(), true, true},
	} {
		run, cont := f.node(tc.n)
		if run != tc.run || cont != tc.continue_ {
			t.Errorf("%s: shouldRun %v shouldContinue %v, want %v %v", tc.name, run, cont, tc.run, tc.continue_)
		}
	}
	tolerating := newFit(newDS(func(ds *appsv1.DaemonSet) {
		ds.Spec.Template.Spec.Tolerations = []corev1.Toleration{{Key: "k", Operator: corev1.TolerationOpExists}}
	}))
	if run, _ := tolerating.node(node("d", edge, corev1.Taint{Key: "k", Effect: corev1.TaintEffectNoExecute})); !run {
		t.Error("a template's own toleration is not honoured")
	}
	affinity := newFit(newDS(func(ds *appsv1.DaemonSet) {
		ds.Spec.Template.Spec.NodeSelector = nil
		ds.Spec.Template.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"z1"}}}}}}}}
	}))
	if run, _ := affinity.node(node("z", map[string]string{"zone": "z1"})); !run {
		t.Error("required node affinity not matched")
	}
	if run, _ := affinity.node(node("z", map[string]string{"zone": "z2"})); run {
		t.Error("required node affinity ignored")
	}
}

// A pod is pinned to its node by a metadata.name affinity that replaces the
// template's required terms, and is found on that node before and after
// the scheduler binds it.
func TestPinAndTarget(t *testing.T) {
	spec := newDS(nil).Spec.Template.Spec
	spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "x", Operator: corev1.NodeSelectorOpExists}}}}}}}
	pinToNode(&spec, "n1")
	p := &corev1.Pod{Spec: spec}
	if got := targetNode(p); got != "n1" {
		t.Fatalf("target %q", got)
	}
	if terms := spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms; len(terms) != 1 || len(terms[0].MatchExpressions) != 0 {
		t.Fatalf("terms %+v", terms)
	}
	p.Spec.NodeName = "n2"
	if got := targetNode(p); got != "n2" {
		t.Fatalf("bound target %q", got)
	}
	addTolerations(&spec)
	addTolerations(&spec)
	if len(spec.Tolerations) != len(defaultTolerations(false)) {
		t.Fatalf("tolerations %+v", spec.Tolerations)
	}
}

func TestFenceposts(t *testing.T) {
	for _, tc := range []struct {
		surge, unavail *intstr.IntOrString
		desired        int
		wantS, wantU   int
	}{
		{nil, ptr(intstr.FromInt32(1)), 5, 0, 1},
		{ptr(intstr.FromInt32(0)), ptr(intstr.FromString("30%")), 5, 0, 2},
		{ptr(intstr.FromString("20%")), ptr(intstr.FromInt32(0)), 5, 1, 0},
		{ptr(intstr.FromInt32(0)), ptr(intstr.FromInt32(0)), 5, 0, 1},
	} {
		ds := newDS(func(ds *appsv1.DaemonSet) {
			ds.Spec.UpdateStrategy = appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDaemonSet{MaxSurge: tc.surge, MaxUnavailable: tc.unavail}}
		})
		if s, u := fenceposts(ds, tc.desired); s != tc.wantS || u != tc.wantU {
			t.Errorf("%v/%v of %d: surge %d unavailable %d, want %d %d", tc.surge, tc.unavail, tc.desired, s, u, tc.wantS, tc.wantU)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func daemonPod(name, hash string, ready bool) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default",
		Labels: map[string]string{appsv1.DefaultDaemonSetUniqueLabelKey: hash}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	if ready {
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue,
			LastTransitionTime: metav1.Unix(1, 0)}}
	}
	return p
}

// Status counts by node, from each node's oldest pod.
func TestCalculateStatus(t *testing.T) {
	ds := newDS(nil)
	states := []*nodeState{
		{name: "a", shouldRun: true, shouldContinue: true, pods: []*corev1.Pod{daemonPod("a1", "new", true)}},
		{name: "b", shouldRun: true, shouldContinue: true, pods: []*corev1.Pod{daemonPod("b1", "old", true), daemonPod("b2", "new", false)}},
		{name: "c", shouldRun: true, shouldContinue: true},
		{name: "d", pods: []*corev1.Pod{daemonPod("d1", "new", true)}},
		{name: "e"},
	}
	st := calculateStatus(ds, "new", states, time.Unix(100, 0))
	want := appsv1.DaemonSetStatus{DesiredNumberScheduled: 3, CurrentNumberScheduled: 2, NumberMisscheduled: 1,
		NumberReady: 2, NumberAvailable: 2, UpdatedNumberScheduled: 1, NumberUnavailable: 1, ObservedGeneration: 3}
	if !reflect.DeepEqual(st, want) {
		t.Fatalf("status\n %+v\nwant\n %+v", st, want)
	}
}

func TestUpdatedOnNode(t *testing.T) {
	n, o, ok := updatedOnNode([]*corev1.Pod{daemonPod("a", "old", true), daemonPod("b", "new", true)}, "new")
	if !ok || n.Name != "b" || o.Name != "a" {
		t.Fatalf("new %v old %v ok %v", n, o, ok)
	}
	if _, _, ok := updatedOnNode([]*corev1.Pod{daemonPod("a", "new", true), daemonPod("b", "new", true)}, "new"); ok {
		t.Fatal("two new pods accepted")
	}
}

// Revision data replaces the template, and its hash changes with the
// template and with the collision count.
func TestRevisionHash(t *testing.T) {
	a, err := revisionData(newDS(nil))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := revisionData(newDS(func(ds *appsv1.DaemonSet) { ds.Spec.Template.Labels["v"] = "2" }))
	one := int32(1)
	if hashOf(a, nil) == hashOf(b, nil) || hashOf(a, nil) == hashOf(a, &one) || hashOf(a, nil) != hashOf(a, nil) {
		t.Fatal("hashes do not tell templates and collision counts apart")
	}
	if !sameData(a, a) || sameData(a, b) {
		t.Fatal("sameData")
	}
}
