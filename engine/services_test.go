package engine

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/skiffhq/skiff/internal/testutil"
)

// A worker node serves the cluster's Services itself: its proxy learns
// Services and EndpointSlices over the bus, with no API access. The
// server's own proxy is off, so every answer below comes through the
// worker's; once the worker stops, nothing answers.
func TestWorkerServesServices(t *testing.T) {
	ctx := context.Background()
	e := startEngine(t, Config{DataDir: t.TempDir(), NodeName: "svc-cp", APIListen: "127.0.0.1:0", BusListen: "127.0.0.1:0",
		ServiceCIDR: "127.78.0.0/16", ClusterPodCIDR: "127.77.0.0/16", DisableServiceProxy: true})
	cs, err := e.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := e.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	img, err := PushImage(ctx, rc, httpserverModule(t), "web:1")
	if err != nil {
		t.Fatal(err)
	}
	apiURL, err := url.Parse(e.api.URL())
	if err != nil {
		t.Fatal(err)
	}
	w, err := StartWorker(ctx, WorkerConfig{Server: apiURL.Host, Token: e.joinToken, DataDir: t.TempDir(), NodeName: "svc-edge",
		ImageHosts: []string{"loopback"}, CrashLoopBackOff: 200 * time.Millisecond, Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	workerStopped := false
	t.Cleanup(func() {
		if !workerStopped {
			w.Stop(context.Background())
		}
	})

	web := webContainer("web", img)
	web.Env = []corev1.EnvVar{{Name: "GREETING", Value: "served by the edge"}}
	web.ReadinessProbe = &corev1.Probe{PeriodSeconds: 1,
		ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}}}
	wasm := "wasm"
	createPods(t, cs, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "edge-web", Labels: map[string]string{"app": "edge-web"}},
		Spec: corev1.PodSpec{RuntimeClassName: &wasm, NodeSelector: map[string]string{"kubernetes.io/hostname": "svc-edge"},
			Containers: []corev1.Container{web}}})
	pod := waitPod(t, cs, "default", "edge-web", moreWait, "Ready on svc-edge", func(p *corev1.Pod) bool {
		return p.Spec.NodeName == "svc-edge" && podCondition(p, corev1.PodReady) == corev1.ConditionTrue
	})

	// The Service comes after the worker's proxy has listed: it reaches the
	// worker as a feed event, not in the first list.
	svc, err := cs.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "edge-web"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Selector: map[string]string{"app": "edge-web"},
			Ports: []corev1.ServicePort{{Port: 8080, TargetPort: intstr.FromString("http")}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	clusterIP := "http://" + net.JoinHostPort(svc.Spec.ClusterIP, "8080") + "/"
	nodePort := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(int(svc.Spec.Ports[0].NodePort))) + "/"
	for _, u := range []string{clusterIP, nodePort} {
		testutil.Eventually(t, moreWait, func() error {
			body, err := httpGet(u)
			if err != nil {
				return err
			}
			if want := "served by the edge from edge-web"; !strings.Contains(body, want) {
				return fmt.Errorf("GET %s = %q, want %q (pod IP %s)", u, body, want, pod.Status.PodIP)
			}
			return nil
		})
	}

	// The worker's pods get the Services' environment variables from the
	// same feed, as a kubelet would give them.
	createPods(t, cs, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "edge-env"},
		Spec: corev1.PodSpec{RuntimeClassName: &wasm, NodeSelector: map[string]string{"kubernetes.io/hostname": "svc-edge"},
			RestartPolicy: corev1.RestartPolicyNever,
			Containers:    []corev1.Container{{Name: "env", Image: img, Args: []string{"env"}}}}})
	waitPod(t, cs, "default", "edge-env", moreWait, "succeeds on svc-edge", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodSucceeded })
	waitLogs(t, cs, "edge-env", corev1.PodLogOptions{}, "EDGE_WEB_SERVICE_HOST="+svc.Spec.ClusterIP+"\n",
		"EDGE_WEB_PORT=tcp://"+net.JoinHostPort(svc.Spec.ClusterIP, "8080")+"\n", "KUBERNETES_SERVICE_HOST=")

	// A change to the endpoints follows: with the pod gone the Service has
	// no endpoint, and the proxy resets connections rather than serving.
	if err := cs.CoreV1().Pods("default").Delete(ctx, "edge-web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, moreWait, func() error {
		if body, err := httpGet(clusterIP); err == nil {
			return fmt.Errorf("GET %s answered %q after its only pod was deleted", clusterIP, body)
		}
		return nil
	})

	// Nothing else serves the ClusterIP: the worker's proxy was the one.
	workerStopped = true
	if err := w.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", net.JoinHostPort(svc.Spec.ClusterIP, "8080"), 2*time.Second); err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections with the worker stopped and the server's proxy off", clusterIP)
	}
}
