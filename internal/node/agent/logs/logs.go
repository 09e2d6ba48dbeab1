// Package logs writes and reads container logs, as the kubelet's
// kuberuntime/logs does for CRI runtimes.
//
// Container logs are written in the CRI log format a kubelet reads
// ("<RFC3339Nano time> <stdout|stderr> <F|P> <text>", P marking a partial
// line), one file per container start, so `kubectl logs --previous` reads
// the start before the current one and --timestamps/--since need no extra
// index.
package logs

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// maxLogLine is where a line without a newline is cut into partial (P)
// records, as CRI runtimes do (16 KiB).
const maxLogLine = 16 << 10

// Options bound a container start's log on disk.
type Options struct {
	// MaxSize is where the file is rotated. Default 10 MiB, the kubelet's
	// containerLogMaxSize.
	MaxSize int64
	// MaxFiles is how many files are kept, the current one included; the
	// oldest rotated file goes first. Default 5, the kubelet's
	// containerLogMaxFiles; at least 2.
	MaxFiles int
	// MaxTotal, when set, bounds the files together (the container's
	// ephemeral-storage limit covers its logs): MaxSize shrinks to half of
	// it if need be, and rotated files go while the kept ones and a full
	// current file would not fit. Default MaxSize×MaxFiles.
	MaxTotal int64
	// OnChange, when set, is told each change of the bytes the files hold
	// (the pod's ephemeral-storage accounting), under the File's lock: it
	// must not block.
	OnChange func(delta int64)
}

// File is one container start's log, rotated as the kubelet rotates CRI
// logs: when a record would take it past MaxSize, the file is renamed to
// path.<UTC time> and a new one starts, and rotated files beyond MaxFiles
// (or MaxTotal) are deleted oldest first. So a container start's log never
// takes more than MaxSize×MaxFiles.
//
// A rotation never leaves path missing: the full file gets its rotated name
// as a second link, and a new file is renamed over path in one step, so a
// reader opening path at any moment finds the old file or the new one.
type File struct {
	path string
	opts Options

	mu      sync.Mutex
	f       *os.File
	size    int64
	rotated []rotatedFile // oldest first
	err     error         // the first write error; later writes are dropped
}

type rotatedFile struct {
	path string
	size int64
}

// rotatedTimeFormat names rotated files (path.<time>): the kubelet's
// format, with nanoseconds so that names sort by age and rotations within a
// second do not collide.
const rotatedTimeFormat = "20060102-150405.000000000"

// OpenFile opens the log at path for appending with the default options
// but for maxSize. See Open.
func OpenFile(path string, maxSize int64) (*File, error) {
	return Open(path, Options{MaxSize: maxSize})
}

// Open opens the log at path for appending, creating it if missing; what
// it holds already, and files rotated from it earlier, count towards the
// limits.
func Open(path string, opts Options) (*File, error) {
	if opts.MaxSize <= 0 {
		opts.MaxSize = 10 << 20
	}
	if opts.MaxFiles <= 0 {
		opts.MaxFiles = 5
	}
	opts.MaxFiles = max(opts.MaxFiles, 2)
	if opts.MaxTotal > 0 {
		opts.MaxSize = max(min(opts.MaxSize, opts.MaxTotal/2), 1)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open container log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open container log: %w", err)
	}
	l := &File{path: path, opts: opts, f: f, size: st.Size()}
	l.rotated = listRotated(path)
	l.prune()
	return l, nil
}

// listRotated finds the files rotated from path, oldest first.
func listRotated(path string) []rotatedFile {
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		return nil
	}
	prefix := filepath.Base(path) + "."
	var out []rotatedFile
	for _, e := range entries { // ReadDir sorts by name: by age
		if !e.Type().IsRegular() || !strings.HasPrefix(e.Name(), prefix) || strings.HasSuffix(e.Name(), ".tmp") {
			continue
		}
		if info, err := e.Info(); err == nil {
			out = append(out, rotatedFile{path: filepath.Join(filepath.Dir(path), e.Name()), size: info.Size()})
		}
	}
	return out
}

