package apiserver

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// TestLimitRangeDefaults: a pod created in a namespace with a LimitRange
// gets its default limits and requests where its containers set none, with
// Kubernetes' annotation and a QoS class that counts them; what a container
// sets itself is kept, and other namespaces are untouched.
func TestLimitRangeDefaults(t *testing.T) {
	_, cfg := newTestServer(t, 1000)
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "limited"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Only default: the LimitRange's own defaulting makes defaultRequest
	// the same.
	lr := &corev1.LimitRange{ObjectMeta: metav1.ObjectMeta{Name: "mem"}, Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{
		Type:    corev1.LimitTypeContainer,
		Default: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
	}, {
		Type:           corev1.LimitTypeContainer,
		Default:        corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m")},
		DefaultRequest: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")},
	}}}}
	if _, err := cs.CoreV1().LimitRanges("limited").Create(ctx, lr, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := func(name string, res corev1.ResourceRequirements) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "init", Image: "busybox"}},
			Containers:     []corev1.Container{{Name: "app", Image: "app", Resources: res}}}}
	}

	got, err := cs.CoreV1().Pods("limited").Create(ctx, pod("bare", corev1.ResourceRequirements{}), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	app := got.Spec.Containers[0].Resources
	if q := app.Limits[corev1.ResourceMemory]; q.String() != "256Mi" {
		t.Errorf("app memory limit = %s, want the default 256Mi", q.String())
	}
	if q := app.Requests[corev1.ResourceMemory]; q.String() != "256Mi" {
		t.Errorf("app memory request = %s, want 256Mi (defaultRequest from default)", q.String())
	}
	if q := app.Requests[corev1.ResourceCPU]; q.String() != "100m" {
		t.Errorf("app cpu request = %s, want 100m", q.String())
	}
	if q := got.Spec.InitContainers[0].Resources.Limits[corev1.ResourceMemory]; q.String() != "256Mi" {
		t.Errorf("init container memory limit = %s, want 256Mi", q.String())
	}
	const want = "LimitRanger plugin set: cpu, memory request for init container init; cpu, memory limit for init container init; " +
		"cpu, memory request for container app; cpu, memory limit for container app"
	if a := got.Annotations["kubernetes.io/limit-ranger"]; a != want {
		t.Errorf("annotation = %q\nwant         %q", a, want)
	}
	if got.Status.QOSClass != corev1.PodQOSBurstable {
		t.Errorf("qosClass = %s, want Burstable (was BestEffort before the defaults)", got.Status.QOSClass)
	}

	// A container's own limit is kept; its request defaults to that limit
	// (API defaulting, before the LimitRanger), not to the LimitRange's.
	got, err = cs.CoreV1().Pods("limited").Create(ctx, pod("own", corev1.ResourceRequirements{
		Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")}}), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	app = got.Spec.Containers[0].Resources
	if q := app.Limits[corev1.ResourceMemory]; q.String() != "64Mi" {
		t.Errorf("own memory limit = %s, want 64Mi", q.String())
	}
	if q := app.Requests[corev1.ResourceMemory]; q.String() != "64Mi" {
		t.Errorf("own memory request = %s, want 64Mi", q.String())
	}

	// No LimitRange in default: nothing is set.
	got, err = cs.CoreV1().Pods("default").Create(ctx, pod("free", corev1.ResourceRequirements{}), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r := got.Spec.Containers[0].Resources; len(r.Limits) != 0 || len(r.Requests) != 0 || got.Annotations["kubernetes.io/limit-ranger"] != "" {
		t.Errorf("pod in a namespace without LimitRange: resources %+v, annotations %v", r, got.Annotations)
	}
	if got.Status.QOSClass != corev1.PodQOSBestEffort {
		t.Errorf("qosClass = %s, want BestEffort", got.Status.QOSClass)
	}
}
