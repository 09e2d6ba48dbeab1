package wasm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// guests are the Go test guests under testdata, built for wasip1 once per
// test binary by TestMain.
var guests = []string{"printenv", "exitcode", "trap", "membomb", "spin"}

var (
	guestBin = map[string][]byte{}
	// shared is the Runtime most tests use, so each Go guest is compiled
	// once per test binary (the slow part: ~0.7 s each).
	shared *Runtime
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "skiff-wasm-guests-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)

	// One go build for all guests: it builds and links them in parallel.
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	for _, g := range guests {
		args = append(args, "./testdata/"+g)
	}
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building test guests: %v\n%s", err, out)
		return 1
	}
	for _, g := range guests {
		b, err := os.ReadFile(filepath.Join(dir, g))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		guestBin[g] = b
	}

	shared, err = New(context.Background(), Config{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer shared.Close(context.Background())
	return m.Run()
}

// syncBuffer is a guest's output that the test reads while the guest runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// guest returns the compiled Go guest name on the shared Runtime.
func guest(tb testing.TB, name string) *Module {
	tb.Helper()
	mod, err := shared.Compile(context.Background(), guestBin[name])
	if err != nil {
		tb.Fatalf("compile %s: %v", name, err)
	}
	return mod
}

// compileTiny compiles a hand-assembled module on r.
func compileTiny(tb testing.TB, r *Runtime, bin []byte) *Module {
	tb.Helper()
	mod, err := r.Compile(context.Background(), bin)
	if err != nil {
		tb.Fatalf("compile: %v", err)
	}
	return mod
}

type output struct {
	stdout, stderr bytes.Buffer
}

func run(t *testing.T, mod *Module, spec RunSpec) (ExitStatus, *output) {
	t.Helper()
	return runCtx(t, context.Background(), shared, mod, spec)
}

func runCtx(t *testing.T, ctx context.Context, r *Runtime, mod *Module, spec RunSpec) (ExitStatus, *output) {
	t.Helper()
	out := &output{}
	spec.Stdout, spec.Stderr = &out.stdout, &out.stderr
	st, err := r.Run(ctx, mod, spec)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return st, out
}

// configDir makes a host directory holding message.txt, to mount at /config.
func configDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "message.txt"), []byte("hello from the host"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// checkGood runs printenv on the shared Runtime and checks it works: used
// after every misbehaving guest to show the Runtime is unharmed.
func checkGood(t *testing.T) {
	t.Helper()
	st, out := run(t, guest(t, "printenv"), RunSpec{
		Args: []string{"printenv"},
		Env:  []string{"GREETING=still alive"},
	})
	if st.Reason != ReasonCompleted || !strings.Contains(out.stdout.String(), "GREETING=still alive\n") {
		t.Fatalf("good run after a bad one: %+v\nstdout:\n%s\nstderr:\n%s", st, &out.stdout, &out.stderr)
	}
}

func wantStatus(t *testing.T, got ExitStatus, code int, reason string) {
	t.Helper()
	if got.Code != code || got.Reason != reason {
		t.Fatalf("status = %+v, want Code %d Reason %s", got, code, reason)
	}
}

func TestPrintenv(t *testing.T) {
	t.Parallel()
	st, out := run(t, guest(t, "printenv"), RunSpec{
		Args:     []string{"printenv", "a b", "c"},
		Env:      []string{"GREETING=hello", "EMPTY="},
		Hostname: "pod-a",
		Mounts:   []Mount{{HostPath: configDir(t), GuestPath: "/config", ReadOnly: true}},
	})
	wantStatus(t, st, 0, ReasonCompleted)
	if st.Message != "" {
		t.Errorf("Message = %q, want empty", st.Message)
	}
	want := `args=["printenv" "a b" "c"]
environ=["HOSTNAME=pod-a" "GREETING=hello" "EMPTY="]
GREETING=hello
HOSTNAME=pod-a
message=hello from the host
/etc/hostname: not visible
/config/../etc/hostname: not visible
../etc/hostname: not visible
`
	if got := out.stdout.String(); got != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", got, want)
	}
	if got := out.stderr.String(); got != "to stderr\n" {
		t.Errorf("stderr = %q, want %q", got, "to stderr\n")
	}
}

