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

// Client is the API side of the relay: it runs Backend calls on a node's
// stream server (ServeNode) over the bus. Its methods are Backend's with the
// node's name added, and return the remote Backend's errors (errors.Is holds
// for ErrNoPrevious, ErrContainerNotFound and ErrPodNotRunning) or the
// relay's own (ErrNodeUnreachable, ErrNodeTimeout, ErrSessionLost). Safe for
// concurrent use; every call is one session.
type Client struct {
	conn *bus.Conn
	log  *slog.Logger
	tm   timing
}

// NewClient returns a Client that opens sessions on conn. log may be nil
// (slog.Default()).
func NewClient(conn *bus.Conn, log *slog.Logger) *Client {
	if log == nil {
		log = slog.Default()
	}
	return &Client{conn: conn, log: log, tm: defaultTiming}
}

// Probe checks that a stream server answers for node, without starting
// anything. The exec and port-forward handlers probe before they upgrade
// the connection, so that an unreachable node is an HTTP error kubectl
// shows as such.
func (c *Client) Probe(ctx context.Context, node string) error {
	_, err := c.open(ctx, node, openRequest{Kind: kindProbe})
	return err
}

// open asks node's stream server for a session (or answers a probe with a
// nil session).
func (c *Client) open(ctx context.Context, node string, req openRequest) (*session, error) {
	subject, err := bus.SubjectNodeStreams(node)
	if err != nil {
		return nil, err
	}
	var s *session
	if req.Kind != kindProbe {
		// Subscribed before the open is sent, so no frame of the node's is
		// lost.
		inbox, err := bus.ControlPlaneInbox(node)
		if err != nil {
			return nil, err
		}
		if s, err = newSession(c.conn.NATS(), c.log.With("node", node, "kind", req.Kind), c.tm, false, inbox); err != nil {
			return nil, err
		}
		req.Inbox, req.Window = s.inbox, c.tm.window
	}
	octx, cancel := context.WithTimeout(ctx, c.tm.open)
	// The answer comes to an inbox of the control plane for this node,
	// the only place the node's identity may write to (bus.RequestNode).
	replyInbox, err := bus.ControlPlaneInbox(node)
	if err != nil {
		cancel()
		if s != nil {
			s.finish(errClosed)
		}
		return nil, err
	}
	rep, err := bus.RequestNode[openRequest, openReply](octx, c.conn, subject, replyInbox, req)
	cancel()
	if err != nil {
		if s != nil {
			s.finish(errClosed)
		}
		switch {
		case errors.Is(err, bus.ErrNoResponders):
			return nil, fmt.Errorf("%w: no agent serving streams for node %q is connected", ErrNodeUnreachable, node)
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case errors.Is(err, context.DeadlineExceeded):
			return nil, fmt.Errorf("%w: node %q did not answer within %v", ErrNodeTimeout, node, c.tm.open)
		}
		return nil, fmt.Errorf("open a stream on node %q: %w", node, err)
	}
	if s == nil {
		return nil, nil
	}
	if rep.Inbox == "" || rep.Window <= 0 {
		s.finish(errClosed)
		return nil, fmt.Errorf("%w: node %q answered the open without an inbox or a window", ErrSessionLost, node)
	}
	s.start(rep.Inbox, rep.Window)
	return s, nil
}

// watch ends s when ctx ends (the HTTP request is over); the returned func
// stops watching.
func watch(ctx context.Context, s *session) func() bool {
	return context.AfterFunc(ctx, func() { s.abort(context.Cause(ctx)) })
}

// Logs writes the container's log, as Backend.Logs on node does, to w. A
// failed Write ends the session (and the node's call) with that error.
func (c *Client) Logs(ctx context.Context, node string, req LogRequest, w io.Writer) error {
	s, err := c.open(ctx, node, openRequest{Kind: kindLogs, Logs: &req})
	if err != nil {
		return err
	}
	defer s.abort(errClosed) // cancels the node's call unless it ended
	defer watch(ctx, s)()
	if _, err := io.Copy(w, chanReader{s, chStdout}); err != nil {
		return err
	}
	_, err = s.wait()
	return err
}

