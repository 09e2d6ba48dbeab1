package image

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ---- test registry ----

// testRegistry is go-containerregistry's in-memory registry on loopback,
// behind a handler that counts requests and can require auth.
type testRegistry struct {
	srv  *httptest.Server
	host string // 127.0.0.1:port

	mu   sync.Mutex
	reqs []string // "METHOD /path" of every request that reached the registry

	// wrap, when set, sees every request first (auth, slow or corrupt
	// blobs); it calls next to pass the request on.
	wrap func(w http.ResponseWriter, r *http.Request, next http.Handler)
	// pushAuth authenticates test pushes to a protected registry.
	pushAuth authn.Authenticator
}

func newRegistry(t *testing.T) *testRegistry {
	t.Helper()
	tr := &testRegistry{}
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	counted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tr.mu.Lock()
		tr.reqs = append(tr.reqs, r.Method+" "+r.URL.Path)
		tr.mu.Unlock()
		inner.ServeHTTP(w, r)
	})
	tr.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tr.wrap != nil {
			tr.wrap(w, r, counted)
			return
		}
		counted.ServeHTTP(w, r)
	}))
	t.Cleanup(tr.srv.Close)
	tr.host = strings.TrimPrefix(tr.srv.URL, "http://")
	return tr
}

// count returns how many requests so far match method and contain substr.
func (tr *testRegistry) count(method, substr string) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	n := 0
	for _, r := range tr.reqs {
		if strings.HasPrefix(r, method+" ") && strings.Contains(r, substr) {
			n++
		}
	}
	return n
}

func (tr *testRegistry) total() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.reqs)
}

func (tr *testRegistry) ref(repoTag string) string { return tr.host + "/" + repoTag }

func (tr *testRegistry) push(t *testing.T, repoTag string, img v1.Image) v1.Hash {
	t.Helper()
	ref, err := name.ParseReference(tr.ref(repoTag))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, tr.remoteOpts()...); err != nil {
		t.Fatalf("push %s: %v", repoTag, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (tr *testRegistry) pushIndex(t *testing.T, repoTag string, idx v1.ImageIndex) v1.Hash {
	t.Helper()
	ref, err := name.ParseReference(tr.ref(repoTag))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx, tr.remoteOpts()...); err != nil {
		t.Fatalf("push index %s: %v", repoTag, err)
	}
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (tr *testRegistry) remoteOpts() []remote.Option {
	opts := []remote.Option{remote.WithTransport(http.DefaultTransport)}
	if tr.pushAuth != nil {
		opts = append(opts, remote.WithAuth(tr.pushAuth))
	}
	return opts
}

// ---- test images ----

// wasmModule is a valid, empty Wasm module made distinct by a custom
// section named after tag.
func wasmModule(tag string) []byte {
	sec := append([]byte{byte(len(tag))}, tag...)
	sec = append(sec, "payload"...)
	m := []byte("\x00asm\x01\x00\x00\x00")
	m = append(m, 0x00, byte(len(sec))) // custom section id, size (< 128)
	return append(m, sec...)
}

// wasmImage is an OCI image whose single layer is mod, with media type mt.
func wasmImage(t *testing.T, mod []byte, mt types.MediaType, cfg *v1.Config) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, static.NewLayer(mod, mt))
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	if cfg != nil {
		if img, err = mutate.Config(img, *cfg); err != nil {
			t.Fatal(err)
		}
	}
	return img
}

func layerDigest(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	return m.Layers[len(m.Layers)-1].Digest
}

// ---- stores ----

