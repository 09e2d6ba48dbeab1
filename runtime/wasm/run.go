package wasm

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental"
	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/experimental/sysfs"
	"github.com/tetratelabs/wazero/sys"

	skiffrt "github.com/skiffhq/skiff/runtime"
	"github.com/skiffhq/skiff/runtime/wasm/internal/wasisock"
)

// Reasons an ExitStatus gives, named as Kubernetes names a terminated
// container's reason.
const (
	// ReasonCompleted: the guest exited with code 0 (or returned from _start).
	ReasonCompleted = "Completed"
	// ReasonError: the guest exited with a non-zero code, or trapped.
	ReasonError = "Error"
	// ReasonOOMKilled: the guest failed after its memory limit refused to
	// grow its linear memory.
	ReasonOOMKilled = "OOMKilled"
	// ReasonKilled: the Run's context ended (or the Runtime closed) before
	// the guest exited; the instance was closed where it stood.
	ReasonKilled = "Killed"
)

// Exit codes reported for guests that did not choose their own, following
// what a kubectl user sees for a Linux container dying the same way.
const (
	// ExitCodeKilled (128+SIGKILL) is reported for ReasonKilled and for
	// ReasonOOMKilled: Kubernetes reports 137 for an OOM-killed container
	// too. The code the guest itself exited with, if any, is in Message.
	ExitCodeKilled = 137
	// ExitCodeTrap (128+SIGSEGV) is reported for a trap (unreachable,
	// out-of-bounds access, stack overflow, ...): a trap is the sandbox's
	// equivalent of a fatal fault signal.
	ExitCodeTrap = 139
)

// maxMessage bounds ExitStatus.Message, as Kubernetes bounds a terminated
// container's message (4096 bytes); a trap's wasm stack trace can be long.
const maxMessage = 4096

// pageSize is the size of a Wasm memory page.
const pageSize = 65536

// RunSpec describes one run of a WASI command: what a container spec says.
// The zero value runs the module with no argv, no environ, no files, no
// stdin, discarded output and no memory limit beyond the module's own.
type RunSpec struct {
	// Args is argv; Args[0] is the program name, as in a container's
	// command. Empty means an empty argv: the node agent passes the
	// container's command.
	Args []string

	// Env is the environ as "KEY=VALUE" entries. A later entry for the same
	// key wins, as in a pod spec. Keys must be non-empty; nothing may
	// contain NUL.
	Env []string

	// Mounts are the only host files the guest can see, each a host
	// directory pre-opened at a guest path. See Mount for symbolic links.
	Mounts []Mount

	// Stdin is read by the guest's fd 0; nil reads as empty.
	Stdin io.Reader
	// Stdout and Stderr receive the guest's fd 1 and 2; nil discards.
	// Each is written only from the Run's goroutine.
	Stdout, Stderr io.Writer

	// MemoryLimitBytes caps the guest's linear memory, rounded down to whole
	// 64 KiB pages; 0 means no limit beyond the module's own maximum (up to
	// 4 GiB), which the node agent should not allow in production.
	//
	// How: wazero 1.12's RuntimeConfig.WithMemoryLimitPages is per runtime
	// and is applied when a module is decoded, so it is baked into the
	// compiled module; a per-pod limit that way would need a runtime and a
	// compilation per distinct limit. Instead each Run gets its own memory
	// allocator (experimental.WithMemoryAllocator, read from the context at
	// instantiation) that refuses to grow past the limit: memory.grow then
	// returns -1 to the guest, as the Wasm spec says a failed grow does.
	// The allocator never reserves more than the limit (no
	// WithMemoryCapacityFromMax, whose reservation on modules without a
	// declared maximum is the trap DESIGN.md warns about). On Linux it
	// reserves the limit as address space once and commits pages as the
	// guest grows, and gives the memory back to the system when the run
	// ends (see limitAllocator).
	//
	// A module whose initial memory already exceeds the limit is not
	// instantiated at all and ends OOMKilled.
	MemoryLimitBytes int64

	// Meter, when set, counts the guest's linear memory while it runs (see
	// Meter).
	Meter *Meter

	// Hostname is given to the guest as the environment variable HOSTNAME,
	// as Kubernetes does for containers, unless Env sets HOSTNAME itself.
	// WASI preview1 has no hostname call (Go's os.Hostname in a wasip1 guest
	// always says "wasip1"), so the environment is the only channel.
	Hostname string

	// Listeners are TCP sockets opened for the guest before it starts (the
	// container's ports), right after the pre-opened directories of Mounts,
	// in order. See Listener. An address that cannot be bound fails the Run
	// with ErrListen before the guest runs.
	Listeners []Listener

	// PodIP, when set, is the pod's address for the sockets the guest opens
	// itself (the WasmEdge sockets extension, package sdk/abi): a bind to
	// the wildcard or to localhost binds it, a connection to localhost
	// reaches it, and a connection to a loopback destination leaves from
	// it. "": the host's addresses, unchanged.
	PodIP string
	// DNS is the guest's resolver configuration: sock_getaddrinfo resolves
	// with it. Nil: the host's resolver.
	DNS *skiffrt.DNSConfig
	// Firewall, when set, is asked for every connection the guest's sockets
	// make or take (NetworkPolicy); nil allows everything.
	Firewall skiffrt.Firewall

	// CPU, when set, holds the guest to its limit and counts the guest's
	// CPU time (see CPU); nil runs the guest unlimited and unmeasured.
	CPU *CPU

	// App, when set, backs the host module "skiff" (messaging and
	// key-value, package sdk/abi) for this guest; its subscriptions and
	// watches end with the Run. Nil: those functions answer
	// StatusUnavailable.
	App skiffrt.AppServices

	// OnStart, when set, is called once the instance exists, just before
	// _start runs: the guest has started. A Run that fails to instantiate
	// (ErrInstantiate) never calls it.
	OnStart func()
	// noSpace counts the mounts' quota refusals for the WASI functions
	// (see quotaFS); set by Run and NewHandler.
	noSpace *wasisock.NoSpace
}

