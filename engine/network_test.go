package engine

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/skiffhq/skiff/internal/testutil"
	"github.com/skiffhq/skiff/internal/wasmbuild"
)

// networkEngine is an engine on ranges of its own (pods 127.85.0.0/22,
// Services 127.86.0.0/16), so these tests can run beside others.
func networkEngine(t *testing.T) (*Engine, kubernetes.Interface) {
	t.Helper()
	e := startEngine(t, Config{DataDir: t.TempDir(), NodeName: "net-1", PodCIDR: "127.85.0.0/22",
		ServiceCIDR: "127.86.0.0/16", CrashLoopBackOff: 200 * time.Millisecond})
	cs, err := e.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	return e, cs
}

func isReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// TestWasmPodTCPProbeNeedsAListener: a tcpSocket readiness probe passes for
// a module that serves its port and keeps failing for one that never
// accepts, as on Kubernetes: the port is not open until the module uses it.
// Both modules are built for any WASI runtime (no skiff SDK).
func TestWasmPodTCPProbeNeedsAListener(t *testing.T) {
	host := testRegistry(t, map[string][]byte{"portable:1": wasmbuild.Build(t, "../runtime/wasm/testdata/portable", false)})
	_, cs := networkEngine(t)
	pod := func(name, mode string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{NodeName: "net-1",
			Containers: []corev1.Container{{Name: "c", Image: host + "/portable:1", Command: []string{"portable", mode},
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("http")}},
					PeriodSeconds: 1, FailureThreshold: 1}}}}}
	}
	createPods(t, cs, pod("serves", "scan"), pod("never", "never"))
	waitPod(t, cs, "default", "serves", 90*time.Second, "Ready", isReady)
	never := waitPod(t, cs, "default", "never", 30*time.Second, "running", func(p *corev1.Pod) bool {
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Running != nil
	})
	// Several probe periods later it is still running and still not ready.
	time.Sleep(4 * time.Second)
	never = waitPod(t, cs, "default", "never", time.Second, "still running", func(p *corev1.Pod) bool {
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Running != nil
	})
	if isReady(never) {
		t.Fatalf("a module that never listens is Ready: %+v", never.Status)
	}
}

// TestWasmPodCallsPodAndService: a Wasm pod (examples/httpclient) calls a
// Wasm server (examples/httpserver) by its pod IP and through its
// Service's ClusterIP, with plain net/http over the SDK's dialer.
func TestWasmPodCallsPodAndService(t *testing.T) {
	host := testRegistry(t, map[string][]byte{"web:1": httpserverModule(t),
		"client:1": wasmbuild.Build(t, "../examples/httpclient", false)})
	_, cs := networkEngine(t)
	ctx := context.Background()
	labels := map[string]string{"app": "web"}
	web := webContainer("web", host+"/web:1")
	web.Env = []corev1.EnvVar{{Name: "GREETING", Value: "hi"}}
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: appsv1.DeploymentSpec{
		Replicas: ptr(int32(1)), Selector: &metav1.LabelSelector{MatchLabels: labels},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{web}}}}}
	if _, err := cs.AppsV1().Deployments("default").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc, err := cs.CoreV1().Services("default").Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromString("http")}}}},
		metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var podIP string
	testutil.Eventually(t, 90*time.Second, func() error {
		pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return err
		}
		for _, p := range pods.Items {
			if isReady(&p) && p.Status.PodIP != "" {
				podIP = p.Status.PodIP
				return nil
			}
		}
		return fmt.Errorf("no ready web pod")
	})
	urls := []string{"http://" + podIP + ":8080/", "http://" + svc.Spec.ClusterIP + "/"}
	var lookups []string
	if os.Geteuid() == 0 {
		// The cluster DNS listens on port 53 of the kube-dns ClusterIP,
		// which needs root: by short name and FQDN through the host's
		// getaddrinfo, and with Go's own resolver over UDP.
		urls = append(urls, "http://web/", "http://web.default.svc.cluster.local/")
		lookups = []string{"lookup:web", "lookup:web.default.svc.cluster.local"}
	}
	client := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "client"}, Spec: corev1.PodSpec{
		RestartPolicy: corev1.RestartPolicyNever,
		Containers:    []corev1.Container{{Name: "c", Image: host + "/client:1", Command: append(append([]string{"httpclient"}, urls...), lookups...)}}}}
	createPods(t, cs, client)
	waitPod(t, cs, "default", "client", 90*time.Second, "Succeeded", func(p *corev1.Pod) bool {
		if p.Status.Phase == corev1.PodFailed {
			logs, _ := podLogs(ctx, cs, "client", corev1.PodLogOptions{})
			t.Fatalf("client failed:\n%s", logs)
		}
		return p.Status.Phase == corev1.PodSucceeded
	})
	logs, err := podLogs(ctx, cs, "client", corev1.PodLogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range urls {
		if !strings.Contains(logs, "GET "+u+": 200 hi from web-") {
			t.Errorf("client's log lacks a 200 from %s:\n%s", u, logs)
		}
	}
	for _, l := range lookups {
		want := strings.Replace(l, ":", " ", 1) + ": " + svc.Spec.ClusterIP
		if !strings.Contains(logs, want) {
			t.Errorf("client's log lacks %q:\n%s", want, logs)
		}
	}
}
