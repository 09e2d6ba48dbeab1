package logs

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
)

// dirBytes is what the regular files under dir hold.
func dirBytes(t *testing.T, dir string) int64 {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.Mode().IsRegular() {
			n += info.Size()
		}
	}
	return n
}

// TestLogFilesBounded writes a bounded 2 MiB through a log with 64 KiB
// files, 3 kept: the directory never holds more than the three files, the
// oldest go first, and OnChange follows every byte.
func TestLogFilesBounded(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "0.log")
	var held atomic.Int64
	const maxSize, maxFiles = 64 << 10, 3
	lf, err := Open(path, Options{MaxSize: maxSize, MaxFiles: maxFiles, OnChange: func(d int64) { held.Add(d) }})
	if err != nil {
		t.Fatal(err)
	}
	s := lf.Stream("stdout")
	line := []byte(strings.Repeat("z", 1000) + "\n")
	peak := int64(0)
	for range 2048 { // ~2 MiB of records: bounded
		s.Write(line)
		peak = max(peak, dirBytes(t, dir))
	}
	lf.Close()
	if peak > maxSize*maxFiles {
		t.Errorf("the log directory held %d bytes at its peak, over %d files of %d", peak, maxFiles, maxSize)
	}
	if got := len(rotatedPaths(path)); got != maxFiles-1 {
		t.Errorf("%d rotated files kept, want %d", got, maxFiles-1)
	}
	if got, want := held.Load(), dirBytes(t, dir); got != want {
		t.Errorf("OnChange counted %d bytes, the files hold %d", got, want)
	}
}

// TestLogFilesMaxTotal: a container's ephemeral-storage limit below
// MaxSize×MaxFiles bounds its log files together.
func TestLogFilesMaxTotal(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "0.log")
	const total = 100 << 10
	lf, err := Open(path, Options{MaxSize: 10 << 20, MaxFiles: 5, MaxTotal: total})
	if err != nil {
		t.Fatal(err)
	}
	s := lf.Stream("stderr")
	line := []byte(strings.Repeat("q", 500) + "\n")
	for range 2048 { // ~1 MiB: bounded
		s.Write(line)
		if got := dirBytes(t, dir); got > total {
			t.Fatalf("log files hold %d bytes, over MaxTotal %d", got, total)
		}
	}
	lf.Close()
	if len(rotatedPaths(path)) == 0 {
		t.Error("nothing rotated: MaxSize did not shrink to fit MaxTotal")
	}
}

func TestRemoveOldStarts(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"0.log", "0.log.20250101-000000.000000000", "1.log", "3.log",
		"3.log.20250101-000000.000000000", "4.log", "10.log", "notes.txt"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("12345"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Start 4 begins; start 3 is the previous one (2 never ran here: the
	// engine restarted), and 10 is newer than the current (not ours to
	// judge).
	freed := RemoveOldStarts(dir, 4)
	var left []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		left = append(left, e.Name())
	}
	if want := []string{"10.log", "3.log", "4.log", "notes.txt"}; !slices.Equal(left, want) {
		t.Errorf("left %v, want %v", left, want)
	}
	if freed != 4*5 {
		t.Errorf("freed %d bytes, want 20", freed)
	}
}
