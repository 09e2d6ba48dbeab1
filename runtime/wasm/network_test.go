//go:build linux

package wasm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/skiffhq/skiff/internal/wasmbuild"
	skiffrt "github.com/skiffhq/skiff/runtime"
)

// nodeFiles is a directory like the one the node agent mounts at /etc.
func nodeFiles(t *testing.T, resolvConf string) Mount {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte(resolvConf), 0o644); err != nil {
		t.Fatal(err)
	}
	return Mount{HostPath: dir, GuestPath: "/etc", ReadOnly: true, NodeFiles: true}
}

// TestPortableListenerPlacement: modules that find their listeners the way
// they do under wasmtime and wazero, without skiff's SDK, serve: one that
// tries net.FileListener on fds 3..63, with and without volumes, and one
// that takes fd 3 as LISTEN_FDS says. The node's /etc after the listeners
// is still found (Go's runtime skips the listeners when it looks for
// pre-opened directories).
func TestPortableListenerPlacement(t *testing.T) {
	t.Parallel()
	mod := testGuest(t, "portable")
	data := t.TempDir()
	if err := os.WriteFile(filepath.Join(data, "x"), []byte("from the volume"), 0o644); err != nil {
		t.Fatal(err)
	}
	vols := []Mount{{HostPath: data, GuestPath: "/data"}, {HostPath: t.TempDir(), GuestPath: "/cache"}}
	etc := nodeFiles(t, "nameserver 127.0.0.1\n")
	for _, tc := range []struct {
		name   string
		mode   string
		mounts []Mount
		file   string
		want   string
	}{
		{"scan without volumes", "scan", nil, "", "scan fd 3 "},
		{"scan after two volumes", "scan", append(vols, etc), "/data/x", "scan fd 5 from the volume"},
		{"scan with the node's files", "scan", []Mount{etc}, "/etc/resolv.conf", "scan fd 3 nameserver 127.0.0.1"},
		{"scan with a volume and the node's files", "scan", []Mount{vols[0], etc}, "/etc/resolv.conf", "scan fd 4 nameserver 127.0.0.1"},
		{"listenfds with the node's files", "listenfds", []Mount{etc}, "/etc/resolv.conf", "listenfds fd 3 nameserver 127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
			env := []string(nil)
			if tc.file != "" {
				env = []string{"FILE=" + tc.file}
			}
			r := start(t, mod, RunSpec{
				Args: []string{"portable", tc.mode}, Env: env, Mounts: tc.mounts,
				Listeners: []Listener{{Host: "127.0.0.1", Port: mustPort(t, addr), Name: "http"}},
			})
			r.waitOutput(t, "serving "+tc.mode)
			waitListening(t, addr)
			c := &http.Client{Timeout: 10 * time.Second}
			body, err := get(c, "http://"+addr+"/")
			if err != nil {
				t.Fatalf("GET: %v\nstderr: %s", err, &r.stderr)
			}
			if strings.TrimSpace(body) != strings.TrimSpace(tc.want) {
				t.Fatalf("got %q, want %q", body, tc.want)
			}
		})
	}
}

// TestListenerRefusesUntilUsed: a module that never accepts or polls its
// listener leaves the port refusing connections, as a container whose
// server does not listen does: a tcpSocket probe fails.
func TestListenerRefusesUntilUsed(t *testing.T) {
	t.Parallel()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	r := start(t, testGuest(t, "portable"), RunSpec{
		Args:      []string{"portable", "never"},
		Listeners: []Listener{{Host: "127.0.0.1", Port: mustPort(t, addr)}},
	})
	r.waitOutput(t, "not serving")
	for range 3 {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err == nil {
			c.Close()
			t.Fatalf("%s accepted a connection though the module never listened", addr)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("dial %s: %v, want connection refused", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The address is the Run's all along: nobody else can take it.
	if ln, err := net.Listen("tcp", addr); err == nil {
		ln.Close()
		t.Fatalf("%s could be bound by another socket while the Run holds it", addr)
	}
}

// fakeDNS answers A queries for names from a table on ip:53 (UDP), as the
// cluster DNS does; other names get NXDOMAIN. It skips the test where
// port 53 cannot be bound (not root).
func fakeDNS(t *testing.T, ip string, names map[string]netip.Addr) {
	t.Helper()
	pc, err := net.ListenPacket("udp", net.JoinHostPort(ip, "53"))
	if err != nil {
		t.Skipf("cannot serve DNS on %s:53 (needs root): %v", ip, err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var p dnsmessage.Parser
			h, err := p.Start(buf[:n])
			if err != nil {
				continue
			}
			q, err := p.Question()
			if err != nil {
				continue
			}
			b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true})
			b.EnableCompression()
			ip, ok := names[q.Name.String()]
			if !ok {
				b = dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, RCode: dnsmessage.RCodeNameError})
			}
			_ = b.StartQuestions()
			_ = b.Question(q)
			if ok && q.Type == dnsmessage.TypeA {
				_ = b.StartAnswers()
				_ = b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 5},
					dnsmessage.AResource{A: ip.As4()})
			}
			out, err := b.Finish()
			if err == nil {
				_, _ = pc.WriteTo(out, from)
			}
		}
	}()
}

// peerRecorder is an HTTP server on loopback that answers with the path
// and remembers who called.
type peerRecorder struct {
	addr string
	mu   sync.Mutex
	from []string
}

