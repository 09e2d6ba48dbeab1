package policy

import (
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	ktypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	skiffrt "github.com/skiffhq/skiff/runtime"
)

// The addresses below are only compared, never dialled.

func ns(name string, lbls map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbls}}
}

// pod is a running pod at ip; ports are "name:number[/UDP]" container
// ports.
func pod(namespace, name, ip string, lbls map[string]string, ports ...corev1.ContainerPort) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, UID: ktypes.UID("uid-" + namespace + "-" + name), Labels: lbls},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Ports: ports}}},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}},
	}
}

func cport(name string, n int32, proto corev1.Protocol) corev1.ContainerPort {
	return corev1.ContainerPort{Name: name, ContainerPort: n, Protocol: proto}
}

func np(namespace, name string, spec networkingv1.NetworkPolicySpec) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}, Spec: spec}
}

func sel(kv ...string) *metav1.LabelSelector {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return &metav1.LabelSelector{MatchLabels: m}
}

func lbl(kv ...string) map[string]string { return sel(kv...).MatchLabels }

func tcp(port int) networkingv1.NetworkPolicyPort {
	return networkingv1.NetworkPolicyPort{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(int32(port)))}
}

func types(ts ...networkingv1.PolicyType) []networkingv1.PolicyType { return ts }

const (
	ing = networkingv1.PolicyTypeIngress
	egr = networkingv1.PolicyTypeEgress
	TCP = corev1.ProtocolTCP
	UDP = corev1.ProtocolUDP
)

// The cluster the tables decide in: a db, its frontend and an unrelated
// pod in default; a client in a namespace of project myproject; a pod in
// another namespace; a pod that ended (its address is no peer).
var (
	nsDefault = ns("default", nil)
	nsProject = ns("proj", lbl("project", "myproject"))
	nsOther   = ns("other", lbl("team", "x"))

	db       = pod("default", "db", "10.1.0.1", lbl("role", "db"), cport("redis", 6379, TCP), cport("dns", 53, UDP))
	frontend = pod("default", "frontend", "10.1.0.2", lbl("role", "frontend"), cport("http", 8080, TCP))
	plain    = pod("default", "plain", "10.1.0.3", lbl("role", "plain"))
	client   = pod("proj", "client", "10.1.1.1", lbl("role", "frontend"), cport("http", 8080, TCP))
	stranger = pod("other", "stranger", "10.1.2.1", lbl("role", "frontend"), cport("web", 9000, TCP))
	ended    = func() *corev1.Pod {
		p := pod("default", "ended", "10.1.0.9", lbl("role", "frontend"))
		p.Status.Phase = corev1.PodSucceeded
		return p
	}()
)

func cluster(policies ...*networkingv1.NetworkPolicy) *Evaluator {
	objs := []runtime.Object{nsDefault, nsProject, nsOther, db, frontend, plain, client, stranger, ended}
	for _, p := range policies {
		objs = append(objs, p)
	}
	return NewFromObjects(objs...)
}

// check is one connection and the answer wanted: ingress to pod from
// peer on port, or egress from pod to peer:port.
type check struct {
	dir   skiffrt.Direction
	pod   *corev1.Pod
	peer  string // address
	port  uint16
	proto corev1.Protocol
	want  bool
}

func in(p *corev1.Pod, from string, port uint16, proto corev1.Protocol, want bool) check {
	return check{skiffrt.Ingress, p, from, port, proto, want}
}

func out(p *corev1.Pod, to string, port uint16, proto corev1.Protocol, want bool) check {
	return check{skiffrt.Egress, p, to, port, proto, want}
}

func (c check) run(t *testing.T, e *Evaluator) {
	t.Helper()
	addr := netip.MustParseAddr(c.peer)
	var got bool
	if c.dir == skiffrt.Ingress {
		got = e.AllowIngress(c.pod, addr, c.proto, c.port)
	} else {
		got = e.AllowEgress(c.pod, netip.AddrPortFrom(addr, c.port), c.proto)
	}
	if got != c.want {
		dir := "ingress to"
		if c.dir == skiffrt.Egress {
			dir = "egress from"
		}
		t.Errorf("%s %s/%s, peer %s port %d/%s: allowed %v, want %v", dir, c.pod.Namespace, c.pod.Name, c.peer, c.port, c.proto, got, c.want)
	}
}

