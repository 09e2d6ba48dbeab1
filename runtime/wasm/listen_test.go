//go:build linux

package wasm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/testutil"
	"github.com/skiffhq/skiff/internal/wasmbuild"
)

// testGuest compiles a testdata guest on the shared Runtime.
func testGuest(tb testing.TB, name string) *Module {
	tb.Helper()
	mod, err := shared.Compile(context.Background(), wasmbuild.Build(tb, "./testdata/"+name, false))
	if err != nil {
		tb.Fatalf("compile %s: %v", name, err)
	}
	return mod
}

// loopbackListener opens a listener on an ephemeral loopback port for a
// guest to serve; the test closes it.
func loopbackListener(tb testing.TB) *net.TCPListener {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	return ln.(*net.TCPListener)
}

type running struct {
	cancel         context.CancelFunc
	done           chan struct{}
	st             ExitStatus
	err            error
	stdout, stderr syncBuffer
}

// start runs mod with spec on its own goroutine.
func start(tb testing.TB, mod *Module, spec RunSpec) *running {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan struct{})}
	spec.Stdout, spec.Stderr = &r.stdout, &r.stderr
	go func() {
		defer close(r.done)
		r.st, r.err = shared.Run(ctx, mod, spec)
	}()
	tb.Cleanup(func() {
		cancel()
		<-r.done
	})
	return r
}

// wait returns the Run's outcome, failing the test if it takes a minute.
func (r *running) wait(tb testing.TB) ExitStatus {
	tb.Helper()
	select {
	case <-r.done:
	case <-time.After(time.Minute):
		tb.Fatalf("guest still running after a minute\nstdout:\n%s\nstderr:\n%s", &r.stdout, &r.stderr)
	}
	if r.err != nil {
		tb.Fatalf("Run: %v", r.err)
	}
	return r.st
}

// waitOutput waits until the guest printed want.
func (r *running) waitOutput(tb testing.TB, want string) {
	tb.Helper()
	testutil.Eventually(tb, 30*time.Second, func() error {
		select {
		case <-r.done:
			return fmt.Errorf("guest ended (%+v, %v) before printing %q\nstderr:\n%s", r.st, r.err, want, &r.stderr)
		default:
		}
		if !strings.Contains(r.stdout.String(), want) {
			return fmt.Errorf("stdout %q lacks %q", r.stdout.String(), want)
		}
		return nil
	})
}

func get(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	return string(b), nil
}

func openFDs(tb testing.TB) int {
	tb.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		tb.Fatal(err)
	}
	return len(ents)
}

// TestListenerNetHTTP: a Go net/http server inside the guest, on two
// pre-opened listeners, serves concurrent requests, a response bigger than
// the socket buffers and requests on connections it closes, then stops when
// the Run is cancelled.
func TestListenerNetHTTP(t *testing.T) {
	t.Parallel()
	ln0, ln1 := loopbackListener(t), loopbackListener(t)
	r := start(t, testGuest(t, "netserve"), RunSpec{
		Args:      []string{"netserve"},
		Listeners: []Listener{{TCP: ln0}, {TCP: ln1}},
	})
	r.waitOutput(t, "serving 2 listeners\n")
	base0, base1 := "http://"+ln0.Addr().String(), "http://"+ln1.Addr().String()
	client := &http.Client{Timeout: 30 * time.Second}

	for _, u := range []string{base0 + "/one", base1 + "/two"} {
		if got, err := get(client, u); err != nil || got != "hello /"+u[strings.LastIndex(u, "/")+1:] {
			t.Fatalf("GET %s = %q, %v", u, got, err)
		}
	}

	// /block answers only after /release was served on another
	// connection: a guest that cannot run two handlers at once fails here
	// (the client times out) rather than running slowly.
	blocked := make(chan error, 1)
	go func() {
		got, err := get(client, base0+"/block")
		if err == nil && got != "released" {
			err = fmt.Errorf("/block = %q", got)
		}
		blocked <- err
	}()

	// Many clients at once, each over its own keep-alive connection.
	const clients, requests = 16, 20
	var wg sync.WaitGroup
	errs := make(chan error, clients*requests)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{}}
			defer cl.CloseIdleConnections()
			for i := range requests {
				want := fmt.Sprintf("hello /c%d/%d", c, i)
				if got, err := get(cl, base0+want[len("hello "):]); err != nil || got != want {
					errs <- fmt.Errorf("got %q, %v; want %q", got, err, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got, err := get(client, base1+"/release"); err != nil || got != "releasing" {
		t.Fatalf("/release = %q, %v", got, err)
	}
	if err := <-blocked; err != nil {
		t.Fatalf("/block: %v", err)
	}

	// 8 MiB is more than a loopback socket buffers: the guest's writes
	// wait for the client through poll_oneoff's fd_write subscriptions.
	const big = 8 << 20
	if got, err := get(client, fmt.Sprintf("%s/big?n=%d", base0, big)); err != nil || len(got) != big || strings.Trim(got, "x") != "" {
		t.Fatalf("/big: %d bytes, %v", len(got), err)
	}

	// Connections the guest closes are closed on the host (wazero 1.12
	// leaks them): the process holds no more descriptors afterwards.
	closing := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	before := openFDs(t)
	for i := range 50 {
		if _, err := get(closing, fmt.Sprintf("%s/close%d", base0, i)); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		if n := openFDs(t); n > before+5 {
			return fmt.Errorf("%d descriptors open after 50 closed connections, %d before", n, before)
		}
		return nil
	})

	r.cancel()
	st := r.wait(t)
	wantStatus(t, st, ExitCodeKilled, ReasonKilled)
}

// TestListenerExit: a guest that exits while serving ends its Run with its
// exit code, and the listener it was given stops accepting.
func TestListenerExit(t *testing.T) {
	t.Parallel()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	r := start(t, testGuest(t, "netserve"), RunSpec{
		Args:      []string{"netserve"},
		Listeners: []Listener{{Host: "127.0.0.1", Port: mustPort(t, addr)}},
	})
	r.waitOutput(t, "serving 1 listeners\n")
	waitListening(t, addr)
	c := &http.Client{Timeout: 30 * time.Second}
	_, _ = get(c, "http://"+addr+"/exit") // the connection dies with the guest
	wantStatus(t, r.wait(t), 3, ReasonError)
	if conn, err := net.DialTimeout("tcp", addr, 5*time.Second); err == nil {
		conn.Close()
		t.Fatalf("listener %s still accepts after the guest exited", addr)
	}
}

// waitListening waits until addr accepts a connection: a Run's listener
// listens only once the guest first accepts, which is after the guest says
// it serves.
func waitListening(tb testing.TB, addr string) {
	tb.Helper()
	testutil.Eventually(tb, 10*time.Second, func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	})
}

