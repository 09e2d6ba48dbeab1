package wasm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	skiffrt "github.com/skiffhq/skiff/runtime"
	"github.com/skiffhq/skiff/runtime/image"
	"github.com/skiffhq/skiff/runtime/wasm/internal/terminal"
)

// PodConfig configures the node agent's face of a Runtime.
type PodConfig struct {
	// Images is the node's module store. Required.
	Images *image.Store
	// Resolve, when set, rewrites a pod's image reference before the pull:
	// the agent points names the embedded registry holds at it. It returns
	// the reference unchanged when it has nothing better.
	Resolve func(ctx context.Context, ref string) (string, error)
}

// PodRuntime is a Runtime seen through the node agent's interface
// (runtime.Runtime): images from the module store, containers as WASI
// commands, each start a new instance of the compiled module.
type PodRuntime struct {
	rt  *Runtime
	cfg PodConfig

	mu      sync.Mutex
	modules map[string]*Module // by image ID

	cpus podCPUs // containers' CPUs (podcpu.go)
}

var _ skiffrt.Runtime = (*PodRuntime)(nil)

// NewPodRuntime wraps rt. Closing the PodRuntime closes rt.
func NewPodRuntime(rt *Runtime, cfg PodConfig) (*PodRuntime, error) {
	if cfg.Images == nil {
		return nil, errors.New("wasm: PodConfig.Images is required")
	}
	return &PodRuntime{rt: rt, cfg: cfg, modules: map[string]*Module{}}, nil
}

// Name is the RuntimeClass handler: "wasm".
func (p *PodRuntime) Name() string { return "wasm" }

// Version is "wazero://<version>" from the build's module information.
func (p *PodRuntime) Version() string { return "wazero://" + WazeroVersion() }

// WazeroVersion is the wazero module version this binary was built with.
func WazeroVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/tetratelabs/wazero" {
				if d.Replace != nil {
					return d.Replace.Version
				}
				return d.Version
			}
		}
	}
	return "unknown"
}

// Runtime is the wrapped wazero runtime.
func (p *PodRuntime) Runtime() *Runtime { return p.rt }

// Pull resolves and fetches the module, then compiles it (from the
// compilation cache when it was compiled before), so that Start costs only
// an instantiation.
func (p *PodRuntime) Pull(ctx context.Context, ref string, policy corev1.PullPolicy, secrets []corev1.Secret) (skiffrt.Image, error) {
	if p.cfg.Resolve != nil {
		r, err := p.cfg.Resolve(ctx, ref)
		if err != nil {
			return skiffrt.Image{}, fmt.Errorf("resolve %s: %w", ref, err)
		}
		ref = r
	}
	kc, err := image.Keychain(secrets)
	if err != nil {
		return skiffrt.Image{}, fmt.Errorf("image pull secrets: %w", err)
	}
	pulled := true
	img, err := p.cfg.Images.Pull(ctx, ref, corev1.PullNever, kc)
	if err == nil && policy != corev1.PullAlways {
		pulled = false
	} else {
		img, err = p.cfg.Images.Pull(ctx, ref, policy, kc)
	}
	if err != nil {
		return skiffrt.Image{}, pullError(err)
	}
	bin, err := p.cfg.Images.Module(img)
	if err != nil {
		return skiffrt.Image{}, pullError(err)
	}
	mod, err := p.rt.Compile(ctx, bin)
	if err != nil {
		return skiffrt.Image{}, fmt.Errorf("compile %s: %w", ref, err)
	}
	p.mu.Lock()
	p.modules[img.Digest] = mod
	p.mu.Unlock()
	return skiffrt.Image{Ref: ref, ID: img.Digest, Size: int64(len(bin)), Pulled: pulled,
		Entrypoint: img.Config.Entrypoint, Cmd: img.Config.Cmd, Env: img.Config.Env}, nil
}

func pullError(err error) error {
	switch {
	case errors.Is(err, image.ErrNotFound), errors.Is(err, image.ErrInvalidReference):
		return fmt.Errorf("%w: %w", skiffrt.ErrImageNotFound, err)
	case errors.Is(err, image.ErrUnauthorized):
		return fmt.Errorf("%w: %w", skiffrt.ErrImageUnauthorized, err)
	case errors.Is(err, image.ErrNotPresent):
		return fmt.Errorf("%w: %w", skiffrt.ErrImageNotPresent, err)
	case errors.Is(err, image.ErrNotWasm):
		return fmt.Errorf("%w: %w", skiffrt.ErrImageNotSupported, err)
	}
	return err
}

func (p *PodRuntime) module(img skiffrt.Image) (*Module, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if m := p.modules[img.ID]; m != nil {
		return m, nil
	}
	return nil, fmt.Errorf("wasm: image %s (%s) was not pulled", img.Ref, img.ID)
}

