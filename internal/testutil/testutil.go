// Package testutil holds the helpers every skiff test shares: bounded polling
// instead of sleeps, a logger that writes through the test, and the
// process's resident memory.
package testutil

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
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

// Logger returns a logger for tests: quiet unless SKIFF_TEST_LOG is set, so a
// failing test can be rerun with the logs on.
func Logger(t testing.TB) *slog.Logger {
	if os.Getenv("SKIFF_TEST_LOG") == "" {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
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
