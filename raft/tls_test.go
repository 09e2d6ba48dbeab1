package raft

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
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
	s := openSingle(t, testConfig(t, "s1", t.TempDir()))
	if err := plainReadIndex(s.Addr()); err != nil {
		t.Fatalf("plain forwarding call to a plain server: %v", err)
	}
}
