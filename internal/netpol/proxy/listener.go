package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// maxDialAttempts bounds how many endpoints one connection tries before the
// proxy gives up on it.
const maxDialAttempts = 3

// listener serves one frontend address.
type listener struct {
	owner string // the Service key that holds the address
	addr  string
	ln    net.Listener
	route atomic.Pointer[route]
	rr    atomic.Uint64 // round-robin position
	aff   *affinityTable
	done  chan struct{} // closed when the accept loop has returned
}

// table holds the listeners and the live connections.
type table struct {
	dialTimeout time.Duration
	maxConns    int
	now         func() time.Time
	ctx         context.Context // canceled by Stop: ends dials
	stats       *counters
	// allow, when set, is asked for each endpoint before a client's
	// connection is dialled to it (Config.EndpointAllowed).
	allow func(client netip.Addr, endpoint netip.AddrPort) bool

	mu        sync.Mutex // guards listeners and owned; never taken by accept loops or connections
	listeners map[string]*listener
	owned     map[string]map[string]bool // service key -> its addresses

	connMu   sync.Mutex
	conns    map[net.Conn]struct{} // client and endpoint sides of live connections
	clients  int                   // client connections among conns
	stopping bool
	connWG   sync.WaitGroup // per-connection goroutines and accept loops
}

func newTable(ctx context.Context, dialTimeout time.Duration, maxConns int, stats *counters) *table {
	return &table{dialTimeout: dialTimeout, maxConns: maxConns, now: time.Now, ctx: ctx, stats: stats,
		listeners: map[string]*listener{}, owned: map[string]map[string]bool{}, conns: map[net.Conn]struct{}{}}
}

// bindError is a frontend that could not be bound.
type bindError struct {
	addr string
	err  error
}

func (e *bindError) Error() string { return "listen on " + e.addr + ": " + e.err.Error() }
func (e *bindError) Unwrap() error { return e.err }

// permanent says whether retrying the bind is pointless until something
// changes: a privileged port without the privilege.
func (e *bindError) permanent() bool { return errors.Is(e.err, syscall.EACCES) }

// apply makes the Service's listeners match fronts: listeners for addresses
// no longer wanted close (their live connections are left to finish, as
// established flows outlive a kube-proxy rule change), new addresses are
// bound, and kept ones get the new route at once. It returns the binds that
// failed; an address another Service still holds counts as one.
func (t *table) apply(owner string, fronts []frontend) []*bindError {
	t.mu.Lock()
	defer t.mu.Unlock()
	want := map[string]*route{}
	for _, f := range fronts {
		want[f.addr.String()] = f.route
	}
	for addr := range t.owned[owner] {
		if _, ok := want[addr]; !ok {
			t.closeLocked(addr)
		}
	}
	var errs []*bindError
	for addr, r := range want {
		if l := t.listeners[addr]; l != nil {
			if l.owner != owner {
				errs = append(errs, &bindError{addr, errors.New("address held by service " + l.owner)})
				continue
			}
			l.route.Store(r)
			continue
		}
		ln, err := (&net.ListenConfig{}).Listen(t.ctx, "tcp4", addr)
		if err != nil {
			t.stats.bindErrors.Add(1)
			errs = append(errs, &bindError{addr, err})
			continue
		}
		l := &listener{owner: owner, addr: addr, ln: ln, aff: newAffinityTable(maxAffinityEntries), done: make(chan struct{})}
		l.route.Store(r)
		t.listeners[addr] = l
		if t.owned[owner] == nil {
			t.owned[owner] = map[string]bool{}
		}
		t.owned[owner][addr] = true
		t.connWG.Add(1)
		go t.accept(l)
	}
	if len(t.owned[owner]) == 0 {
		delete(t.owned, owner)
	}
	return errs
}

// addrs lists the addresses listened on.
func (t *table) addrs() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]string, 0, len(t.listeners))
	for a := range t.listeners {
		out = append(out, a)
	}
	return out
}

func (t *table) closeLocked(addr string) {
	l := t.listeners[addr]
	if l == nil {
		return
	}
	l.ln.Close()
	<-l.done
	delete(t.listeners, addr)
	delete(t.owned[l.owner], addr)
}

// close closes every listener, then every live connection, and waits for
// all their goroutines.
func (t *table) close() {
	t.mu.Lock()
	for addr := range t.listeners {
		t.closeLocked(addr)
	}
	t.owned = map[string]map[string]bool{}
	t.mu.Unlock()
	t.connMu.Lock()
	t.stopping = true
	for c := range t.conns {
		c.Close()
	}
	t.connMu.Unlock()
	t.connWG.Wait()
}

// accept runs one listener's accept loop until the listener closes.
func (t *table) accept(l *listener) {
	defer t.connWG.Done()
	defer close(l.done)
	backoff := 5 * time.Millisecond
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait, bounded, rather than
			// spin; the kernel keeps queueing connections meanwhile.
			t.stats.acceptErrors.Add(1)
			time.Sleep(backoff)
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		t.stats.accepted.Add(1)
		if !t.track(c, true) {
			t.stats.dropped.Add(1)
			reset(c)
			continue
		}
		t.connWG.Add(1)
		go t.serve(l, c)
	}
}