// lockedWriter sends log lines to t until the test ends, then drops them,
// so a goroutine finishing late cannot log into a finished test.
type lockedWriter struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func testLogger(t *testing.T) *slog.Logger {
	w := &lockedWriter{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func newStore(t *testing.T, dir string) *Store {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	s, err := New(Config{Dir: dir, Logger: testLogger(t), Transport: tr, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustModule(t *testing.T, s *Store, img Image) []byte {
	t.Helper()
	b, err := s.Module(img)
	if err != nil {
		t.Fatalf("Module(%s): %v", img.Ref, err)
	}
	return b
}

// ---- 1. anonymous pull ----

func TestPullAnonymousByTagAndDigest(t *testing.T) {
	reg := newRegistry(t)
	mod := wasmModule("hello")
	img := wasmImage(t, mod, MediaTypeWasmLayer, &v1.Config{
		Entrypoint: []string{"/hello.wasm"}, Cmd: []string{"--greet"}, Env: []string{"A=1"}, WorkingDir: "/work",
	})
	digest := reg.push(t, "app/hello:1.0", img)
	modDigest := layerDigest(t, img)

	s := newStore(t, "")
	got, err := s.Pull(ctxT(t), reg.ref("app/hello:1.0"), corev1.PullIfNotPresent, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Wasm || got.Digest != digest.String() || got.ModuleDigest != modDigest.String() || got.Ref != reg.ref("app/hello:1.0") {
		t.Fatalf("got %+v; want wasm, digest %s, module %s", got, digest, modDigest)
	}
	if want := filepath.Join(s.dir, "blobs", "sha256", modDigest.Hex); got.Module != want {
		t.Fatalf("Module path %q, want %q", got.Module, want)
	}
	if b, err := os.ReadFile(got.Module); err != nil || !bytes.Equal(b, mod) {
		t.Fatalf("blob on disk: %v, equal=%v", err, bytes.Equal(b, mod))
	}
	if b := mustModule(t, s, got); !bytes.Equal(b, mod) {
		t.Fatal("Module bytes differ from what was pushed")
	}
	if c := got.Config; len(c.Entrypoint) != 1 || c.Entrypoint[0] != "/hello.wasm" || len(c.Cmd) != 1 || c.WorkingDir != "/work" || len(c.Env) != 1 {
		t.Fatalf("config %+v", c)
	}

	// By digest, into a fresh store so it really comes from the registry.
	s2 := newStore(t, "")
	byDigest := reg.host + "/app/hello@" + digest.String()
	got2, err := s2.Pull(ctxT(t), byDigest, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !got2.Wasm || got2.Digest != digest.String() || got2.ModuleDigest != modDigest.String() {
		t.Fatalf("by digest: %+v", got2)
	}
	if b := mustModule(t, s2, got2); !bytes.Equal(b, mod) {
		t.Fatal("Module bytes by digest differ")
	}

	// A pull by tag also makes repo@digest present locally.
	before := reg.total()
	if _, err := s.Pull(ctxT(t), byDigest, corev1.PullNever, nil); err != nil {
		t.Fatalf("digest form after tag pull: %v", err)
	}
	if reg.total() != before {
		t.Fatal("Never contacted the registry")
	}
}

func TestWasmMediaTypes(t *testing.T) {
	reg := newRegistry(t)
	s := newStore(t, "")
	for i, mt := range []types.MediaType{MediaTypeWasm, MediaTypeWasmLayer, MediaTypeWasmToOCI} {
		mod := wasmModule(fmt.Sprint("mt", i))
		reg.push(t, fmt.Sprintf("mt/m%d:v1", i), wasmImage(t, mod, mt, nil))
		img, err := s.Pull(ctxT(t), reg.ref(fmt.Sprintf("mt/m%d:v1", i)), "", nil)
		if err != nil {
			t.Fatalf("%s: %v", mt, err)
		}
		if !img.Wasm || !bytes.Equal(mustModule(t, s, img), mod) {
			t.Fatalf("%s: %+v", mt, img)
		}
	}
}

// ---- 2. non-Wasm images ----

func TestPullNonWasm(t *testing.T) {
	reg := newRegistry(t)
	img, err := mutate.AppendLayers(empty.Image, static.NewLayer([]byte("not really a tarball"), types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	digest := reg.push(t, "app/nginx:1.27", img)

	s := newStore(t, "")
	got, err := s.Pull(ctxT(t), reg.ref("app/nginx:1.27"), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.Wasm || got.Module != "" || got.ModuleDigest != "" || got.Digest != digest.String() {
		t.Fatalf("non-Wasm image: %+v", got)
	}
	if _, err := s.Module(got); !errors.Is(err, ErrNotWasm) {
		t.Fatalf("Module of non-Wasm image: %v, want ErrNotWasm", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(s.dir, "blobs", "sha256")); len(ents) != 0 {
		t.Fatalf("a non-Wasm image stored blobs: %v", ents)
	}
}

func TestMultipleWasmLayersRejected(t *testing.T) {
	reg := newRegistry(t)
	img, err := mutate.AppendLayers(empty.Image,
		static.NewLayer(wasmModule("a"), MediaTypeWasmLayer), static.NewLayer(wasmModule("b"), MediaTypeWasmLayer))
	if err != nil {
		t.Fatal(err)
	}
	reg.push(t, "app/spin:1", img)
	_, err = newStore(t, "").Pull(ctxT(t), reg.ref("app/spin:1"), "", nil)
	if err == nil || !strings.Contains(err.Error(), "2 Wasm layers") {
		t.Fatalf("got %v, want an error about 2 Wasm layers", err)
	}
}

// ---- 3. pull policies ----

func TestPullPolicies(t *testing.T) {
	reg := newRegistry(t)
	modV1, modV2 := wasmModule("v1"), wasmModule("v2")
	imgV1 := wasmImage(t, modV1, MediaTypeWasmLayer, nil)
	d1 := reg.push(t, "app/hello:1.0", imgV1)
	blobV1 := layerDigest(t, imgV1).String()
	ref := reg.ref("app/hello:1.0")
	ctx := ctxT(t)

	// Never with nothing local: ErrNotPresent, and no traffic.
	before := reg.total()
	if _, err := newStore(t, "").Pull(ctx, ref, corev1.PullNever, nil); !errors.Is(err, ErrNotPresent) {
		t.Fatalf("Never on empty store: %v", err)
	}
	if n := reg.total() - before; n != 0 {
		t.Fatalf("Never contacted the registry: %d requests", n)
	}

	s := newStore(t, "")
	if _, err := s.Pull(ctx, ref, corev1.PullIfNotPresent, nil); err != nil {
		t.Fatal(err)
	}
	if n := reg.count("GET", blobV1); n != 1 {
		t.Fatalf("first pull: %d module GETs", n)
	}

	// IfNotPresent a second time: not a single request.
	before = reg.total()
	img, err := s.Pull(ctx, ref, corev1.PullIfNotPresent, nil)
	if err != nil || img.Digest != d1.String() {
		t.Fatal(img, err)
	}
	if reg.total() != before {
		t.Fatalf("IfNotPresent made %d requests", reg.total()-before)
	}

	// Always re-resolves the manifest but does not fetch the module again.
	before = reg.total()
	img, err = s.Pull(ctx, ref, corev1.PullAlways, nil)
	if err != nil || img.Digest != d1.String() {
		t.Fatal(img, err)
	}
	if reg.total() == before || reg.count("HEAD", "/manifests/1.0")+reg.count("GET", "/manifests/1.0") < 2 {
		t.Fatal("Always did not ask the registry for the manifest")
	}
	if n := reg.count("GET", blobV1); n != 1 {
		t.Fatalf("Always re-downloaded an unchanged module: %d module GETs", n)
	}

	// Move the tag: IfNotPresent keeps the old module, Always gets the new.
	imgV2 := wasmImage(t, modV2, MediaTypeWasmLayer, nil)
	d2 := reg.push(t, "app/hello:1.0", imgV2)
	img, err = s.Pull(ctx, ref, corev1.PullIfNotPresent, nil)
	if err != nil || img.Digest != d1.String() || !bytes.Equal(mustModule(t, s, img), modV1) {
		t.Fatalf("IfNotPresent after tag move: %+v %v", img, err)
	}
	img, err = s.Pull(ctx, ref, corev1.PullAlways, nil)
	if err != nil || img.Digest != d2.String() || !bytes.Equal(mustModule(t, s, img), modV2) {
		t.Fatalf("Always after tag move: %+v %v", img, err)
	}
	if n := reg.count("GET", layerDigest(t, imgV2).String()); n != 1 {
		t.Fatalf("new module fetched %d times", n)
	}
	// The old image is still there by digest.
	old, err := s.Pull(ctx, reg.host+"/app/hello@"+d1.String(), corev1.PullNever, nil)
	if err != nil || !bytes.Equal(mustModule(t, s, old), modV1) {
		t.Fatalf("old image by digest: %v", err)
	}

	// Empty policy on :latest means Always: the registry is asked again.
	reg.push(t, "app/hello:latest", imgV1)
	if _, err := s.Pull(ctx, reg.ref("app/hello:latest"), "", nil); err != nil {
		t.Fatal(err)
	}
	before = reg.total()
	if _, err := s.Pull(ctx, reg.ref("app/hello:latest"), "", nil); err != nil {
		t.Fatal(err)
	}
	if reg.total() == before {
		t.Fatal("default policy for :latest did not re-resolve")
	}

	if _, err := s.Pull(ctx, ref, "Sometimes", nil); err == nil {
		t.Fatal("unknown policy accepted")
	}
}

func TestPullErrors(t *testing.T) {
	reg := newRegistry(t)
	reg.push(t, "app/hello:1.0", wasmImage(t, wasmModule("x"), MediaTypeWasmLayer, nil))
	s := newStore(t, "")
	ctx := ctxT(t)
	for _, ref := range []string{reg.ref("app/hello:2.0"), reg.ref("app/nope:1.0"),
		reg.host + "/app/hello@sha256:" + strings.Repeat("0", 64)} {
		_, err := s.Pull(ctx, ref, corev1.PullAlways, nil)
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", ref, err)
		} else if !strings.Contains(err.Error(), "pull "+ref) {
			t.Errorf("error lacks context: %v", err)
		}
	}
	if _, err := s.Pull(ctx, "UPPER/Case::bad", "", nil); !errors.Is(err, ErrInvalidReference) {
		t.Errorf("bad reference: %v", err)
	}
}

func TestDefaultPolicy(t *testing.T) {
	for _, c := range []struct {
		ref  string
		want corev1.PullPolicy
	}{
		{"nginx", corev1.PullAlways},
		{"nginx:latest", corev1.PullAlways},
		{"docker.io/library/nginx", corev1.PullAlways},
		{"registry.example:5000/app/hello", corev1.PullAlways},
		{"registry.example:5000/app/hello:latest", corev1.PullAlways},
		{"registry.example:5000/app/hello:1.0", corev1.PullIfNotPresent},
		{"nginx:1.27", corev1.PullIfNotPresent},
		{"nginx@sha256:" + strings.Repeat("a", 64), corev1.PullIfNotPresent},
		{"nginx:latest@sha256:" + strings.Repeat("a", 64), corev1.PullAlways},
		{"nginx:1.0@sha256:" + strings.Repeat("a", 64), corev1.PullIfNotPresent},
		{"localhost:5000/hello", corev1.PullAlways},
		// Normalisation: Docker Hub's spellings are one name, a port is not
		// a tag, a digest pins whatever registry it is on.
		{"index.docker.io/nginx", corev1.PullAlways},
		{"docker.io/library/nginx:1.27", corev1.PullIfNotPresent},
		{"[::1]:5000/hello", corev1.PullAlways},
		{"registry.example:5000/app/hello@sha256:" + strings.Repeat("b", 64), corev1.PullIfNotPresent},
		// What does not parse is IfNotPresent, as in Kubernetes: an
		// unknown digest algorithm, an uppercase name.
		{"nginx:latest@md5:" + strings.Repeat("c", 32), corev1.PullIfNotPresent},
		{"UPPER/Case::bad", corev1.PullIfNotPresent},
	} {
		if got := DefaultPolicy(c.ref); got != c.want {
			t.Errorf("DefaultPolicy(%q) = %s, want %s", c.ref, got, c.want)
		}
	}
}

// ---- 4. auth ----

func dockerConfigSecret(t *testing.T, name string, auths map[string]map[string]string) corev1.Secret {
	t.Helper()
	b, err := json.Marshal(map[string]any{"auths": auths})
	if err != nil {
		t.Fatal(err)
	}
	return corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: b},
	}
}

func keychainOf(t *testing.T, secrets ...corev1.Secret) authn.Keychain {
	t.Helper()
	kc, err := Keychain(secrets)
	if err != nil {
		t.Fatal(err)
	}
	return kc
}

func TestBasicAuth(t *testing.T) {
	reg := newRegistry(t)
	reg.wrap = func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if u, p, ok := r.BasicAuth(); ok && u == "alice" && p == "s3cret" {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
	}
	reg.pushAuth = &authn.Basic{Username: "alice", Password: "s3cret"}
	mod := wasmModule("private")
	reg.push(t, "team/app:1.0", wasmImage(t, mod, MediaTypeWasmLayer, nil))
	ref := reg.ref("team/app:1.0")
	ctx := ctxT(t)
	s := newStore(t, "")

	if _, err := s.Pull(ctx, ref, corev1.PullAlways, nil); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("anonymous: %v, want ErrUnauthorized", err)
	}
	wrong := keychainOf(t, dockerConfigSecret(t, "wrong", map[string]map[string]string{
		reg.host: {"username": "alice", "password": "nope"},
	}))
	if _, err := s.Pull(ctx, ref, corev1.PullAlways, wrong); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("wrong password: %v, want ErrUnauthorized", err)
	}

	// username/password, the base64 auth field, and a URL-style key.
	for i, entry := range []map[string]string{
		{"username": "alice", "password": "s3cret"},
		{"auth": base64.StdEncoding.EncodeToString([]byte("alice:s3cret"))},
	} {
		key := reg.host
		if i == 1 {
			key = "http://" + reg.host + "/v2/"
		}
		kc := keychainOf(t, dockerConfigSecret(t, "regcred", map[string]map[string]string{key: entry}))
		img, err := newStore(t, "").Pull(ctx, ref, corev1.PullAlways, kc)
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if !img.Wasm {
			t.Fatalf("entry %d: %+v", i, img)
		}
	}

	// Several matching credentials are tried most specific first, moving
	// on after a refusal, as the kubelet does.
	kc := keychainOf(t,
		dockerConfigSecret(t, "team", map[string]map[string]string{reg.host + "/team": {"username": "bob", "password": "x"}}),
		dockerConfigSecret(t, "site", map[string]map[string]string{reg.host: {"username": "alice", "password": "s3cret"}}),
	)
	img, err := s.Pull(ctx, ref, corev1.PullAlways, kc)
	if err != nil {
		t.Fatalf("fallback to the second credential: %v", err)
	}
	if !bytes.Equal(mustModule(t, s, img), mod) {
		t.Fatal("module differs")
	}
}

func TestBearerAuth(t *testing.T) {
	const token = "tok-123"
	reg := newRegistry(t)
	var tokenRequests atomic.Int64
	reg.wrap = func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if r.URL.Path == "/token" {
			tokenRequests.Add(1)
			if r.Method == http.MethodPost { // OAuth2 refresh-token grant (identitytoken)
				if r.ParseForm() == nil && r.PostForm.Get("grant_type") == "refresh_token" && r.PostForm.Get("refresh_token") == "refresh-xyz" {
					json.NewEncoder(w).Encode(map[string]string{"access_token": token})
					return
				}
			} else if u, p, ok := r.BasicAuth(); ok && u == "alice" && p == "s3cret" && r.URL.Query().Get("service") == "test" {
				json.NewEncoder(w).Encode(map[string]string{"token": token})
				return
			}
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}`, http.StatusUnauthorized)
			return
		}
		if r.Header.Get("Authorization") == "Bearer "+token {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="http://%s/token",service="test"`, reg.host))
		http.Error(w, "unauthorized", http.StatusUnauthorized)
	}
	reg.pushAuth = &authn.Basic{Username: "alice", Password: "s3cret"}
	mod := wasmModule("bearer")
	reg.push(t, "team/app:1.0", wasmImage(t, mod, MediaTypeWasmLayer, nil))
	ref := reg.ref("team/app:1.0")
	ctx := ctxT(t)

	if _, err := newStore(t, "").Pull(ctx, ref, "", nil); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("anonymous: %v, want ErrUnauthorized", err)
	}
	bad := keychainOf(t, dockerConfigSecret(t, "bad", map[string]map[string]string{reg.host: {"username": "alice", "password": "no"}}))
	if _, err := newStore(t, "").Pull(ctx, ref, "", bad); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("bad password at the token service: %v, want ErrUnauthorized", err)
	}

	for _, entry := range []map[string]string{
		{"username": "alice", "password": "s3cret"}, // exchanged at the token service
		{"identitytoken": "refresh-xyz"},            // OAuth2 refresh token
		{"registrytoken": token},                    // bearer token used as is
	} {
		tokenRequests.Store(0)
		kc := keychainOf(t, dockerConfigSecret(t, "regcred", map[string]map[string]string{reg.host: entry}))
		s := newStore(t, "")
		img, err := s.Pull(ctx, ref, "", kc)
		if err != nil {
			t.Fatalf("%v: %v", entry, err)
		}
		if !bytes.Equal(mustModule(t, s, img), mod) {
			t.Fatalf("%v: module differs", entry)
		}
		if _, isToken := entry["registrytoken"]; isToken != (tokenRequests.Load() == 0) {
			t.Fatalf("%v: %d token requests", entry, tokenRequests.Load())
		}
	}
}

func TestKeychainMatching(t *testing.T) {
	kc := keychainOf(t,
		dockerConfigSecret(t, "a", map[string]map[string]string{
			"https://index.docker.io/v1/": {"username": "hub", "password": "p"},
			"*.example.com":               {"username": "glob", "password": "p"},
			"reg.example:5000/team":       {"username": "team", "password": "p"},
			"reg.example:5000":            {"username": "site", "password": "p"},
		}),
		corev1.Secret{ // legacy dockercfg: the entries at top level
			Type: corev1.SecretTypeDockercfg,
			Data: map[string][]byte{corev1.DockerConfigKey: []byte(`{"quay.io":{"auth":"` +
				base64.StdEncoding.EncodeToString([]byte("legacy:p")) + `"}}`)},
		},
		corev1.Secret{Type: corev1.SecretTypeOpaque, Data: map[string][]byte{"x": []byte("ignored")}},
	)
	sk := kc.(*secretKeychain)
	users := func(ref string) []string {
		r, err := name.ParseReference(ref)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, c := range sk.lookup(r.Context()) {
			out = append(out, c.Username)
		}
		return out
	}
	for _, c := range []struct {
		ref  string
		want string
	}{
		{"nginx", "hub"},
		{"docker.io/library/nginx:1", "hub"},
		{"a.example.com/x/y", "glob"},
		{"a.b.example.com/xy", ""}, // globs match one label
		{"reg.example:5000/team/app", "team,site"},
		{"reg.example:5000/other/app", "site"},
		{"reg.example:5001/team/app", ""}, // ports must match
		{"reg.example/team/app", ""},
		{"quay.io/org/app", "legacy"},
		{"ghcr.io/org/app", ""},
	} {
		if got := strings.Join(users(c.ref), ","); got != c.want {
			t.Errorf("%s: credentials %q, want %q", c.ref, got, c.want)
		}
	}
	// Resolve gives the most specific match, or anonymous.
	r, _ := name.ParseReference("reg.example:5000/team/app")
	a, err := kc.Resolve(r.Context())
	if err != nil {
		t.Fatal(err)
	}
	if cfg, _ := a.Authorization(); cfg.Username != "team" {
		t.Errorf("Resolve: %+v", cfg)
	}
	r, _ = name.ParseReference("ghcr.io/x/y")
	if a, _ := kc.Resolve(r.Context()); a != authn.Anonymous {
		t.Errorf("Resolve of an unknown registry: %v, want Anonymous", a)
	}

	// Equal secrets give equal single-flight identities; different ones do not.
	s1 := dockerConfigSecret(t, "x", map[string]map[string]string{"a.io": {"username": "u", "password": "1"}, "b.io": {"username": "u", "password": "1"}})
	s2 := dockerConfigSecret(t, "x", map[string]map[string]string{"a.io": {"username": "u", "password": "2"}})
	if keychainID(keychainOf(t, s1)) != keychainID(keychainOf(t, s1)) || keychainID(keychainOf(t, s1)) == keychainID(keychainOf(t, s2)) {
		t.Error("keychain identities wrong")
	}

	// A malformed secret is an error that names it but not its content.
	bad := corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "broken"},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths": {"r.io": {"password": "hunter2"`)},
	}
	_, err = Keychain([]corev1.Secret{bad})
	if err == nil || !strings.Contains(err.Error(), "ns/broken") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("malformed secret: %v", err)
	}
}