func TestDecisions(t *testing.T) {
	for _, tc := range []struct {
		name     string
		policies []*networkingv1.NetworkPolicy
		checks   []check
	}{{
		name: "no policy: nothing is isolated",
		checks: []check{
			in(db, "10.1.2.1", 6379, TCP, true), in(db, "192.0.2.1", 1, UDP, true),
			out(db, "192.0.2.1", 443, TCP, true),
		},
	}, {
		// docs: "Default deny all ingress traffic"
		name:     "default deny ingress",
		policies: []*networkingv1.NetworkPolicy{np("default", "default-deny-ingress", networkingv1.NetworkPolicySpec{PolicyTypes: types(ing)})},
		checks: []check{
			in(db, "10.1.0.2", 6379, TCP, false), in(plain, "192.0.2.1", 80, TCP, false),
			in(client, "10.1.0.2", 8080, TCP, true), // another namespace: not selected
			out(db, "10.1.1.1", 8080, TCP, true),    // egress not isolated
			in(db, "10.1.0.1", 6379, TCP, true),     // its own address
			in(db, "127.0.0.1", 6379, TCP, true),    // its node (probes)
			in(db, "::1", 6379, TCP, true),
			in(db, "127.0.0.2", 6379, TCP, false), // another loopback address is no node's
		},
	}, {
		// docs: "Allow all ingress traffic"
		name: "allow all ingress",
		policies: []*networkingv1.NetworkPolicy{
			np("default", "default-deny-ingress", networkingv1.NetworkPolicySpec{PolicyTypes: types(ing)}),
			np("default", "allow-all-ingress", networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{}}, PolicyTypes: types(ing)}),
		},
		checks: []check{in(db, "192.0.2.1", 1, UDP, true), in(plain, "10.1.2.1", 80, TCP, true)},
	}, {
		// docs: "Default deny all egress traffic"
		name:     "default deny egress",
		policies: []*networkingv1.NetworkPolicy{np("default", "default-deny-egress", networkingv1.NetworkPolicySpec{PolicyTypes: types(egr)})},
		checks: []check{
			out(db, "10.1.0.2", 8080, TCP, false), out(plain, "192.0.2.1", 53, UDP, false),
			out(db, "10.1.0.1", 6379, TCP, true),   // its own address
			out(db, "127.0.0.1", 10250, TCP, true), // its node
			in(db, "10.1.0.2", 6379, TCP, true),    // ingress not isolated
			out(client, "10.1.0.1", 6379, TCP, true),
		},
	}, {
		// docs: "Allow all egress traffic"
		name: "allow all egress",
		policies: []*networkingv1.NetworkPolicy{
			np("default", "default-deny-egress", networkingv1.NetworkPolicySpec{PolicyTypes: types(egr)}),
			np("default", "allow-all-egress", networkingv1.NetworkPolicySpec{Egress: []networkingv1.NetworkPolicyEgressRule{{}}, PolicyTypes: types(egr)}),
		},
		checks: []check{out(db, "192.0.2.1", 443, TCP, true)},
	}, {
		// docs: "Default deny all ingress and all egress traffic"
		name:     "default deny both",
		policies: []*networkingv1.NetworkPolicy{np("default", "default-deny-all", networkingv1.NetworkPolicySpec{PolicyTypes: types(ing, egr)})},
		checks:   []check{in(db, "10.1.0.2", 6379, TCP, false), out(db, "10.1.0.2", 8080, TCP, false)},
	}, {
		name: "policyTypes defaulted: Ingress always, Egress with egress rules",
		policies: []*networkingv1.NetworkPolicy{np("default", "egress-only-rules", networkingv1.NetworkPolicySpec{
			PodSelector: *sel("role", "db"),
			Egress:      []networkingv1.NetworkPolicyEgressRule{{Ports: []networkingv1.NetworkPolicyPort{tcp(443)}}},
		})},
		checks: []check{
			in(db, "10.1.0.2", 6379, TCP, false), // isolated for ingress too, with no ingress rule
			out(db, "192.0.2.1", 443, TCP, true), out(db, "192.0.2.1", 80, TCP, false),
			in(plain, "10.1.0.2", 1, TCP, true), // not selected
		},
	}, {
		name: "policyTypes defaulted: no egress rules, egress open",
		policies: []*networkingv1.NetworkPolicy{np("default", "ingress-only", networkingv1.NetworkPolicySpec{
			PodSelector: *sel("role", "db")})},
		checks: []check{in(db, "10.1.0.2", 6379, TCP, false), out(db, "192.0.2.1", 443, TCP, true)},
	}, {
		name: "allow by pod selector: only in the policy's namespace",
		policies: []*networkingv1.NetworkPolicy{np("default", "db-from-frontend", networkingv1.NetworkPolicySpec{
			PodSelector: *sel("role", "db"),
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{PodSelector: sel("role", "frontend")}}}},
		})},
		checks: []check{
			in(db, "10.1.0.2", 6379, TCP, true),
			in(db, "10.1.0.3", 6379, TCP, false),  // role=plain
			in(db, "10.1.1.1", 6379, TCP, false),  // role=frontend, but in proj
			in(db, "10.1.0.9", 6379, TCP, false),  // role=frontend, but ended
			in(db, "192.0.2.1", 6379, TCP, false), // no pod
		},
	}, {
		name: "allow by namespace selector: every pod of the namespaces",
		policies: []*networkingv1.NetworkPolicy{np("default", "db-from-myproject", networkingv1.NetworkPolicySpec{
			PodSelector: *sel("role", "db"),
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: sel("project", "myproject")}}}},
		})},
		checks: []check{
			in(db, "10.1.1.1", 6379, TCP, true),
			in(db, "10.1.0.2", 6379, TCP, false), // default has no project label
			in(db, "10.1.2.1", 6379, TCP, false),
		},
	}, {
		name: "namespace selector by kubernetes.io/metadata.name; empty namespace selector is every namespace",
		policies: []*networkingv1.NetworkPolicy{
			np("default", "from-other", networkingv1.NetworkPolicySpec{PodSelector: *sel("role", "db"),
				Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: sel(corev1.LabelMetadataName, "other")}}}}}),
			np("default", "plain-from-anywhere", networkingv1.NetworkPolicySpec{PodSelector: *sel("role", "plain"),
				Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{}}}}}}),
		},
		checks: []check{
			in(db, "10.1.2.1", 6379, TCP, true), in(db, "10.1.1.1", 6379, TCP, false),
			in(plain, "10.1.1.1", 80, TCP, true), in(plain, "10.1.0.2", 80, TCP, true),
			in(plain, "192.0.2.1", 80, TCP, false), // a namespace selector names pods, not addresses
		},
	}, {
		// docs: the "and" and "or" of namespaceSelector and podSelector
		name: "namespace and pod selector in one peer: both must match",
		policies: []*networkingv1.NetworkPolicy{np("default", "and", networkingv1.NetworkPolicySpec{
			PodSelector: *sel("role", "db"),
			Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{
				{NamespaceSelector: sel("team", "x"), PodSelector: sel("role", "frontend")}}}},
		})},
		checks: []check{
			in(db, "10.1.2.1", 6379, TCP, true),  // team=x, role=frontend
			in(db, "10.1.0.2", 6379, TCP, false), // role=frontend in default: namespace does not match
			in(db, "10.1.1.1", 6379, TCP, false),
		},
	}, {
		name: "namespace selector and pod selector as two peers: either matches",
		policies: []*networkingv1.NetworkPolicy{np("default", "or", networkingv1.NetworkPolicySpec{
			PodSelector: *sel("role", "db"),
			Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{
				{NamespaceSelector: sel("team", "x")}, {PodSelector: sel("role", "frontend")}}}},
		})},
		checks: []check{
			in(db, "10.1.2.1", 6379, TCP, true), in(db, "10.1.0.2", 6379, TCP, true),
			in(db, "10.1.1.1", 6379, TCP, false), in(db, "10.1.0.3", 6379, TCP, false),
		},
	}, {
		name: "ipBlock with except, for pods and other addresses",
		policies: []*networkingv1.NetworkPolicy{np("default", "cidr", networkingv1.NetworkPolicySpec{
			PodSelector: *sel("role", "db"),
			Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{
				{IPBlock: &networkingv1.IPBlock{CIDR: "10.1.0.0/16", Except: []string{"10.1.1.0/24"}}},
				{IPBlock: &networkingv1.IPBlock{CIDR: "2001:db8::/32"}}}}},
		})},
		checks: []check{
			in(db, "10.1.0.2", 6379, TCP, true),  // a pod's address
			in(db, "10.1.9.9", 6379, TCP, true),  // no pod's
			in(db, "10.1.1.1", 6379, TCP, false), // excepted
			in(db, "10.2.0.1", 6379, TCP, false),
			in(db, "2001:db8::1", 6379, TCP, true),
			in(db, "::ffff:10.1.9.9", 6379, TCP, true), // a mapped IPv4 address is the IPv4 address
		},
	}, {
		name: "ports: number and protocol, TCP by default",
		policies: []*networkingv1.NetworkPolicy{np("default", "ports", networkingv1.NetworkPolicySpec{
			PodSelector: *sel("role", "db"),
			Ingress: []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{
				{Port: ptr.To(intstr.FromInt32(6379))},                                     // TCP by default
				{Protocol: ptr.To(corev1.ProtocolUDP), Port: ptr.To(intstr.FromInt32(53))}, // UDP only
			}}},
		})},
		checks: []check{
			in(db, "10.1.0.2", 6379, TCP, true), in(db, "10.1.0.2", 6379, UDP, false),
			in(db, "10.1.0.2", 53, UDP, true), in(db, "10.1.0.2", 53, TCP, false),
			in(db, "10.1.0.2", 6380, TCP, false),
		},
	}, {
		name: "ports: a protocol with no port is every port of it",
		policies: []*networkingv1.NetworkPolicy{np("default", "udp", networkingv1.NetworkPolicySpec{
			PodSelector: *sel("role", "db"),
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{{Protocol: ptr.To(corev1.ProtocolUDP)}}}},
		})},
		checks: []check{in(db, "10.1.0.2", 1, UDP, true), in(db, "10.1.0.2", 65535, UDP, true), in(db, "10.1.0.2", 6379, TCP, false)},
	}, {
		name: "named port, ingress: the selected pod's container ports",
		policies: []*networkingv1.NetworkPolicy{np("default", "named-in", networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{
				{Port: ptr.To(intstr.FromString("redis"))},
				{Protocol: ptr.To(corev1.ProtocolUDP), Port: ptr.To(intstr.FromString("dns"))},
				{Port: ptr.To(intstr.FromString("http"))}}}},
		})},
		checks: []check{
			in(db, "10.1.1.1", 6379, TCP, true), in(db, "10.1.1.1", 53, UDP, true),
			in(db, "10.1.1.1", 8080, TCP, false), // db has no port called http
			in(frontend, "10.1.1.1", 8080, TCP, true),
			in(frontend, "10.1.1.1", 6379, TCP, false), // frontend has no port called redis
			in(db, "10.1.1.1", 53, TCP, false),         // dns is UDP
		},
	}, {
		name: "named port, egress: the peer's container ports",
		policies: []*networkingv1.NetworkPolicy{np("default", "named-out", networkingv1.NetworkPolicySpec{
			PodSelector: *sel("role", "frontend"), PolicyTypes: types(egr),
			Egress: []networkingv1.NetworkPolicyEgressRule{{Ports: []networkingv1.NetworkPolicyPort{{Port: ptr.To(intstr.FromString("redis"))}}}},
		})},
		checks: []check{
			out(frontend, "10.1.0.1", 6379, TCP, true),   // db's redis
			out(frontend, "10.1.1.1", 6379, TCP, false),  // client has no redis port
			out(frontend, "192.0.2.1", 6379, TCP, false), // no pod: a name matches nothing
		},
	}, {
		// docs: "Targeting a range of ports"
		name: "endPort range",
		policies: []*networkingv1.NetworkPolicy{np("default", "multi-port-egress", networkingv1.NetworkPolicySpec{
			PodSelector: *sel("role", "db"), PolicyTypes: types(egr),
			Egress: []networkingv1.NetworkPolicyEgressRule{{
				To:    []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/24"}}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(32000)), EndPort: ptr.To[int32](32768)}},
			}},
		})},
		checks: []check{
			out(db, "10.0.0.7", 32000, TCP, true), out(db, "10.0.0.7", 32400, TCP, true), out(db, "10.0.0.7", 32768, TCP, true),
			out(db, "10.0.0.7", 31999, TCP, false), out(db, "10.0.0.7", 32769, TCP, false),
			out(db, "10.0.1.7", 32400, TCP, false), out(db, "10.0.0.7", 32400, UDP, false),
		},
	}, {
		name: "policies add up",
		policies: []*networkingv1.NetworkPolicy{
			np("default", "a", networkingv1.NetworkPolicySpec{PodSelector: *sel("role", "db"),
				Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{PodSelector: sel("role", "frontend")}}, Ports: []networkingv1.NetworkPolicyPort{tcp(6379)}}}}),
			np("default", "b", networkingv1.NetworkPolicySpec{PodSelector: *sel("role", "db"),
				Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: sel("project", "myproject")}}, Ports: []networkingv1.NetworkPolicyPort{tcp(9000)}}}}),
			np("default", "deny-all", networkingv1.NetworkPolicySpec{PolicyTypes: types(ing, egr)}),
		},
		checks: []check{
			in(db, "10.1.0.2", 6379, TCP, true), in(db, "10.1.0.2", 9000, TCP, false),
			in(db, "10.1.1.1", 9000, TCP, true), in(db, "10.1.1.1", 6379, TCP, false),
			in(plain, "10.1.0.2", 6379, TCP, false), out(db, "10.1.0.2", 8080, TCP, false),
		},
	}, {
		// docs: the example NetworkPolicy "test-network-policy"
		name: "the documentation's test-network-policy",
		policies: []*networkingv1.NetworkPolicy{np("default", "test-network-policy", networkingv1.NetworkPolicySpec{
			PodSelector: *sel("role", "db"), PolicyTypes: types(ing, egr),
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From: []networkingv1.NetworkPolicyPeer{
					{IPBlock: &networkingv1.IPBlock{CIDR: "172.17.0.0/16", Except: []string{"172.17.1.0/24"}}},
					{NamespaceSelector: sel("project", "myproject")},
					{PodSelector: sel("role", "frontend")}},
				Ports: []networkingv1.NetworkPolicyPort{tcp(6379)},
			}},
			Egress: []networkingv1.NetworkPolicyEgressRule{{
				To:    []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/24"}}},
				Ports: []networkingv1.NetworkPolicyPort{tcp(5978)},
			}},
		})},
		checks: []check{
			in(db, "172.17.0.5", 6379, TCP, true), in(db, "172.17.1.5", 6379, TCP, false),
			in(db, "10.1.1.1", 6379, TCP, true), in(db, "10.1.0.2", 6379, TCP, true),
			in(db, "10.1.0.3", 6379, TCP, false), in(db, "10.1.0.2", 6380, TCP, false),
			out(db, "10.0.0.9", 5978, TCP, true), out(db, "10.0.0.9", 5979, TCP, false), out(db, "10.1.0.2", 5978, TCP, false),
			in(frontend, "10.1.2.1", 1, TCP, true), // not selected
		},
	}, {
		name: "egress by pod and namespace selector",
		policies: []*networkingv1.NetworkPolicy{np("proj", "client-to-db", networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{}, PolicyTypes: types(egr),
			Egress: []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{
				{NamespaceSelector: sel(corev1.LabelMetadataName, "default"), PodSelector: sel("role", "db")}}}},
		})},
		checks: []check{
			out(client, "10.1.0.1", 6379, TCP, true), out(client, "10.1.0.2", 8080, TCP, false),
			out(client, "192.0.2.1", 53, UDP, false),
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			e := cluster(tc.policies...)
			for _, c := range tc.checks {
				c.run(t, e)
			}
		})
	}
}

