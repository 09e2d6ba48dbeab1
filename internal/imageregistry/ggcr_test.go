package imageregistry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/stream"
)

// remoteOpts are go-containerregistry's options for the HTTPS server: its
// test CA and the token, as a Bearer token.
func (e *env) remoteOpts(ctx context.Context) []remote.Option {
	return []remote.Option{remote.WithContext(ctx), remote.WithTransport(e.client.Transport),
		remote.WithAuth(&authn.Bearer{Token: testToken})}
}

func (e *env) ref(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(e.host + "/" + s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// sameLayers fails unless both images have the same layers, byte for byte.
func sameLayers(t *testing.T, want, got v1.Image) {
	t.Helper()
	wl, err := want.Layers()
	if err != nil {
		t.Fatal(err)
	}
	gl, err := got.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(wl) != len(gl) {
		t.Fatalf("%d layers, want %d", len(gl), len(wl))
	}
	for i := range wl {
		read := func(l v1.Layer) []byte {
			rc, err := l.Compressed()
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			b, err := io.ReadAll(rc)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		if !bytes.Equal(read(wl[i]), read(gl[i])) {
			t.Fatalf("layer %d differs", i)
		}
	}
}

// TestRemoteRoundTrip pushes and pulls with go-containerregistry's remote
// package, as crane does: images with several layers (one over 1 MiB), a
// streamed layer (chunked PATCH upload, digest known only at the end), a
// cross-repository mount, an image index, tag listing and deletion.
func TestRemoteRoundTrip(t *testing.T) {
	e := newEnv(t, t.TempDir(), Config{})
	ctx := testCtx(t)
	opts := e.remoteOpts(ctx)

	img, err := random.Image(1<<20+100, 3)
	if err != nil {
		t.Fatal(err)
	}
	ref := e.ref(t, "demo/app:v1")
	if err := remote.Write(ref, img, opts...); err != nil {
		t.Fatalf("push: %v", err)
	}
	got, err := remote.Image(ref, opts...)
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	wd, _ := img.Digest()
	if gd, _ := got.Digest(); gd != wd {
		t.Fatalf("pulled %s, pushed %s", gd, wd)
	}
	sameLayers(t, img, got)

	// Pushing the image to another repository uploads nothing: blobs are
	// stored once by digest and every repository sees them.
	rec := &recordingTransport{base: e.client.Transport}
	copyOpts := []remote.Option{remote.WithContext(ctx), remote.WithTransport(rec), remote.WithAuth(&authn.Bearer{Token: testToken})}
	if err := remote.Write(e.ref(t, "other/app:copy"), got, copyOpts...); err != nil {
		t.Fatalf("push to another repository: %v", err)
	}
	if rec.count("/blobs/uploads/") != 0 || rec.count("PUT /v2/other/app/manifests/copy") != 1 {
		t.Fatalf("push to another repository: requests %v", rec.seen)
	}
	copied, err := remote.Image(e.ref(t, "other/app:copy"), opts...)
	if err != nil {
		t.Fatal(err)
	}
	sameLayers(t, img, copied)

	// A streamed layer has no digest until it is read: chunked upload.
	sl := stream.NewLayer(io.NopCloser(bytes.NewReader(pseudoRandom(700<<10, 9))))
	streamed, err := mutate.AppendLayers(img, sl)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(e.ref(t, "demo/app:streamed"), streamed, opts...); err != nil {
		t.Fatalf("push streamed layer: %v", err)
	}
	back, err := remote.Image(e.ref(t, "demo/app:streamed"), opts...)
	if err != nil {
		t.Fatal(err)
	}
	ls, _ := back.Layers()
	rc, _ := ls[len(ls)-1].Uncompressed() // a stream layer is gzipped on the way
	last, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(last, pseudoRandom(700<<10, 9)) {
		t.Fatal("streamed layer differs")
	}

	// An image index and its images.
	idx, err := random.Index(2048, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(e.ref(t, "demo/multi:1"), idx, opts...); err != nil {
		t.Fatalf("push index: %v", err)
	}
	gotIdx, err := remote.Index(e.ref(t, "demo/multi:1"), opts...)
	if err != nil {
		t.Fatal(err)
	}
	im, _ := gotIdx.IndexManifest()
	for _, d := range im.Manifests {
		if _, err := gotIdx.Image(d.Digest); err != nil {
			t.Fatalf("index child %s: %v", d.Digest, err)
		}
	}
	if a, b := must(idx.Digest()), must(gotIdx.Digest()); a != b {
		t.Fatalf("index digest %s, want %s", b, a)
	}

	tags, err := remote.List(e.ref(t, "demo/app").Context(), opts...)
	if err != nil || fmt.Sprint(tags) != "[streamed v1]" {
		t.Fatalf("tags: %v %v", tags, err)
	}
	if err := remote.Delete(e.ref(t, "demo/app:v1"), opts...); err != nil {
		t.Fatal(err)
	}
	_, err = remote.Image(ref, opts...)
	var terr *transport.Error
	if !errors.As(err, &terr) || terr.StatusCode != http.StatusNotFound || terr.Errors[0].Code != transport.ManifestUnknownErrorCode {
		t.Fatalf("pull after delete: %v", err)
	}

	// Basic auth with any user and the token as password works as well.
	basic := []remote.Option{remote.WithContext(ctx), remote.WithTransport(e.client.Transport),
		remote.WithAuth(&authn.Basic{Username: "crane", Password: testToken})}
	if _, err := remote.Image(e.ref(t, "other/app:copy"), basic...); err != nil {
		t.Fatalf("basic auth: %v", err)
	}
	// And no credentials do not.
	_, err = remote.Image(e.ref(t, "other/app:copy"), remote.WithContext(ctx), remote.WithTransport(e.client.Transport))
	if !errors.As(err, &terr) || terr.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous pull: %v", err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestConcurrentPushes pushes the same image (same blobs, same manifest)
// from several clients released together, and different tags of it: every
// push succeeds and the content is intact.
func TestConcurrentPushes(t *testing.T) {
	e := newEnv(t, t.TempDir(), Config{})
	ctx := testCtx(t)
	img, err := random.Image(600<<10, 2)
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = remote.Write(e.ref(t, fmt.Sprintf("race/app:t%d", i%3)), img, e.remoteOpts(ctx)...)
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("push %d: %v", i, err)
		}
	}
	for i := range 3 {
		got, err := remote.Image(e.ref(t, fmt.Sprintf("race/app:t%d", i)), e.remoteOpts(ctx)...)
		if err != nil {
			t.Fatal(err)
		}
		sameLayers(t, img, got)
	}
}

// recordingTransport notes each request as "METHOD path?query".
type recordingTransport struct {
	base http.RoundTripper
	mu   sync.Mutex
	seen []string
}

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.seen = append(r.seen, req.Method+" "+req.URL.RequestURI())
	r.mu.Unlock()
	return r.base.RoundTrip(req)
}

func (r *recordingTransport) count(substr string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, s := range r.seen {
		if strings.Contains(s, substr) {
			n++
		}
	}
	return n
}
