package logs

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiffhq/skiff/internal/testutil"
)

// criLine is one record of a container log file, as the CRI format has it.
type criLine struct {
	stream, tag, text string
}

// readCRIFile parses a log file strictly: every line must be
// "<RFC3339Nano UTC> <stdout|stderr> <F|P> <text>" and end with a newline.
func readCRIFile(t *testing.T, path string) []criLine {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) == 0 {
		return nil
	}
	if b[len(b)-1] != '\n' {
		t.Fatalf("%s does not end with a newline: %q", path, b)
	}
	var out []criLine
	for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		f := strings.SplitN(l, " ", 4)
		if len(f) != 4 {
			t.Fatalf("malformed CRI line %q", l)
		}
		ts, err := time.Parse(time.RFC3339Nano, f[0])
		if err != nil || ts.Location() != time.UTC {
			t.Fatalf("CRI line %q: time %q is not RFC3339Nano UTC (%v)", l, f[0], err)
		}
		if f[1] != "stdout" && f[1] != "stderr" {
			t.Fatalf("CRI line %q: stream %q", l, f[1])
		}
		if f[2] != "F" && f[2] != "P" {
			t.Fatalf("CRI line %q: tag %q", l, f[2])
		}
		out = append(out, criLine{f[1], f[2], f[3]})
	}
	return out
}

// criAt formats one CRI record with a chosen time.
func criAt(ts time.Time, stream, tag, text string) string {
	return ts.UTC().Format(time.RFC3339Nano) + " " + stream + " " + tag + " " + text + "\n"
}

func writeLogFile(t *testing.T, path string, records ...string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(strings.Join(records, "")), 0o600); err != nil {
		t.Fatal(err)
	}
}

// readLogs runs a non-following reader over path.
func readLogs(t *testing.T, path string, opts corev1.PodLogOptions) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out bytes.Buffer
	r := Reader{Path: path, Options: opts, Running: func() bool { return false }, Poll: 5 * time.Millisecond}
	if err := r.Copy(ctx, &out); err != nil {
		t.Fatalf("copy: %v", err)
	}
	return out.String()
}

// logTestBuffer is a writer a following reader writes to while the test
// reads it.
type logTestBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *logTestBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *logTestBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func waitLogOutput(t *testing.T, buf *logTestBuffer, want string) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, func() error {
		if got := buf.String(); got != want {
			return fmt.Errorf("reader output %q, want %q", got, want)
		}
		return nil
	})
}

// followLogs starts a following reader on its own goroutine; the returned
// channel gets its result.
func followLogs(ctx context.Context, path string, opts corev1.PodLogOptions, running func() bool, out *logTestBuffer) <-chan error {
	opts.Follow = true
	done := make(chan error, 1)
	go func() {
		done <- Reader{Path: path, Options: opts, Running: running, Poll: 5 * time.Millisecond}.Copy(ctx, out)
	}()
	return done
}

func waitReaderDone(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("reader: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the following reader did not return after running() reported false")
	}
}

// rotatedPaths lists the files rotated from path, oldest first.
func rotatedPaths(path string) []string {
	var out []string
	for _, r := range listRotated(path) {
		out = append(out, r.path)
	}
	return out
}