// A connection to a Service's ClusterIP is decided for its backends: the
// policy names pods, not the Service.
func TestEgressThroughClusterIP(t *testing.T) {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "db"},
		Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.10", ClusterIPs: []string{"10.96.0.10"},
			Ports: []corev1.ServicePort{{Name: "redis", Port: 6379, TargetPort: intstr.FromString("redis")}}}}
	slice := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "db-x",
		Labels: map[string]string{discoveryv1.LabelServiceName: "db"}},
		Ports:     []discoveryv1.EndpointPort{{Name: ptr.To("redis"), Port: ptr.To[int32](6379), Protocol: ptr.To(corev1.ProtocolTCP)}},
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.1.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}}}
	toDB := np("proj", "to-db", networkingv1.NetworkPolicySpec{
		PodSelector: metav1.LabelSelector{}, PolicyTypes: types(egr),
		Egress: []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{
			{NamespaceSelector: &metav1.LabelSelector{}, PodSelector: sel("role", "db")}}, Ports: []networkingv1.NetworkPolicyPort{tcp(6379)}}}})
	base := []runtime.Object{nsDefault, nsProject, db, frontend, client, toDB}

	e := NewFromObjects(append(base, svc, slice)...)
	for _, c := range []check{
		out(client, "10.96.0.10", 6379, TCP, true), // the backend, db:6379, is allowed
		out(client, "10.1.0.1", 6379, TCP, true),   // so is db itself
		out(client, "10.96.0.10", 6380, TCP, false),
	} {
		c.run(t, e)
	}

	// A backend the policy does not allow: the ClusterIP is not allowed
	// either, though the policy would not name a Service's address.
	slice2 := slice.DeepCopy()
	slice2.Endpoints[0].Addresses = []string{"10.1.0.2"}
	slice2.Ports[0].Port = ptr.To[int32](6379)
	e = NewFromObjects(append(base, svc, slice2)...)
	out(client, "10.96.0.10", 6379, TCP, false).run(t, e)

	// Not ready endpoints are no backends.
	slice3 := slice.DeepCopy()
	slice3.Endpoints[0].Conditions.Ready = ptr.To(false)
	e = NewFromObjects(append(base, svc, slice3)...)
	out(client, "10.96.0.10", 6379, TCP, false).run(t, e)
}

