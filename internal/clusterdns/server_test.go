package clusterdns

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	fcache "k8s.io/client-go/tools/cache/testing"

	"github.com/skiffhq/skiff/internal/testutil"
)

// fakeUpstream is a resolver on loopback that answers A queries for names
// under "test." with 127.0.0.99, PTR queries with "upstream.test.", and
// everything else NXDOMAIN. It counts the queries it got.
type fakeUpstream struct {
	addr    string
	queries atomic.Int64
}

func startUpstream(t *testing.T) *fakeUpstream {
	t.Helper()
	u := &fakeUpstream{}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		u.queries.Add(1)
		m := new(dns.Msg).SetReply(r)
		q := r.Question[0]
		switch {
		case q.Qtype == dns.TypeA && strings.HasSuffix(q.Name, ".test."):
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
				A: net.IPv4(127, 0, 0, 99)})
		case q.Qtype == dns.TypePTR:
			m.Answer = append(m.Answer, &dns.PTR{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: 60},
				Ptr: "upstream.test."})
		default:
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	u.addr = pc.LocalAddr().String()
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: l, Handler: h}} {
		go srv.ActivateAndServe()
		t.Cleanup(func() { srv.Shutdown() })
	}
	return u
}

type fixture struct {
	srv      *Server
	services *fcache.FakeControllerSource
	slices   *fcache.FakeControllerSource
	upstream *fakeUpstream
}

func start(t *testing.T, objs ...any) *fixture {
	t.Helper()
	f := &fixture{services: fcache.NewFakeControllerSource(), slices: fcache.NewFakeControllerSource(), upstream: startUpstream(t)}
	for _, o := range objs {
		switch o := o.(type) {
		case *corev1.Service:
			f.services.Add(o)
		case *discoveryv1.EndpointSlice:
			f.slices.Add(o)
		}
	}
	var err error
	f.srv, err = Start(context.Background(), Config{Services: f.services, EndpointSlices: f.slices, Listen: "127.0.0.1:0",
		Upstreams: []string{f.upstream.addr}, Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.srv.Stop)
	deadline := time.Now().Add(10 * time.Second)
	for !f.srv.Synced() || f.srv.Addr() == "" {
		if time.Now().After(deadline) {
			t.Fatalf("not serving after 10s (addr %q, synced %v)", f.srv.Addr(), f.srv.Synced())
		}
		time.Sleep(5 * time.Millisecond)
	}
	return f
}

func (f *fixture) query(t *testing.T, netw, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	c := &dns.Client{Net: netw, Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, f.srv.Addr())
	if err != nil {
		t.Fatalf("%s %s over %s: %v", name, dns.TypeToString[qtype], netw, err)
	}
	return r
}

// eventually queries until check passes, for changes that reach the index
// through the informers.
func (f *fixture) eventually(t *testing.T, name string, qtype uint16, check func(*dns.Msg) bool) *dns.Msg {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := f.query(t, "udp", name, qtype)
		if check(r) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s %s: still %v", name, dns.TypeToString[qtype], r)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func addrs(r *dns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		switch rr := rr.(type) {
		case *dns.A:
			out = append(out, rr.A.String())
		case *dns.AAAA:
			out = append(out, rr.AAAA.String())
		}
	}
	slices.Sort(out)
	return out
}

func service(ns, name, clusterIP string, ports ...corev1.ServicePort) *corev1.Service {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: clusterIP, Ports: ports}}
	if clusterIP != corev1.ClusterIPNone {
		svc.Spec.ClusterIPs = []string{clusterIP}
	}
	return svc
}

type ep struct {
	addr, hostname string
	ready          bool
}

func slice(ns, svc, name string, portName string, port int32, eps ...ep) *discoveryv1.EndpointSlice {
	proto := corev1.ProtocolTCP
	sl := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name,
		Labels: map[string]string{discoveryv1.LabelServiceName: svc}}, AddressType: discoveryv1.AddressTypeIPv4,
		Ports: []discoveryv1.EndpointPort{{Name: &portName, Port: &port, Protocol: &proto}}}
	for _, e := range eps {
		ready := e.ready
		d := discoveryv1.Endpoint{Addresses: []string{e.addr}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}
		if e.hostname != "" {
			h := e.hostname
			d.Hostname = &h
		}
		sl.Endpoints = append(sl.Endpoints, d)
	}
	return sl
}

