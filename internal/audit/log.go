// Package audit writes the API server's audit log: one JSON line per
// event in Kubernetes' audit.k8s.io/v1 Event format, to a file rotated by
// size (gopkg.in/natefinch/lumberjack.v2, what kube-apiserver's
// --audit-log-maxsize uses). Events pass through a bounded queue to one
// writer goroutine, so a slow disk never holds up a request: when the
// queue is full the event is dropped and counted, as kube-apiserver's
// buffered backend does.
package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gopkg.in/natefinch/lumberjack.v2"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

// Level says how much of a request an event records, Kubernetes' audit
// levels.
type Level = auditv1.Level

// The levels, from nothing to everything.
const (
	LevelNone            = auditv1.LevelNone
	LevelMetadata        = auditv1.LevelMetadata
	LevelRequest         = auditv1.LevelRequest
	LevelRequestResponse = auditv1.LevelRequestResponse
)

// ParseLevel reads a level name as --audit-level takes it.
func ParseLevel(s string) (Level, error) {
	for _, l := range []Level{LevelNone, LevelMetadata, LevelRequest, LevelRequestResponse} {
		if strings.EqualFold(s, string(l)) {
			return l, nil
		}
	}
	return "", fmt.Errorf("audit level %q: must be None, Metadata, Request or RequestResponse", s)
}

// Config of a Log.
type Config struct {
	// Path is the log file. Required.
	Path string
	// MaxSizeMB is the size in megabytes at which the file is rotated.
	// Default 100, kube-apiserver's.
	MaxSizeMB int
	// MaxBackups is how many rotated files are kept. Default 1: the disk
	// holds at most (MaxBackups+1) × MaxSizeMB of audit log.
	MaxBackups int
	// QueueSize bounds the events waiting for the disk. Default 10000.
	QueueSize int
	// Logger receives write errors and drop counts. Default slog.Default().
	Logger *slog.Logger
}

// Log is an open audit log.
type Log struct {
	out     *lumberjack.Logger
	queue   chan *auditv1.Event
	log     *slog.Logger
	dropped atomic.Int64
	// lastWarn is when a drop was last logged (Unix ns).
	lastWarn atomic.Int64
	done     chan struct{}
	once     sync.Once
	mu       sync.RWMutex // held for reading by Write, for writing by Close
	closed   bool
}

// Open opens (creating) the log file and starts the writer.
func Open(cfg Config) (*Log, error) {
	if cfg.Path == "" {
		return nil, errors.New("audit: a log path is required")
	}
	if cfg.MaxSizeMB <= 0 {
		cfg.MaxSizeMB = 100
	}
	if cfg.MaxBackups <= 0 {
		cfg.MaxBackups = 1
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 10000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o700); err != nil {
		return nil, fmt.Errorf("audit: log directory: %w", err)
	}
	// Fail now, not at the first event, if the file cannot be written.
	f, err := os.OpenFile(cfg.Path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: open log: %w", err)
	}
	f.Close()
	l := &Log{out: &lumberjack.Logger{Filename: cfg.Path, MaxSize: cfg.MaxSizeMB, MaxBackups: cfg.MaxBackups},
		queue: make(chan *auditv1.Event, cfg.QueueSize), log: cfg.Logger.With("component", "audit"),
		done: make(chan struct{})}
	go l.run()
	return l, nil
}

// Write queues ev for the disk; it never blocks. An event that finds the
// queue full is dropped (and counted in Dropped).
func (l *Log) Write(ev *auditv1.Event) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return
	}
	select {
	case l.queue <- ev:
	default:
		n := l.dropped.Add(1)
		// Warn at the first drop, then at most every 10 s: a full queue
		// must not flood the log as well.
		now := time.Now().UnixNano()
		if last := l.lastWarn.Load(); n == 1 || now-last > int64(10*time.Second) && l.lastWarn.CompareAndSwap(last, now) {
			l.lastWarn.Store(now)
			l.log.Warn("audit queue full: events dropped", "dropped", n)
		}
	}
}

// Dropped is how many events were dropped because the queue was full.
func (l *Log) Dropped() int64 { return l.dropped.Load() }

func (l *Log) run() {
	defer close(l.done)
	for ev := range l.queue {
		b, err := json.Marshal(ev)
		if err != nil {
			l.log.Error("audit event not encodable", "err", err)
			continue
		}
		if _, err := l.out.Write(append(b, '\n')); err != nil {
			l.log.Error("audit log write failed", "err", err)
		}
	}
}

// Close writes what is queued and closes the file.
func (l *Log) Close() error {
	l.once.Do(func() {
		l.mu.Lock()
		l.closed = true
		close(l.queue)
		l.mu.Unlock()
	})
	<-l.done
	return l.out.Close()
}

// AtLeast says whether l records at least as much as min.
func AtLeast(l, min Level) bool { return rank(l) >= rank(min) }

func rank(l Level) int {
	switch l {
	case LevelMetadata:
		return 1
	case LevelRequest:
		return 2
	case LevelRequestResponse:
		return 3
	}
	return 0
}