func TestFirewall(t *testing.T) {
	deny := np("default", "deny", networkingv1.NetworkPolicySpec{PodSelector: *sel("role", "db"), PolicyTypes: types(ing)})
	e := NewFromObjects(nsDefault, deny, frontend)

	// The agent's copy: the feed does not have the pod yet.
	agentCopy := pod("default", "db", "10.1.0.1", lbl("role", "db"))
	fw := e.Firewall(agentCopy)
	if fw.Allow(skiffrt.Ingress, skiffrt.TCP, netip.MustParseAddrPort("10.1.0.2:40000"), 6379) {
		t.Error("ingress to a db allowed; the policy denies it")
	}
	if !fw.Allow(skiffrt.Egress, skiffrt.TCP, netip.MustParseAddrPort("10.1.0.2:8080"), 0) {
		t.Error("egress denied; no policy isolates it")
	}
	if !fw.Allow(skiffrt.Ingress, skiffrt.TCP, netip.MustParseAddrPort("10.1.0.1:40000"), 6379) {
		t.Error("the pod's own traffic denied")
	}

	// The feed's copy has other labels: they win, with the agent's address
	// while the feed has none.
	fed := pod("default", "db", "", lbl("role", "relabelled"))
	fed.UID = agentCopy.UID
	fed.Status = corev1.PodStatus{Phase: corev1.PodPending}
	if err := e.pods.Add(fed); err != nil {
		t.Fatal(err)
	}
	if !fw.Allow(skiffrt.Ingress, skiffrt.TCP, netip.MustParseAddrPort("10.1.0.2:40000"), 6379) {
		t.Error("ingress denied after the pod was relabelled out of the policy")
	}
	if !fw.Allow(skiffrt.Egress, skiffrt.TCP, netip.MustParseAddrPort("10.1.0.1:1"), 0) {
		t.Error("the pod's own address, known to the agent only, is not its own")
	}

	// A pod of the same name but another UID in the feed is not this pod.
	fed2 := fed.DeepCopy()
	fed2.UID = "another"
	if err := e.pods.Update(fed2); err != nil {
		t.Fatal(err)
	}
	if fw.Allow(skiffrt.Ingress, skiffrt.TCP, netip.MustParseAddrPort("10.1.0.2:40000"), 6379) {
		t.Error("the feed's pod of another UID decided for this one")
	}
}

