package apiserver

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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

// TestLimitRangeEnforces: min, max and maxLimitRequestRatio of Container,
// Pod and PersistentVolumeClaim items refuse in Kubernetes' words (403),
// after the defaults are applied; what fits is admitted.
func TestLimitRangeEnforces(t *testing.T) {
	_, cfg := newTestServer(t, 1000)
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bounded"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	q := resource.MustParse
	lr := &corev1.LimitRange{ObjectMeta: metav1.ObjectMeta{Name: "bounds"}, Spec: corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{
		Type:                 corev1.LimitTypeContainer,
		Min:                  corev1.ResourceList{corev1.ResourceCPU: q("100m")},
		Max:                  corev1.ResourceList{corev1.ResourceCPU: q("1")},
		Default:              corev1.ResourceList{corev1.ResourceCPU: q("500m")},
		DefaultRequest:       corev1.ResourceList{corev1.ResourceCPU: q("250m")},
		MaxLimitRequestRatio: corev1.ResourceList{corev1.ResourceCPU: q("4")},
	}, {
		Type: corev1.LimitTypePod,
		Max:  corev1.ResourceList{corev1.ResourceCPU: q("1500m")},
	}, {
		Type: corev1.LimitTypePersistentVolumeClaim,
		Min:  corev1.ResourceList{corev1.ResourceStorage: q("1Gi")},
		Max:  corev1.ResourceList{corev1.ResourceStorage: q("10Gi")},
	}}}}
	if _, err := cs.CoreV1().LimitRanges("bounded").Create(ctx, lr, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := func(name string, cpus ...corev1.ResourceRequirements) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}}
		for i, r := range cpus {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: fmt.Sprintf("c%d", i), Image: "app", Resources: r})
		}
		return p
	}
	cpu := func(req, lim string) corev1.ResourceRequirements {
		r := corev1.ResourceRequirements{Requests: corev1.ResourceList{}, Limits: corev1.ResourceList{}}
		if req != "" {
			r.Requests[corev1.ResourceCPU] = q(req)
		}
		if lim != "" {
			r.Limits[corev1.ResourceCPU] = q(lim)
		}
		return r
	}
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		want string // "" admitted
	}{
		{"defaults fit", pod("fits", corev1.ResourceRequirements{}), ""},
		{"over max", pod("big", cpu("500m", "1200m")), `pods "big" is forbidden: maximum cpu usage per Container is 1, but limit is 1200m`},
		{"two refusals", pod("bigger", cpu("500m", "2")),
			`pods "bigger" is forbidden: [maximum cpu usage per Container is 1, but limit is 2, maximum cpu usage per Pod is 1500m, but limit is 2]`},
		{"under min", pod("small", cpu("50m", "100m")), "minimum cpu usage per Container is 100m, but request is 50m"},
		{"ratio", pod("spiky", cpu("100m", "800m")), "cpu max limit to request ratio per Container is 4, but provided ratio is 8.000000"},
		{"pod max", pod("wide", cpu("1", "1"), cpu("1", "1")), "maximum cpu usage per Pod is 1500m, but limit is 2"},
	} {
		_, err := cs.CoreV1().Pods("bounded").Create(ctx, tc.pod, metav1.CreateOptions{})
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.name, err)
		case tc.want != "" && (!apierrors.IsForbidden(err) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want 403 with %q", tc.name, err, tc.want)
		}
	}
	claim := func(name, size string) *corev1.PersistentVolumeClaim {
		return &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: q(size)}}}}
	}
	_, err := cs.CoreV1().PersistentVolumeClaims("bounded").Create(ctx, claim("huge", "20Gi"), metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "maximum storage usage per PersistentVolumeClaim is 10Gi, but request is 20Gi") {
		t.Errorf("claim over max: %v", err)
	}
	if _, err := cs.CoreV1().PersistentVolumeClaims("bounded").Create(ctx, claim("ok", "2Gi"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}
