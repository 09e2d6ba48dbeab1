package clusterdns

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	goruntime "runtime"
	"testing"
	"time"

	"github.com/miekg/dns"
	fcache "k8s.io/client-go/tools/cache/testing"
)

// BenchmarkDNSServiceA measures queries per second of the embedded server
// answering a Service's A record over UDP on loopback, beside a baseline in
// the same run: the same miekg/dns client against a trivial miekg/dns
// handler that answers one fixed A record. The ratio is the cost of the
// server's own work (the index lookup, building the answer, truncation).
//
//	go test -run '^$' -bench BenchmarkDNSServiceA -benchtime 3s ./internal/clusterdns/
func BenchmarkDNSServiceA(b *testing.B) {
	fmt.Printf("GOMAXPROCS=%d NumCPU=%d %s miekg/dns %s\n", goruntime.GOMAXPROCS(0), goruntime.NumCPU(), goruntime.Version(), dns.Version)

	// The embedded server, with 1000 Services so that the lookup is in a
	// map of realistic size.
	src := fcache.NewFakeControllerSource()
	for i := range 1000 {
		src.Add(service("default", fmt.Sprintf("svc-%d", i), fmt.Sprintf("127.82.%d.%d", i/250, i%250+1)))
	}
	s, err := Start(context.Background(), Config{Services: src, EndpointSlices: fcache.NewFakeControllerSource(),
		Listen: "127.0.0.1:0", Upstreams: []string{}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for !s.Synced() || s.Addr() == "" {
		if time.Now().After(deadline) {
			b.Fatal("not serving")
		}
		time.Sleep(5 * time.Millisecond)
	}
	for {
		r := query(b, s.Addr(), "svc-999.default.svc.cluster.local.")
		if len(r.Answer) == 1 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("svc-999 not indexed: %v", r)
		}
		time.Sleep(5 * time.Millisecond)
	}

	// The baseline: a handler answering one fixed record.
	fixed := &dns.A{Hdr: dns.RR_Header{Name: "svc-999.default.svc.cluster.local.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5},
		A: net.IPv4(127, 82, 3, 250)}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	base := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg).SetReply(r)
		m.Answer = []dns.RR{fixed}
		w.WriteMsg(m)
	})}
	go base.ActivateAndServe()
	defer base.Shutdown()

	rates := map[string]float64{}
	for _, tc := range []struct{ name, addr string }{{"baseline", pc.LocalAddr().String()}, {"embedded", s.Addr()}} {
		b.Run(tc.name, func(b *testing.B) {
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				c := &dns.Client{Timeout: 2 * time.Second}
				conn, err := c.Dial(tc.addr)
				if err != nil {
					b.Error(err)
					return
				}
				defer conn.Close()
				m := new(dns.Msg).SetQuestion("svc-999.default.svc.cluster.local.", dns.TypeA)
				for pb.Next() {
					r, _, err := c.ExchangeWithConn(m, conn)
					if err != nil || len(r.Answer) != 1 {
						b.Errorf("answer %v, err %v", r, err)
						return
					}
				}
			})
			rate := float64(b.N) / time.Since(start).Seconds()
			b.ReportMetric(rate, "queries/s")
			rates[tc.name] = rate
		})
	}
	if rates["baseline"] > 0 {
		fmt.Printf("embedded %.0f queries/s, baseline %.0f queries/s: %.2f of the baseline\n",
			rates["embedded"], rates["baseline"], rates["embedded"]/rates["baseline"])
	}
}

func query(b *testing.B, addr, name string) *dns.Msg {
	m := new(dns.Msg).SetQuestion(name, dns.TypeA)
	r, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(m, addr)
	if err != nil {
		b.Fatal(err)
	}
	return r
}
