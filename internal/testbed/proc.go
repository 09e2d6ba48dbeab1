package testbed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	// maxLogBytes bounds what one process's log file keeps; later output
	// is counted and dropped.
	maxLogBytes = 64 << 20
	// tailLines is how many of a process's last log lines stay in memory,
	// for failure reports.
	tailLines = 60
)

// Proc is a process the test started inside a host. Start, Kill, Stop and
// Restart may be called from any goroutine.
type Proc struct {
	Name string // for reports
	host *Host
	bin  string
	args []string
	log  string // the log file: every incarnation's stdout and stderr

	mu    sync.Mutex
	cmd   *exec.Cmd
	done  chan struct{} // closed when cmd has been waited for
	out   *logSink
	runs  int
	alive bool
}

// Start runs bin with args inside the host (ip netns exec, which replaces
// itself with bin, so the PID is bin's) and waits, until ctx ends, for a
// line of its output containing ready ("" waits for nothing). A process
// not ready in time keeps running (the caller decides: Kill, or wait more). The process is
// stopped at the bed's Cleanup. Its output goes to a file in the test's
// temporary directory (the first 64 MiB) and its last lines to the failure
// report.
func (h *Host) Start(ctx context.Context, name, ready string, bin string, args ...string) (*Proc, error) {
	p := &Proc{Name: name, host: h, bin: bin, args: args}
	p.log = filepath.Join(h.bed.t.TempDir(), name+".log")
	h.mu.Lock()
	h.procs = append(h.procs, p)
	h.mu.Unlock()
	return p, p.start(ctx, ready)
}

// Procs are the processes started on the host.
func (h *Host) Procs() []*Proc {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*Proc(nil), h.procs...)
}

// Host is where the process runs.
func (p *Proc) Host() *Host { return p.host }

// LogPath is the process's log file.
func (p *Proc) LogPath() string { return p.log }

func (p *Proc) start(ctx context.Context, ready string) error {
	p.mu.Lock()
	if p.alive {
		p.mu.Unlock()
		return fmt.Errorf("%s: already running as pid %d", p.Name, p.cmd.Process.Pid)
	}
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		p.mu.Unlock()
		return fmt.Errorf("%s: log: %w", p.Name, err)
	}
	p.runs++
	fmt.Fprintf(f, "=== run %d: %s %s\n", p.runs, p.bin, strings.Join(p.args, " "))
	sink := newLogSink(f, ready)
	if p.out != nil {
		sink.tail = p.out.tail // one tail across restarts
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", p.host.NS, p.bin}, p.args...)...)
	cmd.Stdout, cmd.Stderr = sink, sink
	// If the test process dies without its Cleanup, the kernel kills the
	// child (see startOnForker for which thread that is tied to).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := startOnForker(cmd); err != nil {
		f.Close()
		p.mu.Unlock()
		return fmt.Errorf("%s: start: %w", p.Name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.out, p.alive = cmd, done, sink, true
	p.mu.Unlock()
	go func() {
		err := cmd.Wait()
		sink.closeWith(fmt.Sprintf("=== run exited: %v\n", err))
		p.mu.Lock()
		p.alive = false
		p.mu.Unlock()
		close(done)
	}()
	if ready == "" {
		return nil
	}
	select {
	case <-sink.ready:
		return nil
	case <-done:
		return fmt.Errorf("%s exited before %q; its last lines:\n%s", p.Name, ready, p.Tail())
	case <-ctx.Done():
		return fmt.Errorf("%s: no %q: %w; its last lines:\n%s", p.Name, ready, ctx.Err(), p.Tail())
	}
}

// PID is the process's PID (of its latest run), 0 before it started.
func (p *Proc) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Running says whether the latest run has not exited.
func (p *Proc) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.alive
}

// Kill sends SIGKILL to the process, by its PID, and waits until it is
// gone (kill -9: no shutdown runs).
func (p *Proc) Kill() error { return p.signalAndWait(syscall.SIGKILL, 30*time.Second) }

// Stop sends SIGTERM and waits up to grace for the process to exit, then
// kills it.
func (p *Proc) Stop(grace time.Duration) error {
	if err := p.signalAndWait(syscall.SIGTERM, grace); err == nil {
		return nil
	}
	return p.Kill()
}

var errStillRunning = errors.New("still running")

