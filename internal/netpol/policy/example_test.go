package policy_test

import (
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiffhq/skiff/internal/netpol/policy"
	skiffrt "github.com/skiffhq/skiff/runtime"
)

// A runtime's test needs no cluster to hold a pod to a policy: an
// Evaluator over fixed objects gives the pod's Firewall, which is what
// ContainerSpec.Firewall carries.
func ExampleNewFromObjects() {
	db := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "db", Labels: map[string]string{"role": "db"}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIPs: []corev1.PodIP{{IP: "127.66.9.1"}}}}
	web := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web", Labels: map[string]string{"role": "web"}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIPs: []corev1.PodIP{{IP: "127.66.9.2"}}}}
	onlyWeb := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "db"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"role": "db"}},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{
				{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"role": "web"}}}}}},
		}}
	fw := policy.NewFromObjects(db, web, onlyWeb).Firewall(db)

	fmt.Println(fw.Allow(skiffrt.Ingress, skiffrt.TCP, netip.MustParseAddrPort("127.66.9.2:41000"), 5432))
	fmt.Println(fw.Allow(skiffrt.Ingress, skiffrt.TCP, netip.MustParseAddrPort("127.66.9.3:41000"), 5432))
	fmt.Println(fw.Allow(skiffrt.Egress, skiffrt.TCP, netip.MustParseAddrPort("127.66.9.3:80"), 0))
	// Output:
	// true
	// false
	// true
}
