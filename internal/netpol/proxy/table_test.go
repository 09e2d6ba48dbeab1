package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/testutil"
)

// The listener table on its own, with real sockets: frontends on 127.71.x.y
// (this file's range), endpoints that are plain TCP servers on 127.66.72.x.

func newTestTable(t *testing.T, maxConns int) (*table, *counters) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var c counters
	tb := newTable(ctx, 2*time.Second, maxConns, &c)
	t.Cleanup(func() { cancel(); tb.close() })
	return tb, &c
}

// echoServer answers each connection with its name, then echoes until the
// client half-closes, then closes.
func echoServer(t *testing.T, addr, name string) string {
	t.Helper()
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.WriteString(c, name+"\n")
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// deadAddr is an address where nothing listens: bound once, then closed.
func deadAddr(t *testing.T, ip string) string {
	t.Helper()
	ln, err := net.Listen("tcp4", ip+":0")
	if err != nil {
		t.Skipf("cannot listen on %s: %v", ip, err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func front(t *testing.T, addr string, backends ...string) frontend {
	t.Helper()
	return frontend{addr: netip.MustParseAddrPort(addr), route: &route{service: "test/svc", backends: backends}}
}

// hello connects and reads the endpoint's greeting.
func hello(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// A refused dial moves on to the next endpoint: with one dead endpoint of
// two, every connection still gets through.
func TestDialSkipsDeadEndpoint(t *testing.T) {
	tb, c := newTestTable(t, 100)
	live := echoServer(t, "127.66.72.1:0", "live")
	dead := deadAddr(t, "127.66.72.2")
	addr := deadAddr(t, "127.71.0.1")
	if errs := tb.apply("test/svc", []frontend{front(t, addr, dead, live)}); len(errs) != 0 {
		t.Fatal(errs[0])
	}
	for i := range 6 {
		got, err := hello(addr)
		if err != nil || got != "live\n" {
			t.Fatalf("connection %d: %q %v", i, got, err)
		}
	}
	if c.dialErrors.Load() == 0 || c.proxied.Load() != 6 {
		t.Fatalf("dial errors %d, proxied %d", c.dialErrors.Load(), c.proxied.Load())
	}
	// With only dead endpoints, the connection is reset, not left hanging.
	tb.apply("test/svc", []frontend{front(t, addr, dead)})
	if got, err := hello(addr); err == nil {
		t.Fatalf("dead endpoint answered %q", got)
	}
	if c.dropped.Load() != 1 {
		t.Fatalf("dropped %d, want 1", c.dropped.Load())
	}
}

// Beyond maxConns, new connections are reset while the live ones go on.
func TestMaxConnections(t *testing.T) {
	tb, c := newTestTable(t, 1)
	live := echoServer(t, "127.66.72.3:0", "live")
	addr := deadAddr(t, "127.71.0.2")
	tb.apply("test/svc", []frontend{front(t, addr, live)})
	held, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	held.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(held, make([]byte, 5)); err != nil {
		t.Fatal(err)
	}
	if got, err := hello(addr); err == nil {
		t.Fatalf("second connection over the limit answered %q", got)
	}
	if c.dropped.Load() != 1 || c.active.Load() != 1 {
		t.Fatalf("dropped %d active %d", c.dropped.Load(), c.active.Load())
	}
	// The held one still works.
	if _, err := held.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(held, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	held.Close()
	testutil.Eventually(t, 5*time.Second, func() error {
		if n := c.active.Load(); n != 0 {
			return fmt.Errorf("%d active after the client closed", n)
		}
		return nil
	})
	if got, err := hello(addr); err != nil || got != "live\n" {
		t.Fatalf("after the slot freed: %q %v", got, err)
	}
}

// A client that half-closes still gets the whole answer: the FIN is passed
// on, not turned into a close.
func TestHalfClose(t *testing.T) {
	tb, _ := newTestTable(t, 10)
	live := echoServer(t, "127.66.72.4:0", "live")
	addr := deadAddr(t, "127.71.0.3")
	tb.apply("test/svc", []frontend{front(t, addr, live)})
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("request")); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	b, err := io.ReadAll(c)
	if err != nil || string(b) != "live\nrequest" {
		t.Fatalf("read %q %v", b, err)
	}
}

// Changing a Service's addresses closes the old listener and binds the new
// one; an address another Service holds is refused; an empty set closes
// all.
func TestApplyRebinds(t *testing.T) {
	tb, _ := newTestTable(t, 10)
	live := echoServer(t, "127.66.72.5:0", "live")
	a, b := deadAddr(t, "127.71.0.4"), deadAddr(t, "127.71.0.5")
	tb.apply("test/svc", []frontend{front(t, a, live)})
	if _, err := hello(a); err != nil {
		t.Fatal(err)
	}
	tb.apply("test/svc", []frontend{front(t, b, live)})
	if _, err := net.DialTimeout("tcp", a, time.Second); err == nil {
		t.Fatalf("old address %s still listens", a)
	}
	if _, err := hello(b); err != nil {
		t.Fatal(err)
	}
	if errs := tb.apply("test/other", []frontend{front(t, b, live)}); len(errs) != 1 {
		t.Fatalf("second owner of %s: %v", b, errs)
	}
	tb.apply("test/svc", nil)
	if got := tb.addrs(); len(got) != 0 {
		t.Fatalf("listening on %v after the Service went", got)
	}
	var be *bindError
	taken, err := net.Listen("tcp4", "127.71.0.6:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	errs := tb.apply("test/svc", []frontend{front(t, taken.Addr().String(), live)})
	if len(errs) != 1 || !errors.As(errs[0], &be) || be.permanent() {
		t.Fatalf("bind on a taken address: %v", errs)
	}
}

// Affinity entries expire after the timeout; a full table sweeps expired
// entries before refusing new ones.
func TestAffinityTable(t *testing.T) {
	a := newAffinityTable(2)
	now := time.Unix(1000, 0)
	ttl := 10 * time.Second
	a.set("c1", "e1", now, ttl)
	if e, ok := a.get("c1", now.Add(ttl), ttl); !ok || e != "e1" {
		t.Fatalf("within ttl: %q %t", e, ok)
	}
	if _, ok := a.get("c1", now.Add(ttl+time.Second), ttl); ok {
		t.Fatal("entry outlived its timeout")
	}
	a.set("c1", "e1", now, ttl)
	a.set("c2", "e2", now, ttl)
	a.set("c3", "e3", now, ttl) // full, nothing expired: not recorded
	if _, ok := a.get("c3", now, ttl); ok || a.len() != 2 {
		t.Fatalf("full table took a new client (len %d)", a.len())
	}
	later := now.Add(2 * ttl)
	a.set("c3", "e3", later, ttl) // the expired ones make room
	if e, ok := a.get("c3", later, ttl); !ok || e != "e3" || a.len() != 1 {
		t.Fatalf("after sweep: %q %t len %d", e, ok, a.len())
	}
}

// Endpoints the client may not reach (its NetworkPolicy egress) are
// skipped; a client allowed none is reset. The endpoint is asked with the
// client's address, which the endpoint also sees.
func TestEndpointAllowed(t *testing.T) {
	tb, c := newTestTable(t, 100)
	a := echoServer(t, "127.66.72.3:0", "a")
	b := echoServer(t, "127.66.72.4:0", "b")
	addr := deadAddr(t, "127.71.0.2")
	var asked atomic.Int32
	tb.allow = func(client netip.Addr, endpoint netip.AddrPort) bool {
		asked.Add(1)
		return endpoint.String() == b && client == netip.MustParseAddr("127.0.0.1")
	}
	if errs := tb.apply("test/svc", []frontend{front(t, addr, a, b)}); len(errs) != 0 {
		t.Fatal(errs[0])
	}
	for i := range 4 {
		got, err := hello(addr)
		if err != nil || got != "b\n" {
			t.Fatalf("connection %d: %q %v, want only the allowed endpoint b", i, got, err)
		}
	}
	if asked.Load() == 0 {
		t.Fatal("EndpointAllowed never asked")
	}

	// A client from another address is allowed neither endpoint.
	d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.66.72.9")}}
	conn, err := d.Dial("tcp", addr)
	switch {
	case errors.Is(err, syscall.ECONNRESET):
		// The proxy's reset can reach the client before its connect
		// returns on a loaded machine: refused all the same.
	case err != nil:
		t.Fatal(err)
	default:
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		if n, err := conn.Read(make([]byte, 8)); err == nil {
			t.Fatalf("a client allowed no endpoint read %d bytes", n)
		}
	}
	if c.dropped.Load() != 1 || c.dialErrors.Load() != 0 {
		t.Fatalf("dropped %d, dial errors %d; want 1 and 0", c.dropped.Load(), c.dialErrors.Load())
	}
}