func (l *File) record(stream string, partial bool, text []byte) {
	tag := "F"
	if partial {
		tag = "P"
	}
	var b bytes.Buffer
	b.Grow(len(text) + 48)
	b.WriteString(time.Now().UTC().Format(time.RFC3339Nano))
	b.WriteByte(' ')
	b.WriteString(stream)
	b.WriteByte(' ')
	b.WriteString(tag)
	b.WriteByte(' ')
	b.Write(text)
	b.WriteByte('\n')

	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil || l.f == nil {
		return
	}
	if l.size+int64(b.Len()) > l.opts.MaxSize && l.size > 0 {
		l.rotate()
		if l.f == nil {
			return
		}
	}
	n, err := l.f.Write(b.Bytes())
	l.size += int64(n)
	l.changed(int64(n))
	if err != nil {
		l.err = err
	}
}

func (l *File) rotate() {
	name := l.path + "." + time.Now().UTC().Format(rotatedTimeFormat)
	for i := 0; fileExists(name); i++ {
		name = l.path + "." + time.Now().UTC().Add(time.Duration(i+1)).Format(rotatedTimeFormat)
	}
	// The new file is made aside and renamed over path, after the full one
	// got its rotated name as a second link: a reader opening path finds a
	// file at every moment. Where links cannot be made, the full file is
	// renamed first, which leaves path missing for a moment; Reader retries.
	tmp := l.path + ".tmp"
	nf, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC|os.O_APPEND, 0o600)
	if err == nil {
		if err = os.Link(l.path, name); err == nil {
			err = os.Rename(tmp, l.path)
		} else if err = os.Rename(l.path, name); err == nil {
			err = os.Rename(tmp, l.path)
		}
		if err != nil {
			nf.Close()
			os.Remove(tmp)
		}
	}
	if err != nil {
		l.err = fmt.Errorf("rotate container log: %w", err)
		l.f.Close()
		l.f = nil
		return
	}
	l.f.Close()
	l.rotated = append(l.rotated, rotatedFile{path: name, size: l.size})
	l.f, l.size = nf, 0
	l.prune()
}

// prune deletes the oldest rotated files beyond MaxFiles, and while the
// kept ones and a current file grown to MaxSize would exceed MaxTotal.
// Called with l.mu held.
func (l *File) prune() {
	var kept int64
	for _, r := range l.rotated {
		kept += r.size
	}
	for len(l.rotated) > 0 && (len(l.rotated) > l.opts.MaxFiles-1 ||
		(l.opts.MaxTotal > 0 && kept+max(l.size, l.opts.MaxSize) > l.opts.MaxTotal)) {
		r := l.rotated[0]
		if err := os.Remove(r.path); err != nil && !os.IsNotExist(err) {
			break // kept, and tried again at the next rotation
		}
		kept -= r.size
		l.rotated = l.rotated[1:]
		l.changed(-r.size)
	}
}

func (l *File) changed(delta int64) {
	if l.opts.OnChange != nil && delta != 0 {
		l.opts.OnChange(delta)
	}
}

func (l *File) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return l.err
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// Stream returns a writer for one of the process's output streams ("stdout"
// or "stderr"). Each stream keeps its own partial line; a Write is called
// from one goroutine per stream (the runtime's contract).
func (l *File) Stream(name string) *Stream { return &Stream{l: l, name: name} }

// Stream is one output stream of a container start, written to its File a
// line at a time.
type Stream struct {
	l    *File
	name string
	buf  []byte
}

func (s *Stream) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			s.buf = append(s.buf, p...)
			for len(s.buf) >= maxLogLine {
				s.l.record(s.name, true, s.buf[:maxLogLine])
				s.buf = append(s.buf[:0], s.buf[maxLogLine:]...)
			}
			break
		}
		line := p[:i]
		if len(s.buf) > 0 {
			line = append(s.buf, line...)
			s.buf = s.buf[:0]
		}
		for len(line) > maxLogLine {
			s.l.record(s.name, true, line[:maxLogLine])
			line = line[maxLogLine:]
		}
		s.l.record(s.name, false, line)
		p = p[i+1:]
	}
	return n, nil
}

