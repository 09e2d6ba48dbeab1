package agent

import (
	"context"
	"maps"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// serviceEnvTestServices: the kubernetes Service, Services of the pod's
// namespace with and without a ClusterIP, and one of another namespace.
func serviceEnvTestServices() []*corev1.Service {
	svc := func(ns, name, ip string, ports ...corev1.ServicePort) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: corev1.ServiceSpec{ClusterIP: ip, Ports: ports}}
	}
	return []*corev1.Service{
		svc("default", "kubernetes", "127.67.0.1", corev1.ServicePort{Name: "https", Port: 443, Protocol: corev1.ProtocolTCP}),
		svc(envTestNS, "my-web", "127.67.0.10",
			corev1.ServicePort{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP},
			corev1.ServicePort{Name: "dns-udp", Port: 53, Protocol: corev1.ProtocolUDP}),
		svc(envTestNS, "plain", "127.67.0.11", corev1.ServicePort{Port: 8080}), // unnamed, protocol unset
		svc(envTestNS, "v6", "fd00::5", corev1.ServicePort{Port: 6379, Protocol: corev1.ProtocolTCP}),
		svc(envTestNS, "headless", corev1.ClusterIPNone, corev1.ServicePort{Port: 80}),
		{ObjectMeta: metav1.ObjectMeta{Namespace: envTestNS, Name: "ext"},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.com"}},
		svc("elsewhere", "other", "127.67.0.12", corev1.ServicePort{Port: 80}),
	}
}

// kubeletKubernetesEnv is what the kubelet gives every pod for the
// kubernetes Service above.
var kubeletKubernetesEnv = map[string]string{
	"KUBERNETES_SERVICE_HOST":       "127.67.0.1",
	"KUBERNETES_SERVICE_PORT":       "443",
	"KUBERNETES_SERVICE_PORT_HTTPS": "443",
	"KUBERNETES_PORT":               "tcp://127.67.0.1:443",
	"KUBERNETES_PORT_443_TCP":       "tcp://127.67.0.1:443",
	"KUBERNETES_PORT_443_TCP_PROTO": "tcp",
	"KUBERNETES_PORT_443_TCP_PORT":  "443",
	"KUBERNETES_PORT_443_TCP_ADDR":  "127.67.0.1",
}

// TestServiceEnvVarsAsKubelet compares the variables with the set the
// kubelet's envvars.FromServices makes for the same Services, written out.
func TestServiceEnvVarsAsKubelet(t *testing.T) {
	want := maps.Clone(kubeletKubernetesEnv)
	maps.Copy(want, map[string]string{
		"MY_WEB_SERVICE_HOST":         "127.67.0.10",
		"MY_WEB_SERVICE_PORT":         "80",
		"MY_WEB_SERVICE_PORT_HTTP":    "80",
		"MY_WEB_SERVICE_PORT_DNS_UDP": "53",
		"MY_WEB_PORT":                 "tcp://127.67.0.10:80",
		"MY_WEB_PORT_80_TCP":          "tcp://127.67.0.10:80",
		"MY_WEB_PORT_80_TCP_PROTO":    "tcp",
		"MY_WEB_PORT_80_TCP_PORT":     "80",
		"MY_WEB_PORT_80_TCP_ADDR":     "127.67.0.10",
		"MY_WEB_PORT_53_UDP":          "udp://127.67.0.10:53",
		"MY_WEB_PORT_53_UDP_PROTO":    "udp",
		"MY_WEB_PORT_53_UDP_PORT":     "53",
		"MY_WEB_PORT_53_UDP_ADDR":     "127.67.0.10",
		"PLAIN_SERVICE_HOST":          "127.67.0.11",
		"PLAIN_SERVICE_PORT":          "8080",
		"PLAIN_PORT":                  "tcp://127.67.0.11:8080",
		"PLAIN_PORT_8080_TCP":         "tcp://127.67.0.11:8080",
		"PLAIN_PORT_8080_TCP_PROTO":   "tcp",
		"PLAIN_PORT_8080_TCP_PORT":    "8080",
		"PLAIN_PORT_8080_TCP_ADDR":    "127.67.0.11",
		"V6_SERVICE_HOST":             "fd00::5",
		"V6_SERVICE_PORT":             "6379",
		"V6_PORT":                     "tcp://[fd00::5]:6379",
		"V6_PORT_6379_TCP":            "tcp://[fd00::5]:6379",
		"V6_PORT_6379_TCP_PROTO":      "tcp",
		"V6_PORT_6379_TCP_PORT":       "6379",
		"V6_PORT_6379_TCP_ADDR":       "fd00::5",
	})
	if got := serviceEnvVars(serviceEnvTestServices(), envTestNS, true); !maps.Equal(got, want) {
		diffEnv(t, got, want)
	}
	// enableServiceLinks: false keeps the kubernetes Service's only.
	if got := serviceEnvVars(serviceEnvTestServices(), envTestNS, false); !maps.Equal(got, kubeletKubernetesEnv) {
		diffEnv(t, got, kubeletKubernetesEnv)
	}
	// A pod of the default namespace sees kubernetes once, as any Service
	// of its namespace.
	if got := serviceEnvVars(serviceEnvTestServices(), "default", true); !maps.Equal(got, kubeletKubernetesEnv) {
		diffEnv(t, got, kubeletKubernetesEnv)
	}
	// A Service named kubernetes in the pod's namespace wins over the
	// default namespace's, with service links on (the kubelet's map is
	// keyed by name).
	own := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: envTestNS, Name: "kubernetes"},
		Spec: corev1.ServiceSpec{ClusterIP: "127.67.0.99", Ports: []corev1.ServicePort{{Port: 80}}}}
	for _, svcs := range [][]*corev1.Service{
		append(serviceEnvTestServices(), own),
		append([]*corev1.Service{own}, serviceEnvTestServices()...),
	} {
		if got := serviceEnvVars(svcs, envTestNS, true)["KUBERNETES_SERVICE_HOST"]; got != "127.67.0.99" {
			t.Errorf("KUBERNETES_SERVICE_HOST=%q; want the namespace's own Service's 127.67.0.99", got)
		}
	}
}