// Mount pre-opens a host directory for the guest.
//
// Symbolic links are resolved by the host kernel, relative to the host (this
// is how wazero 1.12 mounts directories): a link inside HostPath that points
// outside it would let the guest through, unlike a link in a container's
// volume, which resolves inside the container. So the host must not put such
// links in a mounted directory, and the guest may not create them: a guest's
// symlink whose target is absolute or contains ".." fails with EPERM (see
// confinedFS).
type Mount struct {
	// HostPath is a directory on the host; it must exist.
	HostPath string
	// GuestPath is the absolute path the guest sees it at.
	GuestPath string
	// ReadOnly refuses every change through this mount, with EROFS ("read-only
	// file system") as a readOnly volumeMount does.
	ReadOnly bool
	// Quota, when set on a writable mount, bounds what the guest may store
	// through it: a write, truncate or create that would take the directory
	// past it fails with ENOSPC and writes nothing past it (see quotaFS).
	Quota skiffrt.DiskQuota
	// NodeFiles marks the node's files for the guest (resolv.conf, hosts):
	// pre-opened after the Run's listeners rather than before them, so the
	// listeners keep their place right after the pod's volumes.
	NodeFiles bool
}

// ExitStatus is how a Run ended, in the terms of a terminated container.
type ExitStatus struct {
	// Code is the process exit code: 0 for success, the guest's own code
	// when it exited, ExitCodeTrap for a trap, ExitCodeKilled for
	// ReasonKilled and ReasonOOMKilled.
	Code int
	// Reason is one of ReasonCompleted, ReasonError, ReasonOOMKilled and
	// ReasonKilled.
	Reason string
	// Message says what happened for anything but a plain exit: the trap
	// and its wasm stack trace, the memory limit that was hit, or why the
	// guest was stopped. At most 4096 bytes.
	Message string
}

