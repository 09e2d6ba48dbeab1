package engine

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiffhq/skiff/internal/testutil"
	"github.com/skiffhq/skiff/internal/wasmbuild"
)

// appsEngine is an engine on ranges of its own (pods 127.87.0.0/22,
// Services 127.88.0.0/16), with namespaces shop and other.
func appsEngine(t *testing.T) kubernetes.Interface {
	t.Helper()
	e := startEngine(t, Config{DataDir: t.TempDir(), NodeName: "apps-1", PodCIDR: "127.87.0.0/22",
		ServiceCIDR: "127.88.0.0/16", CrashLoopBackOff: 200 * time.Millisecond})
	cs, err := e.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"shop", "other"} {
		if _, err := cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
			metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return cs
}

// appPod runs image with argv in namespace ns.
func appPod(t *testing.T, cs kubernetes.Interface, ns, name, image string, never bool, argv ...string) {
	t.Helper()
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: corev1.PodSpec{NodeName: "apps-1",
		Containers: []corev1.Container{{Name: "c", Image: image, Command: argv}}}}
	if never {
		p.Spec.RestartPolicy = corev1.RestartPolicyNever
	}
	if _, err := cs.CoreV1().Pods(ns).Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create pod %s/%s: %v", ns, name, err)
	}
}

func nsLogs(cs kubernetes.Interface, ns, pod string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rc, err := cs.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{}).Stream(ctx)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return string(b), err
}

// waitLog waits until the pod's log contains want.
func waitLog(t *testing.T, cs kubernetes.Interface, ns, pod, want string) {
	t.Helper()
	testutil.Eventually(t, 90*time.Second, func() error {
		out, err := nsLogs(cs, ns, pod)
		if err != nil {
			return err
		}
		if !strings.Contains(out, want) {
			return fmt.Errorf("log of %s/%s lacks %q:\n%s", ns, pod, want, out)
		}
		return nil
	})
}

// waitExit waits until the pod's container ended and returns its exit code
// and log.
func waitExit(t *testing.T, cs kubernetes.Interface, ns, pod string) (int32, string) {
	t.Helper()
	p := waitPod(t, cs, ns, pod, 90*time.Second, "terminated", func(p *corev1.Pod) bool {
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Terminated != nil
	})
	logs, err := nsLogs(cs, ns, pod)
	if err != nil {
		t.Fatalf("logs of %s/%s: %v", ns, pod, err)
	}
	return p.Status.ContainerStatuses[0].State.Terminated.ExitCode, logs
}

// TestWasmPodsMessagingAndKV runs examples/messaging and examples/kvcounter
// as pods: two pods of a namespace exchange a request and its reply; two
// pods increment one counter with compare-and-set and a third reads the
// sum while a fourth watches it change, and an SDK handler pod (the same
// example built as a reactor) increments it over HTTP; and a namespace's subjects and keys
// are invisible from another namespace: a listener there on every subject
// hears none of it, a request there finds nobody, a read there finds no
// key. Each of those would fail if the host's namespace mapping broke.
func TestWasmPodsMessagingAndKV(t *testing.T) {
	host := testRegistry(t, map[string][]byte{
		"messaging:1": wasmbuild.Build(t, "../examples/messaging", false),
		"kvcounter:1": wasmbuild.Build(t, "../examples/kvcounter", false),
		"kvweb:1":     wasmbuild.Build(t, "../examples/kvcounter", true),
	})
	msg, kv := host+"/messaging:1", host+"/kvcounter:1"
	cs := appsEngine(t)

	appPod(t, cs, "shop", "server", msg, false, "messaging", "serve", "greet", "hi")
	appPod(t, cs, "other", "listener", msg, true, "messaging", "listen", ">", "20")
	appPod(t, cs, "shop", "watcher", kv, true, "kvcounter", "watch", "hits", "1")
	waitLog(t, cs, "shop", "server", "serving greet")
	waitLog(t, cs, "other", "listener", "listening on >")
	waitLog(t, cs, "shop", "watcher", "watching hits")

	// Request and reply inside shop.
	appPod(t, cs, "shop", "asker", msg, true, "messaging", "ask", "greet", "world", "30")
	if code, logs := waitExit(t, cs, "shop", "asker"); code != 0 || !strings.Contains(logs, "reply: hi, world") {
		t.Fatalf("asker exited %d:\n%s", code, logs)
	}
	waitLog(t, cs, "shop", "server", "request on greet: world")
	appPod(t, cs, "shop", "publisher", msg, true, "messaging", "publish", "greet", "again")

	// A counter two pods increment at once.
	appPod(t, cs, "shop", "counter-1", kv, true, "kvcounter", "incr", "hits", "5")
	appPod(t, cs, "shop", "counter-2", kv, true, "kvcounter", "incr", "hits", "5")
	for _, p := range []string{"counter-1", "counter-2"} {
		if code, logs := waitExit(t, cs, "shop", p); code != 0 {
			t.Fatalf("%s exited %d:\n%s", p, code, logs)
		}
	}
	appPod(t, cs, "shop", "reader", kv, true, "kvcounter", "get", "hits")
	if code, logs := waitExit(t, cs, "shop", "reader"); code != 0 || !strings.Contains(logs, "hits = 10 ") {
		t.Fatalf("reader exited %d, want hits = 10:\n%s", code, logs)
	}
	if code, logs := waitExit(t, cs, "shop", "watcher"); code != 0 || !strings.Contains(logs, "hits -> ") {
		t.Fatalf("watcher exited %d, want a change of hits:\n%s", code, logs)
	}

	// The same store from an SDK handler module, served by the host.
	web := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"}, Spec: corev1.PodSpec{NodeName: "apps-1",
		Containers: []corev1.Container{{Name: "c", Image: host + "/kvweb:1", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}}}}
	if _, err := cs.CoreV1().Pods("shop").Create(context.Background(), web, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ip := waitPod(t, cs, "shop", "web", 90*time.Second, "running with an IP", func(p *corev1.Pod) bool {
		return p.Status.PodIP != "" && len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Running != nil
	}).Status.PodIP
	client := &http.Client{Timeout: 30 * time.Second}
	testutil.Eventually(t, 30*time.Second, func() error {
		resp, err := client.Post("http://"+ip+":8080/incr/hits", "text/plain", nil)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || string(b) != "11\n" {
			t.Fatalf("POST /incr/hits on the handler pod = %d %q, want 11", resp.StatusCode, b)
		}
		return nil
	})

	// Nothing of shop reaches other.
	appPod(t, cs, "other", "reader", kv, true, "kvcounter", "get", "hits")
	if code, logs := waitExit(t, cs, "other", "reader"); code != 3 {
		t.Fatalf("reader in other exited %d, want 3 (no such key in other):\n%s", code, logs)
	}
	if code, logs := waitExit(t, cs, "other", "listener"); code != 0 || !strings.Contains(logs, "received 0\n") {
		t.Fatalf("listener in other exited %d, want nothing received:\n%s", code, logs)
	}
	appPod(t, cs, "other", "asker", msg, true, "messaging", "ask", "greet", "world")
	if code, logs := waitExit(t, cs, "other", "asker"); code != 3 {
		t.Fatalf("asker in other exited %d, want 3 (nobody serves greet in other):\n%s", code, logs)
	}
}
