package imageregistry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	stdlog "log"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/bus"
	"github.com/skiffhq/skiff/internal/testutil"
)

// wait bounds every blocking step of these tests.
const wait = 30 * time.Second

const testToken = "s3cret-cluster-token"

// env is a registry on a real JetStream-enabled bus, served over HTTPS on
// loopback behind Authenticate and over the bus, as the engine wires it.
type env struct {
	dir    string
	bus    *bus.Server
	conn   *bus.Conn
	reg    *Registry
	busSrv *busServer
	ts     *httptest.Server
	host   string // "127.0.0.1:port" of the HTTPS server
	client *http.Client
	stop   func() // stops everything; also run by t.Cleanup
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	t.Cleanup(cancel)
	return ctx
}

// newEnv starts a registry whose data lives in dir; calling it again on the
// same dir (after stop) is a restart.
func newEnv(t testing.TB, dir string, cfg Config) *env {
	t.Helper()
	return newEnvOn(t, dir, cfg, "")
}

// newEnvOn is newEnv with the HTTPS server on host (a loopback address of
// the calling test's range; "" for httptest's 127.0.0.1).
func newEnvOn(t testing.TB, dir string, cfg Config, host string) *env {
	t.Helper()
	ctx := testCtx(t)
	log := testutil.Logger(t)
	srv, err := bus.Start(ctx, bus.Config{Name: "registry-test", Logger: log, JetStreamDir: filepath.Join(dir, "bus")})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := srv.Connect(ctx, "registry")
	if err != nil {
		srv.Close()
		t.Fatal(err)
	}
	cfg.Bus, cfg.UploadDir, cfg.Logger = conn, filepath.Join(dir, "uploads"), log
	reg, err := Open(ctx, cfg)
	if err != nil {
		srv.Close()
		t.Fatal(err)
	}
	busSrv, err := serveBus(context.Background(), conn, reg.Handler(), log)
	if err != nil {
		srv.Close()
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(Authenticate(testToken, reg.Handler()))
	// go-containerregistry also tries plain HTTP on loopback registries;
	// the TLS listener's complaints about that are noise.
	ts.Config.ErrorLog = stdlog.New(io.Discard, "", 0)
	if host != "" {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			srv.Close()
			t.Fatal(err)
		}
		ts.Listener.Close()
		ts.Listener = ln
	}
	ts.StartTLS()
	client := ts.Client()
	if host != "" { // httptest's certificate names 127.0.0.1 and example.com only
		tr := client.Transport.(*http.Transport).Clone()
		tr.TLSClientConfig.ServerName = "example.com"
		client = &http.Client{Transport: tr}
	}
	e := &env{dir: dir, bus: srv, conn: conn, reg: reg, busSrv: busSrv, ts: ts, host: strings.TrimPrefix(ts.URL, "https://"), client: client}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		ts.Close()
		busSrv.stop()
		reg.Close()
		conn.Close()
		srv.Close()
	}
	e.stop = stop
	t.Cleanup(stop)
	return e
}

// busConn is a new bus connection, as a node agent would have.
func (e *env) busConn(t *testing.T) *bus.Conn {
	t.Helper()
	c, err := e.bus.Connect(testCtx(t), "agent")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// doAuthB is an authenticated request for benchmarks; the caller reads
// the status only, so the body is drained and closed here.
func (e *env) doAuthB(b *testing.B, method, path string, body []byte) *http.Response {
	b.Helper()
	req, err := http.NewRequestWithContext(testCtx(b), method, e.ts.URL+path, bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := e.client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// do sends one authenticated request to the HTTPS server.
func (e *env) do(t *testing.T, method, path string, body []byte, hdr ...string) *http.Response {
	t.Helper()
	return e.doAuth(t, "Bearer "+testToken, method, path, body, hdr...)
}

func (e *env) doAuth(t *testing.T, auth, method, path string, body []byte, hdr ...string) *http.Response {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(testCtx(t), method, e.ts.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// ociError decodes an OCI error body and returns its first code.
func ociError(t *testing.T, resp *http.Response) string {
	t.Helper()
	var body struct {
		Errors []struct{ Code, Message string }
	}
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &body); err != nil || len(body.Errors) == 0 {
		t.Fatalf("%s %s: not an OCI error body (%v): %q", resp.Request.Method, resp.Request.URL.Path, err, b)
	}
	return body.Errors[0].Code
}

func expect(t *testing.T, resp *http.Response, status int, code string) {
	t.Helper()
	if resp.StatusCode != status {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("%s %s: status %d, want %d: %s", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, status, b)
	}
	if code != "" {
		if got := ociError(t, resp); got != code {
			t.Fatalf("%s %s: code %s, want %s", resp.Request.Method, resp.Request.URL.Path, got, code)
		}
	}
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// pseudoRandom returns n reproducible bytes that do not compress.
func pseudoRandom(n int, seed byte) []byte {
	b := make([]byte, 0, n+32)
	block := sha256.Sum256([]byte{seed})
	for len(b) < n {
		block = sha256.Sum256(block[:])
		b = append(b, block[:]...)
	}
	return b[:n]
}

// pushBlob uploads b monolithically and fails the test unless it is stored.
func (e *env) pushBlob(t *testing.T, repo string, b []byte) string {
	t.Helper()
	d := digestOf(b)
	resp := e.do(t, http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+d, b, "Content-Type", "application/octet-stream")
	expect(t, resp, http.StatusCreated, "")
	if got := resp.Header.Get("Docker-Content-Digest"); got != d {
		t.Fatalf("Docker-Content-Digest %q, want %q", got, d)
	}
	return d
}

// pushManifest puts an OCI image manifest over config and layers, tagged ref.
func (e *env) pushManifest(t *testing.T, repo, ref string, config []byte, layers ...[]byte) (string, []byte) {
	t.Helper()
	type desc struct {
		MediaType string `json:"mediaType"`
		Digest    string `json:"digest"`
		Size      int    `json:"size"`
	}
	m := struct {
		SchemaVersion int    `json:"schemaVersion"`
		MediaType     string `json:"mediaType"`
		Config        desc   `json:"config"`
		Layers        []desc `json:"layers"`
	}{2, "application/vnd.oci.image.manifest.v1+json",
		desc{"application/vnd.oci.image.config.v1+json", e.pushBlob(t, repo, config), len(config)}, []desc{}}
	for _, l := range layers {
		m.Layers = append(m.Layers, desc{"application/vnd.wasm.content.layer.v1+wasm", e.pushBlob(t, repo, l), len(l)})
	}
	body, _ := json.Marshal(m)
	resp := e.do(t, http.MethodPut, "/v2/"+repo+"/manifests/"+ref, body, "Content-Type", m.MediaType)
	expect(t, resp, http.StatusCreated, "")
	return digestOf(body), body
}
