package join

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestDiscover(t *testing.T) {
	const token = "secret"
	caPEM := selfSignedPEM(t) // stands for the cluster CA in the answer
	h := InfoHandler(BusInfo{URL: "tls://0.0.0.0:4222", CA: string(caPEM), ClusterDNS: "127.67.0.10", ClusterDomain: "cluster.local"})
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "https://")
	serverCA := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	// First contact without a CA: the answer carries the bus's CA, and an
	// unspecified bus host becomes the host the API was reached at.
	info, err := Discover(ctx, addr, token, nil)
	if err != nil {
		t.Fatal(err)
	}
	if info.URL != "tls://127.0.0.1:4222" || info.CA != string(caPEM) || info.ClusterDNS != "127.67.0.10" || info.ClusterDomain != "cluster.local" {
		t.Errorf("Discover = %+v", info)
	}
	// With the CA the API's certificate chains to.
	if _, err := Discover(ctx, addr, token, serverCA); err != nil {
		t.Errorf("Discover with the server's CA: %v", err)
	}
	if _, err := Discover(ctx, addr, "wrong", nil); err == nil || !strings.Contains(err.Error(), "refused the token") {
		t.Errorf("wrong token: %v", err)
	}
	// A CA the API's certificate does not chain to.
	if _, err := Discover(ctx, addr, token, selfSignedPEM(t)); err == nil {
		t.Error("Discover trusted a certificate that does not chain to the given CA")
	}

	// The dial trusts the operator's CA over the one received, and checks
	// BusServerName.
	for _, tc := range []struct {
		given []byte
		want  string
	}{{nil, "received"}, {serverCA, "given"}} {
		conf, err := info.TLSConfig(tc.given)
		if err != nil {
			t.Fatalf("TLSConfig(%s): %v", tc.want, err)
		}
		if conf.ServerName != BusServerName || conf.InsecureSkipVerify || conf.MinVersion < tls.VersionTLS12 {
			t.Errorf("TLSConfig(%s) = %+v", tc.want, conf)
		}
	}
	if _, err := (BusInfo{URL: info.URL}).TLSConfig(nil); err == nil {
		t.Error("TLSConfig with no CA at all succeeded")
	}

	noBus := httptest.NewTLSServer(Handler("", nil))
	defer noBus.Close()
	if _, err := Discover(ctx, strings.TrimPrefix(noBus.URL, "https://"), token, nil); !errors.Is(err, ErrNoBus) {
		t.Errorf("a server without a bus listener: %v, want ErrNoBus", err)
	}
}

func selfSignedPEM(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "other-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestReachable(t *testing.T) {
	for _, tc := range []struct{ bus, api, want string }{
		{"tls://10.0.0.5:4222", "example.org:6443", "tls://10.0.0.5:4222"},
		{"tls://0.0.0.0:4222", "example.org:6443", "tls://example.org:4222"},
		{"tls://[::]:4222", "[::1]:6443", "tls://[::1]:4222"},
		{"tls://:4222", "[::1]", "tls://[::1]:4222"},
		{"tls://0.0.0.0:4222", "", "tls://0.0.0.0:4222"},
	} {
		if got := reachable(tc.bus, tc.api); got != tc.want {
			t.Errorf("reachable(%q, %q) = %q, want %q", tc.bus, tc.api, got, tc.want)
		}
	}
}
