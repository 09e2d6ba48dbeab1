// Package testutil holds the helpers every skiff test shares: bounded polling
// instead of sleeps, a logger that writes through the test, and the
// process's resident memory.
package testutil

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Eventually calls fn until it returns nil or timeout passes, then fails the
// test with fn's last error. The loop is bounded by timeout; it polls every
// 10ms, backing off to 100ms.
func Eventually(t testing.TB, timeout time.Duration, fn func() error) {
	t.Helper()
	if err := Poll(timeout, fn); err != nil {
		t.Fatalf("not true after %v: %v", timeout, err)
	}
}

// Poll is Eventually without a test: it returns fn's last error on timeout.
func Poll(timeout time.Duration, fn func() error) error {
	deadline := time.Now().Add(timeout)
	wait := 10 * time.Millisecond
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(wait)
		wait = min(wait*2, 100*time.Millisecond)
	}
}

// Logger returns a logger for tests. With SKIFF_TEST_LOG set it writes
// through the test at debug level; otherwise it keeps the last
// keptLogLines lines (info and above) and prints them only if the test
// fails, so a failure seen once in CI comes with the logs that explain it.
func Logger(t testing.TB) *slog.Logger {
	if os.Getenv("SKIFF_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	r := &ringWriter{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the last %d log lines before the failure:\n%s", keptLogLines, r.String())
		}
	})
	return slog.New(slog.NewTextHandler(r, nil))
}

// keptLogLines bounds what a quiet test logger keeps.
const keptLogLines = 300

// ringWriter keeps the last keptLogLines writes (slog writes a line at a
// time). Components log from their own goroutines, also after the test
// ended, so it never calls into testing.T.
type ringWriter struct {
	mu    sync.Mutex
	lines []string
	next  int
}

func (r *ringWriter) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.lines) < keptLogLines {
		r.lines = append(r.lines, string(p))
	} else {
		r.lines[r.next] = string(p)
		r.next = (r.next + 1) % keptLogLines
	}
	return len(p), nil
}

func (r *ringWriter) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for i := range r.lines {
		b.WriteString(r.lines[(r.next+i)%len(r.lines)])
	}
	return b.String()
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// ErrNoProcStatus: the process's resident memory cannot be read here (no
// /proc/self/status). Tests that measure memory skip on it.
var ErrNoProcStatus = errors.New("no /proc/self/status to read the resident memory from")

// ResidentBytes is this process's resident memory (VmRSS) in bytes, as it
// stands.
func ResidentBytes() (int64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrNoProcStatus, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS %q: %w", v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("no VmRSS in /proc/self/status")
}
