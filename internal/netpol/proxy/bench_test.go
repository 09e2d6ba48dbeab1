package proxy

import (
	"context"
	"io"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"
)

// The proxy's cost against a direct loopback connection to the same
// endpoint, measured in the same run: a new connection with one small
// request and answer per operation, and bulk transfer. Run with
// go test -run '^$' -bench . ./netpol/proxy/
//
// The endpoint answers each 64-byte request with 64 bytes, and streams
// whatever a "bulk" client sends back to it.

func benchEndpoint(b *testing.B) string {
	ln, err := net.Listen("tcp4", "127.66.73.1:0")
	if err != nil {
		b.Skipf("cannot listen on 127.66.73.1: %v", err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func benchFrontend(b *testing.B, endpoint string) string {
	ctx, cancel := context.WithCancel(context.Background())
	var c counters
	tb := newTable(ctx, 2*time.Second, 4096, &c)
	b.Cleanup(func() { cancel(); tb.close() })
	ln, err := net.Listen("tcp4", "127.71.1.1:0")
	if err != nil {
		b.Skipf("cannot listen on 127.71.1.1: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if errs := tb.apply("bench/svc", []frontend{{addr: netip.MustParseAddrPort(addr), route: &route{backends: []string{endpoint}}}}); len(errs) > 0 {
		b.Fatal(errs[0])
	}
	return addr
}

func roundTrip(b *testing.B, addr string) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 64)
	if _, err := c.Write(buf); err != nil {
		b.Fatal(err)
	}
	if _, err := io.ReadFull(c, buf); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkConnect(b *testing.B) {
	endpoint := benchEndpoint(b)
	front := benchFrontend(b, endpoint)
	b.Logf("GOMAXPROCS=%d", runtime.GOMAXPROCS(0))
	for _, c := range []struct{ name, addr string }{{"direct", endpoint}, {"proxied", front}} {
		b.Run(c.name, func(b *testing.B) {
			for range b.N {
				roundTrip(b, c.addr)
			}
		})
	}
}

func BenchmarkBulk(b *testing.B) {
	endpoint := benchEndpoint(b)
	front := benchFrontend(b, endpoint)
	const chunk = 256 << 10
	for _, c := range []struct{ name, addr string }{{"direct", endpoint}, {"proxied", front}} {
		b.Run(c.name, func(b *testing.B) {
			conn, err := net.Dial("tcp", c.addr)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			out, in := make([]byte, chunk), make([]byte, chunk)
			b.SetBytes(chunk)
			b.ResetTimer()
			for range b.N {
				done := make(chan error, 1)
				go func() { _, err := conn.Write(out); done <- err }()
				if _, err := io.ReadFull(conn, in); err != nil {
					b.Fatal(err)
				}
				if err := <-done; err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