func newPeerRecorder(t *testing.T) *peerRecorder {
	t.Helper()
	// Not 127.0.0.1: to a pod, localhost is the pod itself.
	ln, err := net.Listen("tcp", "127.98.0.10:0")
	if err != nil {
		t.Fatal(err)
	}
	pr := &peerRecorder{addr: ln.Addr().String()}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		pr.mu.Lock()
		pr.from = append(pr.from, host)
		pr.mu.Unlock()
		_, _ = io.WriteString(w, "hello "+r.URL.Path)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return pr
}

func (pr *peerRecorder) callers() []string {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return append([]string(nil), pr.from...)
}

// runClient runs examples/httpclient with args and returns its output.
func runClient(t *testing.T, spec RunSpec, args ...string) (string, ExitStatus) {
	t.Helper()
	mod, err := shared.Compile(context.Background(), wasmbuild.Build(t, "../../examples/httpclient", false))
	if err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	spec.Args = append([]string{"httpclient"}, args...)
	spec.Stdout, spec.Stderr = &out, &out
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := shared.Run(ctx, mod, spec)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return out.String(), st
}

// TestDialOutbound: a guest calls out through the WasmEdge socket imports
// (the SDK's dialer under net/http): by IP, by a short name the host
// resolves with the pod's search domains, and with Go's own resolver
// reading the pod's /etc/resolv.conf over the extension's UDP sockets. The
// server sees the pod's IP as the caller.
func TestDialOutbound(t *testing.T) {
	const podIP, dnsIP = "127.98.0.2", "127.98.0.53"
	fakeDNS(t, dnsIP, map[string]netip.Addr{"web.ns1.svc.cluster.local.": netip.MustParseAddr("127.98.0.10")})
	srv := newPeerRecorder(t)
	_, port, _ := net.SplitHostPort(srv.addr)
	spec := RunSpec{
		PodIP:  podIP,
		DNS:    &skiffrt.DNSConfig{Nameservers: []string{dnsIP}, Searches: []string{"ns1.svc.cluster.local", "svc.cluster.local"}, Ndots: 5},
		Mounts: []Mount{nodeFiles(t, "nameserver "+dnsIP+"\nsearch ns1.svc.cluster.local svc.cluster.local\noptions ndots:5\n")},
	}
	out, st := runClient(t, spec,
		"http://"+srv.addr+"/by-ip",
		"http://web:"+port+"/by-name",
		"http://web.ns1.svc.cluster.local:"+port+"/by-fqdn",
		"lookup:web.ns1.svc.cluster.local",
		"lookup:web")
	if st.Code != 0 {
		t.Fatalf("exit %d:\n%s", st.Code, out)
	}
	for _, want := range []string{
		"GET http://" + srv.addr + "/by-ip: 200 hello /by-ip",
		"/by-name: 200 hello /by-name",
		"/by-fqdn: 200 hello /by-fqdn",
		"lookup web.ns1.svc.cluster.local: 127.98.0.10",
		"lookup web: 127.98.0.10",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, from := range srv.callers() {
		if from != podIP {
			t.Errorf("the server saw a call from %s, want the pod IP %s", from, podIP)
		}
	}
}

// denyPort refuses egress to one port.
type denyPort uint16

func (d denyPort) Allow(dir skiffrt.Direction, _ skiffrt.Protocol, peer netip.AddrPort, _ uint16) bool {
	return dir != skiffrt.Egress || peer.Port() != uint16(d)
}

// TestDialFirewall: a connection the Firewall refuses fails with
// "connection refused" in the guest; another goes through.
func TestDialFirewall(t *testing.T) {
	t.Parallel()
	allowed, denied := newPeerRecorder(t), newPeerRecorder(t)
	_, dport, _ := net.SplitHostPort(denied.addr)
	var p uint16
	fmt.Sscan(dport, &p)
	out, st := runClient(t, RunSpec{PodIP: "127.98.0.3", Firewall: denyPort(p)},
		"http://"+allowed.addr+"/ok", "http://"+denied.addr+"/no")
	if st.Code != 1 {
		t.Fatalf("exit %d, want 1 (one call refused):\n%s", st.Code, out)
	}
	if !strings.Contains(out, "/ok: 200 hello /ok") || !strings.Contains(strings.ToLower(out), "connection refused") {
		t.Fatalf("want the allowed call answered and the other refused:\n%s", out)
	}
	if n := len(denied.callers()); n != 0 {
		t.Fatalf("the refused server got %d calls", n)
	}
}

// TestHandlerDialsOut: an SDK handler module calls another service while it
// serves a request, through its instance's own sockets, from the pod IP.
func TestHandlerDialsOut(t *testing.T) {
	t.Parallel()
	srv := newPeerRecorder(t)
	const podIP = "127.98.0.4"
	_, url := serveHandler(t, HandlerSpec{PoolSize: 2, PodIP: podIP})
	for range 3 {
		wantReply(t, do(t, "GET", url+"/fetch?url=http://"+srv.addr+"/x", "", nil), 200, "200 hello /x")
	}
	for _, from := range srv.callers() {
		if from != podIP {
			t.Errorf("the server saw a call from %s, want the pod IP %s", from, podIP)
		}
	}
}
