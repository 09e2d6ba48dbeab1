package apiserver

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net/http"
	"testing"
	"time"

	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiffhq/skiff/internal/apiserver/pki"
)

// TestAuthentication covers who a request is, over a real TLS socket: no
// credentials reach only the public paths, a wrong token is 401 even there,
// a client certificate from the cluster CA is a user with no token, one
// from another CA is refused by TLS, and the in-process transport runs as
// the identity it was given.
func TestAuthentication(t *testing.T) {
	s, _ := newTestServer(t, 100)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(s.CAPEM())
	get := func(path, token string, certs ...tls.Certificate) int {
		t.Helper()
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs}}}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL()+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			return -1
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		path, token string
		want        int
	}{
		{"/healthz", "", 200},
		{"/version", "", 200},
		{"/api/v1/namespaces", "", 401},
		{"/healthz", "wrong", 401},
		{"/api/v1/namespaces", "wrong", 401},
		{"/api/v1/namespaces", "test-token", 200},
	} {
		if got := get(c.path, c.token); got != c.want {
			t.Errorf("GET %s with token %q: %d, want %d", c.path, c.token, got, c.want)
		}
	}

	// A node's certificate, issued by the cluster CA from a CSR.
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "x"}}, key)
	certPEM, err := pki.IssueNodeCert(s.cfg.PKIDir, "n1", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}))
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	pair, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		t.Fatal(err)
	}
	// Authenticated as system:node:n1, which may list nodes (and, as in
	// Kubernetes, not namespaces).
	if got := get("/api/v1/nodes", "", pair); got != 200 {
		t.Errorf("node certificate: %d, want 200", got)
	}
	// The same subject from a CA of its own.
	other, err := pki.LoadOrCreate(t.TempDir(), []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if got := get("/api/v1/namespaces", "", other.Serving); got != -1 && got != 401 {
		t.Errorf("certificate from another CA: %d, want refused", got)
	}
	// The cluster's own serving certificate is not a client identity.
	if got := get("/api/v1/namespaces", "", s.pki.Serving); got != -1 && got != 401 {
		t.Errorf("serving certificate as client: %d, want refused", got)
	}

	// In process, as a named identity.
	var seen user.Info
	probe := s.authenticate(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen, _ = UserFrom(r.Context()) }))
	tr := s.InProcessTransportAs(&user.DefaultInfo{Name: "system:kube-scheduler"})
	tr.handler = probe
	cs := kubernetes.NewForConfigOrDie(&rest.Config{Host: "http://in-process", Transport: tr})
	_, _ = cs.Discovery().ServerVersion()
	if seen == nil || seen.GetName() != "system:kube-scheduler" {
		t.Errorf("in-process identity: %v, want system:kube-scheduler", seen)
	}
}