func diffEnv(t *testing.T, got, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s=%q (set: %t), want %q", k, g, ok, v)
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected %s=%q", k, v)
		}
	}
}

// fakeServices is a ServiceSource over a fixed set.
type fakeServices struct {
	svcs   []*corev1.Service
	synced bool
}

func (f *fakeServices) HasSynced() bool { return f.synced }

func (f *fakeServices) List(ns string) ([]*corev1.Service, error) {
	var out []*corev1.Service
	for _, s := range f.svcs {
		if s.Namespace == ns {
			out = append(out, s)
		}
	}
	return out, nil
}

// The container's own variables replace the Services', $(VAR) sees the
// Services' as the kubelet's expansion does, and the Services' replace the
// image's.
func TestContainerEnvWithServices(t *testing.T) {
	a := &Agent{cfg: Config{Services: &fakeServices{svcs: serviceEnvTestServices(), synced: true}}}
	c := &corev1.Container{Name: "app", Env: []corev1.EnvVar{
		{Name: "MY_WEB_SERVICE_PORT", Value: "8000"},
		{Name: "URL", Value: "http://$(MY_WEB_SERVICE_HOST):$(MY_WEB_SERVICE_PORT)/"},
		{Name: "API", Value: "$(KUBERNETES_SERVICE_HOST)"},
	}}
	image := []string{"PLAIN_SERVICE_HOST=from-image", "PATH=/bin"}
	env, err := a.containerEnv(context.Background(), envTestPod(), c, image, envTestObjects(a))
	if err != nil {
		t.Fatal(err)
	}
	got := envMap(env)
	if len(got) != len(env) {
		t.Fatalf("a name appears twice: %v", env)
	}
	for k, v := range map[string]string{
		"MY_WEB_SERVICE_PORT":     "8000",
		"URL":                     "http://127.67.0.10:8000/",
		"API":                     "127.67.0.1",
		"PLAIN_SERVICE_HOST":      "127.67.0.11",
		"KUBERNETES_SERVICE_HOST": "127.67.0.1",
		"PATH":                    "/bin",
	} {
		if got[k] != v {
			t.Errorf("%s=%q, want %q", k, got[k], v)
		}
	}

	// Service links off: the kubernetes Service's variables only.
	pod := envTestPod()
	pod.Spec.EnableServiceLinks = boolPtr(false)
	env, err = a.containerEnv(context.Background(), pod, &corev1.Container{Name: "app"}, nil, envTestObjects(a))
	if err != nil {
		t.Fatal(err)
	}
	if got := envMap(env); !maps.Equal(got, kubeletKubernetesEnv) {
		diffEnv(t, got, kubeletKubernetesEnv)
	}
}

// A container does not start before the node has listed the Services
// once: it would miss variables a kubelet gives it.
func TestServiceEnvWaitsForFirstList(t *testing.T) {
	a := &Agent{cfg: Config{Services: &fakeServices{}}}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := a.serviceEnv(ctx, envTestPod()); err == nil {
		t.Fatal("no error before the Services were listed")
	}
}