func wantRcode(t *testing.T, r *dns.Msg, rcode int, answers int) {
	t.Helper()
	if r.Rcode != rcode || len(r.Answer) != answers {
		t.Fatalf("%s: rcode %s with %d answers, want %s with %d:\n%v", r.Question[0].Name, dns.RcodeToString[r.Rcode],
			len(r.Answer), dns.RcodeToString[rcode], answers, r)
	}
	if answers == 0 {
		if len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != dns.TypeSOA {
			t.Fatalf("%s: negative answer without the zone's SOA: %v", r.Question[0].Name, r)
		}
	}
}

// A ClusterIP Service: A (any case), AAAA NODATA, SRV for its named port
// with the target's address beside it, PTR; names that do not exist are
// NXDOMAIN, names above existing ones NODATA.
func TestClusterIPService(t *testing.T) {
	web := service("default", "web", "127.82.0.5", corev1.ServicePort{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP},
		corev1.ServicePort{Port: 9090})
	f := start(t, web)

	r := f.query(t, "udp", "web.default.svc.cluster.local.", dns.TypeA)
	wantRcode(t, r, dns.RcodeSuccess, 1)
	if got := addrs(r); !slices.Equal(got, []string{"127.82.0.5"}) || !r.Authoritative {
		t.Fatalf("A: %v (authoritative %v)", got, r.Authoritative)
	}
	r = f.query(t, "udp", "WEB.Default.svc.Cluster.Local.", dns.TypeA)
	if got := addrs(r); !slices.Equal(got, []string{"127.82.0.5"}) || r.Answer[0].Header().Name != "WEB.Default.svc.Cluster.Local." {
		t.Fatalf("A in other case: %v", r)
	}
	wantRcode(t, f.query(t, "udp", "web.default.svc.cluster.local.", dns.TypeAAAA), dns.RcodeSuccess, 0)

	r = f.query(t, "udp", "_http._tcp.web.default.svc.cluster.local.", dns.TypeSRV)
	wantRcode(t, r, dns.RcodeSuccess, 1)
	srv := r.Answer[0].(*dns.SRV)
	if srv.Port != 80 || srv.Target != "web.default.svc.cluster.local." {
		t.Fatalf("SRV: %v", srv)
	}
	if len(r.Extra) != 1 || r.Extra[0].(*dns.A).A.String() != "127.82.0.5" {
		t.Fatalf("SRV additional: %v", r.Extra)
	}

	r = f.query(t, "udp", "5.0.82.127.in-addr.arpa.", dns.TypePTR)
	wantRcode(t, r, dns.RcodeSuccess, 1)
	if ptr := r.Answer[0].(*dns.PTR).Ptr; ptr != "web.default.svc.cluster.local." {
		t.Fatalf("PTR: %s", ptr)
	}

	for _, n := range []string{"nope.default.svc.cluster.local.", "web.other.svc.cluster.local.",
		"_https._tcp.web.default.svc.cluster.local.", "x.web.default.svc.cluster.local."} {
		wantRcode(t, f.query(t, "udp", n, dns.TypeA), dns.RcodeNameError, 0)
	}
	for _, n := range []string{"default.svc.cluster.local.", "svc.cluster.local.", "_tcp.web.default.svc.cluster.local.",
		"cluster.local."} {
		wantRcode(t, f.query(t, "udp", n, dns.TypeA), dns.RcodeSuccess, 0)
	}
	r = f.query(t, "udp", "cluster.local.", dns.TypeSOA)
	wantRcode(t, r, dns.RcodeSuccess, 1)
	r = f.query(t, "udp", "dns-version.cluster.local.", dns.TypeTXT)
	if len(r.Answer) != 1 || r.Answer[0].(*dns.TXT).Txt[0] != "1.1.0" {
		t.Fatalf("dns-version: %v", r)
	}

	// A dual-stack update adds AAAA; a delete makes the name NXDOMAIN.
	web2 := web.DeepCopy()
	web2.Spec.ClusterIPs = append(web2.Spec.ClusterIPs, "fd00:82::5")
	f.services.Modify(web2.DeepCopy())
	r = f.eventually(t, "web.default.svc.cluster.local.", dns.TypeAAAA, func(r *dns.Msg) bool { return len(r.Answer) == 1 })
	if got := addrs(r); !slices.Equal(got, []string{"fd00:82::5"}) {
		t.Fatalf("AAAA: %v", got)
	}
	f.services.Delete(web2.DeepCopy())
	f.eventually(t, "web.default.svc.cluster.local.", dns.TypeA, func(r *dns.Msg) bool { return r.Rcode == dns.RcodeNameError })
	wantRcode(t, f.query(t, "udp", "default.svc.cluster.local.", dns.TypeA), dns.RcodeNameError, 0)
}