// ---- 5. corruption ----

func TestCorruptBlobDetectedAndRepaired(t *testing.T) {
	reg := newRegistry(t)
	mod := wasmModule("fragile")
	img := wasmImage(t, mod, MediaTypeWasmLayer, nil)
	reg.push(t, "app/fragile:1", img)
	blob := layerDigest(t, img).String()
	ref := reg.ref("app/fragile:1")
	ctx := ctxT(t)
	s := newStore(t, "")

	got, err := s.Pull(ctx, ref, corev1.PullIfNotPresent, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(got.Module)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 0xff
	if err := os.Chmod(got.Module, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(got.Module, b, 0o644); err != nil {
		t.Fatal(err)
	}

	if _, err := s.Module(got); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("Module of corrupt blob: %v, want ErrDigestMismatch", err)
	}
	if _, err := os.Stat(got.Module); !os.IsNotExist(err) {
		t.Fatalf("corrupt blob kept: %v", err)
	}
	if _, err := s.Module(got); !errors.Is(err, ErrNotPresent) {
		t.Fatalf("Module of removed blob: %v, want ErrNotPresent", err)
	}

	repaired, err := s.Pull(ctx, ref, corev1.PullIfNotPresent, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mustModule(t, s, repaired), mod) {
		t.Fatal("repaired module differs")
	}
	if n := reg.count("GET", blob); n != 2 {
		t.Fatalf("module downloaded %d times, want 2 (first pull and repair)", n)
	}
}

func TestRegistryServesWrongBytes(t *testing.T) {
	reg := newRegistry(t)
	mod := wasmModule("honest")
	img := wasmImage(t, mod, MediaTypeWasmLayer, nil)
	reg.push(t, "app/liar:1", img)
	blob := layerDigest(t, img).String()
	reg.wrap = func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+blob) {
			bad := bytes.Clone(mod)
			bad[len(bad)-1] ^= 0xff
			w.Header().Set("Content-Length", fmt.Sprint(len(bad)))
			w.Write(bad)
			return
		}
		next.ServeHTTP(w, r)
	}
	s := newStore(t, "")
	if _, err := s.Pull(ctxT(t), reg.ref("app/liar:1"), "", nil); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("got %v, want ErrDigestMismatch", err)
	}
	ents, _ := os.ReadDir(filepath.Join(s.dir, "blobs", "sha256"))
	if len(ents) != 0 {
		t.Fatalf("bad download left files: %v", ents)
	}
	if _, err := s.Pull(ctxT(t), reg.ref("app/liar:1"), corev1.PullNever, nil); !errors.Is(err, ErrNotPresent) {
		t.Fatalf("failed pull was recorded: %v", err)
	}
}