// The Service proxy asks for each endpoint with the client's address: a
// pod is held to its egress policy, a node process to none.
func TestAllowEgressFrom(t *testing.T) {
	e := cluster(np("default", "frontend-to-db", networkingv1.NetworkPolicySpec{
		PodSelector: *sel("role", "frontend"), PolicyTypes: types(egr),
		Egress: []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{{PodSelector: sel("role", "db")}}}}}))
	for _, tc := range []struct {
		src, dst string
		want     bool
	}{
		{"10.1.0.2", "10.1.0.1:6379", true}, // frontend to db
		{"10.1.0.2", "10.1.0.3:80", false},  // frontend to plain
		{"10.1.0.3", "10.1.0.2:8080", true}, // plain is not isolated
		{"127.0.0.1", "10.1.0.3:80", true},  // no pod: the node
		{"10.1.0.9", "10.1.0.3:80", true},   // an ended pod's address is no pod's
		{"::ffff:10.1.0.2", "10.1.0.3:80", false},
	} {
		if got := e.AllowEgressFrom(netip.MustParseAddr(tc.src), netip.MustParseAddrPort(tc.dst), TCP); got != tc.want {
			t.Errorf("%s to %s: allowed %v, want %v", tc.src, tc.dst, got, tc.want)
		}
	}
}