func TestHostnameOverriddenByEnv(t *testing.T) {
	t.Parallel()
	_, out := run(t, guest(t, "printenv"), RunSpec{
		Args:     []string{"printenv"},
		Env:      []string{"HOSTNAME=from-env", "GREETING=first", "GREETING=last"},
		Hostname: "pod-a",
	})
	for _, want := range []string{"HOSTNAME=from-env\n", "GREETING=last\n"} {
		if !strings.Contains(out.stdout.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, &out.stdout)
		}
	}
}

// TestNoAmbientAuthority: with no mounts and no env, the guest sees no host
// file and no host environment variable.
func TestNoAmbientAuthority(t *testing.T) {
	t.Parallel()
	st, out := run(t, guest(t, "printenv"), RunSpec{Args: []string{"printenv"}})
	wantStatus(t, st, 0, ReasonCompleted)
	got := out.stdout.String()
	for _, want := range []string{
		"environ=[]\n",
		"message error: ",
		"/etc/hostname: not visible\n",
		"/config/../etc/hostname: not visible\n",
		"../etc/hostname: not visible\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("stdout lacks %q:\n%s", want, got)
		}
	}
}

func TestReadOnlyMount(t *testing.T) {
	t.Parallel()
	mod := guest(t, "printenv")

	t.Run("read-only refuses", func(t *testing.T) {
		dir := configDir(t)
		st, out := run(t, mod, RunSpec{
			Args:   []string{"printenv", "write"},
			Mounts: []Mount{{HostPath: dir, GuestPath: "/config", ReadOnly: true}},
		})
		// The guest exits 3 if its write worked and 4 if it was refused.
		t.Logf("status: %+v, stderr: %s", st, &out.stderr)
		wantStatus(t, st, 4, ReasonError)
		if !strings.Contains(out.stderr.String(), "write failed (EROFS=true): ") {
			t.Errorf("stderr lacks the write error:\n%s", &out.stderr)
		}
		if _, err := os.Stat(filepath.Join(dir, "new.txt")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("new.txt on the host: err = %v, want not exist", err)
		}
	})

	t.Run("writable allows", func(t *testing.T) {
		dir := configDir(t)
		st, out := run(t, mod, RunSpec{
			Args:   []string{"printenv", "write"},
			Mounts: []Mount{{HostPath: dir, GuestPath: "/config"}},
		})
		wantStatus(t, st, 3, ReasonError)
		b, err := os.ReadFile(filepath.Join(dir, "new.txt"))
		if err != nil || string(b) != "written by the guest\n" {
			t.Errorf("new.txt on the host = %q, %v; stderr:\n%s", b, err, &out.stderr)
		}
	})
}

// TestSymlinkEscape: a guest cannot link its way out of a writable mount
// (wazero 1.12 alone lets it; see confinedFS), but can link inside it.
func TestSymlinkEscape(t *testing.T) {
	t.Parallel()
	dir := configDir(t)
	st, out := run(t, guest(t, "printenv"), RunSpec{
		Args:   []string{"printenv", "symlink"},
		Mounts: []Mount{{HostPath: dir, GuestPath: "/config"}},
	})
	wantStatus(t, st, 0, ReasonCompleted)
	got := out.stdout.String()
	for _, want := range []string{
		"symlink escape: symlink ../../../../../../../../etc/hostname /config/escape: Operation not permitted\n",
		"symlink alias: <nil>, read \"hello from the host\" <nil>\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("stdout lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "ESCAPED") {
		t.Error("the guest read a host file through its symlink")
	}
	if _, err := os.Lstat(filepath.Join(dir, "escape")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("escape link on the host: %v", err)
	}
}

func TestStdin(t *testing.T) {
	t.Parallel()
	_, out := run(t, guest(t, "printenv"), RunSpec{
		Args:  []string{"printenv", "stdin"},
		Stdin: strings.NewReader("line one\nline two\n"),
	})
	if !strings.HasSuffix(out.stdout.String(), "line one\nline two\n") {
		t.Errorf("stdout does not end with stdin:\n%s", &out.stdout)
	}
}

func TestExitCode(t *testing.T) {
	t.Parallel()
	mod := guest(t, "exitcode")
	for _, tc := range []struct {
		arg    string
		code   int
		reason string
	}{
		{"7", 7, ReasonError},
		{"0", 0, ReasonCompleted},
		{"1", 1, ReasonError},
		{"255", 255, ReasonError},
	} {
		st, _ := run(t, mod, RunSpec{Args: []string{"exitcode", tc.arg}})
		wantStatus(t, st, tc.code, tc.reason)
	}
}