// Run instantiates mod as a WASI command, runs its `_start` on the calling
// goroutine, and returns when the guest exits, traps, fails on its memory
// limit, or ctx ends: then the instance is closed wherever it stands, even in
// a loop that never calls the host, and Run reports ReasonKilled.
//
// Whatever the guest does ends up in the ExitStatus with a nil error. An error
// means the guest never ran: the module is not a command (ErrNotCommand) or
// not this Runtime's (ErrForeignModule), the spec is invalid
// (ErrInvalidSpec), the module could not be instantiated (ErrInstantiate), or
// the Runtime is closed (ErrClosed).
func (r *Runtime) Run(ctx context.Context, mod *Module, spec RunSpec) (ExitStatus, error) {
	if mod == nil || mod.r != r {
		return ExitStatus{}, ErrForeignModule
	}
	if !mod.command {
		return ExitStatus{}, fmt.Errorf("wasm: run %s: %w", mod.digest, ErrNotCommand)
	}
	spec.noSpace = new(wasisock.NoSpace)
	mc, err := r.moduleConfig(spec)
	if err != nil {
		return ExitStatus{}, fmt.Errorf("wasm: run %s: %w", mod.digest, err)
	}
	if err := r.begin(); err != nil {
		return ExitStatus{}, err
	}
	defer r.work.Done()

	// Close of the Runtime stops this Run like the end of its own ctx.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(r.life, func() { cancel(ErrClosed) })
	defer stop()
	// The guest's sockets live in ctx, where the WASI functions find them.
	ctx, closeSockets, err := openSockets(ctx, spec)
	if err != nil {
		return ExitStatus{}, fmt.Errorf("wasm: run %s: %w", mod.digest, err)
	}
	defer closeSockets()
	ctx = wasisock.WithNoSpace(ctx, spec.noSpace)
	ctx, app := withApp(ctx, spec.App)
	defer app.close()

	mem, st, ok := newAllocator(mod, spec.MemoryLimitBytes, spec.Meter)
	if !ok {
		return st, nil
	}
	ctx = experimental.WithMemoryAllocator(ctx, mem)
	// The guest runs on its memory until Run returns: a Free before that
	// (wazero's Runtime.Close from another goroutine) must not unmap it.
	// Deferred first, so that it runs after the instance's Close below.
	mem.enter()
	defer mem.leave()

	// Start functions are disabled in the module config so that the
	// instance exists before the guest runs: the memory check above has a
	// second line in the allocator for memories the module does not export.
	inst, err := r.wr.InstantiateModule(ctx, mod.compiled, mc)
	if err != nil {
		var exit *sys.ExitError
		if errors.As(err, &exit) || ctx.Err() != nil {
			// A Wasm start section exited, trapped or was stopped.
			return classify(ctx, err, mem), nil
		}
		return ExitStatus{}, fmt.Errorf("wasm: run %s: %w: %w", mod.digest, ErrInstantiate, err)
	}
	// Closing after a proc_exit or a cancellation is a no-op; after a trap
	// or a return from _start it frees the instance.
	defer func() { _ = inst.Close(context.Background()) }()

	if mem.refused {
		return ExitStatus{
			Code:    ExitCodeKilled,
			Reason:  ReasonOOMKilled,
			Message: fmt.Sprintf("module's initial memory exceeds the memory limit of %d bytes", mem.limit),
		}, nil
	}

	if spec.OnStart != nil {
		spec.OnStart()
	}
	start := inst.ExportedFunction("_start")
	spec.CPU.run(func() { _, err = start.Call(ctx) })
	return classify(ctx, err, mem), nil
}

// newAllocator is the memory allocator of one instance of mod under a limit
// of limitBytes (0: none). ok is false, with the ExitStatus to report, when
// the module's initial memory is already over the limit.
func newAllocator(mod *Module, limitBytes int64, meter *Meter) (mem *limitAllocator, st ExitStatus, ok bool) {
	var limit uint64
	if limitBytes > 0 {
		limitPages := uint64(limitBytes) / pageSize
		if uint64(mod.minPages) > limitPages {
			return nil, ExitStatus{
				Code:   ExitCodeKilled,
				Reason: ReasonOOMKilled,
				Message: fmt.Sprintf("module needs %d bytes of linear memory to start; memory limit is %d bytes",
					uint64(mod.minPages)*pageSize, limitPages*pageSize),
			}, false
		}
		limit = limitPages * pageSize
	}
	// An allocator also without a limit: its memory is returned to the
	// system when the instance ends, and metered.
	return &limitAllocator{limit: limit, meter: meter}, ExitStatus{}, true
}

// oomMessage says why an instance was OOMKilled.
func oomMessage(mem *limitAllocator, how string) string {
	if mem.hostRefused {
		return fmt.Sprintf("the node could not provide memory (memory.grow to %d bytes refused by the host); guest %s",
			mem.largestRefused, how)
	}
	return fmt.Sprintf("memory limit of %d bytes reached (memory.grow to %d bytes refused); guest %s",
		mem.limit, mem.largestRefused, how)
}

