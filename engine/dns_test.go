package engine

import (
	"context"
	"errors"
	"net"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiffhq/skiff/internal/testutil"
)

// needPort53 skips the test where this process may not bind port 53 (it
// needs root or CAP_NET_BIND_SERVICE, or a low
// net.ipv4.ip_unprivileged_port_start), trying on an address of the
// test's own service range that no Service uses.
func needPort53(t *testing.T, probe string) {
	t.Helper()
	pc, err := net.ListenPacket("udp", net.JoinHostPort(probe, "53"))
	if errors.Is(err, syscall.EACCES) {
		t.Skipf("cannot bind port 53 (needs root or CAP_NET_BIND_SERVICE): %v", err)
	}
	if err != nil {
		t.Skipf("cannot bind %s:53: %v", probe, err)
	}
	pc.Close()
}

// lookup asks server (ip:port) for name over netw until check passes.
func lookup(t *testing.T, server, netw, name string, qtype uint16, check func(*dns.Msg) bool) *dns.Msg {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		m := new(dns.Msg).SetQuestion(name, qtype)
		r, _, err := (&dns.Client{Net: netw, Timeout: 2 * time.Second}).Exchange(m, server)
		if err == nil && check(r) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s %s over %s at %s: %v (err %v)", name, dns.TypeToString[qtype], netw, server, r, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func answers(r *dns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		switch rr := rr.(type) {
		case *dns.A:
			out = append(out, rr.A.String())
		case *dns.PTR:
			out = append(out, rr.Ptr)
		}
	}
	slices.Sort(out)
	return out
}

// The control plane makes the kube-dns Service, and the node's DNS server
// answers on its ClusterIP, port 53, UDP and TCP (the Service proxy leaves
// that address to it): a Service created through the API by name, a
// headless Service's endpoint by its hostname, reverse lookups. A second
// engine on the same machine with another service range serves its own.
func TestClusterDNS(t *testing.T) {
	needPort53(t, "127.82.0.253")
	needPort53(t, "127.84.0.253")
	ctx := context.Background()
	e1 := startEngine(t, Config{DataDir: t.TempDir(), NodeName: "dns-1", APIListen: "127.0.0.1:0",
		ServiceCIDR: "127.82.0.0/16", ClusterPodCIDR: "127.81.0.0/16", Logger: testutil.Logger(t)})
	e2 := startEngine(t, Config{DataDir: t.TempDir(), NodeName: "dns-2", APIListen: "127.0.0.1:0",
		ServiceCIDR: "127.84.0.0/16", ClusterPodCIDR: "127.83.0.0/16", ClusterDomain: "edge.test", Logger: testutil.Logger(t)})

	for _, tc := range []struct {
		e      *Engine
		dnsIP  string
		domain string
	}{{e1, "127.82.0.10", "cluster.local."}, {e2, "127.84.0.10", "edge.test."}} {
		cs, err := tc.e.Clientset()
		if err != nil {
			t.Fatal(err)
		}
		kubeDNS, err := cs.CoreV1().Services("kube-system").Get(ctx, "kube-dns", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("the kube-dns Service: %v", err)
		}
		if kubeDNS.Spec.ClusterIP != tc.dnsIP || kubeDNS.Labels["k8s-app"] != "kube-dns" || len(kubeDNS.Spec.Ports) != 2 ||
			kubeDNS.Spec.Ports[0].Protocol != corev1.ProtocolUDP || kubeDNS.Spec.Ports[1].Protocol != corev1.ProtocolTCP ||
			kubeDNS.Spec.Ports[0].Port != 53 || kubeDNS.Spec.Selector != nil {
			t.Fatalf("kube-dns Service: %+v %+v", kubeDNS.ObjectMeta.Labels, kubeDNS.Spec)
		}
		server := net.JoinHostPort(tc.dnsIP, "53")

		web := createDNSService(t, cs, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"},
				Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}}})
		for _, netw := range []string{"udp", "tcp"} {
			r := lookup(t, server, netw, "web.default.svc."+tc.domain, dns.TypeA, func(r *dns.Msg) bool { return len(r.Answer) == 1 })
			if got := answers(r); !slices.Equal(got, []string{web.Spec.ClusterIP}) {
				t.Fatalf("web over %s: %v, want %s", netw, got, web.Spec.ClusterIP)
			}
		}
		r := lookup(t, server, "udp", "_http._tcp.web.default.svc."+tc.domain, dns.TypeSRV, func(r *dns.Msg) bool { return len(r.Answer) == 1 })
		if srv := r.Answer[0].(*dns.SRV); srv.Port != 80 || srv.Target != "web.default.svc."+tc.domain {
			t.Fatalf("SRV: %v", srv)
		}
		rev, _ := dns.ReverseAddr(tc.dnsIP)
		r = lookup(t, server, "udp", rev, dns.TypePTR, func(r *dns.Msg) bool { return len(r.Answer) == 1 })
		if got := answers(r); !slices.Equal(got, []string{"kube-dns.kube-system.svc." + tc.domain}) {
			t.Fatalf("PTR of kube-dns: %v", got)
		}
		r = lookup(t, server, "udp", "nope.default.svc."+tc.domain, dns.TypeA, func(r *dns.Msg) bool { return true })
		if r.Rcode != dns.RcodeNameError {
			t.Fatalf("a Service that does not exist: %v", r)
		}
	}

	// A headless Service with an endpoint of its own (no selector: the
	// test writes the EndpointSlice, as an operator would).
	cs, err := e1.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	createDNSService(t, cs, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "default"},
		Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Ports: []corev1.ServicePort{{Name: "pg", Port: 5432}}}})
	host, port, ready := "db-0", int32(5432), true
	pg := "pg"
	if _, err := cs.DiscoveryV1().EndpointSlices("default").Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "db-1", Namespace: "default", Labels: map[string]string{discoveryv1.LabelServiceName: "db"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"127.81.200.1"}, Hostname: &host,
			Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
		Ports: []discoveryv1.EndpointPort{{Name: &pg, Port: &port}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	r := lookup(t, "127.82.0.10:53", "udp", "db-0.db.default.svc.cluster.local.", dns.TypeA, func(r *dns.Msg) bool { return len(r.Answer) == 1 })
	if got := answers(r); !slices.Equal(got, []string{"127.81.200.1"}) {
		t.Fatalf("headless endpoint: %v", got)
	}
	r = lookup(t, "127.82.0.10:53", "udp", "1.200.81.127.in-addr.arpa.", dns.TypePTR, func(r *dns.Msg) bool { return len(r.Answer) == 1 })
	if got := answers(r); !slices.Equal(got, []string{"db-0.db.default.svc.cluster.local."}) {
		t.Fatalf("PTR of the endpoint: %v", got)
	}
}

func createDNSService(t *testing.T, cs kubernetes.Interface, svc *corev1.Service) *corev1.Service {
	t.Helper()
	out, err := cs.CoreV1().Services(svc.Namespace).Create(context.Background(), svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
