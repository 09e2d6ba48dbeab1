package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/skiffhq/skiff/internal/node/agent/builtin"
	"github.com/skiffhq/skiff/internal/node/agent/logs"
	"github.com/skiffhq/skiff/internal/streams"
	skiffrt "github.com/skiffhq/skiff/runtime"
)

// The agent's side of kubectl logs, exec and port-forward: the API server
// relays them over the bus (internal/streams), and these answer on the node.

type streamBackend struct{ a *Agent }

var _ streams.Backend = streamBackend{}

// container finds a running pod's container.
func (b streamBackend) container(ns, pod, uid, name string) (*container, error) {
	w := b.a.pods.find(ns, pod, uid)
	if w == nil {
		return nil, fmt.Errorf("%w: pod %q is not running on node %q", streams.ErrPodNotRunning, pod, b.a.cfg.NodeName)
	}
	w.mu.Lock()
	all := append(append(append([]*container{}, w.inits...), w.containers...), w.ephemerals...)
	w.mu.Unlock()
	for _, c := range all {
		if c.spec.Name == name {
			return c, nil
		}
	}
	return nil, fmt.Errorf("%w: container %q in pod %q is not available", streams.ErrContainerNotFound, name, pod)
}

func (b streamBackend) Logs(ctx context.Context, req streams.LogRequest, w io.Writer) (err error) {
	defer func() { err = b.a.hideErr(err) }()
	c, err := b.container(req.Namespace, req.Pod, req.UID, req.Container)
	if errors.Is(err, streams.ErrPodNotRunning) && req.UID != "" {
		// A pod this agent runs no worker for (it finished before the
		// engine restarted) still has its logs on disk.
		if path, prev := b.logsOnDisk(req.UID, req.Container); path != "" {
			if req.Options.Previous {
				path = prev
			}
			if path != "" {
				r := logs.Reader{Path: path, Options: req.Options, Running: func() bool { return false }}
				return logReadError(req, r.Copy(ctx, w))
			}
		}
	}
	if err != nil {
		return err
	}
	c.mu.Lock()
	path, running := c.logPath, c.running
	if req.Options.Previous {
		path, running = c.prevLog, closedChan()
		if path == "" {
			path = c.previousLogOnDisk()
		}
	}
	c.mu.Unlock()
	if path == "" {
		if req.Options.Previous {
			return fmt.Errorf("%w: previous terminated container %q in pod %q not found", streams.ErrNoPrevious, req.Container, req.Pod)
		}
		return fmt.Errorf("%w: container %q in pod %q is waiting to start", streams.ErrContainerNotFound, req.Container, req.Pod)
	}
	r := logs.Reader{Path: path, Options: req.Options, Running: func() bool {
		select {
		case <-running:
			return false
		default:
			return true
		}
	}}
	return logReadError(req, r.Copy(ctx, w))
}

// logReadError words a failed log read as the API answers it, naming the
// container rather than its file: a file that is gone (the pod's directory
// was removed as it was deleted, or the log of an old start was pruned)
// means the container's log is not available.
func logReadError(req streams.LogRequest, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: the log of container %q in pod %q is no longer on node", streams.ErrContainerNotFound, req.Container, req.Pod)
	}
	return fmt.Errorf("failed to read the log of container %q in pod %q: %w", req.Container, req.Pod, err)
}

// previousLogOnDisk finds the log of the start before the current one
// when this worker has not run one itself (the engine restarted): the
// newest log file named by a smaller start number than the current log's.
// The number comes from the current log's own name, not from the restart
// count, which has moved on while the container waits to restart. Called
// with c.mu held.
func (c *container) previousLogOnDisk() string {
	if c.logPath == "" {
		return ""
	}
	dir, base := filepath.Split(c.logPath)
	n, err := strconv.Atoi(strings.TrimSuffix(base, ".log"))
	if err != nil || !strings.HasSuffix(base, ".log") {
		return ""
	}
	_, prev := newestLogs(filepath.Clean(dir), n)
	return prev
}