// ---- 6. restart ----

func TestRestartKeepsIndex(t *testing.T) {
	reg := newRegistry(t)
	mod := wasmModule("persist")
	reg.push(t, "app/persist:2", wasmImage(t, mod, MediaTypeWasmLayer, &v1.Config{Cmd: []string{"serve"}}))
	dir := t.TempDir()
	ctx := ctxT(t)

	s1 := newStore(t, dir)
	first, err := s1.Pull(ctx, reg.ref("app/persist:2"), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	imported, err := s1.Import(ctx, wasmModule("side-loaded"), "local/tool:1")
	if err != nil {
		t.Fatal(err)
	}

	before := reg.total()
	s2 := newStore(t, dir)
	again, err := s2.Pull(ctx, reg.ref("app/persist:2"), corev1.PullNever, nil)
	if err != nil {
		t.Fatal(err)
	}
	if again.Digest != first.Digest || again.Module != first.Module || len(again.Config.Cmd) != 1 {
		t.Fatalf("after restart %+v, before %+v", again, first)
	}
	if !bytes.Equal(mustModule(t, s2, again), mod) {
		t.Fatal("module differs after restart")
	}
	imp2, err := s2.Pull(ctx, "local/tool:1", corev1.PullNever, nil)
	if err != nil || imp2.Digest != imported.Digest {
		t.Fatalf("imported image after restart: %+v %v", imp2, err)
	}
	if reg.total() != before {
		t.Fatal("restart contacted the registry")
	}

	// A corrupt index is set aside, not fatal.
	if err := os.WriteFile(filepath.Join(dir, "index.json"), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	s3 := newStore(t, dir)
	if _, err := s3.Pull(ctx, reg.ref("app/persist:2"), corev1.PullNever, nil); !errors.Is(err, ErrNotPresent) {
		t.Fatalf("after corrupt index: %v", err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "index.json.corrupt-*")); len(m) != 1 {
		t.Fatalf("corrupt index not kept aside: %v", m)
	}
}

// ---- 7. concurrency ----

func TestConcurrentPullsShareOneDownload(t *testing.T) {
	reg := newRegistry(t)
	mod := wasmModule("popular")
	img := wasmImage(t, mod, MediaTypeWasmLayer, nil)
	reg.push(t, "app/popular:1", img)
	blob := layerDigest(t, img).String()
	// A slow blob keeps the download in flight while the others arrive.
	reg.wrap = func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+blob) {
			time.Sleep(100 * time.Millisecond)
		}
		next.ServeHTTP(w, r)
	}
	s := newStore(t, "")
	ctx := ctxT(t)

	const n = 10
	var wg sync.WaitGroup
	results := make([]Image, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = s.Pull(ctx, reg.ref("app/popular:1"), corev1.PullIfNotPresent, nil)
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if !bytes.Equal(mustModule(t, s, results[i]), mod) {
			t.Fatalf("pull %d: module differs", i)
		}
	}
	if got := reg.count("GET", blob); got != 1 {
		t.Fatalf("%d module downloads, want 1", got)
	}
	if got := reg.count("GET", "/manifests/"); got != 1 {
		t.Fatalf("%d manifest GETs, want 1", got)
	}
}