// Flush writes a pending partial line, when the process ends.
func (s *Stream) Flush() {
	if len(s.buf) > 0 {
		s.l.record(s.name, true, s.buf)
		s.buf = s.buf[:0]
	}
}

// logRecord is one parsed line of a log file.
type logRecord struct {
	time    time.Time
	stamp   []byte
	partial bool
	text    []byte
}

func parseLogLine(line []byte) (logRecord, bool) {
	f := bytes.SplitN(line, []byte{' '}, 4)
	if len(f) < 4 {
		return logRecord{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(f[0]))
	if err != nil {
		return logRecord{}, false
	}
	return logRecord{time: t, stamp: f[0], partial: string(f[2]) == "P", text: f[3]}, true
}

// Reader writes a container start's log to w as kubectl asks: since,
// tail, timestamps, limitBytes and follow. Following polls the file
// (cheap, and immune to rotation: a replaced file is reopened from the
// start) until Running reports false and the file is drained, or ctx ends.
type Reader struct {
	// Path is the log file of the container start.
	Path string
	// Options are kubectl's: since, tail, timestamps, limitBytes, follow.
	Options corev1.PodLogOptions
	// Running reports whether the container start still writes to Path.
	Running func() bool
	// Poll is how often a follow looks for more; default 100ms.
	Poll time.Duration
}

// Copy writes the log to w as r.Options ask.
func (r Reader) Copy(ctx context.Context, w io.Writer) error {
	var since time.Time
	if r.Options.SinceSeconds != nil {
		since = time.Now().Add(-time.Duration(*r.Options.SinceSeconds) * time.Second)
	} else if r.Options.SinceTime != nil {
		since = r.Options.SinceTime.Time
	}
	limit := int64(-1)
	if r.Options.LimitBytes != nil {
		limit = *r.Options.LimitBytes
	}
	out := &limitWriter{w: w, left: limit}
	midLine := false // the last record emitted was partial: the next continues its line
	emit := func(rec logRecord) error {
		if !since.IsZero() && rec.time.Before(since) {
			return nil
		}
		var b bytes.Buffer
		if r.Options.Timestamps && !midLine {
			b.Write(rec.stamp) // one timestamp per line, the first record's, as the kubelet writes
			b.WriteByte(' ')
		}
		b.Write(rec.text)
		if !rec.partial {
			b.WriteByte('\n')
		}
		midLine = rec.partial
		_, err := out.Write(b.Bytes())
		return err
	}

	f, err := openLog(ctx, r.Path)
	if err != nil {
		return fmt.Errorf("open container log: %w", err)
	}
	defer func() { f.Close() }()
	br := bufio.NewReaderSize(f, 64<<10)

	// The first pass reads what exists; with a tail, only the last lines.
	var recs []logRecord
	tail := int64(-1)
	if r.Options.TailLines != nil {
		tail = *r.Options.TailLines
	}
	var pending []byte
	readAll := func(keep bool) error {
		for {
			line, err := br.ReadBytes('\n')
			if len(line) > 0 && line[len(line)-1] != '\n' {
				pending = append(pending, line...) // a record still being written
				return nil
			}
			if len(line) > 0 {
				if len(pending) > 0 {
					line = append(pending, line...)
					pending = nil
				}
				rec, ok := parseLogLine(bytes.TrimSuffix(line, []byte{'\n'}))
				if ok {
					if keep {
						rec.text = bytes.Clone(rec.text)
						rec.stamp = bytes.Clone(rec.stamp)
						recs = append(recs, rec)
						if tail >= 0 && int64(len(recs)) > tail*2+64 {
							recs = recs[int64(len(recs))-tail:]
						}
					} else if err := emit(rec); err != nil {
						return err
					}
				}
			}
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
		}
	}
	if err := readAll(true); err != nil {
		return err
	}
	if tail >= 0 && int64(len(recs)) > tail {
		recs = recs[int64(len(recs))-tail:]
	}
	for _, rec := range recs {
		if err := emit(rec); err != nil {
			return ignoreLimit(err)
		}
	}
	if !r.Options.Follow {
		return nil
	}
	poll := r.Poll
	if poll <= 0 {
		poll = 100 * time.Millisecond
	}
	for {
		alive := r.Running()
		if err := readAll(false); err != nil {
			return ignoreLimit(err)
		}
		// A rotation replaced the file: read the new one before deciding
		// the container is done, or lines written just before it exited
		// would be lost. The old one is drained first: the writer may have
		// added to it between the read above and the rotation.
		if st, err := os.Stat(r.Path); err == nil {
			if cur, err := f.Stat(); err == nil && !os.SameFile(st, cur) {
				if err := readAll(false); err != nil {
					return ignoreLimit(err)
				}
				f.Close()
				if f, err = openLog(ctx, r.Path); err != nil {
					return fmt.Errorf("reopen rotated container log: %w", err)
				}
				br.Reset(f)
				pending = nil
				continue
			}
		}
		if !alive {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(poll):
		}
	}
}

// openLog opens a log file for reading. A file that is missing is looked
// for again a few times: a writer that cannot make links leaves it missing
// for a moment while it rotates. The error names no host path (its text
// reaches API clients): only what went wrong.
func openLog(ctx context.Context, path string) (*os.File, error) {
	for attempt := 0; ; attempt++ {
		f, err := os.Open(path)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, fs.ErrNotExist) || attempt == 20 {
			return nil, withoutPath(err)
		}
		select {
		case <-ctx.Done():
			return nil, withoutPath(err)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// withoutPath drops the file name from a file system error, keeping what
// errors.Is finds (fs.ErrNotExist and the errno).
func withoutPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

var errLimit = fmt.Errorf("log limit reached")

func ignoreLimit(err error) error {
	if err == errLimit {
		return nil
	}
	return err
}

type limitWriter struct {
	w    io.Writer
	left int64 // -1: no limit
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.left == 0 {
		return 0, errLimit
	}
	cut := l.left > 0 && int64(len(p)) > l.left
	if cut {
		p = p[:l.left]
	}
	n, err := l.w.Write(p)
	if l.left > 0 {
		l.left -= int64(n)
	}
	if f, ok := l.w.(interface{ Flush() }); ok {
		f.Flush()
	}
	if err == nil && cut {
		err = errLimit // the limit is reached: a follow ends here too
	}
	return n, err
}

// RemoveOldStarts deletes from a container's log directory what nothing
// reads any more once start current begins: the logs of every earlier start
// but the newest one (kubectl logs --previous), and that one's rotated files
// (a kubelet reads only a container's current file). So a container that
// crashes in a loop keeps two starts' logs, not one per restart, as the
// kubelet keeps one dead container per container. It returns the bytes
// freed.
func RemoveOldStarts(dir string, current int) int64 {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	start := func(name string) (int, bool) {
		num, _, _ := strings.Cut(name, ".")
		n, err := strconv.Atoi(num)
		return n, err == nil && strings.HasPrefix(name, num+".log")
	}
	previous := -1
	for _, e := range entries {
		if n, ok := start(e.Name()); ok && n < current && e.Name() == strconv.Itoa(n)+".log" {
			previous = max(previous, n)
		}
	}
	var freed int64
	for _, e := range entries {
		n, ok := start(e.Name())
		if !ok || n >= current || e.Name() == strconv.Itoa(previous)+".log" {
			continue
		}
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		if os.Remove(filepath.Join(dir, e.Name())) == nil {
			freed += info.Size()
		}
	}
	return freed
}
