package streams

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/skiffhq/skiff/internal/bus"
)

// stopWait bounds how long stop waits for Backend calls to return after
// their contexts were cancelled.
const stopWait = 10 * time.Second

// ServeNode is the node agent's side of the relay: it answers the API's
// session opens for nodeName on conn (subject skiff.node.<node>.streams) and
// runs each session's Backend call on its own goroutine, until ctx ends or
// stop is called. stop cancels the running calls and waits (bounded) for
// them to return. One ServeNode per node: a second one for the same node
// would answer the same opens.
func ServeNode(ctx context.Context, conn *bus.Conn, nodeName string, b Backend) (stop func(), err error) {
	return serveNode(ctx, conn, nodeName, b, defaultTiming, slog.Default())
}

type nodeServer struct {
	conn *bus.Conn
	node string
	b    Backend
	tm   timing
	log  *slog.Logger
	ctx  context.Context
	wg   sync.WaitGroup
}

func serveNode(ctx context.Context, conn *bus.Conn, nodeName string, b Backend, tm timing, log *slog.Logger) (func(), error) {
	subject, err := bus.SubjectNodeStreams(nodeName)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	n := &nodeServer{conn: conn, node: nodeName, b: b, tm: tm, log: log.With("node", nodeName), ctx: ctx}
	sub, err := bus.Serve(ctx, conn, subject, "", n.open)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("streams: serve node %s: %w", nodeName, err)
	}
	// The API side may open a session as soon as this returns.
	if err := conn.Flush(ctx); err != nil {
		sub.Stop()
		cancel()
		return nil, fmt.Errorf("streams: serve node %s: %w", nodeName, err)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			sub.Stop()
			cancel()
			done := make(chan struct{})
			go func() { n.wg.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(stopWait):
				n.log.Warn("streams: backend calls still running after stop", "waited", stopWait)
			}
		})
	}, nil
}

// open starts a session for one request (or answers a probe).
func (n *nodeServer) open(_ context.Context, req openRequest) (openReply, error) {
	var run func(ctx context.Context, s *session) (int, error)
	switch {
	case req.Kind == kindProbe:
		return openReply{}, nil
	case req.Kind == kindLogs && req.Logs != nil:
		r := *req.Logs
		run = func(ctx context.Context, s *session) (int, error) {
			return 0, n.b.Logs(ctx, r, chanWriter{s, chStdout})
		}
	case req.Kind == kindExec && req.Exec != nil:
		r := *req.Exec
		wantOut, wantErr := req.Stdout, req.Stderr && !r.TTY
		run = func(ctx context.Context, s *session) (int, error) {
			var st ExecStreams
			if r.Stdin {
				st.Stdin = chanReader{s, chStdin}
			}
			if wantOut {
				st.Stdout = chanWriter{s, chStdout}
			}
			if wantErr {
				st.Stderr = chanWriter{s, chStderr}
			}
			if r.TTY {
				st.Resize = s.resize
			}
			return n.b.Exec(ctx, r, st)
		}
	case req.Kind == kindAttach && req.Attach != nil:
		r := *req.Attach
		at, ok := n.b.(Attacher)
		if !ok {
			return openReply{}, errors.New("streams: this node does not serve attach")
		}
		wantOut, wantErr := req.Stdout, req.Stderr && !r.TTY
		run = func(ctx context.Context, s *session) (int, error) {
			var st ExecStreams
			if r.Stdin {
				st.Stdin = chanReader{s, chStdin}
			}
			if wantOut {
				st.Stdout = chanWriter{s, chStdout}
			}
			if wantErr {
				st.Stderr = chanWriter{s, chStderr}
			}
			if r.TTY {
				st.Resize = s.resize
			}
			return 0, at.Attach(ctx, r, st)
		}
	case req.Kind == kindPortForward && req.PortForward != nil:
		r := *req.PortForward
		run = func(ctx context.Context, s *session) (int, error) {
			return 0, n.b.PortForward(ctx, r, &sessionConn{s: s})
		}
	default:
		return openReply{}, fmt.Errorf("streams: unknown session kind %q", req.Kind)
	}
	if req.Inbox == "" || req.Window <= 0 {
		return openReply{}, errors.New("streams: open without an inbox or a window")
	}
	s, err := newSession(n.conn.NATS(), n.log, n.tm, true, n.conn.NATS().NewInbox())
	if err != nil {
		return openReply{}, err
	}
	if req.Kind == kindExec && req.Exec.TTY || req.Kind == kindAttach && req.Attach.TTY {
		s.resize = make(chan TerminalSize, 4)
	}
	s.start(req.Inbox, req.Window)
	n.wg.Add(1)
	go n.run(s, req.Kind, run)
	return openReply{Inbox: s.inbox, Window: n.tm.window}, nil
}

// run calls the Backend and ends the session with its result. The call's
// context ends with the session (the API cancelled, or went silent) or
// with ServeNode.
func (n *nodeServer) run(s *session, kind string, call func(ctx context.Context, s *session) (int, error)) {
	defer n.wg.Done()
	ctx, cancel := context.WithCancel(n.ctx)
	defer cancel()
	go func() {
		select {
		case <-s.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	code, err := func() (code int, err error) {
		defer func() {
			if p := recover(); p != nil {
				n.log.Error("streams: backend panicked", "kind", kind, "panic", p)
				err = fmt.Errorf("streams: backend panicked: %v", p)
			}
		}()
		return call(ctx, s)
	}()
	if s.isDone() {
		return // the API side is gone; nobody to tell
	}
	if err != nil && ctx.Err() == nil {
		n.log.Debug("streams: backend call failed", "kind", kind, "err", err)
	}
	// Data frames were all sent before this one, on the same connection, so
	// the API side sees them first.
	s.sendEnd(endFor(code, err))
	s.finish(errClosed)
}

// sessionConn is a port-forward session as the Backend sees it: reads come
// from the client, writes go to it.
type sessionConn struct {
	s *session
}

func (c *sessionConn) Read(p []byte) (int, error)  { return c.s.read(chStdin, p) }
func (c *sessionConn) Write(p []byte) (int, error) { return c.s.write(chStdout, p) }

// Close ends the pod-to-client direction; the session itself ends when
// PortForward returns.
func (c *sessionConn) Close() error { return c.s.closeWrite(chStdout) }

var _ io.ReadWriteCloser = (*sessionConn)(nil)