func TestLogStreamWrite(t *testing.T) {
	long := strings.Repeat("x", maxLogLine)
	tests := []struct {
		name   string
		writes []string
		flush  bool
		want   []criLine
	}{
		{name: "lines in one write", writes: []string{"a\nb\n"},
			want: []criLine{{"stdout", "F", "a"}, {"stdout", "F", "b"}}},
		{name: "line split across writes", writes: []string{"hel", "lo wor", "ld\nnext\n"},
			want: []criLine{{"stdout", "F", "hello world"}, {"stdout", "F", "next"}}},
		{name: "empty line", writes: []string{"\n"}, want: []criLine{{"stdout", "F", ""}}},
		{name: "text keeps its spaces", writes: []string{"  two  spaces \n"}, want: []criLine{{"stdout", "F", "  two  spaces "}}},
		{name: "unterminated line waits", writes: []string{"done\npending"},
			want: []criLine{{"stdout", "F", "done"}}},
		{name: "unterminated line flushed as partial", writes: []string{"done\npending"}, flush: true,
			want: []criLine{{"stdout", "F", "done"}, {"stdout", "P", "pending"}}},
		{name: "flush with nothing pending writes nothing", writes: []string{"done\n"}, flush: true,
			want: []criLine{{"stdout", "F", "done"}}},
		{name: "line of exactly 16 KiB is one record", writes: []string{long + "\n"},
			want: []criLine{{"stdout", "F", long}}},
		{name: "long line is cut into partial records", writes: []string{long + long + "tail\n"},
			want: []criLine{{"stdout", "P", long}, {"stdout", "P", long}, {"stdout", "F", "tail"}}},
		{name: "long unterminated line is cut as it grows", writes: []string{long[:100], long, "rest"},
			want: []criLine{{"stdout", "P", long}}},
		{name: "long unterminated line then flush", writes: []string{long[:100], long, "rest"}, flush: true,
			want: []criLine{{"stdout", "P", long}, {"stdout", "P", long[:100] + "rest"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "0.log")
			lf, err := OpenFile(path, 10<<20)
			if err != nil {
				t.Fatal(err)
			}
			s := lf.Stream("stdout")
			for _, w := range tt.writes {
				n, err := s.Write([]byte(w))
				if n != len(w) || err != nil {
					t.Fatalf("Write(%d bytes) = %d, %v", len(w), n, err)
				}
			}
			if tt.flush {
				s.Flush()
			}
			if err := lf.Close(); err != nil {
				t.Fatal(err)
			}
			got := readCRIFile(t, path)
			if !slices.Equal(got, tt.want) {
				t.Errorf("records:\n got %s\nwant %s", summarize(got), summarize(tt.want))
			}
		})
	}
}

// summarize prints records with long texts shortened.
func summarize(recs []criLine) string {
	var b strings.Builder
	for _, r := range recs {
		text := r.text
		if len(text) > 20 {
			text = fmt.Sprintf("%s…(%d bytes)", text[:10], len(text))
		}
		fmt.Fprintf(&b, "[%s %s %q] ", r.stream, r.tag, text)
	}
	return b.String()
}

func TestLogStreamsKeepTheirOwnPartialLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	lf, err := OpenFile(path, 10<<20)
	if err != nil {
		t.Fatal(err)
	}
	out, errs := lf.Stream("stdout"), lf.Stream("stderr")
	out.Write([]byte("out-"))
	errs.Write([]byte("err-"))
	errs.Write([]byte("line\n"))
	out.Write([]byte("line\n"))
	errs.Write([]byte("dangling"))
	out.Flush()
	errs.Flush()
	lf.Close()
	want := []criLine{{"stderr", "F", "err-line"}, {"stdout", "F", "out-line"}, {"stderr", "P", "dangling"}}
	if got := readCRIFile(t, path); !slices.Equal(got, want) {
		t.Errorf("records %v, want %v", got, want)
	}
	// Writes after Close are dropped, not an error for the process.
	if n, err := out.Write([]byte("late\n")); n != 5 || err != nil {
		t.Errorf("Write after Close = %d, %v", n, err)
	}
	if got := readCRIFile(t, path); len(got) != 3 {
		t.Errorf("a write after Close reached the file: %v", got)
	}
}

func TestLogFileRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	const maxSize = 1000
	lf, err := OpenFile(path, maxSize)
	if err != nil {
		t.Fatal(err)
	}
	s := lf.Stream("stdout")
	const lines = 40
	text := func(i int) string { return fmt.Sprintf("line-%02d-%s", i, strings.Repeat("y", 100)) }
	for i := range lines {
		s.Write([]byte(text(i) + "\n"))
	}
	lf.Close()

	rotated := rotatedPaths(path)
	for _, p := range append(rotated, path) {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatalf("after rotations: %v", err)
		}
		if st.Size() > maxSize {
			t.Errorf("%s is %d bytes, over maxSize %d", p, st.Size(), maxSize)
		}
	}
	if len(rotated) != 4 {
		t.Errorf("rotation kept %d old files, want 4: the default 5 files in all", len(rotated))
	}
	var old []criLine
	for _, p := range rotated {
		old = append(old, readCRIFile(t, p)...)
	}
	cur := readCRIFile(t, path)
	if len(old) == 0 || len(cur) == 0 {
		t.Fatalf("old files have %d records, current %d: want both non-empty", len(old), len(cur))
	}
	// The files hold the newest records, contiguous and in order, the
	// current one ending with the last line written.
	all := append(old, cur...)
	first := lines - len(all)
	for i, r := range all {
		if want := text(first + i); r.text != want || r.tag != "F" {
			t.Fatalf("record %d is %q (%s), want %q", i, r.text, r.tag, want)
		}
	}
}

