package exampletest_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/testutil"
	"github.com/skiffhq/skiff/runtime/memapp"
	"github.com/skiffhq/skiff/runtime/wasm"
)

// run runs a command to its end and returns its status and output.
func run(t *testing.T, mod *wasm.Module, app *memapp.Broker, ns string, args ...string) (wasm.ExitStatus, string) {
	t.Helper()
	var out lockedBuffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := rt.Run(ctx, mod, wasm.RunSpec{Args: args, Stdout: &out, Stderr: &out, App: app.Namespace(ns)})
	if err != nil {
		t.Fatalf("Run %v: %v", args, err)
	}
	return st, out.String()
}

// TestMessaging: examples/messaging serves requests in namespace a; a pod
// of a asks and gets the answer; a pod of namespace b asking the same
// subject finds nobody (exit 3), and a listener in b hears nothing of a.
func TestMessaging(t *testing.T) {
	t.Parallel()
	mod := module(t, "messaging", false)
	app := memapp.New()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var server lockedBuffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		rt.Run(ctx, mod, wasm.RunSpec{Args: []string{"messaging", "serve", "greet", "hi"}, Stdout: &server, Stderr: &server,
			App: app.Namespace("a")})
	}()
	defer func() { cancel(); <-done }()
	testutil.Eventually(t, 30*time.Second, func() error {
		if !strings.Contains(server.String(), "serving greet") {
			return io.ErrNoProgress
		}
		return nil
	})

	// A listener in b on every subject hears nothing of a's traffic.
	var listener lockedBuffer
	listened := make(chan wasm.ExitStatus, 1)
	go func() {
		st, _ := rt.Run(ctx, mod, wasm.RunSpec{Args: []string{"messaging", "listen", ">", "3"}, Stdout: &listener, Stderr: &listener,
			App: app.Namespace("b")})
		listened <- st
	}()
	testutil.Eventually(t, 30*time.Second, func() error {
		if !strings.Contains(listener.String(), "listening on >") {
			return io.ErrNoProgress
		}
		return nil
	})
	st, out := run(t, mod, app, "a", "messaging", "ask", "greet", "world", "10")
	if st.Code != 0 || !strings.Contains(out, "reply: hi, world") {
		t.Fatalf("ask in a = %+v:\n%s\nserver:\n%s", st, out, server.String())
	}
	if st, out := run(t, mod, app, "a", "messaging", "publish", "greet", "again"); st.Code != 0 {
		t.Fatalf("publish in a = %+v:\n%s", st, out)
	}
	if st := <-listened; st.Code != 0 || !strings.Contains(listener.String(), "received 0\n") {
		t.Fatalf("listener in b = %+v:\n%s", st, listener.String())
	}
	st, out = run(t, mod, app, "b", "messaging", "ask", "greet", "world")
	if st.Code != 3 {
		t.Fatalf("ask in b = %+v, want exit 3 (nobody answers in b):\n%s", st, out)
	}
}

// TestKVCounter: two commands increment one counter at once with
// compare-and-set and lose nothing; the handler build increments and reads
// the same store; another namespace does not see it.
func TestKVCounter(t *testing.T) {
	t.Parallel()
	cmd := module(t, "kvcounter", false)
	app := memapp.New()
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if st, out := run(t, cmd, app, "a", "kvcounter", "incr", "hits", "20"); st.Code != 0 {
				t.Errorf("incr = %+v:\n%s", st, out)
			}
		}()
	}
	wg.Wait()
	if st, out := run(t, cmd, app, "a", "kvcounter", "get", "hits"); st.Code != 0 || !strings.HasPrefix(out, "hits = 40 ") {
		t.Fatalf("get = %+v:\n%s", st, out)
	}
	if st, out := run(t, cmd, app, "b", "kvcounter", "get", "hits"); st.Code != 3 {
		t.Fatalf("get in b = %+v, want exit 3:\n%s", st, out)
	}

	h, err := rt.NewHandler(context.Background(), module(t, "kvcounter", true), wasm.HandlerSpec{App: app.Namespace("a")})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer func() {
		srv.Close()
		_ = h.Close(context.Background())
	}()
	resp, err := http.Post(srv.URL+"/incr/hits", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "41\n" {
		t.Fatalf("POST /incr/hits = %d %q", resp.StatusCode, b)
	}
	wantGet(t, srv.URL+"/hits", 200, "41\n")
	wantGet(t, srv.URL+"/nothing", 404, "404 page not found\n")
}