// TestTraps: a Go panic and raw Wasm traps each end only their own Run.
func TestTraps(t *testing.T) {
	t.Parallel()

	t.Run("go panic", func(t *testing.T) {
		st, out := run(t, guest(t, "trap"), RunSpec{Args: []string{"trap"}})
		// The Go runtime prints the panic and exits 2.
		wantStatus(t, st, 2, ReasonError)
		if !strings.Contains(out.stderr.String(), "panic: guest panic on purpose") {
			t.Errorf("stderr lacks the panic:\n%s", &out.stderr)
		}
		checkGood(t)
	})

	for _, tc := range []struct {
		name    string
		module  []byte
		message string
	}{
		{"unreachable", tiny(tinySpec{body: []byte{opUnreachable}}), "unreachable"},
		{"out of bounds", tiny(tinySpec{memPages: 1, body: concat(i32Const(1<<16), []byte{opI32Load, 2, 0, opDrop})}), "out of bounds memory access"},
		{"stack overflow", tiny(tinySpec{body: []byte{opCall, 0}}), "stack overflow"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, _ := run(t, compileTiny(t, shared, tc.module), RunSpec{})
			t.Logf("status: %+v", st)
			wantStatus(t, st, ExitCodeTrap, ReasonError)
			if !strings.Contains(st.Message, tc.message) {
				t.Errorf("Message = %q, want it to mention %q", st.Message, tc.message)
			}
			checkGood(t)
		})
	}
}

func TestMemoryLimit(t *testing.T) {
	t.Parallel()

	t.Run("go membomb", func(t *testing.T) {
		const limit = 32 << 20
		st, out := run(t, guest(t, "membomb"), RunSpec{Args: []string{"membomb"}, MemoryLimitBytes: limit})
		t.Logf("status: %+v", st)
		wantStatus(t, st, ExitCodeKilled, ReasonOOMKilled)
		if !strings.Contains(st.Message, fmt.Sprintf("memory limit of %d bytes reached", limit)) ||
			!strings.Contains(st.Message, "guest exited with code 2") {
			t.Errorf("Message = %q", st.Message)
		}
		// It did get going before it hit the limit.
		if !strings.Contains(out.stdout.String(), "allocated 1 MiB") {
			t.Errorf("stdout:\n%s", &out.stdout)
		}
		checkGood(t)
	})

	// The limit is rounded down to whole pages: 2.5 pages allow 2.
	const limit = 2*pageSize + pageSize/2
	for _, tc := range []struct {
		name    string
		module  []byte
		code    int
		reason  string
		message string
	}{
		// Grows from 1 to 2 pages: within the limit.
		{"grow within limit", tiny(tinySpec{memPages: 1, body: concat(i32Const(1), []byte{opMemoryGrow, 0, opDrop})}),
			0, ReasonCompleted, ""},
		// memory.grow beyond the limit returns -1 to the guest, which
		// handles it and returns: it completed.
		{"refused grow handled", tiny(tinySpec{memPages: 1, body: concat(
			i32Const(2), []byte{opMemoryGrow, 0}, i32Const(-1), []byte{opI32Ne, opIf, blockEmpty, opUnreachable, opEnd})}),
			0, ReasonCompleted, ""},
		// Like a Rust guest: allocation failure aborts with a trap.
		{"refused grow then trap", tiny(tinySpec{memPages: 1, body: concat(i32Const(2), []byte{opMemoryGrow, 0, opDrop, opUnreachable})}),
			ExitCodeKilled, ReasonOOMKilled, "trapped: wasm error: unreachable"},
		// Needs more than the limit to start at all.
		{"initial memory over limit", tiny(tinySpec{memPages: 3, body: nil}),
			ExitCodeKilled, ReasonOOMKilled, "module needs 196608 bytes of linear memory to start"},
		// The same, with a memory the module does not export: caught by the
		// allocator instead of the pre-check.
		{"unexported initial memory over limit", tiny(tinySpec{memPages: 3, hideMemory: true, body: []byte{opUnreachable}}),
			ExitCodeKilled, ReasonOOMKilled, "initial memory exceeds the memory limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, _ := run(t, compileTiny(t, shared, tc.module), RunSpec{MemoryLimitBytes: limit})
			wantStatus(t, st, tc.code, tc.reason)
			if !strings.Contains(st.Message, tc.message) {
				t.Errorf("Message = %q, want it to contain %q", st.Message, tc.message)
			}
		})
	}
}