func mustPort(tb testing.TB, addr string) int {
	tb.Helper()
	a, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	return a.Port
}

// TestListenerBlockingGuest: a guest that uses its sockets in blocking mode
// (raw accept, read, write, shutdown, close) is served by waiting on the
// host, and sees each connection end properly.
func TestListenerBlockingGuest(t *testing.T) {
	t.Parallel()
	ln := loopbackListener(t)
	r := start(t, testGuest(t, "rawsock"), RunSpec{
		Args:      []string{"rawsock", "2"},
		Listeners: []Listener{{TCP: ln}},
	})
	r.waitOutput(t, "accepting\n")
	for _, msg := range []string{"hello", "again"} {
		conn, err := net.DialTimeout("tcp", ln.Addr().String(), 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := conn.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		// ReadAll ends at the guest's shutdown: the FIN arrives.
		got, err := io.ReadAll(conn)
		conn.Close()
		if err != nil || string(got) != strings.ToUpper(msg) {
			t.Fatalf("echo of %q = %q, %v\nstderr:\n%s", msg, got, err, &r.stderr)
		}
	}
	wantStatus(t, r.wait(t), 0, ReasonCompleted)
}

// TestListenerCancelBlockedAccept: a guest blocked in accept, with no
// client coming, is stopped by cancelling its Run (wazero 1.12 would wait in
// the host's Accept for the next client).
func TestListenerCancelBlockedAccept(t *testing.T) {
	t.Parallel()
	r := start(t, testGuest(t, "rawsock"), RunSpec{
		Args:      []string{"rawsock", "1"},
		Listeners: []Listener{{TCP: loopbackListener(t)}},
	})
	r.waitOutput(t, "accepting\n")
	r.cancel()
	wantStatus(t, r.wait(t), ExitCodeKilled, ReasonKilled)
}

// TestSleepCancelled: a guest asleep in time.Sleep is stopped by cancelling
// its Run (wazero 1.12 sleeps on the host regardless of the context).
func TestSleepCancelled(t *testing.T) {
	t.Parallel()
	r := start(t, testGuest(t, "sleeper"), RunSpec{Args: []string{"sleeper"}})
	r.waitOutput(t, "sleeping\n")
	r.cancel()
	wantStatus(t, r.wait(t), ExitCodeKilled, ReasonKilled)
	if strings.Contains(r.stdout.String(), "woke up") {
		t.Fatal("the guest finished its sleep")
	}
}

func TestListenerErrors(t *testing.T) {
	t.Parallel()
	mod := testGuest(t, "netserve")
	taken := loopbackListener(t)
	for _, tc := range []struct {
		name string
		l    Listener
		want error
	}{
		{"port out of range", Listener{Host: "127.0.0.1", Port: 70000}, ErrInvalidSpec},
		{"negative port", Listener{Host: "127.0.0.1", Port: -1}, ErrInvalidSpec},
		{"address in use", Listener{Host: "127.0.0.1", Port: taken.Addr().(*net.TCPAddr).Port}, ErrListen},
		{"address not here", Listener{Host: "192.0.2.1", Port: 80}, ErrListen},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := shared.Run(context.Background(), mod, RunSpec{Listeners: []Listener{tc.l}})
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

// BenchmarkIdleServerCPU measures the CPU the whole test process uses while
// a net/http guest waits for requests: near zero when poll_oneoff really
// waits (wazero 1.12's own poll_oneoff made the same guest spin a core).
// Each iteration is 100 ms of idling; cpu-% is of one core.
func BenchmarkIdleServerCPU(b *testing.B) {
	ln := loopbackListener(b)
	r := start(b, testGuest(b, "netserve"), RunSpec{
		Args:      []string{"netserve"},
		Listeners: []Listener{{TCP: ln}},
	})
	r.waitOutput(b, "serving 1 listeners\n")
	if _, err := get(&http.Client{Timeout: 30 * time.Second}, "http://"+ln.Addr().String()+"/"); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	c0, t0 := cpuTime(), time.Now()
	for b.Loop() {
		time.Sleep(100 * time.Millisecond)
	}
	cpu, wall := cpuTime()-c0, time.Since(t0)
	b.ReportMetric(100*float64(cpu)/float64(wall), "cpu-%")
	b.Logf("idle %v: process CPU %v", wall.Round(time.Millisecond), cpu)
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// freePort returns a loopback port that was free a moment ago.
func freePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
