package imageregistry_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiffhq/skiff/engine"
	"github.com/skiffhq/skiff/internal/enginetest"
	"github.com/skiffhq/skiff/internal/imageregistry"
	"github.com/skiffhq/skiff/internal/testutil"
	"github.com/skiffhq/skiff/runtime/image"
)

// wasmModule is a valid Wasm module of about n bytes: the header and one
// custom section of pseudo-random bytes (which do not compress).
func wasmModule(n int) []byte {
	payload := make([]byte, 0, n+32)
	block := sha256.Sum256([]byte("module"))
	for len(payload) < n {
		block = sha256.Sum256(block[:])
		payload = append(payload, block[:]...)
	}
	payload = payload[:n]
	section := append([]byte{4}, "test"...)
	section = append(section, payload...)
	m := []byte("\x00asm\x01\x00\x00\x00")
	m = append(m, 0) // custom section
	m = appendULEB(m, uint64(len(section)))
	return append(m, section...)
}

func appendULEB(b []byte, v uint64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			c |= 0x80
		}
		b = append(b, c)
		if v == 0 {
			return b
		}
	}
}

// wasmImage is the image `skiff image import` builds for a module.
func wasmImage(t *testing.T, wasm []byte) v1.Image {
	t.Helper()
	img, err := image.WasmImage(wasm)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func startEngine(t *testing.T, dir string) *engine.Engine {
	t.Helper()
	e, err := engine.New(engine.Config{DataDir: dir, NodeName: "edge-1", APIListen: "127.0.0.1:0", BusListen: "127.0.0.1:0", ImageHosts: []string{"loopback"}, Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Stop(context.Background()) })
	return e
}

// apiAccess is what a kubeconfig user has: the API's host, a transport
// trusting the cluster CA, and the token.
func apiAccess(t *testing.T, e *engine.Engine) (host string, tr *http.Transport, token string) {
	t.Helper()
	rc, err := clientcmd.BuildConfigFromFlags("", e.KubeconfigPath())
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := rest.TLSConfigFor(rc)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(rc.Host)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host, &http.Transport{TLSClientConfig: tlsCfg}, rc.BearerToken
}

// pullThroughBus pulls ref as a node agent would: resolve it against the
// embedded registry, then runtime/image over the bus transport, into a
// fresh node store. It returns the module bytes and the image digest.
func pullThroughBus(t *testing.T, e *engine.Engine, ref string) ([]byte, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	conn, err := enginetest.DialBus(ctx, e, "agent-test")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	resolved, ok, err := imageregistry.NewClient(conn).Resolve(ctx, ref)
	if err != nil || !ok {
		t.Fatalf("Resolve(%q) = %q, %v, %v", ref, resolved, ok, err)
	}
	store, err := image.New(image.Config{Dir: t.TempDir(), Transport: imageregistry.Transport(conn, http.DefaultTransport),
		Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	img, err := store.Pull(ctx, resolved, image.DefaultPolicy(ref), nil)
	if err != nil {
		t.Fatalf("Pull(%s): %v", resolved, err)
	}
	mod, err := store.Module(img)
	if err != nil {
		t.Fatal(err)
	}
	return mod, img.Digest
}

// TestEngineRegistryPushPullRestart is the edge-site story end to end: a
// module pushed with go-containerregistry to the API port (HTTPS, the
// engine's CA and token from its kubeconfig) is pulled by runtime/image
// over the bus with identical bytes, and still is after the engine
// restarts on the same data directory.
func TestEngineRegistryPushPullRestart(t *testing.T) {
	dir := t.TempDir()
	e := startEngine(t, dir)
	host, tr, token := apiAccess(t, e)
	wasm := wasmModule(3<<20 + 12345) // over NATS' 1 MiB payload: chunked on the bus
	img := wasmImage(t, wasm)
	want, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	// Without the token the API port's registry refuses, with a challenge.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+host+"/v2/", nil)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != `Basic realm="skiff"` {
		t.Fatalf("anonymous /v2/: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}

	ref, err := name.ParseReference(host + "/hello:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithContext(ctx), remote.WithTransport(tr),
		remote.WithAuth(&authn.Bearer{Token: token})); err != nil {
		t.Fatalf("push: %v", err)
	}
	// The same image read back over HTTPS, with Basic auth this time.
	got, err := remote.Image(ref, remote.WithContext(ctx), remote.WithTransport(tr),
		remote.WithAuth(&authn.Basic{Username: "anyone", Password: token}))
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := got.Digest(); d != want {
		t.Fatalf("HTTPS pull digest %s, want %s", d, want)
	}

	for _, podImage := range []string{"hello:1", "docker.io/library/hello:1"} {
		mod, digest := pullThroughBus(t, e, podImage)
		if !bytes.Equal(mod, wasm) || digest != want.String() {
			t.Fatalf("%s over the bus: %d bytes (want %d), digest %s (want %s)", podImage, len(mod), len(wasm), digest, want)
		}
	}

	// Connections left open would hold the API server's graceful shutdown.
	tr.CloseIdleConnections()
	if err := e.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	e2 := startEngine(t, dir)
	mod, digest := pullThroughBus(t, e2, "hello:1")
	if !bytes.Equal(mod, wasm) || digest != want.String() {
		t.Fatalf("after restart: %d bytes, digest %s", len(mod), digest)
	}
}
