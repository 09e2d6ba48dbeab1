package imageregistry

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/bus"
	"github.com/skiffhq/skiff/internal/testutil"
)

// busGet sends one request through Transport.
func busDo(t *testing.T, rt http.RoundTripper, method, url string, body []byte) *http.Response {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(testCtx(t), method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// TestBusTransport reads through the bus what was pushed over HTTPS: a blob
// of several NATS payloads comes back byte for byte, with the headers and
// status codes of the HTTP API.
func TestBusTransport(t *testing.T) {
	e := newEnv(t, t.TempDir(), Config{})
	blob := pseudoRandom(5<<20+777, 4) // five 1 MiB NATS payloads and change
	d := e.pushBlob(t, "demo/app", blob)
	md, manifest := e.pushManifest(t, "demo/app", "v1", []byte(`{"os":"wasip1"}`), blob)
	rt := Transport(e.busConn(t), nil)
	base := "https://" + Host + "/v2/demo/app/"

	resp := busDo(t, rt, "GET", base+"blobs/"+d, nil)
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !bytes.Equal(got, blob) || resp.ContentLength != int64(len(blob)) ||
		resp.Header.Get("Docker-Content-Digest") != d {
		t.Fatalf("GET blob over the bus: %d, %d bytes (want %d), length %d, digest %q",
			resp.StatusCode, len(got), len(blob), resp.ContentLength, resp.Header.Get("Docker-Content-Digest"))
	}

	head := busDo(t, rt, "HEAD", base+"blobs/"+d, nil)
	if b, _ := io.ReadAll(head.Body); head.StatusCode != 200 || head.ContentLength != int64(len(blob)) || len(b) != 0 {
		t.Fatalf("HEAD blob over the bus: %d, length %d, %d body bytes", head.StatusCode, head.ContentLength, len(b))
	}
	m := busDo(t, rt, "GET", base+"manifests/v1", nil)
	if b, _ := io.ReadAll(m.Body); m.StatusCode != 200 || !bytes.Equal(b, manifest) || m.Header.Get("Docker-Content-Digest") != md ||
		m.Header.Get("Content-Type") != "application/vnd.oci.image.manifest.v1+json" {
		t.Fatalf("GET manifest over the bus: %d %q", m.StatusCode, m.Header)
	}
	// Errors keep their status and OCI code; the port in the host does not
	// matter.
	missing := busDo(t, rt, "GET", "https://"+Host+":443/v2/demo/app/blobs/"+digestOf([]byte("none")), nil)
	if missing.StatusCode != 404 || ociError(t, missing) != codeBlobUnknown {
		t.Fatalf("missing blob over the bus: %d", missing.StatusCode)
	}
	// Small pushes work over the bus too (no Authorization needed: the bus
	// connection is the credential).
	small := []byte("small blob")
	post := busDo(t, rt, "POST", base+"blobs/uploads/?digest="+digestOf(small), small)
	if post.StatusCode != http.StatusCreated {
		t.Fatalf("POST over the bus: %d", post.StatusCode)
	}
	// A body over one NATS message is refused before anything is sent.
	big := make([]byte, 2<<20)
	req, _ := http.NewRequestWithContext(testCtx(t), "POST", base+"blobs/uploads/?digest="+digestOf(big), bytes.NewReader(big))
	if _, err := rt.RoundTrip(req); !errors.Is(err, ErrBodyTooLarge) {
		t.Fatalf("large body over the bus: %v", err)
	}
}

// TestBusTransportConcurrent reads one large blob through the bus many times
// at once: the flow control keeps every stream whole.
func TestBusTransportConcurrent(t *testing.T) {
	e := newEnv(t, t.TempDir(), Config{})
	blob := pseudoRandom(3<<20, 5)
	d := e.pushBlob(t, "demo/app", blob)
	rt := Transport(e.busConn(t), nil)
	const n = 12
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			req, _ := http.NewRequestWithContext(testCtx(t), "GET", "https://"+Host+"/v2/demo/app/blobs/"+d, nil)
			resp, err := rt.RoundTrip(req)
			if err != nil {
				errs[i] = err
				return
			}
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			if err == nil && !bytes.Equal(got, blob) {
				err = errors.New("bytes differ")
			}
			errs[i] = err
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("reader %d: %v", i, err)
		}
	}
}

// TestBusTransportCancel closes a response body early: the responder must
// stop at once, not after the idle timeout (made very long here).
func TestBusTransportCancel(t *testing.T) {
	old := busIdleTimeout
	busIdleTimeout = 10 * time.Minute
	t.Cleanup(func() { busIdleTimeout = old })
	e := newEnv(t, t.TempDir(), Config{})
	d := e.pushBlob(t, "demo/app", pseudoRandom(8<<20, 6))
	rt := Transport(e.busConn(t), nil)

	resp := busDo(t, rt, "GET", "https://"+Host+"/v2/demo/app/blobs/"+d, nil)
	if _, err := io.ReadFull(resp.Body, make([]byte, 100<<10)); err != nil {
		t.Fatal(err)
	}
	if n := e.busSrv.inflight(); n != 1 {
		t.Fatalf("%d requests in flight while reading, want 1", n)
	}
	resp.Body.Close()
	testutil.Eventually(t, 20*time.Second, func() error {
		if n := e.busSrv.inflight(); n != 0 {
			return errors.New(strconv.Itoa(n) + " requests still in flight after the body was closed")
		}
		return nil
	})
	if _, err := resp.Body.Read(make([]byte, 10)); err == nil {
		t.Fatal("read after Close succeeded")
	}
}

// TestBusTransportRouting sends only the registry host over the bus.
func TestBusTransportRouting(t *testing.T) {
	base := &cannedTransport{}
	srv, err := bus.Start(testCtx(t), bus.Config{Name: "routing", Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	conn, err := srv.Connect(testCtx(t), "agent")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	rt := Transport(conn, base)
	resp := busDo(t, rt, "GET", "https://ghcr.io/v2/", nil)
	if resp.StatusCode != 418 || base.calls != 1 {
		t.Fatalf("other host: %d, base called %d times", resp.StatusCode, base.calls)
	}
	// Nobody serves the registry on this bus: a clear error, not a hang.
	req, _ := http.NewRequestWithContext(testCtx(t), "GET", "https://"+Host+"/v2/", nil)
	if _, err := rt.RoundTrip(req); !errors.Is(err, bus.ErrNoResponders) {
		t.Fatalf("no registry on the bus: %v", err)
	}
	if base.calls != 1 {
		t.Fatal("registry request went to the base transport")
	}
}

type cannedTransport struct{ calls int }

func (c *cannedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c.calls++
	return &http.Response{StatusCode: 418, Body: io.NopCloser(strings.NewReader("")), Header: http.Header{}, Request: req}, nil
}
