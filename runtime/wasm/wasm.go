// Package wasm runs WebAssembly modules as skiff workloads on wazero.
//
// This first piece runs WASI preview1 commands: a module that exports
// `_start` runs like a process, with argv, environ, pre-opened directories,
// stdio and an exit code, which is how a pod's container maps onto Wasm (see
// "Wasm workload contract" in DESIGN.md). The node agent, images and HTTP
// serving build on it.
//
// A [Runtime] owns one wazero runtime and compiles each distinct module once
// ([Runtime.Compile]); every [Runtime.Run] is a fresh, anonymous instance of a
// compiled [Module], so any number of Runs of one module can execute at once.
//
// # Isolation
//
// A guest has no ambient authority: it sees its argv, its environ, its
// stdio, the directories mounted for it and nothing else of the host. It gets
// the host's wall and monotonic clocks, a real nanosleep and crypto/rand as
// its random source. A trap, an infinite loop, or a guest that grows its
// memory past its limit ends only its own Run with an [ExitStatus]; the host
// and other Runs carry on.
//
// # Threading
//
// All methods of Runtime are safe for concurrent use. Run executes the guest
// on the calling goroutine, locked to its thread when the run has a CPU, or
// on a thread of its own when that CPU's limit is enforced (see CPU), and
// returns when the guest is gone.
package wasm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/tetratelabs/wazero"

	"github.com/skiffhq/skiff/runtime/wasm/internal/wasisock"
)

// Errors returned by this package. Compare with errors.Is; the returned
// errors wrap these with details.
var (
	// ErrClosed means the Runtime was closed: nothing more can be compiled or
	// run on it. Make a new Runtime.
	ErrClosed = errors.New("wasm: runtime closed")

	// ErrCompile means the bytes are not a module this runtime can run
	// (malformed, invalid, or using a feature that is not enabled).
	// Compiling the same bytes again fails again.
	ErrCompile = errors.New("wasm: module does not compile")

	// ErrNotCommand means the module exports no `_start` function of type
	// () -> (), so it is not a WASI command (it may be a reactor). Nothing ran.
	ErrNotCommand = errors.New("wasm: module is not a WASI command")

	// ErrForeignModule means the Module passed to Run was compiled by another
	// Runtime. Compile it on this Runtime first. Nothing ran.
	ErrForeignModule = errors.New("wasm: module belongs to another runtime")

	// ErrInvalidSpec means the RunSpec was rejected before anything ran
	// (a bad environment entry, a mount whose host path is not a directory,
	// a negative memory limit...). Fix the spec; retrying as is fails again.
	ErrInvalidSpec = errors.New("wasm: invalid run spec")

	// ErrInstantiate means the module could not be instantiated, for
	// example because it imports a host function this runtime does not
	// provide. The guest's code did not run.
	ErrInstantiate = errors.New("wasm: module does not instantiate")
)

// Config of a Runtime. Zero values take documented defaults.
type Config struct {
	// CacheDir is where wazero keeps compiled machine code between process
	// restarts (wazero.NewCompilationCacheWithDir), so a restarted node
	// compiles nothing it compiled before. It is created if missing. The
	// default "" keeps compiled code in memory only.
	//
	// The directory must not be shared with other writers than Runtimes of
	// this program: wazero trusts its content (it is executable code).
	CacheDir string

	// Logger receives debug records about compilations. The default
	// discards them: a library does not write to the process's log unless
	// asked to.
	Logger *slog.Logger

	// KeepGOMAXPROCS stops the Runtime from raising GOMAXPROCS while
	// CPU-limited guests are busy. By default it adds one P per limited
	// guest inside a call (at most 8 per core), because a guest whose thread
	// the kernel throttles keeps its P while it waits for quota: without
	// the extra Ps, as many busy limited guests as GOMAXPROCS starve every
	// other goroutine of the program. Set it when the program manages
	// GOMAXPROCS itself. See CPU.
	KeepGOMAXPROCS bool
}

