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
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// maxLogLine is where a line without a newline is cut into partial (P)
// records, as CRI runtimes do (16 KiB).
const maxLogLine = 16 << 10

// File is one container start's log, rotated when it exceeds maxSize:
// the full file moves to path+".1" (replacing an older one) and a new file
// starts, so a container's log never takes more than twice maxSize.
type File struct {
	path    string
	maxSize int64

	mu   sync.Mutex
	f    *os.File
	size int64
	err  error // the first write error; later writes are dropped
}

// OpenFile opens the log at path for appending, creating it if missing;
// what it holds already counts towards maxSize.
func OpenFile(path string, maxSize int64) (*File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open container log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open container log: %w", err)
	}
	return &File{path: path, maxSize: maxSize, f: f, size: st.Size()}, nil
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
	if l.size+int64(b.Len()) > l.maxSize && l.size > 0 {
		l.rotate()
	}
	n, err := l.f.Write(b.Bytes())
	l.size += int64(n)
	if err != nil {
		l.err = err
	}
}

func (l *File) rotate() {
	l.f.Close()
	if err := os.Rename(l.path, l.path+".1"); err != nil {
		l.err = err
		l.f = nil
		return
	}
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		l.err = err
		l.f = nil
		return
	}
	l.f, l.size = f, 0
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

	f, err := os.Open(r.Path)
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
		// would be lost.
		if st, err := os.Stat(r.Path); err == nil {
			if cur, err := f.Stat(); err == nil && !os.SameFile(st, cur) {
				f.Close()
				if f, err = os.Open(r.Path); err != nil {
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
