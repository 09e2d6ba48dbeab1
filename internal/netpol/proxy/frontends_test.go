package proxy

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func ptr[T any](v T) *T { return &v }

func slice(port int32, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "s", Namespace: "ns"},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr("http"), Port: ptr(port), Protocol: ptr(corev1.ProtocolTCP)}},
		Endpoints:   eps,
	}
}

func ep(ip, node string, ready, serving, terminating *bool) discoveryv1.Endpoint {
	return discoveryv1.Endpoint{Addresses: []string{ip}, NodeName: ptr(node),
		Conditions: discoveryv1.EndpointConditions{Ready: ready, Serving: serving, Terminating: terminating}}
}

func render(fronts []frontend) []string {
	var out []string
	for _, f := range fronts {
		out = append(out, f.addr.String()+" -> "+strings.Join(f.route.backends, ","))
	}
	slices.Sort(out)
	return out
}

func TestDesiredFrontends(t *testing.T) {
	yes, no := ptr(true), ptr(false)
	node := netip.MustParseAddr("127.0.0.1")
	local := corev1.ServiceInternalTrafficPolicyLocal
	for _, c := range []struct {
		name  string
		spec  corev1.ServiceSpec
		eps   []*discoveryv1.EndpointSlice
		want  []string
		skips int
	}{
		{
			name: "ready endpoints, unset ready counts as ready, duplicates merged",
			spec: corev1.ServiceSpec{ClusterIP: "127.70.0.10", Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
			eps: []*discoveryv1.EndpointSlice{
				slice(8080, ep("127.66.0.1", "n1", yes, yes, no), ep("127.66.0.2", "n2", nil, nil, nil), ep("127.66.0.3", "n1", no, no, no)),
				slice(8080, ep("127.66.0.1", "n1", yes, yes, no)),
			},
			want: []string{"127.70.0.10:80 -> 127.66.0.1:8080,127.66.0.2:8080"},
		},
		{
			name: "only terminating serving endpoints left: used",
			spec: corev1.ServiceSpec{ClusterIP: "127.70.0.10", Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
			eps:  []*discoveryv1.EndpointSlice{slice(8080, ep("127.66.0.1", "n1", no, yes, yes), ep("127.66.0.2", "n1", no, no, yes))},
			want: []string{"127.70.0.10:80 -> 127.66.0.1:8080"},
		},
		{
			name: "no endpoint: nothing listens",
			spec: corev1.ServiceSpec{ClusterIP: "127.70.0.10", Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
			eps:  []*discoveryv1.EndpointSlice{slice(8080, ep("127.66.0.3", "n1", no, no, no))},
		},
		{
			name:  "cluster IP off loopback and UDP port skipped; node port still served",
			spec:  corev1.ServiceSpec{ClusterIP: "10.0.0.1", Ports: []corev1.ServicePort{{Name: "http", Port: 80, NodePort: 30080}, {Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP}}},
			eps:   []*discoveryv1.EndpointSlice{slice(8080, ep("127.66.0.1", "n1", yes, yes, no))},
			want:  []string{"127.0.0.1:30080 -> 127.66.0.1:8080"},
			skips: 2,
		},
		{
			name: "internal traffic policy Local: this node's endpoints only",
			spec: corev1.ServiceSpec{ClusterIP: "127.70.0.10", InternalTrafficPolicy: &local,
				Ports: []corev1.ServicePort{{Name: "http", Port: 80, NodePort: 30080}}},
			eps:  []*discoveryv1.EndpointSlice{slice(8080, ep("127.66.0.1", "n1", yes, yes, no), ep("127.66.0.2", "n2", yes, yes, no))},
			want: []string{"127.0.0.1:30080 -> 127.66.0.1:8080,127.66.0.2:8080", "127.70.0.10:80 -> 127.66.0.2:8080"},
		},
		{
			name: "headless and ExternalName: nothing",
			spec: corev1.ServiceSpec{ClusterIP: "None", Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
			eps:  []*discoveryv1.EndpointSlice{slice(8080, ep("127.66.0.1", "n1", yes, yes, no))},
		},
	} {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "svc", Namespace: "ns"}, Spec: c.spec}
		fronts, skips := desiredFrontends(svc, c.eps, "n2", node)
		if got := render(fronts); !slices.Equal(got, c.want) || len(skips) != c.skips {
			t.Errorf("%s:\n got %v (%d skipped)\nwant %v (%d skipped)", c.name, got, len(skips), c.want, c.skips)
		}
	}
}