// selectorMatches answers as the selector's conversion does.
func TestSelectorMatches(t *testing.T) {
	sets := []map[string]string{nil, {"a": "1"}, {"a": "2"}, {"a": "1", "b": "x"}, {"b": "y"}}
	req := func(key string, op metav1.LabelSelectorOperator, vals ...string) metav1.LabelSelectorRequirement {
		return metav1.LabelSelectorRequirement{Key: key, Operator: op, Values: vals}
	}
	for _, s := range []*metav1.LabelSelector{
		{},
		{MatchLabels: map[string]string{"a": "1"}},
		{MatchLabels: map[string]string{"a": "1", "b": "x"}},
		{MatchExpressions: []metav1.LabelSelectorRequirement{req("a", metav1.LabelSelectorOpIn, "1", "2")}},
		{MatchExpressions: []metav1.LabelSelectorRequirement{req("a", metav1.LabelSelectorOpNotIn, "1")}},
		{MatchExpressions: []metav1.LabelSelectorRequirement{req("b", metav1.LabelSelectorOpExists)}},
		{MatchExpressions: []metav1.LabelSelectorRequirement{req("b", metav1.LabelSelectorOpDoesNotExist)}},
		{MatchLabels: map[string]string{"a": "1"}, MatchExpressions: []metav1.LabelSelectorRequirement{req("b", metav1.LabelSelectorOpNotIn, "y")}},
	} {
		conv, err := metav1.LabelSelectorAsSelector(s)
		if err != nil {
			t.Fatal(err)
		}
		for _, set := range sets {
			if got, want := selectorMatches(s, set), conv.Matches(labels.Set(set)); got != want {
				t.Errorf("selector %v on %v: %v, want %v", s, set, got, want)
			}
		}
	}
	bad := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{req("a", "Near", "1")}}
	if selectorMatches(bad, map[string]string{"a": "1"}) {
		t.Error("an unknown operator matched")
	}
}