func runSpec(spec skiffrt.ContainerSpec) RunSpec {
	rs := RunSpec{Args: spec.Args, Env: spec.Env, Stdin: spec.Stdin, Stdout: spec.Stdout, Stderr: spec.Stderr,
		MemoryLimitBytes: spec.MemoryLimitBytes, Hostname: spec.Hostname,
		PodIP: spec.PodIP, DNS: spec.DNS, Firewall: spec.Firewall, App: spec.App}
	for _, m := range spec.Mounts {
		rs.Mounts = append(rs.Mounts, Mount{HostPath: m.HostPath, GuestPath: m.GuestPath, ReadOnly: m.ReadOnly,
			Quota: m.Quota, NodeFiles: m.NodeFiles})
	}
	// Container ports are listeners on the pod IP, in the order of the
	// container's ports, named as the ports are.
	for _, p := range spec.Ports {
		rs.Listeners = append(rs.Listeners, Listener{Host: spec.PodIP, Port: int(p.Port), Name: p.Name})
	}
	return rs
}

// Exec runs a new instance of the container's module with spec.Args.
func (p *PodRuntime) Exec(ctx context.Context, img skiffrt.Image, spec skiffrt.ContainerSpec) (skiffrt.ExitStatus, error) {
	mod, err := p.module(img)
	if err != nil {
		return skiffrt.ExitStatus{}, err
	}
	if mod.IsHandler() {
		return skiffrt.ExitStatus{}, fmt.Errorf("%w: %s is an SDK handler module, which has no _start to run", skiffrt.ErrCannotExec, img.Ref)
	}
	rs := runSpec(spec)
	rs.Listeners = nil // the container owns its ports; an exec gets none
	cpu, release := p.acquireCPU(spec)
	defer release()
	rs.CPU = cpu
	if spec.TTY {
		// A terminal where this host can make one; plain streams otherwise.
		if term, err := terminal.Open(); err == nil {
			done := make(chan struct{})
			term.Attach(spec.Stdin, spec.Stdout, spec.Resize, done)
			rs.Stdin, rs.Stdout, rs.Stderr = term.Slave(), term.Slave(), term.Slave()
			// A guest blocked reading its terminal sits in a host read that
			// cancellation cannot reach: closing the terminal ends the read.
			unblock := context.AfterFunc(ctx, term.HangUp)
			defer func() {
				unblock()
				close(done)
				term.Close()
			}()
		}
	}
	st, err := p.rt.Run(ctx, mod, rs)
	if errors.Is(err, ErrNotCommand) {
		return skiffrt.ExitStatus{}, fmt.Errorf("%w: %w", skiffrt.ErrCannotExec, err)
	}
	return skiffrt.ExitStatus(st), err
}