// A headless Service answers with its ready endpoints, each endpoint has
// its own name (hostname, or the address with dashes), SRV records point at
// those names, and reverse lookups name them.
func TestHeadlessService(t *testing.T) {
	db := service("data", "db", corev1.ClusterIPNone)
	sl := slice("data", "db", "db-abc", "pg", 5432,
		ep{"127.81.0.1", "db-0", true}, ep{"127.81.0.2", "db-1", true}, ep{"127.81.0.3", "", false}, ep{"127.81.0.4", "", true})
	f := start(t, db, sl)

	r := f.query(t, "udp", "db.data.svc.cluster.local.", dns.TypeA)
	if got := addrs(r); !slices.Equal(got, []string{"127.81.0.1", "127.81.0.2", "127.81.0.4"}) {
		t.Fatalf("A: %v", got)
	}
	if got := addrs(f.query(t, "udp", "db-1.db.data.svc.cluster.local.", dns.TypeA)); !slices.Equal(got, []string{"127.81.0.2"}) {
		t.Fatalf("endpoint hostname: %v", got)
	}
	if got := addrs(f.query(t, "udp", "127-81-0-4.db.data.svc.cluster.local.", dns.TypeA)); !slices.Equal(got, []string{"127.81.0.4"}) {
		t.Fatalf("endpoint without hostname: %v", got)
	}
	wantRcode(t, f.query(t, "udp", "127-81-0-3.db.data.svc.cluster.local.", dns.TypeA), dns.RcodeNameError, 0)

	r = f.query(t, "udp", "_pg._tcp.db.data.svc.cluster.local.", dns.TypeSRV)
	var targets []string
	for _, rr := range r.Answer {
		s := rr.(*dns.SRV)
		if s.Port != 5432 {
			t.Errorf("SRV port %d", s.Port)
		}
		targets = append(targets, s.Target)
	}
	slices.Sort(targets)
	want := []string{"127-81-0-4.db.data.svc.cluster.local.", "db-0.db.data.svc.cluster.local.", "db-1.db.data.svc.cluster.local."}
	if !slices.Equal(targets, want) || len(r.Extra) != 3 {
		t.Fatalf("SRV targets %v (want %v), additional %v", targets, want, r.Extra)
	}
	r = f.query(t, "udp", "1.0.81.127.in-addr.arpa.", dns.TypePTR)
	if len(r.Answer) != 1 || r.Answer[0].(*dns.PTR).Ptr != "db-0.db.data.svc.cluster.local." {
		t.Fatalf("PTR: %v", r)
	}

	// The not-ready endpoint becomes ready.
	sl2 := slice("data", "db", "db-abc", "pg", 5432,
		ep{"127.81.0.1", "db-0", true}, ep{"127.81.0.2", "db-1", true}, ep{"127.81.0.3", "", true}, ep{"127.81.0.4", "", true})
	f.slices.Modify(sl2)
	f.eventually(t, "db.data.svc.cluster.local.", dns.TypeA, func(r *dns.Msg) bool { return len(r.Answer) == 4 })
}

