package testbed_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/skiffhq/skiff/internal/testbed"
)

// An agent cut off from its server keeps its pods serving (edge autonomy),
// and when the link comes back it re-syncs: its Node is Ready again, a pod
// the control plane added during the cut starts there, and the pod that
// served through the cut was never restarted or replaced.
func TestIsolatedAgentKeepsServing(t *testing.T) {
	skipShort(t)
	bed := testbed.New(t)
	srvHost, edgeHost := bed.AddHost("server"), bed.AddHost("edge")
	var extra []string
	// A short grace period (where the flag exists) lets the cut show in the
	// Node's conditions within the test's cut.
	graceFlag := hasFlag(t, "server", "node-monitor-grace-period")
	if graceFlag {
		extra = append(extra, "--node-monitor-grace-period", "3s")
	}
	srv := startServer(t, bed, srvHost, "server", extra...)
	ctx, cancel := ctxT(startTimeout)
	_, err := edgeHost.Start(ctx, "agent", workerLine, testbed.Skiff(t), "agent", "--server", srv.api,
		"--token-file", filepath.Join(srv.dir, "token"), "--ca-file", filepath.Join(srv.dir, "pki", "ca.crt"),
		"--data-dir", filepath.Join(t.TempDir(), "edge"), "--node-name", "edge", "--image-hosts", "loopback")
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	cs, _ := srv.client(t, 10*time.Second)
	if err := poll(90*time.Second, 500*time.Millisecond, func() error {
		ctx, cancel := ctxT(10 * time.Second)
		defer cancel()
		if st, err := nodeReady(ctx, cs, "edge"); err != nil || st != corev1.ConditionTrue {
			return fmt.Errorf("node edge Ready=%q: %v", st, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	importModule(t, srv, "../../examples/httpserver", "web:1")
	labels := map[string]string{"app": "edge-web"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "edge-web", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					RuntimeClassName: ptr.To("wasm"),
					NodeSelector:     map[string]string{"kubernetes.io/hostname": "edge"},
					// Stay bound to the edge node however long it is cut
					// off, as a user pinning work to an edge site would:
					// no eviction may replace the pod this test watches.
					Tolerations: []corev1.Toleration{
						{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
						{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
					},
					Containers: []corev1.Container{{
						Name: "web", Image: "web:1",
						Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}},
							PeriodSeconds: 1,
						},
					}},
				},
			},
		},
	}
	ctx, cancel = ctxT(30 * time.Second)
	_, err = cs.AppsV1().Deployments("default").Create(ctx, dep, metav1.CreateOptions{})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	var pods []corev1.Pod
	if err := poll(120*time.Second, 500*time.Millisecond, func() error {
		pods, err = readyPods(cs, "app=edge-web", "edge")
		if err == nil && len(pods) != 1 {
			err = fmt.Errorf("%d ready pods on edge, want 1", len(pods))
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	before := pods[0]
	url := "http://" + net.JoinHostPort(before.Status.PodIP, "8080") + "/"
	// The pod's address is the edge host's own (loopback): asked from
	// inside the edge host, as its local users would.
	web := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: edgeHost.Dial, DisableKeepAlives: true}}
	if err := get(web, url); err != nil {
		t.Fatalf("the pod before the cut: %v", err)
	}
	t.Logf("pod %s (uid %s) serves at %s on edge", before.Name, before.UID, before.Status.PodIP)

	// The cut. The control plane stays reachable from the hub, so the test
	// watches its view while the agent is on its own.
	if err := edgeHost.Isolate(); err != nil {
		t.Fatal(err)
	}
	cutAt := time.Now()
	ctx, cancel = ctxT(30 * time.Second)
	_, err = cs.AppsV1().Deployments("default").Patch(ctx, "edge-web", types.MergePatchType, []byte(`{"spec":{"replicas":2}}`), metav1.PatchOptions{})
	cancel()
	if err != nil {
		t.Fatalf("scaling up during the cut: %v", err)
	}
	const cutFor = 20 * time.Second
	probes, failures := 0, 0
	var firstFailure error
	notReadySeen := time.Duration(0)
	for time.Since(cutAt) < cutFor && probes < 200 { // bounded in time and count
		probes++
		if err := get(web, url); err != nil {
			failures++
			if firstFailure == nil {
				firstFailure = fmt.Errorf("after %v: %w", time.Since(cutAt).Round(time.Millisecond), err)
			}
		}
		if notReadySeen == 0 {
			ctx, cancel := ctxT(5 * time.Second)
			if st, err := nodeReady(ctx, cs, "edge"); err == nil && st != corev1.ConditionTrue {
				notReadySeen = time.Since(cutAt)
			}
			cancel()
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("during a %v cut: %d HTTP probes from the edge host, %d failed; the control plane saw the node leave Ready after %v (0: not within the cut)",
		cutFor, probes, failures, notReadySeen.Round(time.Millisecond))
	if failures > 0 {
		t.Errorf("the isolated agent's pod stopped answering: %d of %d probes failed, first %v", failures, probes, firstFailure)
	}
	if graceFlag && notReadySeen == 0 {
		t.Errorf("with a 3s grace period the control plane still saw the node Ready after a %v cut", cutFor)
	}

	if err := edgeHost.Heal(); err != nil {
		t.Fatal(err)
	}
	healAt := time.Now()
	var readyAfter time.Duration
	if err := poll(120*time.Second, 250*time.Millisecond, func() error {
		ctx, cancel := ctxT(10 * time.Second)
		defer cancel()
		st, err := nodeReady(ctx, cs, "edge")
		if err != nil || st != corev1.ConditionTrue {
			return fmt.Errorf("node edge Ready=%q: %v", st, err)
		}
		if readyAfter == 0 {
			readyAfter = time.Since(healAt)
		}
		pods, err = readyPods(cs, "app=edge-web", "edge")
		if err == nil && len(pods) != 2 {
			err = fmt.Errorf("%d ready pods on edge, want 2 (the one added during the cut re-synced)", len(pods))
		}
		return err
	}); err != nil {
		t.Fatalf("after healing: %v", err)
	}
	t.Logf("after healing: node Ready within %v, both pods Ready within %v",
		readyAfter.Round(time.Millisecond), time.Since(healAt).Round(time.Millisecond))
	var after *corev1.Pod
	for i := range pods {
		if pods[i].Name == before.Name {
			after = &pods[i]
		}
	}
	switch {
	case after == nil:
		t.Fatalf("pod %s is gone after the heal; pods now %v", before.Name, podNames(pods))
	case after.UID != before.UID:
		t.Errorf("pod %s was replaced: uid %s, was %s", before.Name, after.UID, before.UID)
	case restarts(*after) != restarts(before):
		t.Errorf("pod %s restarted: restartCount %d, was %d", before.Name, restarts(*after), restarts(before))
	}
	if err := get(web, url); err != nil {
		t.Errorf("the pod after the heal: %v", err)
	}
}

// readyPods are the pods matching selector that run on node and are Ready.
func readyPods(cs kubernetes.Interface, selector, node string) ([]corev1.Pod, error) {
	ctx, cancel := ctxT(10 * time.Second)
	defer cancel()
	list, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, err
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.Spec.NodeName != node || p.DeletionTimestamp != nil {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				out = append(out, p)
			}
		}
	}
	return out, nil
}

func restarts(p corev1.Pod) int32 {
	var n int32
	for _, c := range p.Status.ContainerStatuses {
		n += c.RestartCount
	}
	return n
}

func podNames(ps []corev1.Pod) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return out
}

// get fetches url and wants a 200.
func get(c *http.Client, url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}