// TestLimitedMemory checks the Go-heap memory (other systems, and Linux's
// fallback): it never reserves more host memory than the limit and refuses
// to grow past it. memory_linux_test.go checks the mapped memory.
func TestLimitedMemory(t *testing.T) {
	a := &limitAllocator{limit: 10 * pageSize}
	lm := &heapMemory{alloc: a}
	buf := lm.Reallocate(pageSize)
	if len(buf) != pageSize {
		t.Fatalf("initial len %d", len(buf))
	}
	buf[0] = 42
	for pages := uint64(2); pages <= 10; pages++ {
		buf = lm.Reallocate(pages * pageSize)
		if uint64(len(buf)) != pages*pageSize || uint64(cap(buf)) > a.limit {
			t.Fatalf("%d pages: len %d cap %d, limit %d", pages, len(buf), cap(buf), a.limit)
		}
		if buf[0] != 42 || buf[len(buf)-1] != 0 {
			t.Fatalf("%d pages: content not preserved or not zeroed", pages)
		}
	}
	if a.refused {
		t.Fatal("refused within the limit")
	}
	if got := lm.Reallocate(11 * pageSize); got != nil || !a.refused || a.largestRefused != 11*pageSize {
		t.Fatalf("over the limit: len %d, refused %v, largest %d", len(got), a.refused, a.largestRefused)
	}
	lm.Free()
}

// TestSpinKilled: a guest in a loop that never calls the host stops when
// its context ends. (TestIsolationConcurrent covers a context deadline.)
func TestSpinKilled(t *testing.T) {
	t.Parallel()
	mod := guest(t, "spin")
	errStop := errors.New("stopped by the test")

	// The clock starts when the guest says it is spinning, so a slow start
	// (under the race detector) cannot end it before its loop.
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	started := make(chan struct{})
	go func() {
		select {
		case <-started:
			time.Sleep(200 * time.Millisecond)
			cancel(errStop)
		case <-ctx.Done():
		}
	}()

	done := make(chan ExitStatus, 1)
	go func() {
		st, err := shared.Run(ctx, mod, RunSpec{Args: []string{"spin"}, Stdout: &firstWrite{signal: started}})
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		done <- st
	}()
	select {
	case st := <-done:
		wantStatus(t, st, ExitCodeKilled, ReasonKilled)
		if st.Message != "stopped: "+errStop.Error() {
			t.Errorf("Message = %q", st.Message)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	checkGood(t)
}

// firstWrite closes signal on the first write to it.
type firstWrite struct {
	signal chan struct{}
	once   sync.Once
}

func (w *firstWrite) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.signal) })
	return len(p), nil
}

// TestCloseStopsRuns: closing a Runtime kills its Runs, then refuses work.
func TestCloseStopsRuns(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, err := New(ctx, Config{})
	if err != nil {
		t.Fatal(err)
	}
	// loop br 0 end: a loop that never ends.
	mod := compileTiny(t, r, tiny(tinySpec{body: []byte{opLoop, blockEmpty, opBr, 0, opEnd}}))

	const n = 3
	var started, finished sync.WaitGroup
	started.Add(n)
	finished.Add(n)
	statuses := make([]ExitStatus, n)
	for i := range n {
		go func() {
			defer finished.Done()
			started.Done()
			st, err := r.Run(ctx, mod, RunSpec{})
			if err != nil {
				t.Errorf("Run: %v", err)
			}
			statuses[i] = st
		}()
	}
	started.Wait()
	time.Sleep(50 * time.Millisecond) // let them get into the loop; the test holds either way

	closeCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := r.Close(closeCtx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	finished.Wait()
	for i, st := range statuses {
		if st.Reason != ReasonKilled || !strings.Contains(st.Message, ErrClosed.Error()) {
			t.Errorf("run %d: %+v, want Killed", i, st)
		}
	}
	if _, err := r.Run(ctx, mod, RunSpec{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Run after Close: %v, want ErrClosed", err)
	}
	if _, err := r.Compile(ctx, tiny(tinySpec{})); !errors.Is(err, ErrClosed) {
		t.Errorf("Compile after Close: %v, want ErrClosed", err)
	}
	if err := r.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestConcurrentRuns: 20 Runs of one module, released together, each see
// only their own args and environment.
func TestConcurrentRuns(t *testing.T) {
	t.Parallel()
	mod := guest(t, "printenv")
	const n = 20
	outs := make([]*output, n)
	statuses := make([]ExitStatus, n)
	errs := make([]error, n)
	release := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := &output{}
			<-release
			statuses[i], errs[i] = shared.Run(context.Background(), mod, RunSpec{
				Args:   []string{"printenv", fmt.Sprint(i)},
				Env:    []string{fmt.Sprintf("GREETING=hello %d", i)},
				Stdout: &out.stdout,
				Stderr: &out.stderr,
			})
			outs[i] = out
		}()
	}
	close(release)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("run %d: %v", i, errs[i])
		}
		wantStatus(t, statuses[i], 0, ReasonCompleted)
		got := outs[i].stdout.String()
		if !strings.Contains(got, fmt.Sprintf("args=[\"printenv\" \"%d\"]\n", i)) ||
			!strings.Contains(got, fmt.Sprintf("GREETING=hello %d\n", i)) {
			t.Errorf("run %d stdout:\n%s", i, got)
		}
	}
}

