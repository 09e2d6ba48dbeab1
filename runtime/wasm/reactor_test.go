package wasm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/testutil"
	"github.com/skiffhq/skiff/internal/wasmbuild"
	"github.com/skiffhq/skiff/runtime/wasm/testdata/handlerapp"
)

// handlerGuest compiles testdata/handler as a reactor on the shared Runtime.
func handlerGuest(tb testing.TB) *Module {
	tb.Helper()
	mod, err := shared.Compile(context.Background(), wasmbuild.Build(tb, "./testdata/handler", true))
	if err != nil {
		tb.Fatalf("compile handler: %v", err)
	}
	return mod
}

// serveHandler makes a Handler for spec and serves it on a loopback test
// server; both are closed when the test ends.
func serveHandler(tb testing.TB, spec HandlerSpec) (*Handler, string) {
	tb.Helper()
	h, err := shared.NewHandler(context.Background(), handlerGuest(tb), spec)
	if err != nil {
		tb.Fatalf("NewHandler: %v", err)
	}
	srv := httptest.NewServer(h)
	tb.Cleanup(func() {
		srv.Close()
		if err := h.Close(context.Background()); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return h, srv.URL
}

type reply struct {
	status int
	header http.Header
	body   string
}

func do(tb testing.TB, method, url, body string, hdr http.Header) reply {
	tb.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	c := &http.Client{Timeout: 60 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("%s %s: body: %v", method, url, err)
	}
	return reply{resp.StatusCode, resp.Header, string(b)}
}

func wantReply(tb testing.TB, got reply, status int, body string) {
	tb.Helper()
	if got.status != status || (body != "" && got.body != body) {
		tb.Fatalf("reply %d %q, want %d %q", got.status, got.body, status, body)
	}
}

func TestIsHandler(t *testing.T) {
	t.Parallel()
	if !handlerGuest(t).IsHandler() {
		t.Error("the reactor is not a handler")
	}
	cmd := guest(t, "printenv")
	if cmd.IsHandler() {
		t.Error("a command is a handler")
	}
	if _, err := shared.NewHandler(context.Background(), cmd, HandlerSpec{}); !errors.Is(err, ErrNotHandler) {
		t.Errorf("NewHandler(command) err = %v, want ErrNotHandler", err)
	}
	if _, err := shared.Run(context.Background(), handlerGuest(t), RunSpec{}); !errors.Is(err, ErrNotCommand) {
		t.Errorf("Run(handler) err = %v, want ErrNotCommand", err)
	}
}

// TestHandlerServes: requests and responses cross the ABI whole: method,
// URI, headers, body, status, multi-valued headers, and the pod's env,
// mounts and hostname reach the guest.
func TestHandlerServes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "message.txt"), []byte("from a volume"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, url := serveHandler(t, HandlerSpec{
		Env:      []string{"GREETING=hi"},
		Hostname: "pod-h",
		Mounts:   []Mount{{HostPath: dir, GuestPath: "/config", ReadOnly: true}},
	})

	got := do(t, "GET", url+"/some/path?q=1", "", nil)
	wantReply(t, got, 200, "hello /some/path from pod-h")
	if ct := got.header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("sniffed Content-Type = %q", ct)
	}

	got = do(t, "POST", url+"/echo?status=201&x=y", "the body\x00bytes", http.Header{"X-Echo": {"echoed"}})
	host := strings.TrimPrefix(url, "http://")
	wantReply(t, got, 201, "POST /echo?status=201&x=y echoed host="+host+"\nthe body\x00bytes")
	if v := got.header.Values("X-Reply"); len(v) != 2 || v[0] != "a" || v[1] != "b" {
		t.Errorf("X-Reply = %q, want [a b]", v)
	}
	if got.header.Get("Content-Length") != strconv.Itoa(len(got.body)) {
		t.Errorf("Content-Length = %q for %d bytes", got.header.Get("Content-Length"), len(got.body))
	}

	wantReply(t, do(t, "GET", url+"/env", "", nil), 200, "GREETING=hi message=from a volume err=<nil>")

	// HEAD gets the headers of GET and no body.
	got = do(t, "HEAD", url+"/", "", nil)
	if got.status != 200 || got.body != "" {
		t.Errorf("HEAD = %d %q", got.status, got.body)
	}
}