func TestPullCancelled(t *testing.T) {
	reg := newRegistry(t)
	img := wasmImage(t, wasmModule("stuck"), MediaTypeWasmLayer, nil)
	reg.push(t, "app/stuck:1", img)
	blob := layerDigest(t, img).String()
	release := make(chan struct{})
	var blocked atomic.Bool
	blocked.Store(true)
	reg.wrap = func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		if blocked.Load() && strings.HasSuffix(r.URL.Path, "/blobs/"+blob) {
			select {
			case <-release:
			case <-r.Context().Done():
				return
			case <-time.After(10 * time.Second):
			}
		}
		next.ServeHTTP(w, r)
	}
	s := newStore(t, "")
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if _, err := s.Pull(ctx, reg.ref("app/stuck:1"), "", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want DeadlineExceeded", err)
	}
	blocked.Store(false)
	close(release)
	if _, err := s.Pull(ctxT(t), reg.ref("app/stuck:1"), "", nil); err != nil {
		t.Fatalf("pull after a cancelled one: %v", err)
	}
}

// ---- 8. import ----

func TestImport(t *testing.T) {
	mod := wasmModule("imported")
	ctx := ctxT(t)
	s1, s2 := newStore(t, ""), newStore(t, "")
	a, err := s1.Import(ctx, mod, "hello:1.0")
	if err != nil {
		t.Fatal(err)
	}
	b, err := s2.Import(ctx, bytes.Clone(mod), "hello:1.0")
	if err != nil {
		t.Fatal(err)
	}
	again, err := s1.Import(ctx, mod, "other/name:2")
	if err != nil {
		t.Fatal(err)
	}
	if !a.Wasm || a.Digest == "" || a.Digest != b.Digest || a.Digest != again.Digest || a.ModuleDigest != b.ModuleDigest {
		t.Fatalf("imports differ: %+v %+v %+v", a, b, again)
	}
	if !bytes.Equal(mustModule(t, s1, a), mod) {
		t.Fatal("imported module differs")
	}
	if other, _ := s1.Import(ctx, wasmModule("different"), "hello:1.1"); other.Digest == a.Digest {
		t.Fatal("different modules got the same digest")
	}
	// Found without a registry under the name it was given, in Kubernetes' spelling too.
	for _, ref := range []string{"hello:1.0", "docker.io/library/hello:1.0"} {
		got, err := s1.Pull(ctx, ref, corev1.PullIfNotPresent, nil)
		if err != nil || got.Digest != a.Digest || got.Ref != ref {
			t.Fatalf("%s after import: %+v %v", ref, got, err)
		}
	}
	// The digest is that of a real image: a digest reference to it imports too.
	if _, err := s1.Import(ctx, mod, "hello@"+a.Digest); err != nil {
		t.Fatalf("import by its own digest: %v", err)
	}
	if _, err := s1.Import(ctx, mod, "hello@sha256:"+strings.Repeat("1", 64)); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("import under a wrong digest: %v", err)
	}
	if _, err := s1.Import(ctx, []byte("#!/bin/sh\necho hi\n"), "script:1"); !errors.Is(err, ErrNotWasm) {
		t.Fatalf("import of a non-Wasm file: %v", err)
	}

	// Pushing the same module the same way gives the same image ID.
	reg := newRegistry(t)
	synth, err := WasmImage(mod)
	if err != nil {
		t.Fatal(err)
	}
	reg.push(t, "hello:1.0", synth)
	pulled, err := newStore(t, "").Pull(ctx, reg.ref("hello:1.0"), "", nil)
	if err != nil || pulled.Digest != a.Digest || pulled.ModuleDigest != a.ModuleDigest {
		t.Fatalf("pulled %+v %v; imported digest %s", pulled, err, a.Digest)
	}
}

