package engine

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiffhq/skiff/internal/node/join"
	"github.com/skiffhq/skiff/internal/testutil"
)

// tokenTestConfig is an engine in this test's loopback ranges.
func tokenTestConfig(t *testing.T, dir, token string) Config {
	return Config{DataDir: dir, NodeName: "tok-1", APIListen: "127.126.201.1:0", ClusterPodCIDR: "127.126.0.0/17",
		ServiceCIDR: "127.127.0.0/17", DisableClusterDNS: true, Token: token, Logger: testutil.Logger(t)}
}

// An old data directory's bare secret is kept and DataDir/token rewritten
// in the form that pins the CA; the API takes either as a bearer token;
// a Config.Token that is not the cluster's is refused.
func TestTokenPinsTheClusterCA(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("old-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	e, err := New(tokenTestConfig(t, dir, ""))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer e.Stop(ctx)

	caPEM, err := os.ReadFile(filepath.Join(dir, "pki", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(caPEM)
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	file, _ := os.ReadFile(filepath.Join(dir, "token"))
	want := join.NewToken(ca.Raw, "old-secret").String()
	if strings.TrimSpace(string(file)) != want || e.JoinToken() != want {
		t.Fatalf("DataDir/token = %q, JoinToken %q; want %q", file, e.JoinToken(), want)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "token")); fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v, want 0600", fi.Mode().Perm())
	}

	// The kubeconfig (the secret) and both forms of the token as a bearer
	// token reach the API and the bus info; anything else is refused.
	rc, err := clientcmd.BuildConfigFromFlags("", e.KubeconfigPath())
	if err != nil {
		t.Fatal(err)
	}
	if rc.BearerToken != "old-secret" {
		t.Errorf("kubeconfig token %q, want the secret", rc.BearerToken)
	}
	for _, tc := range []struct {
		bearer string
		want   int
	}{{"old-secret", 200}, {want, 200}, {"wrong", 401}, {join.NewToken([]byte("x"), "old-secret").String(), 401}} {
		c := rest.CopyConfig(rc)
		c.BearerToken = tc.bearer
		hc, err := rest.HTTPClientFor(c)
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range []string{"/api/v1/namespaces", join.BusInfoPath} {
			resp, err := hc.Get(rc.Host + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("GET %s with bearer %q: %d, want %d", path, tc.bearer, resp.StatusCode, tc.want)
			}
		}
	}
	// The embedded registry takes either as the password of Basic auth,
	// as OCI tools send it.
	hc, err := rest.HTTPClientFor(&rest.Config{Host: rc.Host, TLSClientConfig: rc.TLSClientConfig})
	if err != nil {
		t.Fatal(err)
	}
	for pw, code := range map[string]int{"old-secret": 200, want: 200, "wrong": 401} {
		req, err := http.NewRequest(http.MethodGet, rc.Host+"/v2/", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth("skiff", pw)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != code {
			t.Errorf("GET /v2/ with the password %q: %d, want %d", pw, resp.StatusCode, code)
		}
	}
	if err := e.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	// Config.Token must be this cluster's: the secret or the full token.
	for _, tc := range []struct {
		token string
		err   error
	}{{"another", ErrTokenMismatch}, {join.NewToken([]byte("another CA"), "old-secret").String(), ErrTokenMismatch},
		{"old-secret", nil}, {want, nil}} {
		e, err := New(tokenTestConfig(t, dir, tc.token))
		if err != nil {
			t.Fatal(err)
		}
		err = e.Start(ctx)
		e.Stop(ctx)
		if !errors.Is(err, tc.err) {
			t.Errorf("Start with Token %q: %v, want %v", tc.token, err, tc.err)
		}
	}

	// A new directory takes the secret given.
	dir2 := t.TempDir()
	e2, err := New(tokenTestConfig(t, dir2, "chosen-secret"))
	if err != nil {
		t.Fatal(err)
	}
	if err := e2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer e2.Stop(ctx)
	if tok, err := join.ParseToken(e2.JoinToken()); err != nil || tok.Secret != "chosen-secret" || tok.CAHash == nil {
		t.Errorf("new directory's token %q (%v), want the chosen secret with the CA's hash", e2.JoinToken(), err)
	}
}

// A worker refuses a bare secret without a CA, and server addresses that
// are not HOST:PORT, before it touches anything.
func TestWorkerRefusesBadJoinInput(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		cfg  WorkerConfig
		want string
	}{
		{WorkerConfig{Server: "127.126.201.1:1", Token: "bare-secret"}, "DATA-DIR/token"},
		{WorkerConfig{Servers: []string{"127.126.201.1:1", "no-port"}, Token: join.NewToken([]byte("ca"), "s").String()}, `"no-port"`},
		{WorkerConfig{Server: "127.126.201.1:1", Token: "K10abc::server:s"}, "token"},
	} {
		tc.cfg.DataDir = t.TempDir()
		tc.cfg.NodeName = "refused"
		if w, err := StartWorker(ctx, tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			if w != nil {
				w.Stop(ctx)
			}
			t.Errorf("StartWorker(%+v): %v, want an error with %s", tc.cfg, err, tc.want)
		}
	}
}