// count asks the instance how many requests it served.
func count(tb testing.TB, url string) int {
	tb.Helper()
	got := do(tb, "GET", url+"/count", "", nil)
	n, err := strconv.Atoi(got.body)
	if got.status != 200 || err != nil {
		tb.Fatalf("/count = %d %q", got.status, got.body)
	}
	return n
}

// TestHandlerPanic: a handler that panics answers 500 and its instance
// keeps serving, as a net/http server survives a panicking handler.
func TestHandlerPanic(t *testing.T) {
	t.Parallel()
	var stderr syncBuffer
	h, url := serveHandler(t, HandlerSpec{PoolSize: 1, Stderr: &stderr})
	before := count(t, url)
	wantReply(t, do(t, "GET", url+"/panic", "", nil), 500, "")
	if after := count(t, url); after != before+2 {
		t.Errorf("count %d after panic, %d before: the instance was replaced", after, before)
	}
	if !strings.Contains(stderr.String(), "panic serving GET /panic: on purpose") {
		t.Errorf("stderr lacks the panic:\n%s", &stderr)
	}
	if s := h.Stats(); s.Created != 1 || s.Discarded != 0 {
		t.Errorf("stats %+v, want 1 created, 0 discarded", s)
	}
}

// TestHandlerExit: a guest that exits in a request loses its instance; the
// request gets 500, the next one a fresh instance.
func TestHandlerExit(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var exits []ExitStatus
	h, url := serveHandler(t, HandlerSpec{PoolSize: 1, OnInstanceExit: func(st ExitStatus) {
		mu.Lock()
		defer mu.Unlock()
		exits = append(exits, st)
	}})
	count(t, url)
	count(t, url)
	wantReply(t, do(t, "GET", url+"/exit", "", nil), 500, "")
	if n := count(t, url); n != 1 {
		t.Errorf("count after exit = %d, want 1 (a new instance)", n)
	}
	if s := h.Stats(); s.Created != 2 || s.Discarded != 1 || s.Instances != 1 {
		t.Errorf("stats %+v, want 2 created, 1 discarded, 1 alive", s)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(exits) != 1 || exits[0].Code != 3 || exits[0].Reason != ReasonError {
		t.Errorf("OnInstanceExit got %+v, want one exit with code 3", exits)
	}
}

// TestHandlerMemoryLimit: an instance that allocates past its limit is
// discarded as OOMKilled; other requests are served on.
func TestHandlerMemoryLimit(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var exits []ExitStatus
	h, url := serveHandler(t, HandlerSpec{PoolSize: 2, MemoryLimitBytes: 64 << 20, OnInstanceExit: func(st ExitStatus) {
		mu.Lock()
		defer mu.Unlock()
		exits = append(exits, st)
	}})
	got := do(t, "GET", url+"/oom", "", nil)
	wantReply(t, got, 500, "")
	if !strings.Contains(got.body, ReasonOOMKilled) {
		t.Errorf("body %q does not say OOMKilled", got.body)
	}
	wantReply(t, do(t, "GET", url+"/x", "", nil), 200, "hello /x from ")
	if s := h.Stats(); s.OOMKilled != 1 || s.Discarded != 1 {
		t.Errorf("stats %+v, want 1 OOMKilled", s)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(exits) != 1 || exits[0].Reason != ReasonOOMKilled || exits[0].Code != ExitCodeKilled {
		t.Errorf("OnInstanceExit got %+v", exits)
	}
}

// TestHandlerConcurrent: many clients at once, a pool of 3, some requests
// failing on purpose: every good request gets its own answer and the pool
// never holds more than 3 instances.
func TestHandlerConcurrent(t *testing.T) {
	t.Parallel()
	h, url := serveHandler(t, HandlerSpec{PoolSize: 3, QueueTimeout: time.Minute})
	const clients, requests = 12, 15
	var wg sync.WaitGroup
	errs := make(chan error, clients*requests)
	start := make(chan struct{})
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := range requests {
				path := fmt.Sprintf("/c%d/r%d", c, i)
				want := 200
				switch {
				case c == 0 && i%5 == 0:
					path, want = "/exit", 500
				case c == 1 && i%5 == 0:
					path, want = "/panic", 500
				}
				got := do(t, "GET", url+path, "", nil)
				if got.status != want || (want == 200 && got.body != "hello "+path+" from ") {
					errs <- fmt.Errorf("%s: %d %q", path, got.status, got.body)
				}
			}
		}()
	}
	close(start) // a hammer: all clients released together
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	s := h.Stats()
	if s.Instances > 3 || s.Discarded != 3 || s.Rejected != 0 {
		t.Errorf("stats %+v: want at most 3 instances, 3 discarded (the exits), none rejected", s)
	}
	if s.Requests != clients*requests {
		t.Errorf("%d requests counted, want %d (every one, failed ones too)", s.Requests, clients*requests)
	}
}