// TestIsolationConcurrent runs misbehaving guests beside good ones: each
// ends with its own status and the good ones are not disturbed.
func TestIsolationConcurrent(t *testing.T) {
	t.Parallel()
	type job struct {
		name   string
		mod    *Module
		spec   RunSpec
		ctx    context.Context
		reason string
		code   int
		msg    string // in Message
	}
	spinCtx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	jobs := []job{
		{name: "membomb", mod: guest(t, "membomb"), spec: RunSpec{Args: []string{"membomb"}, MemoryLimitBytes: 24 << 20}, reason: ReasonOOMKilled, code: ExitCodeKilled, msg: "memory limit of 25165824 bytes reached"},
		{name: "spin", mod: guest(t, "spin"), spec: RunSpec{Args: []string{"spin"}}, ctx: spinCtx, reason: ReasonKilled, code: ExitCodeKilled, msg: "deadline exceeded"},
		{name: "trap", mod: compileTiny(t, shared, tiny(tinySpec{body: []byte{opUnreachable}})), reason: ReasonError, code: ExitCodeTrap, msg: "unreachable"},
		{name: "panic", mod: guest(t, "trap"), spec: RunSpec{Args: []string{"trap"}}, reason: ReasonError, code: 2},
	}
	for i := range 6 {
		jobs = append(jobs, job{
			name: fmt.Sprintf("good %d", i), mod: guest(t, "printenv"),
			spec:   RunSpec{Args: []string{"printenv"}, Env: []string{fmt.Sprintf("GREETING=good %d", i)}},
			reason: ReasonCompleted,
		})
	}
	var wg sync.WaitGroup
	release := make(chan struct{})
	for _, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := j.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			var stdout bytes.Buffer
			j.spec.Stdout = &stdout
			<-release
			st, err := shared.Run(ctx, j.mod, j.spec)
			if err != nil {
				t.Errorf("%s: %v", j.name, err)
				return
			}
			if st.Reason != j.reason || st.Code != j.code || !strings.Contains(st.Message, j.msg) {
				t.Errorf("%s: %+v, want %s %d %q", j.name, st, j.reason, j.code, j.msg)
			}
			if j.reason == ReasonCompleted && !strings.Contains(stdout.String(), "GREETING="+j.name) {
				t.Errorf("%s: stdout:\n%s", j.name, &stdout)
			}
		}()
	}
	close(release)
	wg.Wait()
}

func TestErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	good := compileTiny(t, shared, tiny(tinySpec{}))

	t.Run("not wasm", func(t *testing.T) {
		if _, err := shared.Compile(ctx, []byte("not a module")); !errors.Is(err, ErrCompile) {
			t.Errorf("err = %v, want ErrCompile", err)
		}
	})
	t.Run("reactor", func(t *testing.T) {
		mod := compileTiny(t, shared, tiny(tinySpec{exportName: "_initialize"}))
		if _, err := shared.Run(ctx, mod, RunSpec{}); !errors.Is(err, ErrNotCommand) {
			t.Errorf("err = %v, want ErrNotCommand", err)
		}
	})
	t.Run("foreign module", func(t *testing.T) {
		other, err := New(ctx, Config{})
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close(ctx)
		if _, err := other.Run(ctx, good, RunSpec{}); !errors.Is(err, ErrForeignModule) {
			t.Errorf("err = %v, want ErrForeignModule", err)
		}
	})
	t.Run("unresolved import", func(t *testing.T) {
		mod := compileTiny(t, shared, tiny(tinySpec{importEnv: true}))
		if _, err := shared.Run(ctx, mod, RunSpec{}); !errors.Is(err, ErrInstantiate) {
			t.Errorf("err = %v, want ErrInstantiate", err)
		}
	})
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, spec := range map[string]RunSpec{
		"env without =":       {Env: []string{"NOEQUALS"}},
		"env empty key":       {Env: []string{"=v"}},
		"env NUL":             {Env: []string{"K=a\x00b"}},
		"arg NUL":             {Args: []string{"a\x00"}},
		"negative limit":      {MemoryLimitBytes: -1},
		"relative guest":      {Mounts: []Mount{{HostPath: t.TempDir(), GuestPath: "config"}}},
		"unclean guest":       {Mounts: []Mount{{HostPath: t.TempDir(), GuestPath: "/a/../config"}}},
		"duplicate guest":     {Mounts: []Mount{{HostPath: t.TempDir(), GuestPath: "/c"}, {HostPath: t.TempDir(), GuestPath: "/c"}}},
		"missing host path":   {Mounts: []Mount{{HostPath: filepath.Join(t.TempDir(), "nope"), GuestPath: "/c"}}},
		"host path not a dir": {Mounts: []Mount{{HostPath: file, GuestPath: "/c"}}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := shared.Run(ctx, good, spec); !errors.Is(err, ErrInvalidSpec) {
				t.Errorf("err = %v, want ErrInvalidSpec", err)
			}
		})
	}
	t.Run("cancelled compile", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		// Bytes no other test compiles, so the call cannot be a memory hit.
		bin := tiny(tinySpec{memPages: 7})
		if _, err := shared.Compile(cctx, bin); !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
		// The compilation went on and serves the next call.
		if _, err := shared.Compile(ctx, bin); err != nil {
			t.Error(err)
		}
	})
	t.Run("good still runs", func(t *testing.T) {
		st, err := shared.Run(ctx, good, RunSpec{})
		if err != nil || st.Reason != ReasonCompleted {
			t.Errorf("%+v, %v", st, err)
		}
	})
}

func BenchmarkRunPrintenv(b *testing.B) {
	b.Logf("GOMAXPROCS=%d", goruntime.GOMAXPROCS(0))
	mod := guest(b, "printenv")
	ctx := context.Background()
	spec := RunSpec{Args: []string{"printenv"}, Env: []string{"GREETING=bench"}}
	b.ReportAllocs()
	for b.Loop() {
		st, err := shared.Run(ctx, mod, spec)
		if err != nil || st.Reason != ReasonCompleted {
			b.Fatalf("%+v, %v", st, err)
		}
	}
}

// BenchmarkInstantiateTiny runs a module whose _start just returns, through
// Runtime.Run and, as the baseline to read it against, straight in wazero.
func BenchmarkInstantiateTiny(b *testing.B) {
	ctx := context.Background()
	bin := tiny(tinySpec{memPages: 1})

	b.Run("Runtime.Run", func(b *testing.B) {
		b.Logf("GOMAXPROCS=%d", goruntime.GOMAXPROCS(0))
		mod := compileTiny(b, shared, bin)
		b.ReportAllocs()
		for b.Loop() {
			st, err := shared.Run(ctx, mod, RunSpec{Args: []string{"tiny"}})
			if err != nil || st.Reason != ReasonCompleted {
				b.Fatalf("%+v, %v", st, err)
			}
		}
	})
	b.Run("Runtime.Run with limit", func(b *testing.B) {
		b.Logf("GOMAXPROCS=%d", goruntime.GOMAXPROCS(0))
		mod := compileTiny(b, shared, bin)
		b.ReportAllocs()
		for b.Loop() {
			st, err := shared.Run(ctx, mod, RunSpec{Args: []string{"tiny"}, MemoryLimitBytes: 1 << 20})
			if err != nil || st.Reason != ReasonCompleted {
				b.Fatalf("%+v, %v", st, err)
			}
		}
	})
	b.Run("wazero baseline", func(b *testing.B) {
		wr := wazero.NewRuntime(ctx)
		defer wr.Close(ctx)
		wasi_snapshot_preview1.MustInstantiate(ctx, wr)
		compiled, err := wr.CompileModule(ctx, bin)
		if err != nil {
			b.Fatal(err)
		}
		// wazero's defaults, as a plain embedder would use them.
		cfg := wazero.NewModuleConfig().WithName("").WithArgs("tiny")
		b.Logf("GOMAXPROCS=%d", goruntime.GOMAXPROCS(0))
		b.ReportAllocs()
		for b.Loop() {
			m, err := wr.InstantiateModule(ctx, compiled, cfg)
			if err != nil {
				b.Fatal(err)
			}
			_ = m.Close(ctx)
		}
	})
}