// An ExternalName Service is a CNAME, chased for the client: through the
// upstream outside the cluster, from the index inside it.
func TestExternalName(t *testing.T) {
	ext := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "ext"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "db.example.test"}}
	in := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "alias"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "web.default.svc.cluster.local"}}
	f := start(t, ext, in, service("default", "web", "127.82.0.5"))

	r := f.query(t, "udp", "ext.default.svc.cluster.local.", dns.TypeA)
	if len(r.Answer) != 2 || r.Answer[0].(*dns.CNAME).Target != "db.example.test." || r.Answer[1].(*dns.A).A.String() != "127.0.0.99" {
		t.Fatalf("ExternalName outside: %v", r)
	}
	r = f.query(t, "udp", "ext.default.svc.cluster.local.", dns.TypeCNAME)
	wantRcode(t, r, dns.RcodeSuccess, 1)
	r = f.query(t, "udp", "alias.default.svc.cluster.local.", dns.TypeA)
	if len(r.Answer) != 2 || r.Answer[0].(*dns.CNAME).Target != "web.default.svc.cluster.local." || r.Answer[1].(*dns.A).A.String() != "127.82.0.5" {
		t.Fatalf("ExternalName inside: %v", r)
	}
}

// Pod names answer with the address they spell, in any namespace.
func TestPodRecords(t *testing.T) {
	f := start(t)
	r := f.query(t, "udp", "127-81-0-7.default.pod.cluster.local.", dns.TypeA)
	if got := addrs(r); !slices.Equal(got, []string{"127.81.0.7"}) {
		t.Fatalf("pod A: %v", r)
	}
	r = f.query(t, "udp", "fd00--7.team.pod.cluster.local.", dns.TypeAAAA)
	if got := addrs(r); !slices.Equal(got, []string{"fd00::7"}) {
		t.Fatalf("pod AAAA: %v", r)
	}
	wantRcode(t, f.query(t, "udp", "127-81-0-7.default.pod.cluster.local.", dns.TypeAAAA), dns.RcodeSuccess, 0)
	wantRcode(t, f.query(t, "udp", "not-an-ip.default.pod.cluster.local.", dns.TypeA), dns.RcodeNameError, 0)
	wantRcode(t, f.query(t, "udp", "127-81-0-7.pod.cluster.local.", dns.TypeA), dns.RcodeNameError, 0)
}

// Names outside the cluster domain, and reverse names of addresses the
// cluster does not know, go to the upstream, over UDP and TCP; the cluster
// domain never does.
func TestForwarding(t *testing.T) {
	f := start(t, service("default", "web", "127.82.0.5"))
	for _, netw := range []string{"udp", "tcp"} {
		r := f.query(t, netw, "www.example.test.", dns.TypeA)
		if got := addrs(r); !slices.Equal(got, []string{"127.0.0.99"}) {
			t.Fatalf("forwarded over %s: %v", netw, r)
		}
	}
	if r := f.query(t, "udp", "nothing.invalid.", dns.TypeA); r.Rcode != dns.RcodeNameError {
		t.Fatalf("upstream's NXDOMAIN: %v", r)
	}
	r := f.query(t, "udp", "9.9.82.127.in-addr.arpa.", dns.TypePTR)
	if len(r.Answer) != 1 || r.Answer[0].(*dns.PTR).Ptr != "upstream.test." {
		t.Fatalf("unknown PTR not forwarded: %v", r)
	}
	before := f.upstream.queries.Load()
	f.query(t, "udp", "web.default.svc.cluster.local.", dns.TypeA)
	f.query(t, "udp", "nope.default.svc.cluster.local.", dns.TypeA)
	f.query(t, "udp", "5.0.82.127.in-addr.arpa.", dns.TypePTR)
	if n := f.upstream.queries.Load() - before; n != 0 {
		t.Fatalf("%d cluster queries went upstream", n)
	}
}