func (b streamBackend) Exec(ctx context.Context, req streams.ExecRequest, s streams.ExecStreams) (code int, err error) {
	defer func() { err = b.a.hideErr(err) }()
	c, err := b.container(req.Namespace, req.Pod, req.UID, req.Container)
	if err != nil {
		return 0, err
	}
	// exec runs in the environment the container started with (its env,
	// volumes, limits and IP), not a new resolution of the spec: a ConfigMap
	// changed or deleted since does not change what exec sees.
	c.mu.Lock()
	img, spec := c.img, c.current
	running := c.status.State.Running != nil
	c.mu.Unlock()
	if !running || spec.ID == "" {
		return 0, fmt.Errorf("%w: container %q in pod %q is not running", streams.ErrContainerNotFound, req.Container, req.Pod)
	}
	spec.Args = req.Command
	spec.Ports = nil
	spec.OnInstanceExit = nil
	spec.Stdin, spec.Stdout, spec.Stderr, spec.TTY = s.Stdin, s.Stdout, s.Stderr, req.TTY
	if req.TTY && s.Resize != nil {
		resize := make(chan skiffrt.TerminalSize, 1)
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case sz := <-s.Resize:
					select {
					case resize <- skiffrt.TerminalSize{Width: sz.Width, Height: sz.Height}:
					case <-ctx.Done():
						return
					}
				}
			}
		}()
		spec.Resize = resize
	}
	if spec.Stderr == nil {
		spec.Stderr = s.Stdout // a terminal has one output stream
	}
	if b.builtin(img, req.Command) {
		return builtin.Run(ctx, req.Command, spec.Mounts, builtin.Streams{Stdin: s.Stdin, Stdout: s.Stdout, Stderr: spec.Stderr}), nil
	}
	st, err := b.a.cfg.Runtime.Exec(ctx, img, spec)
	if errors.Is(err, skiffrt.ErrCannotExec) {
		// As a shell says of a file it cannot execute: the message on
		// stderr, exit code 126.
		fmt.Fprintf(spec.Stderr, "exec %q: %v\n", req.Command[0], err)
		return 126, nil
	}
	if err != nil {
		return 0, fmt.Errorf("exec in %s: %w", req.Container, err)
	}
	return st.Code, nil
}

// builtin reports whether the node runs argv itself (builtin.Has): when
// the image holds no program of that name, as a Wasm module never does.
// kubectl cp runs tar and test in the container; without them a module
// would be started with "tar" as its argv and print its own usage.
func (b streamBackend) builtin(img skiffrt.Image, argv []string) bool {
	if !builtin.Has(argv) {
		return false
	}
	if pf, ok := b.a.cfg.Runtime.(skiffrt.ProgramFinder); ok && pf.HasProgram(img, path.Base(argv[0])) {
		return false
	}
	return true
}

func (b streamBackend) PortForward(ctx context.Context, req streams.PortForwardRequest, conn io.ReadWriteCloser) (err error) {
	defer func() { err = b.a.hideErr(err) }()
	w := b.a.pods.find(req.Namespace, req.Pod, req.UID)
	if w == nil {
		return fmt.Errorf("%w: pod %q is not running on node %q", streams.ErrPodNotRunning, req.Pod, b.a.cfg.NodeName)
	}
	w.mu.Lock()
	ip := w.ip
	w.mu.Unlock()
	var d net.Dialer
	up, err := d.DialContext(ctx, "tcp", net.JoinHostPort(ip, strconv.Itoa(int(req.Port))))
	if err != nil {
		return fmt.Errorf("failed to connect to port %d of pod %s: %w", req.Port, req.Pod, err)
	}
	defer up.Close()
	go func() {
		io.Copy(up, conn)
		if tc, ok := up.(*net.TCPConn); ok {
			tc.CloseWrite() // the client is done sending; the pod may still answer
		}
	}()
	// The forwarded connection ends when the pod's side does: kubectl
	// closes its side only after this returns.
	io.Copy(conn, up)
	return nil
}

// logsOnDisk finds the newest log of a container in a pod's directory, and
// the one before it: the files are named by restart count.
func (b streamBackend) logsOnDisk(uid, container string) (newest, previous string) {
	dir := filepath.Join(b.a.cfg.DataDir, "pods", filepath.Base(uid), "logs", filepath.Base(container))
	return newestLogs(dir, -1)
}

// newestLogs returns the two newest container start logs in dir
// ("<start>.log") whose start is below before (any, when before < 0).
func newestLogs(dir string, before int) (newest, previous string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", ""
	}
	best, second := -1, -1
	for _, e := range entries {
		n, err := strconv.Atoi(strings.TrimSuffix(e.Name(), ".log"))
		if err != nil || !strings.HasSuffix(e.Name(), ".log") || (before >= 0 && n >= before) {
			continue
		}
		if n > best {
			best, second = n, best
		} else if n > second {
			second = n
		}
	}
	name := func(n int) string {
		if n < 0 {
			return ""
		}
		return filepath.Join(dir, strconv.Itoa(n)+".log")
	}
	if before >= 0 {
		return "", name(best) // the newest below before is the previous
	}
	return name(best), name(second)
}
