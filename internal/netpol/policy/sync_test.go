package policy

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"

	skiffrt "github.com/skiffhq/skiff/runtime"
)

// lw lists list (or fails, when list is nil) and watches nothing.
func lw(list runtime.Object) cache.ListerWatcher {
	return &cache.ListWatch{
		ListFunc: func(metav1.ListOptions) (runtime.Object, error) {
			if list == nil {
				return nil, errors.New("no control plane")
			}
			return list.DeepCopyObject(), nil
		},
		WatchFunc: func(metav1.ListOptions) (watch.Interface, error) { return watch.NewFake(), nil },
	}
}

// Until the first lists arrive nothing is known, so nothing is allowed: a
// policy not yet known must not be bypassed. Once they have, an unisolated
// pod is allowed everything.
func TestDecisionsWaitForTheFirstLists(t *testing.T) {
	pods := func() cache.ListerWatcher {
		return lw(&corev1.PodList{ListMeta: metav1.ListMeta{ResourceVersion: "1"}})
	}
	namespaces := func() cache.ListerWatcher {
		return lw(&corev1.NamespaceList{ListMeta: metav1.ListMeta{ResourceVersion: "1"}})
	}
	pod := pod("default", "a", "10.1.0.1", nil)
	peer := netip.MustParseAddrPort("10.1.0.2:80")

	e, err := Start(Config{NetworkPolicies: lw(nil), Pods: pods(), Namespaces: namespaces(), SyncTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	if e.Firewall(pod).Allow(skiffrt.Egress, skiffrt.TCP, peer, 0) {
		t.Error("allowed before the policies were listed")
	}
	if e.AllowEgressFrom(netip.MustParseAddr("10.9.9.9"), peer, corev1.ProtocolTCP) {
		t.Error("the proxy's question allowed before the policies were listed")
	}

	e2, err := Start(Config{NetworkPolicies: lw(&networkingv1.NetworkPolicyList{ListMeta: metav1.ListMeta{ResourceVersion: "1"}}),
		Pods: pods(), Namespaces: namespaces(),
		SyncTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Stop()
	if !e2.Firewall(pod).Allow(skiffrt.Egress, skiffrt.TCP, peer, 0) {
		t.Error("denied once listed, with no policy")
	}
}