// ---- 9. image index ----

func TestImageIndexPicksWasm(t *testing.T) {
	reg := newRegistry(t)
	linux, err := mutate.AppendLayers(empty.Image, static.NewLayer([]byte("linux rootfs"), types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	mod := wasmModule("multi")
	wasmImg := wasmImage(t, mod, MediaTypeWasmLayer, &v1.Config{Entrypoint: []string{"/app.wasm"}})
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex),
		mutate.IndexAddendum{Add: linux, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: wasmImg, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "wasip1", Architecture: "wasm"}}},
	)
	idxDigest := reg.pushIndex(t, "app/multi:1", idx)

	s := newStore(t, "")
	got, err := s.Pull(ctxT(t), reg.ref("app/multi:1"), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Wasm || got.Digest != idxDigest.String() || got.ModuleDigest != layerDigest(t, wasmImg).String() ||
		len(got.Config.Entrypoint) != 1 {
		t.Fatalf("got %+v", got)
	}
	if !bytes.Equal(mustModule(t, s, got), mod) {
		t.Fatal("module differs")
	}

	// An index without a wasi/wasm entry is an ordinary image for the OCI runtime.
	onlyLinux := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: linux, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}})
	reg.pushIndex(t, "app/linux:1", onlyLinux)
	got, err = s.Pull(ctxT(t), reg.ref("app/linux:1"), "", nil)
	if err != nil || got.Wasm {
		t.Fatalf("linux-only index: %+v %v", got, err)
	}
}

