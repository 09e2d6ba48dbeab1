// Package exampletest holds tests that build each Wasm example for wasip1 and run it through
// runtime/wasm as the node agent would.
package exampletest_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/testutil"
	"github.com/skiffhq/skiff/internal/wasmbuild"
	"github.com/skiffhq/skiff/runtime/wasm"
)

var rt *wasm.Runtime

func TestMain(m *testing.M) {
	var err error
	rt, err = wasm.New(context.Background(), wasm.Config{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = rt.Close(context.Background())
	os.Exit(code)
}

// module builds and compiles the example in dir.
func module(t *testing.T, dir string, reactor bool) *wasm.Module {
	t.Helper()
	mod, err := rt.Compile(context.Background(), wasmbuild.Build(t, "../"+dir, reactor))
	if err != nil {
		t.Fatalf("compile %s: %v", dir, err)
	}
	return mod
}

// lockedBuffer is output read while the guest may still write.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func secretDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "message"), []byte("s3cr3t\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

func wantGet(t *testing.T, url string, status int, body string) {
	t.Helper()
	if gotStatus, got := get(t, url); gotStatus != status || got != body {
		t.Fatalf("GET %s = %d %q, want %d %q", url, gotStatus, got, status, body)
	}
}

func TestPrintenv(t *testing.T) {
	t.Parallel()
	var out, errOut lockedBuffer
	st, err := rt.Run(context.Background(), module(t, "printenv", false), wasm.RunSpec{
		Args:     []string{"printenv", "/config/message"},
		Env:      []string{"B=2", "A=1"},
		Hostname: "pod-p",
		Mounts:   []wasm.Mount{{HostPath: secretDir(t), GuestPath: "/config", ReadOnly: true}},
		Stdout:   &out,
		Stderr:   &errOut,
	})
	if err != nil || st.Reason != wasm.ReasonCompleted {
		t.Fatalf("Run = %+v, %v\nstderr:\n%s", st, err, &errOut)
	}
	want := "args: [\"/config/message\"]\nA=1\nB=2\nHOSTNAME=pod-p\n--- /config/message\ns3cr3t\n"
	if got := out.String(); got != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", got, want)
	}
}

func TestCrasher(t *testing.T) {
	t.Parallel()
	var out lockedBuffer
	st, err := rt.Run(context.Background(), module(t, "crasher", false), wasm.RunSpec{Args: []string{"crasher"}, Stdout: &out})
	if err != nil || st.Code != 1 || st.Reason != wasm.ReasonError {
		t.Fatalf("Run = %+v, %v; want exit code 1", st, err)
	}
	if out.String() != "crasher: starting and failing\n" {
		t.Errorf("stdout = %q", out.String())
	}
}

func TestMembomb(t *testing.T) {
	t.Parallel()
	st, err := rt.Run(context.Background(), module(t, "membomb", false), wasm.RunSpec{
		Args:             []string{"membomb"},
		MemoryLimitBytes: 32 << 20,
	})
	if err != nil || st.Reason != wasm.ReasonOOMKilled || st.Code != wasm.ExitCodeKilled {
		t.Fatalf("Run = %+v, %v; want OOMKilled", st, err)
	}
}

// TestHTTPServer serves examples/httpserver on a pre-opened listener on
// loopback: greeting, hostname and secret, a liveness endpoint that can be
// made to fail, and a crash that ends the Run with exit code 1.
func TestHTTPServer(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var out lockedBuffer
	type result struct {
		st  wasm.ExitStatus
		err error
	}
	done := make(chan result, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mod := module(t, "httpserver", false)
	go func() {
		st, err := rt.Run(ctx, mod, wasm.RunSpec{
			Args:      []string{"httpserver"},
			Env:       []string{"GREETING=howdy"},
			Hostname:  "pod-s",
			Mounts:    []wasm.Mount{{HostPath: secretDir(t), GuestPath: "/etc/secret", ReadOnly: true}},
			Listeners: []wasm.Listener{{TCP: ln.(*net.TCPListener)}},
			Stdout:    &out,
			Stderr:    &out,
		})
		done <- result{st, err}
	}()
	testutil.Eventually(t, 60*time.Second, func() error {
		select {
		case r := <-done:
			t.Fatalf("httpserver ended: %+v, %v\n%s", r.st, r.err, &out)
		default:
		}
		if !strings.Contains(out.String(), "serving") {
			return fmt.Errorf("not serving yet: %q", out.String())
		}
		return nil
	})
	base := "http://" + ln.Addr().String()
	wantGet(t, base+"/", 200, "howdy from pod-s\nsecret: s3cr3t\n")
	wantGet(t, base+"/healthz", 200, "ok\n")
	wantGet(t, base+"/fail", 200, "/healthz fails from now on\n")
	wantGet(t, base+"/healthz", 500, "failing\n")

	// The connection dies with the guest: any answer or error is fine.
	c := &http.Client{Timeout: 30 * time.Second}
	if resp, err := c.Get(base + "/crash"); err == nil {
		resp.Body.Close()
	}
	select {
	case r := <-done:
		if r.err != nil || r.st.Code != 1 || r.st.Reason != wasm.ReasonError {
			t.Fatalf("after /crash: %+v, %v; want exit code 1", r.st, r.err)
		}
	case <-time.After(time.Minute):
		t.Fatal("httpserver still running a minute after /crash")
	}
	if !strings.Contains(out.String(), "GET /healthz\n") {
		t.Errorf("log lacks the requests:\n%s", &out)
	}
}

// TestHandler serves examples/handler through runtime/wasm's Handler: the
// same app as TestHTTPServer; /crash costs an instance, not the pod.
func TestHandler(t *testing.T) {
	t.Parallel()
	var out lockedBuffer
	var exits []wasm.ExitStatus
	var mu sync.Mutex
	h, err := rt.NewHandler(context.Background(), module(t, "handler", true), wasm.HandlerSpec{
		Env:      []string{"GREETING=howdy"},
		Hostname: "pod-h",
		Mounts:   []wasm.Mount{{HostPath: secretDir(t), GuestPath: "/etc/secret", ReadOnly: true}},
		PoolSize: 1, // /fail is per instance
		Stdout:   &out,
		OnInstanceExit: func(st wasm.ExitStatus) {
			mu.Lock()
			defer mu.Unlock()
			exits = append(exits, st)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer func() {
		srv.Close()
		_ = h.Close(context.Background())
	}()
	wantGet(t, srv.URL+"/", 200, "howdy from pod-h\nsecret: s3cr3t\n")
	wantGet(t, srv.URL+"/healthz", 200, "ok\n")
	wantGet(t, srv.URL+"/fail", 200, "/healthz fails from now on\n")
	wantGet(t, srv.URL+"/healthz", 500, "failing\n")
	if status, _ := get(t, srv.URL+"/crash"); status != 500 {
		t.Fatalf("/crash = %d, want 500", status)
	}
	// A new instance: healthy again.
	wantGet(t, srv.URL+"/healthz", 200, "ok\n")
	mu.Lock()
	defer mu.Unlock()
	if len(exits) != 1 || exits[0].Code != 1 {
		t.Errorf("instance exits %+v, want one with code 1", exits)
	}
	if !strings.Contains(out.String(), "crashing on request\n") {
		t.Errorf("log lacks the crash:\n%s", &out)
	}
}
