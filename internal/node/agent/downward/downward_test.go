package downward

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const testNS = "team"

func testPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: testNS, UID: "uid-123",
			Labels:      map[string]string{"app": "web", "tier": "front"},
			Annotations: map[string]string{"example.com/owner": "ops"}},
		Spec: corev1.PodSpec{NodeName: "node-a", ServiceAccountName: "builder"},
		Status: corev1.PodStatus{PodIP: "127.66.0.9", PodIPs: []corev1.PodIP{{IP: "127.66.0.9"}},
			HostIP: "127.0.0.1", HostIPs: []corev1.HostIP{{IP: "127.0.0.1"}}},
	}
}

func TestPodField(t *testing.T) {
	pod := testPod()
	tests := []struct{ path, want string }{
		{"metadata.name", "web-0"},
		{"metadata.namespace", testNS},
		{"metadata.uid", "uid-123"},
		{"metadata.labels['app']", "web"},
		{"metadata.labels['missing']", ""},
		{"metadata.annotations['example.com/owner']", "ops"},
		{"metadata.labels", "app=\"web\"\ntier=\"front\""},
		{"metadata.annotations", "example.com/owner=\"ops\""},
		{"spec.nodeName", "node-a"},
		{"spec.serviceAccountName", "builder"},
		{"status.podIP", "127.66.0.9"},
		{"status.podIPs", "127.66.0.9"},
		{"status.hostIP", "127.0.0.1"},
		{"status.hostIPs", "127.0.0.1"},
	}
	for _, tt := range tests {
		got, err := PodField(pod, tt.path)
		if err != nil || got != tt.want {
			t.Errorf("PodField(%q) = %q, %v; want %q", tt.path, got, err, tt.want)
		}
	}
	for _, path := range []string{"spec.containers", "metadata.generateName", ""} {
		if _, err := PodField(pod, path); err == nil || !strings.Contains(err.Error(), "unsupported") {
			t.Errorf("PodField(%q) error = %v, want unsupported", path, err)
		}
	}
}

func TestFormatMap(t *testing.T) {
	tests := []struct {
		in   map[string]string
		want string
	}{
		{nil, ""},
		{map[string]string{"b": "2", "a": "1"}, "a=\"1\"\nb=\"2\""},
		{map[string]string{"k": "say \"hi\"\nbye"}, `k="say \"hi\"\nbye"`},
	}
	for _, tt := range tests {
		if got := formatMap(tt.in); got != tt.want {
			t.Errorf("formatMap(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestResourceField(t *testing.T) {
	allocatable := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("4"),
		corev1.ResourceMemory: resource.MustParse("8Gi"),
	}
	limited := &corev1.Container{Name: "app", Resources: corev1.ResourceRequirements{
		Limits: corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("500m"),
			corev1.ResourceMemory: resource.MustParse("128Mi"),
		},
		Requests: corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("250m"),
			corev1.ResourceMemory: resource.MustParse("100M"),
		},
	}}
	bare := &corev1.Container{Name: "app"}
	ref := func(res, divisor string) *corev1.ResourceFieldSelector {
		r := &corev1.ResourceFieldSelector{Resource: res}
		if divisor != "" {
			r.Divisor = resource.MustParse(divisor)
		}
		return r
	}
	tests := []struct {
		name string
		c    *corev1.Container
		ref  *corev1.ResourceFieldSelector
		want string
	}{
		{"memory limit in Mi", limited, ref("limits.memory", "1Mi"), "128"},
		{"memory limit in bytes", limited, ref("limits.memory", ""), "134217728"},
		{"cpu limit in millicores", limited, ref("limits.cpu", "1m"), "500"},
		{"cpu limit rounds up to cores", limited, ref("limits.cpu", ""), "1"},
		{"cpu request in millicores", limited, ref("requests.cpu", "1m"), "250"},
		{"memory request rounds up", limited, ref("requests.memory", "1Mi"), "96"}, // 100e6/2^20 = 95.37
		{"missing memory limit is allocatable", bare, ref("limits.memory", "1Mi"), "8192"},
		{"missing cpu limit is allocatable", bare, ref("limits.cpu", "1m"), "4000"},
		{"own container by name", limited, &corev1.ResourceFieldSelector{ContainerName: "app", Resource: "limits.cpu", Divisor: resource.MustParse("1m")}, "500"},
	}
	for _, tt := range tests {
		got, err := ResourceField(tt.c, tt.ref, allocatable)
		if err != nil || got != tt.want {
			t.Errorf("%s: ResourceField(%s) = %q, %v; want %q", tt.name, tt.ref.Resource, got, err, tt.want)
		}
	}
	for _, r := range []*corev1.ResourceFieldSelector{
		{Resource: "cpu"},
		{Resource: "limits.ephemeral-storage"}, // neither a limit nor allocatable
		{ContainerName: "sidecar", Resource: "limits.cpu"},
	} {
		if got, err := ResourceField(limited, r, allocatable); err == nil {
			t.Errorf("ResourceField(%+v) = %q, want an error", r, got)
		}
	}
}

func TestResourceFieldMissingRequest(t *testing.T) {
	// Only limits fall back to the node's allocatable; an unset request is
	// 0 (k8s.io/kubernetes/pkg/api/v1/resource ExtractContainerResourceValue
	// after MergeContainerResourceLimits, which fills limits only).
	allocatable := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("8Gi")}
	got, err := ResourceField(&corev1.Container{Name: "app"}, &corev1.ResourceFieldSelector{Resource: "requests.cpu", Divisor: resource.MustParse("1m")}, allocatable)
	if err != nil {
		t.Fatal(err)
	}
	if got != "0" {
		t.Errorf("ResourceField: an unset request falls back to the node's allocatable: requests.cpu = %q, want %q", got, "0")
	}
}
