package nodeauth

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestCredentials(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	i, err := NewIssuer(key)
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewIssuer(bytes.Repeat([]byte{8}, 32))
	if err != nil {
		t.Fatal(err)
	}
	a := i.Credential("node-a")
	if a != i.Credential("node-a") {
		t.Error("the same node got two credentials")
	}
	if err := i.Verify("node-a", a); err != nil {
		t.Errorf("own credential refused: %v", err)
	}
	for _, c := range []struct{ node, cred string }{
		{"node-b", a},                          // another node's
		{"node-a", other.Credential("node-a")}, // another cluster's key
		{"node-a", a[:len(a)-1]},               // truncated
		{"node-a", ""}, {"", i.Credential("")},
		{"node-a", a[len(credentialPrefix):]}, // without the scheme's prefix
	} {
		if err := i.Verify(c.node, c.cred); !errors.Is(err, ErrBadCredential) {
			t.Errorf("Verify(%q, %q) = %v, want ErrBadCredential", c.node, c.cred, err)
		}
	}
	if _, err := NewIssuer(key[:16]); err == nil {
		t.Error("a 16-byte key was accepted")
	}
}

func TestIdentityKeptInDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "identity")
	if _, err := Load(dir); !errors.Is(err, ErrNoIdentity) {
		t.Fatalf("Load of an empty dir: %v, want ErrNoIdentity", err)
	}
	csr, err := CertificateRequest(dir, "edge-1")
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(csr)
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil || req.CheckSignature() != nil || req.Subject.CommonName != "system:node:edge-1" {
		t.Fatalf("CSR %v, %v", req, err)
	}
	// The key is kept: a second request is over the same key.
	csr2, err := CertificateRequest(dir, "edge-1")
	if err != nil {
		t.Fatal(err)
	}
	block2, _ := pem.Decode(csr2)
	req2, _ := x509.ParseCertificateRequest(block2.Bytes)
	if !bytes.Equal(req.RawSubjectPublicKeyInfo, req2.RawSubjectPublicKeyInfo) {
		t.Error("the node's key changed between requests")
	}
	want := Identity{Node: "edge-1", Credential: "sknc1_x", CertPEM: []byte("cert")}
	if err := Save(dir, want); err != nil {
		t.Fatal(err)
	}
	got, err := Load(dir)
	if err != nil || got.Node != want.Node || got.Credential != want.Credential || string(got.CertPEM) != "cert" {
		t.Fatalf("Load = %+v, %v", got, err)
	}
	for _, f := range []string{credentialFile, keyFile} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, %v; want mode 0600", f, st.Mode(), err)
		}
	}
}

// What checking a credential costs the bus per connection.
func BenchmarkVerify(b *testing.B) {
	i, err := NewIssuer(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		b.Fatal(err)
	}
	cred := i.Credential("edge-node-0042")
	b.ReportAllocs()
	for b.Loop() {
		if err := i.Verify("edge-node-0042", cred); err != nil {
			b.Fatal(err)
		}
	}
}
