package engine

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// freeLoopbackAddr is host with a port free now.
func freeLoopbackAddr(t *testing.T, host string) string {
	t.Helper()
	l, err := net.Listen("tcp", host+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func startTokenEngine(t *testing.T, cfg Config) *Engine {
	t.Helper()
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Stop(context.Background()) })
	return e
}

func busHostPort(t *testing.T, e *Engine) string {
	t.Helper()
	u, err := url.Parse(e.testBus().ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// The bus's port, chosen free at the first start (BusListen port 0), is
// recorded in the data directory and reused at every restart; a port of
// BusListen's own wins; a recorded port another program took is given up
// for a free one.
func TestBusPortStableAcrossRestarts(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := tokenTestConfig(t, dir, "")
	cfg.BusListen = "127.126.201.1:0"
	e := startTokenEngine(t, cfg)
	first := busHostPort(t, e)
	e.Stop(ctx)

	e = startTokenEngine(t, cfg)
	if got := busHostPort(t, e); got != first {
		t.Errorf("bus after a restart at %s, want %s (recorded in %s)", got, first, filepath.Join(dir, busListenFile))
	}
	e.Stop(ctx)

	// Another program holds the port: the bus listens elsewhere, and the
	// new port is the one recorded.
	l, err := net.Listen("tcp", first)
	if err != nil {
		t.Fatal(err)
	}
	e = startTokenEngine(t, cfg)
	moved := busHostPort(t, e)
	l.Close()
	if moved == first {
		t.Fatalf("bus at %s, which another listener holds", moved)
	}
	e.Stop(ctx)

	// An address given with its port wins, and is what is recorded then.
	cfg.BusListen = freeLoopbackAddr(t, "127.126.201.1")
	e = startTokenEngine(t, cfg)
	if got := busHostPort(t, e); got != cfg.BusListen {
		t.Errorf("bus at %s, want the given %s", got, cfg.BusListen)
	}
	e.Stop(ctx)
	given := cfg.BusListen
	cfg.BusListen = "127.126.201.1:0"
	e = startTokenEngine(t, cfg)
	if got := busHostPort(t, e); got != given {
		t.Errorf("bus at %s after port 0 again, want the last one bound, %s", got, given)
	}
}

// A worker whose server comes back with its bus on another port finds it
// again through the API, on the same bus connection (its pods carry on),
// re-syncs its pods and registers its Node again.
func TestWorkerFollowsAMovedBus(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := tokenTestConfig(t, dir, "")
	cfg.APIListen = freeLoopbackAddr(t, "127.126.201.1")
	cfg.BusListen = "127.126.201.1:0"
	e := startTokenEngine(t, cfg)
	w, err := StartWorker(ctx, WorkerConfig{Server: cfg.APIListen, Token: e.JoinToken(), DataDir: t.TempDir(), NodeName: "mover",
		DisableClusterDNS: true, Logger: cfg.Logger})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop(ctx)
	if got, want := w.conn.NATS().ConnectedAddr(), busHostPort(t, e); got != want {
		t.Fatalf("worker connected to %s, want %s", got, want)
	}
	resyncs := w.agent.Resyncs()
	// The Node goes while the worker is away: it registers again when it
	// is back, as a kubelet does.
	cs, err := e.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.CoreV1().Nodes().Delete(ctx, "mover", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.Stop(ctx)

	cfg.BusListen = freeLoopbackAddr(t, "127.126.201.1") // another port than the recorded one
	start := time.Now()
	e = startTokenEngine(t, cfg)
	if busHostPort(t, e) != cfg.BusListen {
		t.Fatalf("bus at %s, want %s", busHostPort(t, e), cfg.BusListen)
	}
	cs2, err := e.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	var last string
	for range 300 { // 30s at most
		nc := w.conn.NATS()
		last = fmt.Sprintf("connected %v to %q, %d resyncs", nc.IsConnected(), nc.ConnectedAddr(), w.agent.Resyncs())
		_, nodeErr := cs2.CoreV1().Nodes().Get(ctx, "mover", metav1.GetOptions{})
		last += fmt.Sprintf(", Node: %v", nodeErr)
		if nc.IsConnected() && nc.ConnectedAddr() == cfg.BusListen && w.agent.Resyncs() > resyncs && nodeErr == nil {
			t.Logf("worker on the moved bus and registered again %.1fs after the server's start began", time.Since(start).Seconds())
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the worker did not find the moved bus %s: %s", cfg.BusListen, last)
}