// classify turns how _start ended into an ExitStatus.
func classify(ctx context.Context, err error, mem *limitAllocator) ExitStatus {
	if err == nil {
		// _start returned without proc_exit: a command that just ends.
		return ExitStatus{Code: 0, Reason: ReasonCompleted}
	}
	var exit *sys.ExitError
	isExit := errors.As(err, &exit)
	if isExit {
		switch exit.ExitCode() {
		case 0:
			// A guest that handled a refused grow and exited 0 completed.
			return ExitStatus{Code: 0, Reason: ReasonCompleted}
		case sys.ExitCodeContextCanceled, sys.ExitCodeDeadlineExceeded:
			return ExitStatus{Code: ExitCodeKilled, Reason: ReasonKilled, Message: killMessage(ctx, err)}
		}
	}
	// The limit refused a grow and the guest then failed: whatever way it
	// failed (Go's runtime exits 2 with "out of memory", Rust aborts with a
	// trap), running out of memory is why. Tracking the refusal in the
	// allocator is exact, where matching a guest runtime's fatal message on
	// stderr would depend on each language's wording.
	if mem != nil && mem.refused {
		how := "trapped: " + firstLine(err.Error())
		if isExit {
			how = fmt.Sprintf("exited with code %d", exit.ExitCode())
		}
		return ExitStatus{Code: ExitCodeKilled, Reason: ReasonOOMKilled, Message: oomMessage(mem, how)}
	}
	if ctx.Err() != nil {
		// Stopped in a way wazero did not report as a cancellation: a trap,
		// or a guest that saw its blocked call fail once the Run ended
		// (an accept on a listener being closed) and exited on its own
		// before wazero closed it. The Run was stopped either way.
		return ExitStatus{Code: ExitCodeKilled, Reason: ReasonKilled, Message: killMessage(ctx, err)}
	}
	if isExit {
		return ExitStatus{Code: int(exit.ExitCode()), Reason: ReasonError}
	}
	return ExitStatus{Code: ExitCodeTrap, Reason: ReasonError, Message: truncate(err.Error())}
}