func TestLogFileRotationCountsExistingContent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	old := criAt(time.Now(), "stdout", "F", strings.Repeat("o", 950))
	writeLogFile(t, path, old)
	lf, err := OpenFile(path, 1000)
	if err != nil {
		t.Fatal(err)
	}
	s := lf.Stream("stdout")
	s.Write([]byte("new\n"))
	lf.Close()
	rotated := rotatedPaths(path)
	if len(rotated) != 1 {
		t.Fatalf("the existing content was not rotated out: rotated files %v", rotated)
	}
	b, err := os.ReadFile(rotated[0])
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != old {
		t.Errorf("rotated file holds %q, want the earlier content", b)
	}
	if got := readCRIFile(t, path); !slices.Equal(got, []criLine{{"stdout", "F", "new"}}) {
		t.Errorf("current file holds %v", got)
	}
}

func TestLogFileRecordLargerThanMaxSize(t *testing.T) {
	// A record bigger than maxSize still goes into a file (an empty one),
	// never lost and never rotating an empty file away.
	path := filepath.Join(t.TempDir(), "0.log")
	lf, err := OpenFile(path, 10)
	if err != nil {
		t.Fatal(err)
	}
	s := lf.Stream("stdout")
	s.Write([]byte("first-long-line\nsecond-long-line\n"))
	lf.Close()
	rotated := rotatedPaths(path)
	if len(rotated) != 1 {
		t.Fatalf("rotated files %v, want one", rotated)
	}
	if got := readCRIFile(t, rotated[0]); !slices.Equal(got, []criLine{{"stdout", "F", "first-long-line"}}) {
		t.Errorf("the rotated file holds %v", got)
	}
	if got := readCRIFile(t, path); !slices.Equal(got, []criLine{{"stdout", "F", "second-long-line"}}) {
		t.Errorf("current file holds %v", got)
	}
}