// Exec runs a command as Backend.Exec on node does. req.Stdin is taken
// from st.Stdin != nil. It returns once the node's call returned and its
// output was written to st.
func (c *Client) Exec(ctx context.Context, node string, req ExecRequest, st ExecStreams) (int, error) {
	req.Stdin = st.Stdin != nil
	s, err := c.open(ctx, node, openRequest{Kind: kindExec, Exec: &req, Stdout: st.Stdout != nil,
		Stderr: st.Stderr != nil && !req.TTY})
	if err != nil {
		return 0, err
	}
	return c.stdio(ctx, s, st, req.TTY)
}

// Attach connects st to a running container's standard streams, as
// Backend.Attach (Attacher) on node does. It returns once the node's call
// returned and the output was written to st.
func (c *Client) Attach(ctx context.Context, node string, req AttachRequest, st ExecStreams) error {
	req.Stdin = st.Stdin != nil
	s, err := c.open(ctx, node, openRequest{Kind: kindAttach, Attach: &req, Stdout: st.Stdout != nil,
		Stderr: st.Stderr != nil && !req.TTY})
	if err != nil {
		return err
	}
	_, err = c.stdio(ctx, s, st, req.TTY)
	return err
}

// stdio carries an exec's or an attach's streams over session s until the
// node's call ends.
func (c *Client) stdio(ctx context.Context, s *session, st ExecStreams, tty bool) (int, error) {
	defer s.abort(errClosed)
	defer watch(ctx, s)()
	if st.Stdin != nil {
		go func() {
			// The end of the client's input is the command's: a half close.
			// A broken input means a client gone: end the session.
			if _, err := io.Copy(chanWriter{s, chStdin}, st.Stdin); err != nil {
				s.abort(err)
				return
			}
			_ = s.closeWrite(chStdin)
		}()
	}
	if st.Resize != nil && tty {
		go func() {
			for {
				select {
				case sz, ok := <-st.Resize:
					if !ok {
						return
					}
					_ = s.sendJSON(frameResize, sz)
				case <-s.done:
					return
				}
			}
		}()
	}
	var wg sync.WaitGroup
	var errs [2]error
	copyOut := func(i int, w io.Writer, ch byte) {
		defer wg.Done()
		if _, err := io.Copy(w, chanReader{s, ch}); err != nil {
			errs[i] = err
			s.abort(err)
		}
	}
	if st.Stdout != nil {
		wg.Add(1)
		go copyOut(0, st.Stdout, chStdout)
	}
	if st.Stderr != nil && !tty {
		wg.Add(1)
		go copyOut(1, st.Stderr, chStderr)
	}
	wg.Wait()
	if err := errors.Join(errs[0], errs[1]); err != nil {
		return 0, err
	}
	return s.wait()
}

// PortForward connects conn to the pod's port as Backend.PortForward on
// node does. The end of conn's input is passed on as a half close.
func (c *Client) PortForward(ctx context.Context, node string, req PortForwardRequest, conn io.ReadWriteCloser) error {
	s, err := c.open(ctx, node, openRequest{Kind: kindPortForward, PortForward: &req})
	if err != nil {
		return err
	}
	defer s.abort(errClosed)
	defer watch(ctx, s)()
	go func() {
		if _, err := io.Copy(chanWriter{s, chStdin}, conn); err != nil {
			s.abort(err)
			return
		}
		_ = s.closeWrite(chStdin)
	}()
	if _, err := io.Copy(conn, chanReader{s, chStdout}); err != nil {
		return err
	}
	// The pod's side is done. kubectl ends the forwarded connection only
	// once this returns, so a Backend still waiting for the client's end is
	// given a moment to finish and is then cancelled, as socat (the
	// kubelet's old forwarder) does.
	select {
	case <-s.ended:
	case <-s.done:
	case <-time.After(c.tm.linger):
		return nil
	}
	_, err = s.result()
	return err
}
