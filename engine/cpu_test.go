package engine

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiffhq/skiff/internal/node/agent"
	"github.com/skiffhq/skiff/internal/wasmbuild"
)

// testPodCPU is the CPU time the engine's node measured for a pod.
func (e *Engine) testPodCPU(t *testing.T, name string) time.Duration {
	t.Helper()
	e.mu.Lock()
	a := e.agent
	e.mu.Unlock()
	u, ok := a.PodCPUUsage("default", name)
	if !ok {
		t.Fatalf("pod %s does not run on the node", name)
	}
	return u
}

// TestWasmPodCPULimit: a pod with `limits.cpu: 100m` whose module spins
// forever uses about a tenth of a core, as the node measures it, while
// another pod on the node keeps answering HTTP through its pod IP; the same
// module without a limit uses far more. The node says it enforces CPU
// limits (condition and label); where it cannot, the test skips with the
// node's reason.
func TestWasmPodCPULimit(t *testing.T) {
	host := testRegistry(t, map[string][]byte{
		"spin:1": wasmbuild.Build(t, "../runtime/wasm/testdata/spin", false),
		"web:1":  httpserverModule(t)})
	const node = "cpu-1"
	e, cs := moreEngine(t, node, "127.66.236.0/22")
	ctx := context.Background()

	n, err := cs.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var cond *corev1.NodeCondition
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == agent.NodeCPULimitsNotEnforced {
			cond = &n.Status.Conditions[i]
		}
	}
	if cond == nil {
		t.Fatalf("node has no %s condition: %+v", agent.NodeCPULimitsNotEnforced, n.Status.Conditions)
	}
	if cond.Status == corev1.ConditionTrue {
		if n.Labels[agent.CPULimitsLabel] != "not-enforced" {
			t.Errorf("label %s = %q with the condition True", agent.CPULimitsLabel, n.Labels[agent.CPULimitsLabel])
		}
		t.Skipf("node %s: %s", node, cond.Message)
	}
	if n.Labels[agent.CPULimitsLabel] != "enforced" {
		t.Errorf("label %s = %q, want enforced", agent.CPULimitsLabel, n.Labels[agent.CPULimitsLabel])
	}

	spinPod := func(name string, limit string) *corev1.Pod {
		c := corev1.Container{Name: "spin", Image: host + "/spin:1"}
		if limit != "" {
			c.Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(limit)}
		}
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{NodeName: node,
			Containers: []corev1.Container{c}}}
	}
	web := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: corev1.PodSpec{NodeName: node,
		Containers: []corev1.Container{webContainer("web", host+"/web:1")}}}
	createPods(t, cs, web, spinPod("limited", "100m"))
	p := waitPod(t, cs, "default", "web", moreWait, "serves", isReady)
	webURL := "http://" + net.JoinHostPort(p.Status.PodIP, "8080") + "/"
	waitPod(t, cs, "default", "limited", moreWait, "runs", func(p *corev1.Pod) bool { return isRunning(p, "spin") })
	waitLogs(t, cs, "limited", corev1.PodLogOptions{}, "spinning")

	// 3 s of the limited spinner, with a request to the other pod every
	// 300 ms (at most 10): each must be answered.
	u0, w0 := e.testPodCPU(t, "limited"), time.Now()
	answered := 0
	for i := 0; i < 10 && time.Since(w0) < 3*time.Second; i++ {
		start := time.Now()
		if body, err := httpGet(webURL); err != nil {
			t.Errorf("GET %s while the limited pod spins: %v", webURL, err)
		} else if !strings.Contains(body, "hello") {
			t.Errorf("GET %s: %q", webURL, body)
		} else {
			answered++
		}
		time.Sleep(300*time.Millisecond - time.Since(start))
	}
	time.Sleep(3*time.Second - time.Since(w0))
	limited := (e.testPodCPU(t, "limited") - u0).Seconds() / time.Since(w0).Seconds()
	t.Logf("pod with limits.cpu 100m: %.3f CPU-s/s over %v; the other pod answered %d requests meanwhile",
		limited, time.Since(w0).Round(time.Millisecond), answered)
	if limited > 0.15 {
		t.Errorf("the pod limited to 100m used %.3f CPU-s/s, want <= 0.15", limited)
	}
	evs, err := cs.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=limited"})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs.Items {
		if ev.Reason == "CPULimitNotEnforced" {
			t.Errorf("event on a node that enforces CPU limits: %s", ev.Message)
		}
	}

	// The control: the same module without a limit, for 2 s, then gone.
	createPods(t, cs, spinPod("free", ""))
	waitPod(t, cs, "default", "free", moreWait, "runs", func(p *corev1.Pod) bool { return isRunning(p, "spin") })
	waitLogs(t, cs, "free", corev1.PodLogOptions{}, "spinning")
	u0, w0 = e.testPodCPU(t, "free"), time.Now()
	time.Sleep(2 * time.Second)
	free := (e.testPodCPU(t, "free") - u0).Seconds() / time.Since(w0).Seconds()
	if err := cs.CoreV1().Pods("default").Delete(ctx, "free", metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(0))}); err != nil {
		t.Error(err)
	}
	t.Logf("pod without a CPU limit: %.3f CPU-s/s", free)
	if free < 0.225 {
		t.Skipf("the machine is too busy for the control: the unlimited pod got %.3f of a core", free)
	}
}