// track registers a live connection so Stop can close it. It refuses
// connections once stopping, and clients beyond maxConns.
func (t *table) track(c net.Conn, client bool) bool {
	t.connMu.Lock()
	defer t.connMu.Unlock()
	if t.stopping || client && t.clients >= t.maxConns {
		return false
	}
	t.conns[c] = struct{}{}
	if client {
		t.clients++
		t.stats.active.Add(1)
	}
	return true
}

func (t *table) untrack(c net.Conn, client bool) {
	t.connMu.Lock()
	defer t.connMu.Unlock()
	if _, ok := t.conns[c]; !ok {
		return
	}
	delete(t.conns, c)
	if client {
		t.clients--
		t.stats.active.Add(-1)
	}
}

// serve connects one client to an endpoint and splices the two.
func (t *table) serve(l *listener, client net.Conn) {
	defer t.connWG.Done()
	defer t.untrack(client, true)
	defer client.Close()
	r := l.route.Load()
	clientIP := ""
	if a, ok := client.RemoteAddr().(*net.TCPAddr); ok {
		clientIP = a.IP.String()
	}
	backend := t.dial(l, r, clientIP)
	if backend == nil {
		t.stats.dropped.Add(1)
		reset(client)
		return
	}
	if !t.track(backend, false) {
		backend.Close()
		return
	}
	defer t.untrack(backend, false)
	defer backend.Close()
	t.stats.proxied.Add(1)
	splice(client, backend, &t.stats.bytesIn, &t.stats.bytesOut)
}

// dial picks endpoints for a new connection and returns the first that
// answers: the client's affine endpoint first, if it has one, then the next
// ones in round-robin order, at most maxDialAttempts in all (a refused or
// timed-out dial moves on to the next).
func (t *table) dial(l *listener, r *route, clientIP string) net.Conn {
	n := len(r.backends)
	if n == 0 {
		return nil
	}
	allowed := t.allowedFor(clientIP)
	var order []string
	if r.affinity > 0 && clientIP != "" {
		if b, ok := l.aff.get(clientIP, t.now(), r.affinity); ok && contains(r.backends, b) && allowed(b) {
			order = append(order, b)
		}
	}
	start := int(l.rr.Add(1)-1) % n
	for i := 0; i < n && len(order) < maxDialAttempts; i++ {
		b := r.backends[(start+i)%n]
		if (len(order) == 0 || order[0] != b) && allowed(b) {
			order = append(order, b)
		}
	}
	d := net.Dialer{Timeout: t.dialTimeout, LocalAddr: sourceFor(clientIP)}
	for _, b := range order {
		c, err := d.DialContext(t.ctx, "tcp", b)
		if err != nil && d.LocalAddr != nil && (errors.Is(err, syscall.EADDRNOTAVAIL) || errors.Is(err, syscall.EADDRINUSE)) {
			// The client's address cannot be ours after all: the endpoint
			// sees the node's, as it did before source addresses were kept.
			d.LocalAddr = nil
			c, err = d.DialContext(t.ctx, "tcp", b)
		}
		if err != nil {
			t.stats.dialErrors.Add(1)
			if t.ctx.Err() != nil {
				return nil
			}
			continue
		}
		if r.affinity > 0 && clientIP != "" {
			l.aff.set(clientIP, b, t.now(), r.affinity)
		}
		return c
	}
	return nil
}

// allowedFor is whether the client at clientIP may be sent to an
// endpoint ("ip:port"): everything without Config.EndpointAllowed or a
// client address.
func (t *table) allowedFor(clientIP string) func(endpoint string) bool {
	client, err := netip.ParseAddr(clientIP)
	if t.allow == nil || err != nil {
		return func(string) bool { return true }
	}
	return func(endpoint string) bool {
		ep, err := netip.ParseAddrPort(endpoint)
		return err == nil && t.allow(client.Unmap(), ep)
	}
}

// sourceFor is the address the proxy dials an endpoint from for a client
// at clientIP: the client's own when it is a loopback address (a pod's in
// unprivileged mode, which any process on the machine may bind), so that
// the endpoint sees who connected, as it would behind kube-proxy's DNAT:
// NetworkPolicy ingress rules name the client pod, not the proxy. Nil (the
// kernel's choice) otherwise.
func sourceFor(clientIP string) net.Addr {
	ip := net.ParseIP(clientIP)
	if ip == nil || !ip.IsLoopback() {
		return nil
	}
	return &net.TCPAddr{IP: ip}
}

// splice copies both ways until both sides are done. A side that finishes
// sending (EOF) has its half-close passed on, so request/response protocols
// that shut down their write side keep working; an error on either side
// ends both at once. Either way the goroutines end when the connection
// does: the caller closes both connections after splice returns.
func splice(client, backend net.Conn, in, out *atomic.Uint64) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		pipe(backend, client, in)
	}()
	pipe(client, backend, out)
	wg.Wait()
}

func pipe(dst, src net.Conn, count *atomic.Uint64) {
	n, err := io.Copy(dst, src)
	count.Add(uint64(n))
	if err != nil {
		// Broken: unblock the other direction too.
		dst.Close()
		src.Close()
		return
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	} else {
		dst.Close()
	}
}

// reset closes a connection with a TCP reset, the closest a listener that
// accepted can come to refusing.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