func killMessage(ctx context.Context, err error) string {
	if cause := context.Cause(ctx); cause != nil {
		return "stopped: " + cause.Error()
	}
	return "stopped: " + err.Error()
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// truncate cuts s to maxMessage bytes without splitting a UTF-8 sequence.
func truncate(s string) string {
	if len(s) <= maxMessage {
		return s
	}
	return strings.ToValidUTF8(s[:maxMessage], "")
}

// listenerPlaceholder holds a listener's descriptor number in wazero's
// table of pre-opens. It is a type of its own because wazero drops mounts of
// a bare UnimplementedFS.
//
// Calls that name a listener in a parameter other than the first (the
// directory of path_symlink, path_link's and path_rename's second
// directory) reach it: it has nothing to open, which wazero's lazily
// opened pre-opens take for a directory that is gone (ENOENT; any other
// error there is a host panic, found by FuzzHostileGuest).
type listenerPlaceholder struct {
	experimentalsys.UnimplementedFS
}

// OpenFile implements experimentalsys.FS.
func (listenerPlaceholder) OpenFile(string, experimentalsys.Oflag, fs.FileMode) (experimentalsys.File, experimentalsys.Errno) {
	return nil, experimentalsys.ENOENT
}

// mountFS is the file system the guest sees for m.
func mountFS(m Mount, ns *wasisock.NoSpace) (experimentalsys.FS, error) {
	fi, err := os.Stat(m.HostPath)
	if err != nil {
		return nil, fmt.Errorf("%w: mount %q: %w", ErrInvalidSpec, m.GuestPath, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%w: mount %q: host path %s is not a directory", ErrInvalidSpec, m.GuestPath, m.HostPath)
	}
	var dir experimentalsys.FS = confinedFS{sysfs.DirFS(m.HostPath)}
	if m.ReadOnly {
		dir = readOnlyFS{&sysfs.ReadFS{FS: dir}}
	} else if m.Quota != nil {
		dir = quotaFS{FS: dir, q: m.Quota, ns: ns}
	}
	return dir, nil
}

// baseModuleConfig is the part of every instance's configuration that does
// not depend on the RunSpec.
func baseModuleConfig() wazero.ModuleConfig {
	return wazero.NewModuleConfig().
		// Anonymous: wazero refuses two live instances with one name, and a
		// module's own name section would otherwise name it.
		WithName("").
		// Run calls _start itself, after checking the instance.
		WithStartFunctions().
		// wazero's defaults are a fake clock and a no-op sleep, which
		// break time-based code; the host's clocks reveal nothing.
		WithSysWalltime().
		WithSysNanotime().
		WithSysNanosleep().
		// wazero's default source is deterministic; crypto/rand gives real
		// randomness without seeding a generator per instance.
		WithRandSource(rand.Reader)
}

// moduleConfig builds the instance configuration for spec, validating it so
// that a bad spec fails with ErrInvalidSpec rather than inside wazero.
func (r *Runtime) moduleConfig(spec RunSpec) (wazero.ModuleConfig, error) {
	if spec.MemoryLimitBytes < 0 {
		return nil, fmt.Errorf("%w: negative memory limit %d", ErrInvalidSpec, spec.MemoryLimitBytes)
	}
	for _, a := range spec.Args {
		if strings.IndexByte(a, 0) >= 0 {
			return nil, fmt.Errorf("%w: argument %q contains NUL", ErrInvalidSpec, a)
		}
	}
	if err := validateListeners(spec.Listeners); err != nil {
		return nil, err
	}
	mc := r.base.WithArgs(spec.Args...)

	if spec.Hostname != "" {
		// First, so that an explicit HOSTNAME in Env overrides it.
		mc = mc.WithEnv("HOSTNAME", spec.Hostname)
	}
	for _, kv := range listenerEnv(spec) {
		k, v, _ := strings.Cut(kv, "=")
		mc = mc.WithEnv(k, v)
	}
	for _, kv := range spec.Env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%w: environment entry %q is not KEY=VALUE", ErrInvalidSpec, kv)
		}
		if strings.IndexByte(kv, 0) >= 0 {
			return nil, fmt.Errorf("%w: environment entry %q contains NUL", ErrInvalidSpec, k)
		}
		mc = mc.WithEnv(k, v)
	}

	if len(spec.Mounts) > 0 || len(spec.Listeners) > 0 {
		// wazero's FSConfig implementation also offers WithSysFSMount
		// (documented in experimental/sysfs), which readOnlyFS needs.
		fsc := wazero.NewFSConfig().(sysfs.FSConfig)
		seen := make(map[string]bool, len(spec.Mounts))
		var nodeFiles []Mount
		for _, m := range spec.Mounts {
			if !path.IsAbs(m.GuestPath) || path.Clean(m.GuestPath) != m.GuestPath {
				return nil, fmt.Errorf("%w: mount guest path %q is not a clean absolute path", ErrInvalidSpec, m.GuestPath)
			}
			if seen[m.GuestPath] {
				return nil, fmt.Errorf("%w: two mounts at guest path %q", ErrInvalidSpec, m.GuestPath)
			}
			seen[m.GuestPath] = true
			if m.NodeFiles {
				nodeFiles = append(nodeFiles, m)
				continue
			}
			dir, err := mountFS(m, spec.noSpace)
			if err != nil {
				return nil, err
			}
			fsc = fsc.WithSysFSMount(dir, m.GuestPath).(sysfs.FSConfig)
		}
		// The listeners' descriptors come next. wazero numbers pre-opens
		// in order and has no other way to keep a number free, so each
		// listener holds its place with a pre-open that the socket
		// functions answer for (package wasisock): the guest never reaches
		// what is behind it.
		for i := range spec.Listeners {
			fsc = fsc.WithSysFSMount(listenerPlaceholder{}, fmt.Sprintf("/.skiff/listener-%d", i)).(sysfs.FSConfig)
		}
		for _, m := range nodeFiles {
			dir, err := mountFS(m, spec.noSpace)
			if err != nil {
				return nil, err
			}
			fsc = fsc.WithSysFSMount(dir, m.GuestPath).(sysfs.FSConfig)
		}
		mc = mc.WithFSConfig(fsc.(wazero.FSConfig))
	}

	if spec.Stdin != nil {
		mc = mc.WithStdin(spec.Stdin)
	}
	if spec.Stdout != nil {
		mc = mc.WithStdout(spec.Stdout)
	}
	if spec.Stderr != nil {
		mc = mc.WithStderr(spec.Stderr)
	}
	return mc, nil
}
