package streams

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/skiffhq/skiff/internal/bus"
	"github.com/skiffhq/skiff/internal/testutil"
)

// These tests drive the relay itself (Client to ServeNode over a real
// embedded NATS server), with short timeouts where a test waits for one.

const wait = 20 * time.Second

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	t.Cleanup(cancel)
	return ctx
}

// relay starts a bus, a node stream server for node "n1" with b, and a
// Client, each on its own connection.
func relay(t *testing.T, b Backend, tm timing) (*Client, *bus.Server, *bus.Conn) {
	t.Helper()
	ctx := testCtx(t)
	srv, err := bus.Start(ctx, bus.Config{Name: "streams-test", Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	nodeConn, err := srv.Connect(ctx, "node")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nodeConn.Close)
	stop, err := serveNode(context.Background(), nodeConn, "n1", b, tm, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	apiConn, err := srv.Connect(ctx, "api")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(apiConn.Close)
	c := NewClient(apiConn, testutil.Logger(t))
	c.tm = tm
	return c, srv, nodeConn
}

// fakeBackend is the runtime side: funcs per call.
type fakeBackend struct {
	logs func(ctx context.Context, req LogRequest, w io.Writer) error
	exec func(ctx context.Context, req ExecRequest, s ExecStreams) (int, error)
	pf   func(ctx context.Context, req PortForwardRequest, conn io.ReadWriteCloser) error
}

func (f *fakeBackend) Logs(ctx context.Context, req LogRequest, w io.Writer) error {
	return f.logs(ctx, req, w)
}

func (f *fakeBackend) Exec(ctx context.Context, req ExecRequest, s ExecStreams) (int, error) {
	return f.exec(ctx, req, s)
}

func (f *fakeBackend) PortForward(ctx context.Context, req PortForwardRequest, conn io.ReadWriteCloser) error {
	return f.pf(ctx, req, conn)
}

func TestRelayLogsErrorsTravelTyped(t *testing.T) {
	c, _, _ := relay(t, &fakeBackend{logs: func(_ context.Context, req LogRequest, w io.Writer) error {
		switch {
		case req.Options.Previous:
			return ErrNoPrevious
		case req.Container == "gone":
			return fmt.Errorf("container %q was removed: %w", req.Container, ErrContainerNotFound)
		}
		_, err := fmt.Fprintf(w, "hello from %s/%s/%s\n", req.Namespace, req.Pod, req.Container)
		return err
	}}, defaultTiming)
	ctx := testCtx(t)
	var out bytes.Buffer
	if err := c.Logs(ctx, "n1", LogRequest{Namespace: "ns", Pod: "p", Container: "c"}, &out); err != nil {
		t.Fatal(err)
	}
	if out.String() != "hello from ns/p/c\n" {
		t.Fatalf("log %q", out.String())
	}
	req := LogRequest{Pod: "p", Container: "c"}
	req.Options.Previous = true
	if err := c.Logs(ctx, "n1", req, io.Discard); !errors.Is(err, ErrNoPrevious) || err.Error() != ErrNoPrevious.Error() {
		t.Fatalf("previous: %v", err)
	}
	err := c.Logs(ctx, "n1", LogRequest{Pod: "p", Container: "gone"}, io.Discard)
	if !errors.Is(err, ErrContainerNotFound) || !strings.Contains(err.Error(), `container "gone" was removed`) {
		t.Fatalf("gone: %v", err)
	}
	testutil.Eventually(t, wait, func() error { return quiet() })
}

// quiet reports sessions or bytes still held on either side.
func quiet() error {
	for name, st := range map[string]*sideStats{"node": &nodeStats, "api": &apiStats} {
		if n, o, b := st.sessions.Load(), st.outstanding.Load(), st.buffered.Load(); n != 0 || o != 0 || b != 0 {
			return fmt.Errorf("%s side holds %d sessions, %d bytes outstanding, %d buffered", name, n, o, b)
		}
	}
	return nil
}

func TestRelayExecStreamsAndExitCode(t *testing.T) {
	var gotResize atomic.Value
	c, _, _ := relay(t, &fakeBackend{exec: func(ctx context.Context, req ExecRequest, s ExecStreams) (int, error) {
		if req.TTY {
			select {
			case sz := <-s.Resize:
				gotResize.Store(sz)
			case <-ctx.Done():
				return 0, ctx.Err()
			}
			if s.Stderr != nil {
				return 0, errors.New("stderr with a TTY")
			}
			return 0, nil
		}
		in, err := io.ReadAll(s.Stdin) // to the client's EOF
		if err != nil {
			return 0, err
		}
		fmt.Fprintf(s.Stdout, "%s: %s", strings.Join(req.Command, " "), strings.ToUpper(string(in)))
		fmt.Fprint(s.Stderr, "warning\n")
		return 7, nil
	}}, defaultTiming)
	ctx := testCtx(t)
	var stdout, stderr bytes.Buffer
	code, err := c.Exec(ctx, "n1", ExecRequest{Pod: "p", Container: "c", Command: []string{"up", "case"}},
		ExecStreams{Stdin: strings.NewReader("abc\n"), Stdout: &stdout, Stderr: &stderr})
	if err != nil || code != 7 || stdout.String() != "up case: ABC\n" || stderr.String() != "warning\n" {
		t.Fatalf("exec: code %d err %v stdout %q stderr %q", code, err, stdout.String(), stderr.String())
	}
	resize := make(chan TerminalSize, 1)
	resize <- TerminalSize{Width: 120, Height: 40}
	code, err = c.Exec(ctx, "n1", ExecRequest{Pod: "p", Container: "c", Command: []string{"sh"}, TTY: true},
		ExecStreams{Stdout: &stdout, Stderr: &stderr, Resize: resize})
	if err != nil || code != 0 {
		t.Fatalf("tty exec: %d %v", code, err)
	}
	if sz, _ := gotResize.Load().(TerminalSize); sz != (TerminalSize{Width: 120, Height: 40}) {
		t.Fatalf("resize %+v", sz)
	}
}

// A port-forward session carries bytes both ways, and the client's end of
// input reaches the Backend as io.EOF while the answer still flows back.
func TestRelayPortForwardHalfClose(t *testing.T) {
	c, _, _ := relay(t, &fakeBackend{pf: func(_ context.Context, req PortForwardRequest, conn io.ReadWriteCloser) error {
		in, err := io.ReadAll(conn)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(conn, "port %d got %q", req.Port, in)
		return err
	}}, defaultTiming)
	client, pod := pipeConn()
	go func() {
		pod.in.Write([]byte("ping"))
		pod.in.Close() // the client's half close
	}()
	if err := c.PortForward(testCtx(t), "n1", PortForwardRequest{Pod: "p", Port: 80}, client); err != nil {
		t.Fatal(err)
	}
	if got := pod.out.String(); got != `port 80 got "ping"` {
		t.Fatalf("answer %q", got)
	}
}

// A Backend that closes conn and then returns has its result waited for;
// one that closes conn and then waits for the client is cancelled after the
// linger, and the forwarded connection ends without an error.
func TestRelayPortForwardAfterPodClose(t *testing.T) {
	tm := defaultTiming // a linger long enough for any machine's delivery of the end
	cancelled := make(chan struct{})
	c, _, _ := relay(t, &fakeBackend{pf: func(ctx context.Context, req PortForwardRequest, conn io.ReadWriteCloser) error {
		fmt.Fprint(conn, "bye")
		conn.Close()
		if req.Port == 1 {
			return errors.New("closed with an error") // sent after the EOF
		}
		<-ctx.Done() // waits for the client, who waits for this call
		close(cancelled)
		return nil
	}}, tm)
	ctx := testCtx(t)
	client, pod := pipeConn()
	defer pod.in.Close()
	if err := c.PortForward(ctx, "n1", PortForwardRequest{Pod: "p", Port: 1}, client); err == nil || err.Error() != "closed with an error" {
		t.Fatalf("port 1: %v", err)
	}
	client, pod = pipeConn()
	defer pod.in.Close()
	if err := c.PortForward(ctx, "n1", PortForwardRequest{Pod: "p", Port: 2}, client); err != nil || pod.out.String() != "bye" {
		t.Fatalf("port 2: %v %q", err, pod.out.String())
	}
	select {
	case <-cancelled:
	case <-ctx.Done():
		t.Fatal("the lingering backend call was not cancelled")
	}
}

// pipeConn is a client connection: the test writes to in, and reads what
// the relay wrote from out.
type pipeEnds struct {
	in  *io.PipeWriter
	out *bytes.Buffer
}

type pipeRWC struct {
	r   *io.PipeReader
	out *bytes.Buffer
}

func (p *pipeRWC) Read(b []byte) (int, error)  { return p.r.Read(b) }
func (p *pipeRWC) Write(b []byte) (int, error) { return p.out.Write(b) }
func (p *pipeRWC) Close() error                { return nil }

func pipeConn() (*pipeRWC, pipeEnds) {
	r, w := io.Pipe()
	out := &bytes.Buffer{}
	return &pipeRWC{r: r, out: out}, pipeEnds{in: w, out: out}
}

func TestRelayNodeUnreachableOrSilent(t *testing.T) {
	tm := defaultTiming
	tm.open = 300 * time.Millisecond
	c, srv, _ := relay(t, &fakeBackend{}, tm)
	ctx := testCtx(t)
	if err := c.Probe(ctx, "n1"); err != nil {
		t.Fatalf("probe of a served node: %v", err)
	}
	if err := c.Probe(ctx, "nobody"); !errors.Is(err, ErrNodeUnreachable) {
		t.Fatalf("probe of an unserved node: %v", err)
	}
	// A stream server that takes opens and never answers.
	hung, err := srv.Connect(ctx, "hung")
	if err != nil {
		t.Fatal(err)
	}
	defer hung.Close()
	hungSubject, _ := bus.SubjectNodeStreams("hung")
	if _, err := hung.NATS().Subscribe(hungSubject, func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	if err := hung.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Logs(ctx, "hung", LogRequest{Pod: "p", Container: "c"}, io.Discard); !errors.Is(err, ErrNodeTimeout) {
		t.Fatalf("logs from a hung node: %v", err)
	}
}

// When the node's connection dies mid-stream, the API side ends the session
// after the idle timeout instead of waiting forever; when the API side
// cancels or dies, the Backend's context ends.
func TestRelayPeerGoneEndsSession(t *testing.T) {
	tm := defaultTiming
	tm.ping, tm.idle = 20*time.Millisecond, 300*time.Millisecond
	started := make(chan struct{}, 4)
	ended := make(chan error, 4)
	c, srv, nodeConn := relay(t, &fakeBackend{logs: func(ctx context.Context, _ LogRequest, w io.Writer) error {
		fmt.Fprintln(w, "first line")
		started <- struct{}{}
		<-ctx.Done() // follow, with nothing more to say
		ended <- ctx.Err()
		return ctx.Err()
	}}, tm)
	ctx := testCtx(t)

	// The API side cancels: the Backend's context ends at once.
	cctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- c.Logs(cctx, "n1", LogRequest{Pod: "p", Container: "c"}, io.Discard) }()
	<-started
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled logs: %v", err)
	}
	if err := <-ended; err == nil {
		t.Fatal("backend context did not end")
	}

	// The API side's connection dies: the node notices by the idle timeout.
	apiConn, err := srv.Connect(ctx, "api-2")
	if err != nil {
		t.Fatal(err)
	}
	c2 := NewClient(apiConn, testutil.Logger(t))
	c2.tm = tm
	go func() { errc <- c2.Logs(ctx, "n1", LogRequest{Pod: "p", Container: "c"}, io.Discard) }()
	<-started
	apiConn.Close()
	select {
	case <-ended:
	case <-ctx.Done():
		t.Fatal("backend still running after the API side vanished")
	}
	<-errc

	// The node's connection dies: the API side gives up after the idle timeout.
	go func() { errc <- c.Logs(ctx, "n1", LogRequest{Pod: "p", Container: "c"}, io.Discard) }()
	<-started
	nodeConn.Close()
	if err := <-errc; !errors.Is(err, ErrSessionLost) {
		t.Fatalf("logs from a vanished node: %v", err)
	}
}

// A frame out of sequence (lost frames) or data beyond the window ends the
// session instead of delivering corrupted output.
func TestSessionRejectsGapsAndOverruns(t *testing.T) {
	ctx := testCtx(t)
	srv, err := bus.Start(ctx, bus.Config{Name: "streams-test", Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	conn, err := srv.Connect(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	nc := conn.NATS()
	for name, frames := range map[string][][]byte{
		"gap":     {encodeFrame(framePing, 0, 1, nil), encodeFrame(frameData, chStdout, 3, []byte("x"))},
		"overrun": {encodeFrame(frameData, chStdout, 1, make([]byte, defaultTiming.window+1))},
		"channel": {encodeFrame(frameData, 9, 1, []byte("x"))},
		"short":   {{1, 2}},
	} {
		s, err := newSession(nc, testutil.Logger(t), defaultTiming, false, nc.NewInbox())
		if err != nil {
			t.Fatal(err)
		}
		s.start("_INBOX.nobody", defaultTiming.window)
		for _, f := range frames {
			if err := nc.Publish(s.inbox, f); err != nil {
				t.Fatal(err)
			}
		}
		_, err = io.ReadAll(chanReader{s, chStdout})
		if !errors.Is(err, ErrSessionLost) {
			t.Errorf("%s: read ended with %v", name, err)
		}
		s.finish(errClosed)
	}
	testutil.Eventually(t, wait, quiet)
}

// A Backend writing 50 MiB to a reader that stops reading is held back by
// the window: the node side never has more than one window in flight, and
// the API side never buffers more than one window, however far the writer
// would run ahead.
func TestRelayFlowControlBoundsBuffering(t *testing.T) {
	const total = 50 << 20
	c, _, _ := relay(t, &fakeBackend{logs: func(_ context.Context, _ LogRequest, w io.Writer) error {
		chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
		for sent := 0; sent < total; sent += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return err
			}
		}
		return nil
	}}, defaultTiming)
	ctx := testCtx(t)
	testutil.Eventually(t, wait, quiet) // nothing left of other tests in the counts
	ResetPeaks()
	gate := make(chan struct{})
	sr := &slowWriter{gate: gate}
	errc := make(chan error, 1)
	go func() { errc <- c.Logs(ctx, "n1", LogRequest{Pod: "p", Container: "c"}, sr) }()
	// The reader takes its first write and then stalls: wait until the
	// Backend's writer is blocked for credit.
	testutil.Eventually(t, wait, func() error {
		if n := nodeStats.waiting.Load(); n != 1 {
			return fmt.Errorf("%d node writers waiting for credit", n)
		}
		return nil
	})
	held := nodeStats.get()
	if held.Outstanding != int64(defaultTiming.window) {
		t.Errorf("node side has %d bytes in flight while blocked, want the window %d", held.Outstanding, defaultTiming.window)
	}
	close(gate)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if sr.n != total {
		t.Fatalf("reader got %d bytes, want %d", sr.n, total)
	}
	node, api := NodeStats(), APIStats()
	t.Logf("window %d: node peak in flight %d, API peak buffered %d", defaultTiming.window, node.PeakOutstanding, api.PeakBuffered)
	if node.PeakOutstanding > int64(defaultTiming.window) || api.PeakBuffered > int64(defaultTiming.window) {
		t.Fatalf("buffering beyond the window %d: node in flight %d, API buffered %d",
			defaultTiming.window, node.PeakOutstanding, api.PeakBuffered)
	}
	testutil.Eventually(t, wait, quiet)
}

// slowWriter takes one write, then blocks until gate is closed.
type slowWriter struct {
	gate chan struct{}
	n    int
}

func (w *slowWriter) Write(p []byte) (int, error) {
	if w.n > 0 {
		<-w.gate
	}
	w.n += len(p)
	return len(p), nil
}