func TestLogReader(t *testing.T) {
	base := time.Date(2025, 3, 4, 5, 6, 7, 120000000, time.UTC)
	at := func(s int) time.Time { return base.Add(time.Duration(s) * time.Second) }
	stamp := func(s int) string { return at(s).Format(time.RFC3339Nano) }
	records := []string{
		criAt(at(0), "stdout", "F", "one"),
		criAt(at(1), "stderr", "F", "two"),
		"not a CRI line\n",
		criAt(at(2), "stdout", "P", "thr"),
		criAt(at(2), "stdout", "F", "ee"),
		criAt(at(3), "stdout", "F", "four"),
	}
	ptr := func(n int64) *int64 { return &n }
	since := func(s int) *metav1.Time { t := metav1.NewTime(at(s)); return &t }
	tests := []struct {
		name string
		opts corev1.PodLogOptions
		want string
	}{
		{name: "plain, both streams, partial rejoined", want: "one\ntwo\nthree\nfour\n"},
		{name: "tail 1", opts: corev1.PodLogOptions{TailLines: ptr(1)}, want: "four\n"},
		{name: "tail 0", opts: corev1.PodLogOptions{TailLines: ptr(0)}, want: ""},
		{name: "tail larger than the file", opts: corev1.PodLogOptions{TailLines: ptr(100)}, want: "one\ntwo\nthree\nfour\n"},
		{name: "timestamps", opts: corev1.PodLogOptions{Timestamps: true},
			want: stamp(0) + " one\n" + stamp(1) + " two\n"},
		{name: "sinceTime keeps records at and after it", opts: corev1.PodLogOptions{SinceTime: since(1)},
			want: "two\nthree\nfour\n"},
		{name: "sinceTime after everything", opts: corev1.PodLogOptions{SinceTime: since(60)}, want: ""},
		{name: "limitBytes cuts mid-line", opts: corev1.PodLogOptions{LimitBytes: ptr(6)}, want: "one\ntw"},
		{name: "limitBytes larger than the log", opts: corev1.PodLogOptions{LimitBytes: ptr(1000)}, want: "one\ntwo\nthree\nfour\n"},
		{name: "tail then limit", opts: corev1.PodLogOptions{TailLines: ptr(1), LimitBytes: ptr(2)}, want: "fo"},
		{name: "since then tail", opts: corev1.PodLogOptions{TailLines: ptr(3), SinceTime: since(3)}, want: "four\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "0.log")
			recs := records
			if tt.opts.Timestamps {
				recs = records[:2] // partial records are covered by TestLogReaderTimestampsOnRejoinedLine
			}
			writeLogFile(t, path, recs...)
			if got := readLogs(t, path, tt.opts); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLogReaderSinceSeconds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	now := time.Now()
	writeLogFile(t, path,
		criAt(now.Add(-2*time.Hour), "stdout", "F", "old"),
		criAt(now.Add(-time.Minute), "stdout", "F", "recent"))
	secs := int64(3600)
	if got := readLogs(t, path, corev1.PodLogOptions{SinceSeconds: &secs}); got != "recent\n" {
		t.Errorf("got %q, want %q", got, "recent\n")
	}
}

func TestLogReaderMissingFile(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := Reader{Path: filepath.Join(t.TempDir(), "none.log"), Running: func() bool { return false }}
	if err := r.Copy(ctx, &bytes.Buffer{}); err == nil {
		t.Fatal("reading a missing log file succeeded")
	}
}

func TestLogReaderTimestampsOnRejoinedLine(t *testing.T) {
	// The kubelet prefixes a timestamp only where a line starts: the records
	// continuing a partial line carry none.
	base := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	path := filepath.Join(t.TempDir(), "0.log")
	writeLogFile(t, path,
		criAt(base, "stdout", "P", "hel"),
		criAt(base.Add(time.Second), "stdout", "F", "lo"),
		criAt(base.Add(2*time.Second), "stdout", "F", "next"))
	want := base.Format(time.RFC3339Nano) + " hello\n" + base.Add(2*time.Second).Format(time.RFC3339Nano) + " next\n"
	if got := readLogs(t, path, corev1.PodLogOptions{Timestamps: true}); got != want {
		t.Errorf("logs.go emit: --timestamps prefixes every partial (P) record, splitting a rejoined line: got %q, want %q", got, want)
	}
}

func TestLogReaderIgnoresUnfinishedLastRecord(t *testing.T) {
	// A record still being written (no newline yet) is not emitted half.
	path := filepath.Join(t.TempDir(), "0.log")
	writeLogFile(t, path, criAt(time.Now(), "stdout", "F", "whole"), "2025-03-04T05:06:07Z stdout F hal")
	if got := readLogs(t, path, corev1.PodLogOptions{}); got != "whole\n" {
		t.Errorf("got %q, want %q", got, "whole\n")
	}
}

func TestLogReaderFollow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	lf, err := OpenFile(path, 10<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	out := lf.Stream("stdout")
	out.Write([]byte("old\nbefore\n"))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var alive atomic.Bool
	alive.Store(true)
	buf := &logTestBuffer{}
	one := int64(1)
	done := followLogs(ctx, path, corev1.PodLogOptions{TailLines: &one}, alive.Load, buf)

	waitLogOutput(t, buf, "before\n")
	out.Write([]byte("after 1\nafter "))
	out.Write([]byte("2\n"))
	waitLogOutput(t, buf, "before\nafter 1\nafter 2\n")
	select {
	case err := <-done:
		t.Fatalf("the reader returned (%v) while the container runs", err)
	default:
	}
	// What the container wrote before it stopped still arrives.
	out.Write([]byte("last\n"))
	alive.Store(false)
	waitReaderDone(t, done)
	if got, want := buf.String(), "before\nafter 1\nafter 2\nlast\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestLogReaderFollowStopsAtLimit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	writeLogFile(t, path, criAt(time.Now(), "stdout", "F", "abc"), criAt(time.Now(), "stdout", "F", "def"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The container runs on, but the limit ends the stream (the kubelet's
	// LimitedWriter fails the write that reaches it). A reader that asks
	// whether the container runs is following on past its limit.
	var followed atomic.Int32
	running := func() bool {
		followed.Add(1)
		return false // end the reader now, whatever it does
	}
	buf := &logTestBuffer{}
	limit := int64(4)
	waitReaderDone(t, followLogs(ctx, path, corev1.PodLogOptions{LimitBytes: &limit}, running, buf))
	if got := buf.String(); got != "abc\n" || followed.Load() != 0 {
		t.Errorf("limit at a record's end: got %q and %d running() calls, want %q and none", got, followed.Load(), "abc\n")
	}

	// The limit reached inside the last record.
	followed.Store(0)
	buf = &logTestBuffer{}
	limit = 5
	waitReaderDone(t, followLogs(ctx, path, corev1.PodLogOptions{LimitBytes: &limit}, running, buf))
	if got := buf.String(); got != "abc\nd" {
		t.Fatalf("got %q, want %q", got, "abc\nd")
	}
	if followed.Load() != 0 {
		t.Errorf("logs.go limitWriter: a limit reached by cutting the last record returns no error, so follow goes on (kubectl logs -f --limit-bytes hangs on a quiet container)")
	}
}

// rotationLine is big enough that four records fit in 1000 bytes and five
// do not (a record is 20-30 bytes of time, 10 of stream and tag, the text
// and a newline).
func rotationLine(i int) string { return fmt.Sprintf("%d-%s", i, strings.Repeat("r", 198)) }

func TestLogReaderFollowAcrossRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	lf, err := OpenFile(path, 1000)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	out := lf.Stream("stdout")
	want := ""
	write := func(i int) {
		out.Write([]byte(rotationLine(i) + "\n"))
		want += rotationLine(i) + "\n"
	}
	write(0)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var alive atomic.Bool
	alive.Store(true)
	buf := &logTestBuffer{}
	done := followLogs(ctx, path, corev1.PodLogOptions{}, alive.Load, buf)
	waitLogOutput(t, buf, want)
	for i := 1; i <= 3; i++ {
		write(i)
	}
	waitLogOutput(t, buf, want)
	if len(rotatedPaths(path)) > 0 {
		t.Fatal("rotated before the file was full: the test's sizes are wrong")
	}
	write(4)
	if len(rotatedPaths(path)) == 0 {
		t.Fatal("the fifth record did not rotate the file")
	}
	write(5)
	waitLogOutput(t, buf, want)
	alive.Store(false)
	waitReaderDone(t, done)
	if got := buf.String(); got != want {
		t.Errorf("got %d bytes, want %d: every line once, in order", len(got), len(want))
	}
}

func TestLogReaderFollowRotationJustBeforeExit(t *testing.T) {
	// The container writes its last lines, which rotate the file, and exits
	// between two polls: the reader must still deliver them.
	path := filepath.Join(t.TempDir(), "0.log")
	lf, err := OpenFile(path, 300)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	out := lf.Stream("stdout")
	out.Write([]byte(rotationLine(0) + "\n"))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	calls := 0
	running := func() bool {
		calls++
		if calls == 1 {
			out.Write([]byte(rotationLine(1) + "\n")) // rotates: the file now holds only this line
			if len(rotatedPaths(path)) == 0 {
				t.Error("the write did not rotate the file")
			}
		}
		return false
	}
	var buf bytes.Buffer
	r := Reader{Path: path, Options: corev1.PodLogOptions{Follow: true}, Running: running, Poll: 5 * time.Millisecond}
	if err := r.Copy(ctx, &buf); err != nil {
		t.Fatal(err)
	}
	want := rotationLine(0) + "\n" + rotationLine(1) + "\n"
	if got := buf.String(); got != want {
		t.Errorf("logs.go copy: follow returns on !running after draining only the old (rotated) file; %d of %d bytes delivered, the line written to the new file is lost", len(got), len(want))
	}
}