// ---- TLS and an unreachable registry ----

func TestTLSRegistry(t *testing.T) {
	srv := httptest.NewTLSServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "https://")
	mod := wasmModule("tls")
	ref, err := name.ParseReference(host + "/app/tls:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, wasmImage(t, mod, MediaTypeWasmLayer, nil), remote.WithTransport(srv.Client().Transport)); err != nil {
		t.Fatal(err)
	}
	// Insecure stays false: the transport trusts the test CA.
	s, err := New(Config{Dir: t.TempDir(), Logger: testLogger(t), Transport: srv.Client().Transport})
	if err != nil {
		t.Fatal(err)
	}
	img, err := s.Pull(ctxT(t), host+"/app/tls:1", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mustModule(t, s, img), mod) {
		t.Fatal("module differs")
	}
}

func TestRegistryDown(t *testing.T) {
	reg := newRegistry(t)
	reg.push(t, "app/hello:1.0", wasmImage(t, wasmModule("down"), MediaTypeWasmLayer, nil))
	s := newStore(t, "")
	ctx := ctxT(t)
	ref := reg.ref("app/hello:1.0")
	if _, err := s.Pull(ctx, ref, "", nil); err != nil {
		t.Fatal(err)
	}
	reg.srv.Close()
	// Always fails without its registry, as the kubelet's does
	// (ErrImagePull); IfNotPresent carries on with the local copy.
	if _, err := s.Pull(ctx, ref, corev1.PullAlways, nil); err == nil {
		t.Fatal("Always succeeded with the registry down")
	}
	if _, err := s.Pull(ctx, ref, corev1.PullIfNotPresent, nil); err != nil {
		t.Fatalf("IfNotPresent with the registry down: %v", err)
	}
}
