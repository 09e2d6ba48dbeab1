package engine

import (
	"bufio"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/skiffhq/skiff/internal/testutil"
	"github.com/skiffhq/skiff/internal/wasmbuild"
)

// loopLog returns the lines a looping httpclient container printed since
// `since`, by the CRI timestamps of its log.
// Nothing while its log cannot be read (the container is starting).
func loopLog(t *testing.T, cs kubernetes.Interface, ns, pod string, since time.Time) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rc, err := cs.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{Timestamps: true}).Stream(ctx)
	if err != nil {
		t.Logf("logs of %s/%s: %v", ns, pod, err)
		return nil
	}
	defer rc.Close()
	var out []string
	sc := bufio.NewScanner(rc)
	for sc.Scan() {
		ts, line, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, ts)
		if err == nil && at.After(since) {
			out = append(out, line)
		}
	}
	return out
}

// reaches reports whether the latest round of a looping client since
// `since` got a 200 (true), an error (false), or nothing yet.
func reaches(t *testing.T, cs kubernetes.Interface, ns, pod string, since time.Time) (ok, known bool) {
	lines := loopLog(t, cs, ns, pod, since)
	if len(lines) == 0 {
		return false, false
	}
	last := lines[len(lines)-1]
	return strings.Contains(last, ": 200 "), true
}

// waitReach waits until the client's latest round says want, and returns
// how long after `since` the first such round was.
func waitReach(t *testing.T, cs kubernetes.Interface, ns, pod string, since time.Time, want bool, what string) {
	t.Helper()
	testutil.Eventually(t, 30*time.Second, func() error {
		ok, known := reaches(t, cs, ns, pod, since)
		if !known || ok != want {
			return fmt.Errorf("%s/%s: %s not yet (rounds since: %q)", ns, pod, what, loopLog(t, cs, ns, pod, since))
		}
		return nil
	})
	t.Logf("%s/%s: %s after %v", ns, pod, what, time.Since(since).Round(100*time.Millisecond))
}

// TestWasmNetworkPolicy: NetworkPolicies hold Wasm pods to their rules in
// the runtime, and a change applies to the next connection. A web server
// and three looping clients (new connections every second): default deny,
// allow by pod selector, by namespace selector, by port, and egress by
// ipBlock with except.
func TestWasmNetworkPolicy(t *testing.T) {
	host := testRegistry(t, map[string][]byte{"web:1": httpserverModule(t),
		"client:1": wasmbuild.Build(t, "../examples/httpclient", false)})
	e := startEngine(t, Config{DataDir: t.TempDir(), NodeName: "np-1", PodCIDR: "127.101.0.0/22",
		ServiceCIDR: "127.102.0.0/16", CrashLoopBackOff: 200 * time.Millisecond})
	cs, err := e.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for ns, team := range map[string]string{"shop": "shop", "other": "other"} {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns,
			Labels: map[string]string{"team": team}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	labels := map[string]string{"app": "web"}
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: appsv1.DeploymentSpec{
		Replicas: ptr(int32(1)), Selector: &metav1.LabelSelector{MatchLabels: labels},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{webContainer("web", host+"/web:1")}}}}}
	if _, err := cs.AppsV1().Deployments("shop").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var webIP string
	testutil.Eventually(t, 90*time.Second, func() error {
		pods, err := cs.CoreV1().Pods("shop").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return err
		}
		for _, p := range pods.Items {
			if isReady(&p) {
				webIP = p.Status.PodIP
				return nil
			}
		}
		return fmt.Errorf("no ready web pod")
	})
	url := "http://" + webIP + ":8080/"
	client := func(ns, name, role string) {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"role": role}}, Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "c", Image: host + "/client:1", Command: []string{"httpclient", "-loop", url}}}}}
		if _, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	client("shop", "frontend", "frontend")
	client("shop", "batch", "batch")
	client("other", "partner", "frontend")

	// No policy: everyone reaches the web server.
	start := time.Now().Add(-time.Minute)
	for _, c := range [][2]string{{"shop", "frontend"}, {"shop", "batch"}, {"other", "partner"}} {
		waitReach(t, cs, c[0], c[1], start, true, "reaches the server without a policy")
	}

	// Ingress to web only from pods labelled role=frontend of its own
	// namespace, on port 8080.
	port := intstr.FromInt32(8080)
	np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "web-ingress"}, Spec: networkingv1.NetworkPolicySpec{
		PodSelector: metav1.LabelSelector{MatchLabels: labels},
		Ingress: []networkingv1.NetworkPolicyIngressRule{{
			From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"role": "frontend"}}}},
			Ports: []networkingv1.NetworkPolicyPort{{Port: &port}},
		}}}}
	applied := time.Now()
	if np, err = cs.NetworkingV1().NetworkPolicies("shop").Create(ctx, np, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitReach(t, cs, "shop", "batch", applied, false, "refused by the pod selector")
	waitReach(t, cs, "other", "partner", applied, false, "refused: another namespace")
	waitReach(t, cs, "shop", "frontend", applied, true, "still allowed by the pod selector")

	// Add the other namespace by its label.
	np.Spec.Ingress[0].From = append(np.Spec.Ingress[0].From, networkingv1.NetworkPolicyPeer{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "other"}}})
	applied = time.Now()
	if np, err = cs.NetworkingV1().NetworkPolicies("shop").Update(ctx, np, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitReach(t, cs, "other", "partner", applied, true, "allowed by the namespace selector")
	waitReach(t, cs, "shop", "batch", applied, false, "still refused")

	// Only port 9090 allowed: 8080 is refused to everyone.
	other := intstr.FromInt32(9090)
	np.Spec.Ingress[0].Ports = []networkingv1.NetworkPolicyPort{{Port: &other}}
	applied = time.Now()
	if np, err = cs.NetworkingV1().NetworkPolicies("shop").Update(ctx, np, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitReach(t, cs, "shop", "frontend", applied, false, "refused by the port")
	np.Spec.Ingress[0].Ports = nil
	if _, err = cs.NetworkingV1().NetworkPolicies("shop").Update(ctx, np, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	// Egress of the frontend: the pod range, except the web server.
	egress := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "frontend-egress"}, Spec: networkingv1.NetworkPolicySpec{
		PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"role": "frontend"}},
		PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
		Egress: []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{{
			IPBlock: &networkingv1.IPBlock{CIDR: "127.101.0.0/22", Except: []string{webIP + "/32"}}}}}}}}
	applied = time.Now()
	if _, err := cs.NetworkingV1().NetworkPolicies("shop").Create(ctx, egress, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitReach(t, cs, "shop", "frontend", applied, false, "egress refused by ipBlock except")
	lines := loopLog(t, cs, "shop", "frontend", applied)
	if last := lines[len(lines)-1]; !strings.Contains(strings.ToLower(last), "connection refused") {
		t.Errorf("denied egress reads %q, want connection refused", last)
	}

	// The node says so.
	node, err := cs.CoreV1().Nodes().Get(ctx, "np-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := node.Labels["skiff.dev/network-policy"]; got != "enforced-for-wasm" {
		t.Errorf("node label skiff.dev/network-policy = %q, want enforced-for-wasm", got)
	}
}
