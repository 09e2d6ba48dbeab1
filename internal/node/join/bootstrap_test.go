package join

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skiffhq/skiff/internal/apiserver/pki"
)

// A joining server takes the bootstrap data only from a server of the CA
// its token pins, only the CA the token pins (with its key), and only with
// the right secret.
func TestFetchBootstrap(t *testing.T) {
	const secret = "s3cret"
	dir := t.TempDir()
	cert, caPEM, err := pki.LoadOrCreateServingCert(dir, "api", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	caKey, err := os.ReadFile(filepath.Join(dir, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	otherCA := selfSignedPEM(t)
	answer := Bootstrap{CACert: string(caPEM), CAKey: string(caKey), ClusterPodCIDR: "127.122.0.0/16",
		ServiceCIDR: "127.123.0.0/20", ClusterDomain: "cluster.local", Servers: []ServerInfo{{Name: "s1", API: "127.0.0.1:1"}}}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+secret || r.URL.Path != BootstrapPath {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		json.NewEncoder(w).Encode(answer)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "https://")
	pinned := NewToken(cert.Certificate[1], secret).String()
	ctx := t.Context()

	b, err := FetchBootstrap(ctx, addr, pinned, nil)
	if err != nil || b.ClusterPodCIDR != answer.ClusterPodCIDR || len(b.Servers) != 1 {
		t.Fatalf("FetchBootstrap: %+v %v", b, err)
	}
	if _, err := FetchBootstrap(ctx, addr, NewToken(cert.Certificate[1], "wrong").String(), nil); !errors.Is(err, ErrRefused) {
		t.Errorf("wrong secret: %v, want ErrRefused", err)
	}
	otherDER, err := CADER(otherCA)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := FetchBootstrap(ctx, addr, NewToken(otherDER, secret).String(), nil); !errors.Is(err, ErrCAMismatch) {
		t.Errorf("token of another CA: %v, want ErrCAMismatch", err)
	}
	if _, err := FetchBootstrap(ctx, addr, secret, nil); !errors.Is(err, ErrNoCAPin) {
		t.Errorf("bare secret without a CA: %v, want ErrNoCAPin", err)
	}
	if _, err := FetchBootstrap(ctx, addr, secret, caPEM); err != nil {
		t.Errorf("bare secret with the CA: %v", err)
	}
	// A server (of the right CA) that hands over another CA is refused.
	answer.CACert = string(otherCA)
	if _, err := FetchBootstrap(ctx, addr, pinned, nil); !errors.Is(err, ErrCAMismatch) {
		t.Errorf("another CA in the answer: %v, want ErrCAMismatch", err)
	}
	// So is a key that is not the CA's.
	answer.CACert = string(caPEM)
	answer.CAKey = "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"
	if _, err := FetchBootstrap(ctx, addr, pinned, nil); err == nil || !strings.Contains(err.Error(), "CA key") {
		t.Errorf("a CA key that does not match: %v", err)
	}
}