// An upstream that does not answer gives SERVFAIL, not a hang.
func TestForwardingFails(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0") // answers nothing
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	src := fcache.NewFakeControllerSource()
	s, err := Start(context.Background(), Config{Services: src, EndpointSlices: fcache.NewFakeControllerSource(),
		Listen: "127.0.0.1:0", Upstreams: []string{pc.LocalAddr().String()}, ForwardTimeout: 200 * time.Millisecond,
		Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	m := new(dns.Msg).SetQuestion("www.example.test.", dns.TypeA)
	r, _, err := (&dns.Client{Timeout: 3 * time.Second}).Exchange(m, s.Addr())
	if err != nil || r.Rcode != dns.RcodeServerFailure {
		t.Fatalf("answer %v, err %v; want SERVFAIL", r, err)
	}
}

// A headless Service with many endpoints does not fit a 512-byte UDP
// answer: it comes truncated (TC), and whole over TCP or with a large
// enough EDNS0 buffer.
func TestTruncation(t *testing.T) {
	var eps []ep
	for i := range 100 {
		eps = append(eps, ep{fmt.Sprintf("127.81.1.%d", i+1), "", true})
	}
	f := start(t, service("default", "big", corev1.ClusterIPNone), slice("default", "big", "big-1", "p", 80, eps...))

	r := f.query(t, "udp", "big.default.svc.cluster.local.", dns.TypeA)
	if !r.Truncated || len(r.Answer) >= 100 {
		t.Fatalf("UDP: truncated %v with %d answers", r.Truncated, len(r.Answer))
	}
	r = f.query(t, "tcp", "big.default.svc.cluster.local.", dns.TypeA)
	if r.Truncated || len(r.Answer) != 100 {
		t.Fatalf("TCP: truncated %v with %d answers", r.Truncated, len(r.Answer))
	}
	m := new(dns.Msg).SetQuestion("big.default.svc.cluster.local.", dns.TypeA)
	m.SetEdns0(4096, false)
	r, _, err := (&dns.Client{Timeout: 2 * time.Second, UDPSize: 4096}).Exchange(m, f.srv.Addr())
	if err != nil || r.Truncated || len(r.Answer) != 100 || r.IsEdns0() == nil {
		t.Fatalf("UDP with EDNS0 4096: %v", r)
	}
}

// A custom cluster domain.
func TestDomain(t *testing.T) {
	src := fcache.NewFakeControllerSource()
	src.Add(service("default", "web", "127.82.0.5"))
	s, err := Start(context.Background(), Config{Services: src, EndpointSlices: fcache.NewFakeControllerSource(),
		Listen: "127.0.0.1:0", Domain: "edge.example", Upstreams: []string{}, Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for !s.Synced() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	m := new(dns.Msg).SetQuestion("web.default.svc.edge.example.", dns.TypeA)
	r, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(m, s.Addr())
	if err != nil || len(r.Answer) != 1 {
		t.Fatalf("answer %v, err %v", r, err)
	}
}

// An address another server holds: Start still returns, logs, and serves
// once the address is free.
func TestBindRetry(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	s, err := Start(context.Background(), Config{Services: fcache.NewFakeControllerSource(),
		EndpointSlices: fcache.NewFakeControllerSource(), Listen: addr, Upstreams: []string{},
		BindRetry: 20 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if s.Addr() != "" {
		t.Fatalf("bound %s, which another socket holds", s.Addr())
	}
	pc.Close()
	deadline := time.Now().Add(10 * time.Second)
	for s.Addr() != addr {
		if time.Now().After(deadline) {
			t.Fatal("not bound after the address was freed")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Until the informers have listed, the cluster domain answers SERVFAIL
// (a client tries again) rather than NXDOMAIN (a client would cache it).
func TestServfailUntilSynced(t *testing.T) {
	release := make(chan struct{})
	services := &cache.ListWatch{
		ListFunc: func(metav1.ListOptions) (runtime.Object, error) {
			<-release
			return &corev1.ServiceList{ListMeta: metav1.ListMeta{ResourceVersion: "1"}}, nil
		},
		WatchFunc: func(metav1.ListOptions) (watch.Interface, error) { return watch.NewFake(), nil },
	}
	s, err := Start(context.Background(), Config{Services: services, EndpointSlices: fcache.NewFakeControllerSource(),
		Listen: "127.0.0.1:0", Upstreams: []string{}, Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()
	m := new(dns.Msg).SetQuestion("web.default.svc.cluster.local.", dns.TypeA)
	r, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(m, s.Addr())
	if err != nil || r.Rcode != dns.RcodeServerFailure {
		t.Fatalf("before the list: %v, err %v; want SERVFAIL", r, err)
	}
	close(release)
	released = true
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, _, err = (&dns.Client{Timeout: 2 * time.Second}).Exchange(m, s.Addr())
		if err == nil && r.Rcode == dns.RcodeNameError {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the list: %v, err %v; want NXDOMAIN", r, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
