package policy

import (
	"fmt"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// BenchmarkAllowIngress is one decision in a namespace of 50 policies (one
// of which selects the pod) and 1,000 pods, against the baseline of a
// namespace with no policy: the ratio is what policy costs a connection.
func BenchmarkAllowIngress(b *testing.B) {
	objs := []runtime.Object{nsDefault}
	for i := range 1000 {
		objs = append(objs, pod("default", fmt.Sprintf("p%d", i), fmt.Sprintf("10.2.%d.%d", i/250, i%250+1),
			lbl("app", fmt.Sprintf("a%d", i%50), "role", "frontend")))
	}
	for i := range 50 {
		objs = append(objs, np("default", fmt.Sprintf("np%d", i), networkingv1.NetworkPolicySpec{
			PodSelector: *sel("app", fmt.Sprintf("a%d", i)),
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{PodSelector: sel("role", "frontend")}, {NamespaceSelector: sel("team", "x")}},
				Ports: []networkingv1.NetworkPolicyPort{tcp(8080)}}}}))
	}
	subject := objs[1].(*corev1.Pod)
	peer := netip.MustParseAddr("10.2.3.7")
	for _, tc := range []struct {
		name string
		e    *Evaluator
		pod  *corev1.Pod
	}{
		{"baseline no policy", NewFromObjects(objs...), pod("empty", "x", "10.3.0.1", nil)},
		{"50 policies", NewFromObjects(objs...), subject},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				if !tc.e.AllowIngress(tc.pod, peer, corev1.ProtocolTCP, 8080) {
					b.Fatal("denied")
				}
			}
		})
	}
}