// Start instantiates the module and runs its _start on a goroutine of its
// own.
func (p *PodRuntime) Start(ctx context.Context, img skiffrt.Image, spec skiffrt.ContainerSpec) (skiffrt.Process, error) {
	mod, err := p.module(img)
	if err != nil {
		return nil, err
	}
	if mod.IsHandler() {
		return p.startHandler(ctx, mod, spec)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	cpu, release := p.acquireCPU(spec)
	proc := &commandProcess{cancel: cancel, done: make(chan struct{}), cpu: cpu}
	rs := runSpec(spec)
	rs.Meter = &proc.meter
	rs.CPU = cpu
	started := make(chan struct{})
	rs.OnStart = func() { close(started) }
	var startErr error
	go func() {
		defer close(proc.done)
		defer release()
		st, err := p.rt.Run(runCtx, mod, rs)
		if err != nil {
			startErr = err
			st = ExitStatus{Code: 128, Reason: "StartError", Message: err.Error()}
		}
		proc.status = skiffrt.ExitStatus(st)
	}()
	// Start returns once the guest runs, so that a module that cannot be
	// instantiated (a missing import, a listener that cannot be opened) is
	// a failed start, as a container that cannot be created, not a crash.
	select {
	case <-started:
	case <-proc.done:
		if startErr != nil {
			return nil, fmt.Errorf("start container: %w", startErr)
		}
		// It ended before its _start, and said how (an initial memory over
		// the limit is OOMKilled): a container that ended at once.
	case <-ctx.Done():
		cancel()
		<-proc.done
		return nil, fmt.Errorf("start container: %w", ctx.Err())
	}
	return proc, nil
}

// Close closes the wazero runtime, ending every instance.
func (p *PodRuntime) Close(ctx context.Context) error { return p.rt.Close(ctx) }

// commandProcess is a running WASI command.
type commandProcess struct {
	cancel context.CancelFunc
	done   chan struct{}
	status skiffrt.ExitStatus // written before done closes
	meter  Meter
	cpu    *CPU
}

var (
	_ skiffrt.MemoryUser = (*commandProcess)(nil)
	_ skiffrt.MemoryUser = (*handlerProcess)(nil)
)

// MemoryBytes is the guest's linear memory now.
func (c *commandProcess) MemoryBytes() int64 { return c.meter.Bytes() }

func (c *commandProcess) Done() <-chan struct{} { return c.done }

func (c *commandProcess) Status() skiffrt.ExitStatus {
	<-c.done
	return c.status
}

// Stop ends the command at once: WASI preview1 has no signals, so a
// command cannot be asked to exit; cancelling its context closes the
// instance where it stands (ReasonKilled, 137), what SIGKILL is to a
// process. grace does not apply.
func (c *commandProcess) Stop(ctx context.Context, grace time.Duration) skiffrt.ExitStatus {
	c.cancel()
	select {
	case <-c.done:
		return c.status
	case <-ctx.Done():
		return skiffrt.ExitStatus{Code: ExitCodeKilled, Reason: ReasonKilled, Message: "stop: " + ctx.Err().Error()}
	}
}

// startHandler serves an SDK handler module: the host listens on the pod IP
// at each container port and calls the module per request, from a pool of
// instances (Handler). The memory limit applies to each instance.
func (p *PodRuntime) startHandler(ctx context.Context, mod *Module, spec skiffrt.ContainerSpec) (skiffrt.Process, error) {
	if len(spec.Ports) == 0 {
		return nil, fmt.Errorf("%w: an HTTP handler module needs a containerPort to serve on", ErrInvalidSpec)
	}
	rs := runSpec(spec)
	var onExit func(ExitStatus)
	if spec.OnInstanceExit != nil {
		onExit = func(st ExitStatus) { spec.OnInstanceExit(skiffrt.ExitStatus(st)) }
	}
	meter := &Meter{}
	cpu, release := p.acquireCPU(spec)
	h, err := p.rt.NewHandler(ctx, mod, HandlerSpec{Args: rs.Args, Env: rs.Env, Mounts: rs.Mounts, Hostname: rs.Hostname,
		Stdout: rs.Stdout, Stderr: rs.Stderr, MemoryLimitBytes: rs.MemoryLimitBytes, Meter: meter, OnInstanceExit: onExit, CPU: cpu,
		PodIP: rs.PodIP, DNS: rs.DNS, Firewall: rs.Firewall, App: rs.App})
	if err != nil {
		release()
		return nil, err
	}
	proc := &handlerProcess{h: h, meter: meter, done: make(chan struct{}), srv: &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second},
		cpu: cpu, release: release}
	for _, port := range spec.Ports {
		ln, err := net.Listen("tcp", net.JoinHostPort(spec.PodIP, strconv.Itoa(int(port.Port))))
		if err != nil {
			proc.closeListeners()
			h.Close(context.Background())
			release()
			return nil, fmt.Errorf("%w: %w", ErrListen, err)
		}
		proc.lns = append(proc.lns, ln)
	}
	for _, ln := range proc.lns {
		go proc.srv.Serve(ln)
	}
	return proc, nil
}

// handlerProcess is a served handler module: it runs until stopped.
type handlerProcess struct {
	h       *Handler
	meter   *Meter // all the pool's instances
	srv     *http.Server
	lns     []net.Listener
	once    sync.Once
	done    chan struct{}
	cpu     *CPU
	release func() // of cpu
}

func (hp *handlerProcess) closeListeners() {
	for _, ln := range hp.lns {
		ln.Close()
	}
}

func (hp *handlerProcess) Done() <-chan struct{} { return hp.done }

// MemoryBytes is the linear memory of all the pool's instances now.
func (hp *handlerProcess) MemoryBytes() int64 { return hp.meter.Bytes() }

func (hp *handlerProcess) Status() skiffrt.ExitStatus {
	<-hp.done
	return skiffrt.ExitStatus{Code: 0, Reason: ReasonCompleted}
}

// Stop is graceful, as a SIGTERM to a well-behaved server: the listeners
// close, requests in flight get up to grace to finish, then whatever still
// runs is stopped.
func (hp *handlerProcess) Stop(ctx context.Context, grace time.Duration) skiffrt.ExitStatus {
	hp.once.Do(func() {
		gctx, cancel := context.WithTimeout(ctx, grace)
		defer cancel()
		hp.srv.Shutdown(gctx)
		hp.srv.Close()
		hp.h.Close(gctx)
		hp.release()
		close(hp.done)
	})
	return hp.Status()
}

// FirewallEnforced reports that the Wasm runtime asks ContainerSpec.Firewall
// about every connection its guests make or take (package sdk/abi): the
// engine owns every socket of a Wasm pod.
func (p *PodRuntime) FirewallEnforced() bool { return true }