// TestHandlerQueue: with the only instance busy, one request waits in the
// queue, the next is refused at once (503), and the waiting one is served
// when the instance is free; a request that waits longer than QueueTimeout
// gets 503.
func TestHandlerQueue(t *testing.T) {
	t.Parallel()
	work := t.TempDir()
	h, url := serveHandler(t, HandlerSpec{
		PoolSize: 1, QueueSize: 1, QueueTimeout: time.Minute,
		Mounts: []Mount{{HostPath: work, GuestPath: "/work"}},
	})
	busy := make(chan reply, 1)
	go func() { busy <- do(t, "GET", url+"/waitfile?f=go", "", nil) }()
	testutil.Eventually(t, 30*time.Second, func() error {
		if s := h.Stats(); s.Idle != 0 {
			return fmt.Errorf("instance not busy yet: %+v", s)
		}
		return nil
	})
	queued := make(chan reply, 1)
	go func() { queued <- do(t, "GET", url+"/queued", "", nil) }()
	testutil.Eventually(t, 30*time.Second, func() error {
		if s := h.Stats(); s.Waiting != 1 {
			return fmt.Errorf("not waiting yet: %+v", s)
		}
		return nil
	})
	got := do(t, "GET", url+"/refused", "", nil)
	if got.status != 503 || got.header.Get("Retry-After") == "" {
		t.Errorf("request beyond the queue: %d %q (Retry-After %q), want 503", got.status, got.body, got.header.Get("Retry-After"))
	}
	if err := os.WriteFile(filepath.Join(work, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	wantReply(t, <-busy, 200, "found")
	wantReply(t, <-queued, 200, "hello /queued from ")
	if s := h.Stats(); s.Rejected != 1 || s.Created != 1 || s.Requests != 3 {
		t.Errorf("stats %+v, want 1 rejected, 1 created, 3 requests (the refused one too)", s)
	}
}

func TestHandlerQueueTimeout(t *testing.T) {
	t.Parallel()
	work := t.TempDir()
	h, url := serveHandler(t, HandlerSpec{
		PoolSize: 1, QueueTimeout: 50 * time.Millisecond,
		Mounts: []Mount{{HostPath: work, GuestPath: "/work"}},
	})
	busy := make(chan reply, 1)
	go func() { busy <- do(t, "GET", url+"/waitfile?f=go", "", nil) }()
	testutil.Eventually(t, 30*time.Second, func() error {
		if s := h.Stats(); s.Idle != 0 {
			return fmt.Errorf("instance not busy yet: %+v", s)
		}
		return nil
	})
	got := do(t, "GET", url+"/late", "", nil)
	if got.status != 503 {
		t.Errorf("request waiting past QueueTimeout: %d %q, want 503", got.status, got.body)
	}
	if err := os.WriteFile(filepath.Join(work, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	wantReply(t, <-busy, 200, "found")
}

// TestHandlerRequestTimeout: a guest busy past RequestTimeout is stopped,
// its instance replaced, and the request answered 504. RequestTimeout also
// bounds each instance's _initialize (a Go guest's runtime start), so it is
// long enough for that on a loaded machine: 300 ms failed under load.
func TestHandlerRequestTimeout(t *testing.T) {
	t.Parallel()
	h, url := serveHandler(t, HandlerSpec{
		PoolSize: 1, RequestTimeout: 3 * time.Second,
		Mounts: []Mount{{HostPath: t.TempDir(), GuestPath: "/work"}},
	})
	wantReply(t, do(t, "GET", url+"/waitfile?f=never", "", nil), 504, "")
	wantReply(t, do(t, "GET", url+"/after", "", nil), 200, "hello /after from ")
	if s := h.Stats(); s.Discarded != 1 || s.Created != 2 {
		t.Errorf("stats %+v, want 1 discarded, 2 created", s)
	}
}

func TestHandlerLimitsAndClose(t *testing.T) {
	t.Parallel()
	h, url := serveHandler(t, HandlerSpec{MaxRequestBodyBytes: 10})
	wantReply(t, do(t, "POST", url+"/echo", "0123456789", nil), 200, "POST /echo  host="+strings.TrimPrefix(url, "http://")+"\n0123456789")
	wantReply(t, do(t, "POST", url+"/echo", "0123456789a", nil), 413, "")
	if err := h.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantReply(t, do(t, "GET", url+"/", "", nil), 503, "")
	if s := h.Stats(); s.Instances != 0 {
		t.Errorf("stats after Close %+v, want no instances", s)
	}
}

// TestNewHandlerFailsEarly: a module that cannot start fails NewHandler.
func TestNewHandlerFailsEarly(t *testing.T) {
	t.Parallel()
	_, err := shared.NewHandler(context.Background(), handlerGuest(t), HandlerSpec{MemoryLimitBytes: 1 << 20})
	if err == nil || !strings.Contains(err.Error(), ReasonOOMKilled) {
		t.Errorf("NewHandler with a 1 MiB limit: err = %v, want OOMKilled", err)
	}
	_, err = shared.NewHandler(context.Background(), handlerGuest(t), HandlerSpec{Env: []string{"=x"}})
	if !errors.Is(err, ErrInvalidSpec) {
		t.Errorf("bad env: err = %v, want ErrInvalidSpec", err)
	}
}

// BenchmarkHandlerVsNative serves the same handler (testdata/handlerapp)
// two ways on loopback: through the SDK handler in a pool of Wasm instances,
// and compiled natively into this process behind net/http. Each iteration is
// one request to each, from `clients` keep-alive clients at once; the
// metrics are both rates and their ratio.
func BenchmarkHandlerVsNative(b *testing.B) {
	procs := goruntime.GOMAXPROCS(0)
	b.Logf("GOMAXPROCS=%d %s wazero %s", procs, goruntime.Version(), wazeroVersion())
	h, wasmURL := serveHandler(b, HandlerSpec{PoolSize: procs})
	native := httptest.NewServer(handlerapp.New())
	defer native.Close()

	body := strings.Repeat("b", 4096)
	for _, tc := range []struct {
		name, method, path, body string
	}{
		{"hello", "GET", "/hello", ""},
		{"echo4KiB", "POST", "/echo", body},
	} {
		b.Run(tc.name, func(b *testing.B) {
			const clients = 8
			rate := func(base string) float64 {
				start := time.Now()
				load(b, clients, b.N, tc.method, base+tc.path, tc.body)
				return float64(b.N) / time.Since(start).Seconds()
			}
			wasmRate := rate(wasmURL)
			nativeRate := rate(native.URL)
			b.ReportMetric(wasmRate, "wasm-req/s")
			b.ReportMetric(nativeRate, "native-req/s")
			b.ReportMetric(wasmRate/nativeRate, "wasm/native")
		})
	}
	b.Logf("instances created: %d", h.Stats().Created)
}

// load sends n requests from clients goroutines, each over its own
// keep-alive connection, and fails b on any error.
func load(b *testing.B, clients, n int, method, url, body string) {
	var wg sync.WaitGroup
	var next atomic.Int64
	errs := make(chan error, clients)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr := &http.Transport{MaxIdleConnsPerHost: 1}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
			for next.Add(1) <= int64(n) {
				req, _ := http.NewRequest(method, url, strings.NewReader(body))
				resp, err := c.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != 200 {
						err = fmt.Errorf("%s: %s", url, resp.Status)
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

func wazeroVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/tetratelabs/wazero" {
				return d.Version
			}
		}
	}
	// Test binaries carry no dependency list: ask the go command.
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "github.com/tetratelabs/wazero").Output()
	if err != nil {
		return "(unknown)"
	}
	return strings.TrimSpace(string(out))
}
