package raft

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"net/rpc"
	"testing"
	"time"
)

// testTLS makes a CA and one certificate for the loopback addresses the
// cluster harness uses, valid as both server and client (mutual TLS).
func testTLS(t *testing.T) *tls.Config {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "skiff test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "skiff server"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	for i := 1; i <= 4; i++ {
		leaf.IPAddresses = append(leaf.IPAddresses, net.IPv4(127, 0, 0, byte(i)))
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		RootCAs:      pool, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert,
		MinVersion: tls.VersionTLS13,
	}
}

func TestClusterOverTLS(t *testing.T) {
	tlsCfg := testTLS(t)
	c := newCluster(t, 3, func(i int, cfg *Config) { cfg.TLS = tlsCfg })
	leader := c.waitLeader()
	ctx := ctxT(t)
	follower := c.server((leader + 1) % 3)
	kv, err := follower.Create(ctx, "/k/tls", []byte("secret"))
	if err != nil {
		t.Fatalf("write through a follower over TLS: %v", err)
	}
	c.waitConverged(10 * time.Second)

	// A peer without a certificate gets no answer to a forwarding call.
	if err := plainReadIndex(c.addrs[leader]); err == nil {
		t.Fatal("a plain-TCP peer was served by a TLS server")
	}
	got, _, err := c.server(leader).Get(ctx, kv.Key, ReadOptions{})
	if err != nil || string(got.Value) != "secret" {
		t.Fatalf("read after plain-TCP probe: %+v %v", got, err)
	}
}

func TestClusterRemoveServer(t *testing.T) {
	c := newCluster(t, 3, nil)
	leader := c.waitLeader()
	ctx := ctxT(t)
	gone := (leader + 1) % 3
	// Removal asked through the server being removed is forwarded too.
	if err := c.server(gone).RemoveServer(ctx, c.id(gone)); err != nil {
		t.Fatal(err)
	}
	ms, err := c.server(leader).Members()
	if err != nil || len(ms) != 2 {
		t.Fatalf("members after removal: %+v %v", ms, err)
	}
	for _, m := range ms {
		if m.ID == c.id(gone) || !m.Voter {
			t.Fatalf("members after removal: %+v", ms)
		}
	}
	c.kill(gone)
	// Two voters out of two: writes go on.
	if _, err := c.server(leader).Create(ctx, "/k/after-remove", nil); err != nil {
		t.Fatal(err)
	}
}

// plainReadIndex makes one forwarding call over plain TCP, as a peer without
// TLS would.
func plainReadIndex(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte{forwardMagic}); err != nil {
		return err
	}
	var idx uint64
	return rpc.NewClient(conn).Call("Skiff.ReadIndex", struct{}{}, &idx)
}

// The probe above is meaningful: without TLS the same call is answered.
func TestPlainProbeWorksWithoutTLS(t *testing.T) {
	cfg := testConfig(t, "s1", t.TempDir())
	cfg.Bind = "127.0.0.1:0"
	s := openSingle(t, cfg)
	if err := plainReadIndex(s.Addr()); err != nil {
		t.Fatalf("plain forwarding call to a plain server: %v", err)
	}
}

// forwardCall makes one forwarding call on a connection of its own, over TLS
// with client when it is set, else over plain TCP.
func forwardCall(addr string, client *tls.Config, method string, args, reply any) error {
	d := net.Dialer{Timeout: time.Second}
	var conn net.Conn
	var err error
	if client != nil {
		conn, err = tls.DialWithDialer(&d, "tcp", addr, client)
	} else {
		conn, err = d.Dial("tcp", addr)
	}
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte{forwardMagic}); err != nil {
		return err
	}
	return rpc.NewClient(conn).Call("Skiff."+method, args, reply)
}

// The server side demands a certificate from the cluster's CA even when the
// config given to Open asks for none: a peer without one, or with one from
// another CA, has neither a read nor a write answered. (With TLS 1.3 the
// client's half of the handshake completes; the server refuses on its first
// read, before it serves anything.)
func TestTLSRefusesPeersWithoutClusterCert(t *testing.T) {
	cluster := testTLS(t)
	given := &tls.Config{Certificates: cluster.Certificates, RootCAs: cluster.RootCAs}
	cfg := testConfig(t, "s1", t.TempDir())
	cfg.Bind, cfg.TLS = "127.0.0.1:0", given
	s := openSingle(t, cfg)
	if given.ClientAuth != tls.NoClientCert || given.ClientCAs != nil {
		t.Fatal("Open changed the caller's tls.Config")
	}
	ctx := ctxT(t)
	other := testTLS(t) // another CA, and a certificate it issued
	for name, client := range map[string]*tls.Config{
		"plain TCP":                         nil,
		"TLS without a certificate":         {RootCAs: cluster.RootCAs},
		"TLS with another CA's certificate": {RootCAs: cluster.RootCAs, Certificates: other.Certificates},
	} {
		var idx uint64
		if err := forwardCall(s.Addr(), client, "ReadIndex", struct{}{}, &idx); err == nil {
			t.Errorf("%s: read index answered (%d)", name, idx)
		}
		key := "/k/" + name
		var reply []byte
		err := forwardCall(s.Addr(), client, "Apply", encodeOps([]op{{typ: opCreate, key: key}}), &reply)
		if err == nil {
			t.Errorf("%s: write answered", name)
		}
		if _, _, err := s.Get(ctx, key, ReadOptions{}); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: after the refused write, Get says %v, want ErrNotFound", name, err)
		}
	}

	// The probes are meaningful: a peer with the cluster's certificate is
	// served, the read and the write.
	peer := &tls.Config{RootCAs: cluster.RootCAs, Certificates: cluster.Certificates}
	var idx uint64
	if err := forwardCall(s.Addr(), peer, "ReadIndex", struct{}{}, &idx); err != nil {
		t.Fatalf("read index for a peer with the cluster's certificate: %v", err)
	}
	var reply []byte
	if err := forwardCall(s.Addr(), peer, "Apply", encodeOps([]op{{typ: opCreate, key: "/k/peer"}}), &reply); err != nil {
		t.Fatalf("write for a peer with the cluster's certificate: %v", err)
	}
	if _, _, err := s.Get(ctx, "/k/peer", ReadOptions{}); err != nil {
		t.Fatalf("the peer's write: %v", err)
	}
}

func TestTLSConfigNeedsCertificateAndCA(t *testing.T) {
	full := testTLS(t)
	for name, tc := range map[string]*tls.Config{
		"no certificate": {RootCAs: full.RootCAs},
		"no RootCAs":     {Certificates: full.Certificates, ClientCAs: full.ClientCAs},
	} {
		cfg := testConfig(t, "s1", t.TempDir())
		cfg.Bind, cfg.TLS = "127.0.0.1:0", tc
		if s, err := Open(context.Background(), cfg); !errors.Is(err, ErrInvalid) {
			if s != nil {
				s.Close()
			}
			t.Errorf("%s: Open answered %v, want ErrInvalid", name, err)
		}
	}
}
