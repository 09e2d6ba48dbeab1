package apiserver

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// TestPriorityAdmission: the system classes exist from the start; a pod's
// class becomes its priority and preemption policy; without a class the pod
// gets 0 until a globalDefault class exists, then that class; an unknown
// class, a contradicting priority, a second default and an out-of-range or
// reserved class are refused with Kubernetes' codes.
func TestPriorityAdmission(t *testing.T) {
	_, cfg := newTestServer(t, 1000)
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pcs := cs.SchedulingV1().PriorityClasses()
	pods := cs.CoreV1().Pods("default")

	for name, want := range map[string]int32{"system-cluster-critical": 2000000000, "system-node-critical": 2000001000} {
		pc, err := pcs.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("built-in class %s: %v", name, err)
		}
		if pc.Value != want || pc.PreemptionPolicy == nil || *pc.PreemptionPolicy != corev1.PreemptLowerPriority {
			t.Errorf("%s = %d %v, want %d PreemptLowerPriority", name, pc.Value, pc.PreemptionPolicy, want)
		}
	}
	pod := func(name, class string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.PodSpec{PriorityClassName: class, Containers: []corev1.Container{{Name: "app", Image: "app"}}}}
	}
	check := func(p *corev1.Pod, class string, prio int32, policy corev1.PreemptionPolicy) {
		t.Helper()
		if p.Spec.PriorityClassName != class || p.Spec.Priority == nil || *p.Spec.Priority != prio ||
			p.Spec.PreemptionPolicy == nil || *p.Spec.PreemptionPolicy != policy {
			t.Errorf("pod %s: class %q priority %v policy %v, want %q %d %s", p.Name, p.Spec.PriorityClassName,
				p.Spec.Priority, p.Spec.PreemptionPolicy, class, prio, policy)
		}
	}

	got, err := pods.Create(ctx, pod("none", ""), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	check(got, "", 0, corev1.PreemptLowerPriority)

	never := corev1.PreemptNever
	if _, err := pcs.Create(ctx, &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: "batch"},
		Value: 100, GlobalDefault: true, PreemptionPolicy: &never}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := pcs.Create(ctx, &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: "high"}, Value: 1000}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err = pods.Create(ctx, pod("defaulted", ""), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	check(got, "batch", 100, corev1.PreemptNever)
	got, err = pods.Create(ctx, pod("named", "high"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	check(got, "high", 1000, corev1.PreemptLowerPriority)
	got, err = pods.Create(ctx, pod("critical", "system-cluster-critical"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	check(got, "system-cluster-critical", 2000000000, corev1.PreemptLowerPriority)

	_, err = pods.Create(ctx, pod("unknown", "nope"), metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "no PriorityClass with name nope was found") {
		t.Errorf("unknown class: %v, want Forbidden naming it", err)
	}
	bad := pod("contradicts", "high")
	bad.Spec.Priority = new(int32)
	*bad.Spec.Priority = 5
	if _, err := pods.Create(ctx, bad, metav1.CreateOptions{}); !apierrors.IsForbidden(err) ||
		!strings.Contains(err.Error(), "must not be provided in pod spec") {
		t.Errorf("contradicting priority: %v, want Forbidden", err)
	}

	for _, tc := range []struct {
		name string
		pc   *schedulingv1.PriorityClass
		is   func(error) bool
		msg  string
	}{
		{"second default", &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: "other"}, Value: 5, GlobalDefault: true},
			apierrors.IsForbidden, "Only one default can exist"},
		{"too high", &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: "huge"}, Value: 1000000001},
			apierrors.IsInvalid, "maximum allowed value of a user defined priority is 1000000000"},
		{"reserved prefix", &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: "system-mine"}, Value: 5},
			apierrors.IsInvalid, "reserved for system use only"},
	} {
		_, err := pcs.Create(ctx, tc.pc, metav1.CreateOptions{})
		if !tc.is(err) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.msg)
		}
	}
	high, err := pcs.Get(ctx, "high", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	high.Value = 2000
	if _, err := pcs.Update(ctx, high, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("changing a class's value: %v, want Invalid", err)
	}
}