// Runtime compiles and runs Wasm modules. It holds one wazero runtime with
// WASI preview1 instantiated once, so a Run pays only for its own instance.
//
// The engine is wazero's optimising compiler where the platform supports it
// (amd64 and arm64), and wazero's interpreter elsewhere: wazero picks at
// New, and the interpreter is the only thing that runs everywhere.
type Runtime struct {
	log      *slog.Logger
	cacheDir string
	wr       wazero.Runtime
	cache    wazero.CompilationCache // nil without CacheDir
	base     wazero.ModuleConfig     // what every Run's config starts from

	// life is cancelled by Close; every Run and background compilation is
	// bound to it, so Close stops guests instead of pulling their runtime
	// out from under them.
	life   context.Context
	cancel context.CancelCauseFunc
	work   sync.WaitGroup // Runs and background compilations in flight

	mu      sync.Mutex
	closed  bool
	modules map[[32]byte]*compileCall

	// compileMu serialises calls into wazero's compiler. Each compilation
	// uses every core (wazero compilation workers), so running two at once
	// gains nothing on throughput and doubles the peak memory of compiling;
	// it also makes the on-disk cache evidence in CacheStats exact.
	compileMu sync.Mutex

	cpu cpuState // CPU limits (cpu.go)

	memoryHits atomic.Uint64
	diskHits   atomic.Uint64
	compiled   atomic.Uint64
}

// New returns a Runtime. Close it to release compiled code and instances.
func New(ctx context.Context, cfg Config) (*Runtime, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}

	// NewRuntimeConfig selects the compiler when the platform supports it
	// and falls back to the interpreter otherwise.
	rc := wazero.NewRuntimeConfig().
		// A cancelled context must stop a guest even in a loop that never
		// calls the host: the compiler then inserts termination checks.
		WithCloseOnContextDone(true)
	// The memory limit is deliberately not configured here: see
	// RunSpec.MemoryLimitBytes for why it is applied per instance instead.

	var cache wazero.CompilationCache
	if cfg.CacheDir != "" {
		var err error
		cache, err = wazero.NewCompilationCacheWithDir(cfg.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("wasm: compilation cache in %s: %w", cfg.CacheDir, err)
		}
		rc = rc.WithCompilationCache(cache)
	}

	wr := wazero.NewRuntimeWithConfig(ctx, rc)
	// WASI with this package's sockets and cancellable sleeps (wasisock).
	if _, err := wasisock.InstantiateWASI(ctx, wr); err != nil {
		_ = wr.Close(ctx)
		if cache != nil {
			_ = cache.Close(ctx)
		}
		return nil, fmt.Errorf("wasm: instantiate WASI preview1: %w", err)
	}
	// Messaging and key-value (app.go), for the guests whose spec has App.
	if err := instantiateApp(ctx, wr); err != nil {
		_ = wr.Close(ctx)
		if cache != nil {
			_ = cache.Close(ctx)
		}
		return nil, fmt.Errorf("wasm: %w", err)
	}

	life, cancel := context.WithCancelCause(context.Background())
	r := &Runtime{
		log:      log,
		cacheDir: cfg.CacheDir,
		wr:       wr,
		cache:    cache,
		base:     baseModuleConfig(),
		life:     life,
		cancel:   cancel,
		modules:  make(map[[32]byte]*compileCall),
	}
	r.cpu.keepProcs = cfg.KeepGOMAXPROCS
	return r, nil
}

// Close stops every Run in progress (they return with Reason "Killed"),
// waits for them and for background compilations until ctx ends, then
// releases all compiled code. Close is idempotent; after it, Compile and Run
// return ErrClosed.
func (r *Runtime) Close(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()

	r.cancel(ErrClosed)
	done := make(chan struct{})
	go func() {
		r.work.Wait()
		close(done)
	}()
	var errs []error
	select {
	case <-done:
	case <-ctx.Done():
		// Closing wazero below closes the remaining instances; a guest
		// blocked in a host write (its stdout writer) is what gets here.
		errs = append(errs, fmt.Errorf("wasm: close: waiting for runs: %w", ctx.Err()))
	}

	if err := r.wr.Close(ctx); err != nil {
		errs = append(errs, fmt.Errorf("wasm: close wazero runtime: %w", err))
	}
	if err := r.closeCPU(); err != nil {
		errs = append(errs, err)
	}
	if r.cache != nil {
		if err := r.cache.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("wasm: close compilation cache: %w", err))
		}
	}
	return errors.Join(errs...)
}

// begin registers one unit of work (a Run or a compilation) that Close must
// wait for; it fails once the Runtime is closed.
func (r *Runtime) begin() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	r.work.Add(1)
	return nil
}
