package pki

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// serverHandshake runs one TLS handshake on loopback, server config srv
// against client config cli, and returns the server's verdict.
func serverHandshake(t *testing.T, srv, cli *tls.Config) error {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	verdict := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			verdict <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		verdict <- tls.Server(c, srv).Handshake()
	}()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), cli)
	if err == nil {
		// With TLS 1.3 the client may finish first; reading lets the
		// server's verdict (an alert, or nothing) arrive.
		c.SetDeadline(time.Now().Add(200 * time.Millisecond))
		c.Read(make([]byte, 1))
		c.Close()
	}
	return <-verdict
}

func TestPeerTLS(t *testing.T) {
	dir := t.TempDir()
	a, err := PeerTLS(dir, "node-a", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	leaf := a.Certificates[0].Leaf
	if leaf.Subject.CommonName != "node-a" || len(leaf.IPAddresses) != 1 || leaf.DNSNames[0] != "node-a" {
		t.Fatalf("peer certificate names: %v %v %v", leaf.Subject, leaf.IPAddresses, leaf.DNSNames)
	}
	// Loaded again, not issued again; the API's CA is the same one.
	again, err := PeerTLS(dir, "node-a", []string{"127.0.0.1"})
	if err != nil || again.Certificates[0].Leaf.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		t.Fatalf("second PeerTLS issued a new certificate (%v)", err)
	}
	api, err := LoadOrCreate(dir, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := leaf.CheckSignatureFrom(api.CA); err != nil {
		t.Fatalf("peer certificate not from the cluster CA: %v", err)
	}
	moved, err := PeerTLS(dir, "node-a", []string{"127.0.0.2"})
	if err != nil || !moved.Certificates[0].Leaf.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 2)) {
		t.Fatalf("PeerTLS for a new address kept the old certificate (%v)", err)
	}
	a = moved

	// Another server of the same cluster, as a second data directory would
	// hold it once it has the cluster's CA.
	bDir := t.TempDir()
	for _, f := range []string{"ca.crt", "ca.key"} {
		copyFile(t, filepath.Join(dir, f), filepath.Join(bDir, f))
	}
	b, err := PeerTLS(bDir, "node-b", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := serverHandshake(t, b, a); err != nil {
		t.Fatalf("two peers of one cluster: %v", err)
	}

	// What is refused: no certificate, the API's serving certificate (from
	// the same CA, but not a client's), a client certificate from the same
	// CA that is not a raft peer's, and a peer of another cluster.
	caCert, caKey, err := loadPair(filepath.Join(dir, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	otherCert, otherKey, err := issue(filepath.Join(t.TempDir(), "client"), &x509.Certificate{
		Subject:   pkix.Name{CommonName: "someone", Organization: []string{"skiff:agents"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, caCert, caKey)
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := PeerTLS(t.TempDir(), "node-a", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	for name, cli := range map[string]*tls.Config{
		"no certificate":      {RootCAs: b.RootCAs},
		"serving certificate": {RootCAs: b.RootCAs, Certificates: []tls.Certificate{api.Serving}},
		"not a raft peer": {RootCAs: b.RootCAs, Certificates: []tls.Certificate{
			{Certificate: [][]byte{otherCert.Raw}, PrivateKey: otherKey}}},
		"another cluster": {RootCAs: b.RootCAs, Certificates: stranger.Certificates},
	} {
		if err := serverHandshake(t, b, cli); err == nil {
			t.Errorf("%s: the server completed the handshake", name)
		}
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
