package engine

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/rpc"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/apiserver/pki"
)

// tcpListeners returns the local addresses ("ip:port") of this process's
// listening TCP sockets.
func tcpListeners(t *testing.T) map[string]bool {
	out := map[string]bool{}
	for _, addr := range listeningSockets(t) {
		out[addr] = true
	}
	return out
}

// By default the engine's store opens no port: the only listener the engine
// adds on this machine's loopback outside the service range is the API.
func TestEngineRaftHasNoListenerByDefault(t *testing.T) {
	before := tcpListeners(t)
	e := startEngine(t, Config{DataDir: t.TempDir(), NodeName: "lone"})
	if e.Config().RaftBind != "" {
		t.Fatalf("default RaftBind %q", e.Config().RaftBind)
	}
	st := e.testStore()
	if addr := st.Addr(); addr != "" {
		t.Fatalf("store listens on %q", addr)
	}
	ms, err := st.Members()
	if err != nil || len(ms) != 1 || ms[0].Addr != "" {
		t.Fatalf("raft members: %+v %v", ms, err)
	}
	api, err := url.Parse(e.api.URL())
	if err != nil {
		t.Fatal(err)
	}
	_, svcRange, _ := net.ParseCIDR(e.Config().ServiceCIDR)
	for addr := range tcpListeners(t) {
		if before[addr] || addr == api.Host {
			continue
		}
		host, _, _ := net.SplitHostPort(addr)
		if svcRange.Contains(net.ParseIP(host)) {
			continue // the Service proxy, on ClusterIPs
		}
		t.Errorf("the engine listens on %s, which is neither the API (%s) nor a ClusterIP", addr, api.Host)
	}
}

// forwardingCall makes one call of the store's forwarding RPC on a
// connection of its own, as a peer would: plain TCP when cfg is nil. The
// first byte tells the store's listener a forwarding connection from raft's
// own (forwardMagic in raft/transport.go).
func forwardingCall(addr string, cfg *tls.Config, method string, args, reply any) error {
	d := &net.Dialer{Timeout: 2 * time.Second}
	var conn net.Conn
	var err error
	if cfg != nil {
		conn, err = tls.DialWithDialer(d, "tcp", addr, cfg)
	} else {
		conn, err = d.Dial("tcp", addr)
	}
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte{0xF5}); err != nil {
		return err
	}
	return rpc.NewClient(conn).Call("Skiff."+method, args, reply)
}

// With RaftBind set, the store listens with mutual TLS from the cluster CA:
// a client over plain TCP, over TLS with no certificate, or with the API's
// serving certificate (the same CA, but no raft peer's) gets no read and no
// write. A raft peer's certificate gets both, so the probes are meaningful.
func TestEngineRaftListenerNeedsClusterCert(t *testing.T) {
	dir := t.TempDir()
	e := startEngine(t, Config{DataDir: dir, NodeName: "clusterable", RaftBind: "127.0.0.1:0"})
	st := e.testStore()
	addr := st.Addr()
	if addr == "" {
		t.Fatal("RaftBind set, but the store has no address")
	}
	pkiDir := filepath.Join(dir, "pki")
	serving, err := tls.LoadX509KeyPair(filepath.Join(pkiDir, "apiserver.crt"), filepath.Join(pkiDir, "apiserver.key"))
	if err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]*tls.Config{
		"plain TCP":                       nil,
		"TLS without a certificate":       {InsecureSkipVerify: true},
		"TLS with the API's serving cert": {InsecureSkipVerify: true, Certificates: []tls.Certificate{serving}},
	} {
		var idx uint64
		if err := forwardingCall(addr, cfg, "ReadIndex", struct{}{}, &idx); err == nil {
			t.Errorf("%s: a read index was answered (%d)", name, idx)
		} else if errors.As(err, new(rpc.ServerError)) {
			t.Errorf("%s: the store answered the read: %v", name, err)
		}
		// The write a stranger would want most: making itself a voter.
		err := forwardingCall(addr, cfg, "AddVoter", [2]string{"intruder", "127.0.0.1:1"}, &struct{}{})
		if err == nil || errors.As(err, new(rpc.ServerError)) {
			t.Errorf("%s: the store answered a membership change: %v", name, err)
		}
	}
	ms, err := st.Members()
	if err != nil || len(ms) != 1 || ms[0].ID != "clusterable" || ms[0].Addr != addr {
		t.Fatalf("raft members after the probes: %+v %v", ms, err)
	}

	peer, err := pki.PeerTLS(pkiDir, "another-server", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if peer.Certificates[0].Leaf.CheckSignatureFrom(caFrom(t, pkiDir)) != nil {
		t.Fatal("test peer certificate is not from the cluster CA")
	}
	var idx uint64
	if err := forwardingCall(addr, peer, "ReadIndex", struct{}{}, &idx); err != nil || idx == 0 {
		t.Fatalf("a raft peer's read index: %d %v", idx, err)
	}
	// Removing a server that is not there changes nothing, and is a write.
	if err := forwardingCall(addr, peer, "RemoveServer", [2]string{"nobody", ""}, &struct{}{}); err != nil {
		t.Fatalf("a raft peer's membership change: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.testStore().Create(ctx, "/k/still-works", nil); err != nil {
		t.Fatal(err)
	}
}

func caFrom(t *testing.T, pkiDir string) *x509.Certificate {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(filepath.Join(pkiDir, "ca.crt"), filepath.Join(pkiDir, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	return pair.Leaf
}