func (p *Proc) signalAndWait(sig syscall.Signal, wait time.Duration) error {
	p.mu.Lock()
	cmd, done, alive := p.cmd, p.done, p.alive
	p.mu.Unlock()
	if cmd == nil || !alive {
		return nil
	}
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("%s: %v to pid %d: %w", p.Name, sig, cmd.Process.Pid, err)
	}
	select {
	case <-done:
		return nil
	case <-time.After(wait):
		return fmt.Errorf("%s: pid %d %w %v after %v", p.Name, cmd.Process.Pid, errStillRunning, wait, sig)
	}
}

// Restart starts the process again with the same arguments, in the same
// host, once the previous run has exited (Kill or Stop it first), and waits
// for ready as Start does.
func (p *Proc) Restart(ctx context.Context, ready string) error {
	return p.start(ctx, ready)
}

// SetArgs changes the arguments the next Restart uses (a server that
// joined with --join restarts without it, for instance).
func (p *Proc) SetArgs(args ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.args = args
}

// Tail is the process's last log lines, over all its runs.
func (p *Proc) Tail() string {
	p.mu.Lock()
	s := p.out
	p.mu.Unlock()
	if s == nil {
		return ""
	}
	return s.String()
}

// forker is one goroutine locked to its OS thread for the life of the test
// binary, on which every process starts. Pdeathsig fires when the *thread*
// that forked the child exits, not the process; the bed's dialers end
// their threads on purpose (see dialIn), and a dialer goroutine may lock
// whichever thread it runs on, also one that once forked a process, whose
// exit would then kill that process. No goroutine can lock a thread that
// another goroutine holds, so the forker's thread never ends.
var forker struct {
	once sync.Once
	reqs chan func()
}

func startOnForker(cmd *exec.Cmd) error {
	forker.once.Do(func() {
		forker.reqs = make(chan func())
		go func() {
			runtime.LockOSThread() // never unlocked, never returns
			for f := range forker.reqs {
				f()
			}
		}()
	})
	errc := make(chan error, 1)
	forker.reqs <- func() { errc <- cmd.Start() }
	return <-errc
}

// logSink writes a process's output to its log file (bounded), keeps the
// last lines, and signals the first line containing the ready mark.
type logSink struct {
	mu      sync.Mutex
	f       *os.File
	written int64
	dropped int64
	partial []byte
	mark    string
	ready   chan struct{}
	tail    *ring
}

type ring struct {
	mu    sync.Mutex
	lines []string
	next  int
}

func newLogSink(f *os.File, mark string) *logSink {
	return &logSink{f: f, mark: mark, ready: make(chan struct{}), tail: &ring{}}
}

func (s *logSink) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f != nil {
		if s.written+int64(len(b)) <= maxLogBytes {
			s.f.Write(b)
			s.written += int64(len(b))
		} else {
			s.dropped += int64(len(b))
		}
	}
	s.partial = append(s.partial, b...)
	for {
		i := bytes.IndexByte(s.partial, '\n')
		if i < 0 {
			break
		}
		line := string(s.partial[:i])
		s.partial = s.partial[i+1:]
		s.tail.add(line)
		if s.mark != "" && strings.Contains(line, s.mark) {
			close(s.ready)
			s.mark = ""
		}
	}
	if len(s.partial) > 64<<10 { // a runaway line: keep the memory bounded
		s.tail.add(string(s.partial[:1024]) + "…")
		s.partial = s.partial[:0]
	}
	return len(b), nil
}

func (s *logSink) closeWith(last string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return
	}
	if s.dropped > 0 {
		fmt.Fprintf(s.f, "=== %d bytes of output dropped past %d\n", s.dropped, maxLogBytes)
	}
	s.f.WriteString(last)
	s.tail.add(strings.TrimSpace(last))
	s.f.Close()
	s.f = nil
}

func (s *logSink) String() string { return s.tail.String() }

func (r *ring) add(line string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.lines) < tailLines {
		r.lines = append(r.lines, line)
		return
	}
	r.lines[r.next] = line
	r.next = (r.next + 1) % tailLines
}

func (r *ring) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for i := range r.lines {
		b.WriteString(r.lines[(r.next+i)%len(r.lines)])
		b.WriteByte('\n')
	}
	return b.String()
}
