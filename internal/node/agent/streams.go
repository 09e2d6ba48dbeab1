package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/skiffhq/skiff/internal/node/agent/logs"
	"github.com/skiffhq/skiff/internal/streams"
	skiffrt "github.com/skiffhq/skiff/runtime"
)

// The agent's side of kubectl logs, exec and port-forward: the API server
// relays them over the bus (engine/streams), and these answer on the node.

type streamBackend struct{ a *Agent }

var _ streams.Backend = streamBackend{}

// container finds a running pod's container.
func (b streamBackend) container(ns, pod, uid, name string) (*container, error) {
	w := b.a.pods.find(ns, pod, uid)
	if w == nil {
		return nil, fmt.Errorf("%w: pod %q is not running on node %q", streams.ErrPodNotRunning, pod, b.a.cfg.NodeName)
	}
	for _, c := range append(append([]*container{}, w.inits...), w.containers...) {
		if c.spec.Name == name {
			return c, nil
		}
	}
	return nil, fmt.Errorf("%w: container %q in pod %q is not available", streams.ErrContainerNotFound, name, pod)
}

func (b streamBackend) Logs(ctx context.Context, req streams.LogRequest, w io.Writer) error {
	c, err := b.container(req.Namespace, req.Pod, req.UID, req.Container)
	if errors.Is(err, streams.ErrPodNotRunning) && req.UID != "" {
		// A pod this agent runs no worker for (it finished before the
		// engine restarted) still has its logs on disk.
		if path, prev := b.logsOnDisk(req.UID, req.Container); path != "" {
			if req.Options.Previous {
				path = prev
			}
			if path != "" {
				return logs.Reader{Path: path, Options: req.Options, Running: func() bool { return false }}.Copy(ctx, w)
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
	return r.Copy(ctx, w)
}

// previousLogOnDisk finds the log of the start before the current one
// when this worker has not run one itself (the engine restarted): it is the
// file named by the previous restart count. Called with c.mu held.
func (c *container) previousLogOnDisk() string {
	if c.status.RestartCount == 0 || c.logPath == "" {
		return ""
	}
	p := c.logPath[:len(c.logPath)-len(strconv.Itoa(int(c.status.RestartCount))+".log")] + strconv.Itoa(int(c.status.RestartCount)-1) + ".log"
	if fileExists(p) {
		return p
	}
	return ""
}

func (b streamBackend) Exec(ctx context.Context, req streams.ExecRequest, s streams.ExecStreams) (int, error) {
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

func (b streamBackend) PortForward(ctx context.Context, req streams.PortForwardRequest, conn io.ReadWriteCloser) error {
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
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", ""
	}
	best, second := -1, -1
	for _, e := range entries {
		n, err := strconv.Atoi(strings.TrimSuffix(e.Name(), ".log"))
		if err != nil || !strings.HasSuffix(e.Name(), ".log") {
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
	return name(best), name(second)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
