package agent

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/skiffhq/skiff/internal/streams"
)

// kubectl attach: a client connected to a container's running process.
// The process's output goes to its log first, as always, and then to every
// attached client from the moment it attached; a container whose spec says
// `stdin: true` reads a pipe the agent keeps, into which attached clients
// write (`stdinOnce: true`: the first attach that ends closes it, for the
// rest of that start, as with the kubelet's runtimes).
//
// Not as in Kubernetes: `tty: true` gives the container no terminal (the
// Wasm runtime makes one only for exec), so attach -t sees plain streams.

// attachHub is a container's attach state across its starts.
type attachHub struct {
	mu   sync.Mutex
	subs map[*attachSub]struct{}
	// stdin is the current start's input pipe (stdin: true), nil when the
	// container has none or it was closed (stdinOnce).
	stdin *io.PipeWriter
	// stdinMu serializes writers of stdin, so that two clients' writes do
	// not interleave inside one write.
	stdinMu sync.Mutex
}

// attachSub is one attached client's output: what the process writes is
// queued and written by the client's own goroutine, so a slow client never
// slows the container (it loses output instead, as a slow reader of a
// container runtime's attach fifo would).
type attachSub struct {
	stdout, stderr io.Writer
	q              chan attachChunk
	done           chan struct{}
}

type attachChunk struct {
	stderr bool
	b      []byte
}

// attachQueue is how many writes a client may be behind before it loses
// output.
const attachQueue = 256

func newAttachHub() *attachHub { return &attachHub{subs: map[*attachSub]struct{}{}} }

// output is a process output stream (stderr or not) that also goes to
// the attached clients.
func (h *attachHub) output(w io.Writer, stderr bool) io.Writer {
	return attachTee{h: h, w: w, stderr: stderr}
}

type attachTee struct {
	h      *attachHub
	w      io.Writer
	stderr bool
}

func (t attachTee) Write(p []byte) (int, error) {
	n, err := t.w.Write(p)
	t.h.mu.Lock()
	defer t.h.mu.Unlock()
	if len(t.h.subs) == 0 || n == 0 {
		return n, err
	}
	b := append([]byte(nil), p[:n]...)
	for s := range t.h.subs {
		select {
		case s.q <- attachChunk{stderr: t.stderr, b: b}:
		default: // behind: this client loses the write
		}
	}
	return n, err
}

// subscribe attaches a client's output streams (either may be nil).
func (h *attachHub) subscribe(stdout, stderr io.Writer) *attachSub {
	s := &attachSub{stdout: stdout, stderr: stderr, q: make(chan attachChunk, attachQueue), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for c := range s.q {
			w := s.stdout
			if c.stderr {
				w = s.stderr
			}
			if w == nil {
				continue
			}
			if _, err := w.Write(c.b); err != nil {
				for range s.q { // the client is gone: drop the rest
				}
				return
			}
		}
	}()
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	return s
}

// unsubscribe detaches a client and waits until what was queued for it
// is written (or its writes fail: the session ended).
func (h *attachHub) unsubscribe(s *attachSub) {
	h.mu.Lock()
	delete(h.subs, s)
	h.mu.Unlock()
	close(s.q)
	<-s.done
}

// newStdin gives a new start of the container its input pipe.
func (h *attachHub) newStdin() io.Reader {
	r, w := io.Pipe()
	h.mu.Lock()
	if h.stdin != nil {
		h.stdin.Close()
	}
	h.stdin = w
	h.mu.Unlock()
	return r
}

// closeStdin ends the current start's input: the process reads EOF. Also
// what releases a process blocked reading it, which the runtime's stop
// cannot reach.
func (h *attachHub) closeStdin() {
	h.mu.Lock()
	w := h.stdin
	h.stdin = nil
	h.mu.Unlock()
	if w != nil {
		w.Close()
	}
}

// feed copies a client's input into the process's stdin until the client's
// input ends or ctx ends.
func (h *attachHub) feed(ctx context.Context, in io.Reader) {
	buf := make([]byte, 32<<10)
	for ctx.Err() == nil {
		n, err := in.Read(buf)
		if n > 0 {
			h.mu.Lock()
			w := h.stdin
			h.mu.Unlock()
			if w == nil {
				return // closed (stdinOnce, or the process ended)
			}
			h.stdinMu.Lock()
			_, werr := w.Write(buf[:n])
			h.stdinMu.Unlock()
			if werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Attach implements streams.Attacher.
func (b streamBackend) Attach(ctx context.Context, req streams.AttachRequest, s streams.ExecStreams) (err error) {
	defer func() { err = b.a.hideErr(err) }()
	c, err := b.container(req.Namespace, req.Pod, req.UID, req.Container)
	if err != nil {
		return err
	}
	c.mu.Lock()
	running := c.running
	isRunning := c.status.State.Running != nil
	c.mu.Unlock()
	if !isRunning {
		return fmt.Errorf("%w: container %q in pod %q is not running", streams.ErrContainerNotFound, req.Container, req.Pod)
	}
	stderr := s.Stderr
	if stderr == nil && req.TTY {
		stderr = s.Stdout // a terminal has one output stream
	}
	sub := c.attach.subscribe(s.Stdout, stderr)
	defer c.attach.unsubscribe(sub)
	if s.Stdin != nil && c.spec.Stdin {
		fed := make(chan struct{})
		go func() {
			defer close(fed)
			c.attach.feed(ctx, s.Stdin)
		}()
		defer func() {
			if c.spec.StdinOnce {
				// The first attach is over (its input ended, or it
				// detached): the process's input is closed for good.
				c.attach.closeStdin()
			}
		}()
		select {
		case <-fed:
			if c.spec.StdinOnce {
				c.attach.closeStdin()
			}
		case <-running:
		case <-ctx.Done():
		}
	}
	select {
	case <-running: // the process ended: so does the attach, as in Kubernetes
	case <-ctx.Done(): // the client detached
	}
	return nil
}
