package policy_test

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/skiffhq/skiff/engine"
	"github.com/skiffhq/skiff/internal/enginetest"
	"github.com/skiffhq/skiff/internal/netpol/policy"
	"github.com/skiffhq/skiff/internal/node/servicefeed"
	"github.com/skiffhq/skiff/internal/testutil"
	skiffrt "github.com/skiffhq/skiff/runtime"
	"github.com/skiffhq/skiff/runtime/wasm"
)

// A NetworkPolicy written through the API reaches a node's evaluator over
// the bus feed, with the pods and namespaces it names, and each change to
// it decides the next connection as soon as the feed brings it. The node
// here is a test joined to the bus as a worker joins it, with no API
// access.
func TestPolicyThroughTheFeed(t *testing.T) {
	e, err := engine.New(engine.Config{DataDir: t.TempDir(), NodeName: "cp", APIListen: "127.0.0.1:0",
		BusListen: "127.0.0.1:0", ImageHosts: []string{"loopback"}, DisableServiceProxy: true, Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Stop(context.Background()) })
	cs, err := e.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := enginetest.DialBus(t.Context(), e, "policy-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	sub, err := servicefeed.Subscribe(t.Context(), conn, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Stop)
	lw := func(res string) cache.ListerWatcher {
		l, err := sub.ListerWatcher(res)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	ev, err := policy.Start(policy.Config{NetworkPolicies: lw(servicefeed.NetworkPolicies), Pods: lw(servicefeed.Pods),
		Namespaces: lw(servicefeed.Namespaces), Services: lw(servicefeed.Services),
		EndpointSlices: lw(servicefeed.EndpointSlices), SyncTimeout: 10 * time.Second, Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ev.Stop)

	ctx := t.Context()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Pods bound to a node that does not exist: nothing runs them, and the
	// test gives them their addresses.
	db := createPod(t, cs, "shop", "db", "127.66.200.1", map[string]string{"role": "db"})
	createPod(t, cs, "shop", "frontend", "127.66.200.2", map[string]string{"role": "frontend"})
	fw := ev.Firewall(db)
	fromFrontend := func() bool {
		return fw.Allow(skiffrt.Ingress, skiffrt.TCP, netip.MustParseAddrPort("127.66.200.2:40000"), 6379)
	}
	// Changes are timed from the API's answer to the first decision that
	// shows them: logged, not asserted (timings are for benchmarks), but
	// bounded.
	seen := func(what string, want bool) {
		t.Helper()
		start := time.Now()
		testutil.Eventually(t, 10*time.Second, func() error {
			if got := fromFrontend(); got != want {
				return fmt.Errorf("%s: frontend to db allowed %v, want %v", what, got, want)
			}
			return nil
		})
		t.Logf("%s: decided after %v", what, time.Since(start))
	}

	if !fromFrontend() {
		t.Fatal("frontend to db denied with no policy")
	}
	nps := cs.NetworkingV1().NetworkPolicies("shop")
	pol := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "db"}, Spec: networkingv1.NetworkPolicySpec{
		PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"role": "db"}},
		PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}}}
	pol, err = nps.Create(ctx, pol, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	seen("deny-all created", false)

	// The peer is known by its labels, from the pod feed.
	pol.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{
		{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"role": "frontend"}}}}}}
	if pol, err = nps.Update(ctx, pol, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	seen("frontend allowed", true)

	// A namespace's labels, from the namespace feed.
	pol.Spec.Ingress[0].From[0] = networkingv1.NetworkPolicyPeer{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "web"}}}
	if pol, err = nps.Update(ctx, pol, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	seen("only namespaces labelled tier=web", false)
	shop, err := cs.CoreV1().Namespaces().Get(ctx, "shop", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if shop.Labels == nil {
		shop.Labels = map[string]string{}
	}
	shop.Labels["tier"] = "web"
	if _, err := cs.CoreV1().Namespaces().Update(ctx, shop, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	seen("namespace labelled tier=web", true)

	if err := nps.Delete(ctx, "db", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := nps.Create(ctx, &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "deny"},
		Spec: networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}}},
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	seen("replaced by deny-all", false)
	if err := nps.Delete(ctx, "deny", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	seen("policies deleted", true)

	// The engine's own node says whether it holds its Wasm pods to
	// policy: it does once its runtime consults the firewalls the agent
	// hands it.
	want := "not-enforced"
	if _, ok := any((*wasm.PodRuntime)(nil)).(skiffrt.FirewallEnforcer); ok {
		want = "enforced-for-wasm"
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		node, err := cs.CoreV1().Nodes().Get(ctx, "cp", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if got := node.Labels["skiff.dev/network-policy"]; got != want {
			return fmt.Errorf("node label skiff.dev/network-policy = %q, want %s", got, want)
		}
		return nil
	})
}

// createPod creates a pod on a node that does not exist, with the address
// ip, and returns it as the API has it.
func createPod(t *testing.T, cs kubernetes.Interface, namespace, name, ip string, lbls map[string]string) *corev1.Pod {
	t.Helper()
	ctx := t.Context()
	p, err := cs.CoreV1().Pods(namespace).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbls},
		Spec: corev1.PodSpec{NodeName: "nowhere", Containers: []corev1.Container{{Name: "c", Image: "example.invalid/c:1",
			Ports: []corev1.ContainerPort{{Name: "redis", ContainerPort: 6379}}}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Status.Phase = corev1.PodRunning
	p.Status.PodIP, p.Status.PodIPs = ip, []corev1.PodIP{{IP: ip}}
	if p, err = cs.CoreV1().Pods(namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	return p
}
