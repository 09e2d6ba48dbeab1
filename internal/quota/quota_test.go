package quota

import (
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var q = resource.MustParse

func str(l corev1.ResourceList, n corev1.ResourceName) string {
	v := l[n]
	return v.String()
}

func pod(name string, req, lim corev1.ResourceList) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"}, Spec: corev1.PodSpec{
		Containers: []corev1.Container{{Name: "app", Resources: corev1.ResourceRequirements{Requests: req, Limits: lim}}}}}
}

func mkQuota(hard, used corev1.ResourceList, scopes ...corev1.ResourceQuotaScope) *corev1.ResourceQuota {
	return &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "q", Namespace: "ns"},
		Spec: corev1.ResourceQuotaSpec{Hard: hard, Scopes: scopes}, Status: corev1.ResourceQuotaStatus{Hard: hard, Used: used}}
}

// TestPodUsage: what a pod costs, as Kubernetes' pod evaluator counts it.
func TestPodUsage(t *testing.T) {
	p := pod("p", corev1.ResourceList{corev1.ResourceCPU: q("250m"), corev1.ResourceMemory: q("64Mi"), "example.com/gpu": q("1")},
		corev1.ResourceList{corev1.ResourceCPU: q("500m")})
	u, err := For(schema.GroupResource{Resource: "pods"}).Usage(p)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[corev1.ResourceName]string{"pods": "1", "count/pods": "1", "cpu": "250m", "requests.cpu": "250m",
		"limits.cpu": "500m", "memory": "64Mi", "requests.memory": "64Mi", "requests.example.com/gpu": "1"} {
		if got := u[name]; got.String() != want {
			t.Errorf("usage[%s] = %s, want %s", name, got.String(), want)
		}
	}
	if _, ok := u["limits.memory"]; ok {
		t.Error("limits.memory counted without a memory limit")
	}
	p.Status.Phase = corev1.PodSucceeded
	u, _ = For(schema.GroupResource{Resource: "pods"}).Usage(p)
	if len(u) != 1 || str(u, "count/pods") != "1" {
		t.Errorf("a finished pod costs %v, want only count/pods", u)
	}
	gone := pod("g", nil, nil)
	past, grace := metav1.NewTime(time.Now().Add(-time.Minute)), int64(30)
	gone.DeletionTimestamp, gone.DeletionGracePeriodSeconds = &past, &grace
	if u, _ := For(schema.GroupResource{Resource: "pods"}).Usage(gone); len(u) != 1 {
		t.Errorf("a pod stuck terminating past its grace costs %v", u)
	}
}

// TestCheckScopes: a BestEffort-scoped quota limits only BestEffort pods;
// a Terminating one only pods with activeDeadlineSeconds.
func TestCheckScopes(t *testing.T) {
	ev := For(schema.GroupResource{Resource: "pods"})
	be := mkQuota(corev1.ResourceList{"pods": q("0")}, corev1.ResourceList{"pods": q("0")}, corev1.ResourceQuotaScopeBestEffort)
	if _, err := Check([]*corev1.ResourceQuota{be}, ev, pod("burst", corev1.ResourceList{corev1.ResourceCPU: q("1")}, nil), nil); err != nil {
		t.Errorf("BestEffort quota refused a Burstable pod: %v", err)
	}
	var r *Refusal
	if _, err := Check([]*corev1.ResourceQuota{be}, ev, pod("be", nil, nil), nil); !errors.As(err, &r) || !strings.Contains(r.Message, "exceeded quota: q, requested: pods=1, used: pods=0, limited: pods=0") {
		t.Errorf("BestEffort quota and a BestEffort pod: %v", err)
	}
	term := mkQuota(corev1.ResourceList{"pods": q("0")}, corev1.ResourceList{"pods": q("0")}, corev1.ResourceQuotaScopeTerminating)
	if _, err := Check([]*corev1.ResourceQuota{term}, ev, pod("long", nil, nil), nil); err != nil {
		t.Errorf("Terminating quota refused a pod without a deadline: %v", err)
	}
	deadline := pod("job", nil, nil)
	d := int64(60)
	deadline.Spec.ActiveDeadlineSeconds = &d
	if _, err := Check([]*corev1.ResourceQuota{term}, ev, deadline, nil); !errors.As(err, &r) {
		t.Errorf("Terminating quota admitted a pod with a deadline: %v", err)
	}
	// PriorityClass by scopeSelector: In names the classes limited.
	byClass := mkQuota(corev1.ResourceList{"pods": q("0")}, corev1.ResourceList{"pods": q("0")})
	byClass.Spec.ScopeSelector = &corev1.ScopeSelector{MatchExpressions: []corev1.ScopedResourceSelectorRequirement{{
		ScopeName: corev1.ResourceQuotaScopePriorityClass, Operator: corev1.ScopeSelectorOpIn, Values: []string{"high"}}}}
	if _, err := Check([]*corev1.ResourceQuota{byClass}, ev, pod("low", nil, nil), nil); err != nil {
		t.Errorf("PriorityClass In [high] limited a pod of no class: %v", err)
	}
	high := pod("high", nil, nil)
	high.Spec.PriorityClassName = "high"
	if _, err := Check([]*corev1.ResourceQuota{byClass}, ev, high, nil); !errors.As(err, &r) {
		t.Errorf("PriorityClass In [high] admitted a high pod: %v", err)
	}
	// Scopes apply to pods only: a scoped quota does not count Services.
	scopedSvc := mkQuota(corev1.ResourceList{"services": q("0")}, corev1.ResourceList{"services": q("0")}, corev1.ResourceQuotaScopeBestEffort)
	if _, err := Check([]*corev1.ResourceQuota{scopedSvc}, For(schema.GroupResource{Resource: "services"}), &corev1.Service{}, nil); err != nil {
		t.Errorf("a scoped quota limited a Service: %v", err)
	}
}

// TestUsageCounts: the controller's recount of a namespace's objects,
// zero for names nothing uses, count/<resource>.<group> for any resource.
func TestUsageCounts(t *testing.T) {
	qq := mkQuota(corev1.ResourceList{"pods": q("10"), "requests.cpu": q("4"), "count/deployments.apps": q("3")}, nil)
	qq.Status = corev1.ResourceQuotaStatus{}
	if got := ResourcesOf(qq.Spec.Hard); len(got) != 2 || got[0] != (schema.GroupResource{Group: "apps", Resource: "deployments"}) || got[1].Resource != "pods" {
		t.Fatalf("ResourcesOf = %v", got)
	}
	pods := []runtime.Object{pod("a", corev1.ResourceList{corev1.ResourceCPU: q("1")}, nil), pod("b", corev1.ResourceList{corev1.ResourceCPU: q("500m")}, nil)}
	u, err := Usage(qq, For(schema.GroupResource{Resource: "pods"}), pods)
	if err != nil {
		t.Fatal(err)
	}
	if str(u, "pods") != "2" || str(u, "requests.cpu") != "1500m" || len(u) != 2 {
		t.Errorf("pod usage = %v", u)
	}
	u, err = Usage(qq, For(schema.GroupResource{Group: "apps", Resource: "deployments"}), nil)
	if err != nil || str(u, "count/deployments.apps") != "0" || len(u) != 1 {
		t.Errorf("deployments usage with none = %v, %v", u, err)
	}
}
