package wasm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	goruntime "runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"golang.org/x/net/http/httpguts"

	skiffrt "github.com/skiffhq/skiff/runtime"
	"github.com/skiffhq/skiff/runtime/wasm/internal/wasisock"
	"github.com/skiffhq/skiff/sdk/abi"
)

// ErrNotHandler means the module is not an SDK handler module: a WASI
// reactor (no `_start`) exporting the functions of package sdk/abi. A Go
// program that calls sdk.Handle must be built with -buildmode=c-shared.
var ErrNotHandler = errors.New("wasm: module is not an SDK HTTP handler")

// ErrHandlerClosed is returned for instances asked of a closed Handler.
var ErrHandlerClosed = errors.New("wasm: handler closed")

// IsHandler reports whether the module is an SDK handler module: no
// `_start`, an exported memory, and the exports of package sdk/abi with
// their types. Such a module is served by NewHandler, not Run.
func (m *Module) IsHandler() bool {
	if m.command {
		return false
	}
	fns := m.compiled.ExportedFunctions()
	want := map[string][2][]api.ValueType{
		abi.ExportAlloc:  {{api.ValueTypeI32}, {api.ValueTypeI32}},
		abi.ExportHandle: {{api.ValueTypeI32, api.ValueTypeI32}, {api.ValueTypeI64}},
	}
	for name, sig := range want {
		fn, ok := fns[name]
		if !ok || !equalTypes(fn.ParamTypes(), sig[0]) || !equalTypes(fn.ResultTypes(), sig[1]) {
			return false
		}
	}
	_, ok := m.compiled.ExportedMemories()["memory"]
	return ok
}

func equalTypes(a, b []api.ValueType) bool { return bytes.Equal(a, b) }

// HandlerSpec describes how a Handler runs its instances: the parts of a
// container spec a handler module uses, and the pool's limits. Zero values
// take the documented defaults.
type HandlerSpec struct {
	// Args, Env, Mounts and Hostname are as in RunSpec, the same for every
	// instance.
	Args     []string
	Env      []string
	Mounts   []Mount
	Hostname string

	// PodIP, DNS and Firewall are as in RunSpec: each instance has sockets
	// of its own (the WasmEdge sockets extension), so a handler can call
	// other services while it serves a request.
	PodIP    string
	DNS      *skiffrt.DNSConfig
	Firewall skiffrt.Firewall

	// Stdout and Stderr receive every instance's fd 1 and 2 (the pod's
	// log); nil discards. Writes of different instances are serialised, so
	// the writers need not be safe for concurrent use.
	Stdout, Stderr io.Writer

	// MemoryLimitBytes caps each instance's linear memory, as in RunSpec.
	// An instance that fails on the limit is discarded (OOMKilled) and its
	// request answered 500.
	MemoryLimitBytes int64

	// Meter, when set, counts the linear memory of all the instances.
	Meter *Meter

	// PoolSize is the most instances alive at once, which is the most
	// requests served at once (an instance serves one at a time). Instances
	// are created when requests need them, and kept. Default: GOMAXPROCS
	// of the host, as more instances than cores only add memory.
	PoolSize int

	// QueueSize is how many requests may wait for an instance when all are
	// busy; more are answered 503 at once. Default 128: a burst is absorbed,
	// an overload is refused instead of queueing without bound.
	QueueSize int

	// QueueTimeout is how long a request waits for an instance before it
	// is answered 503. Default 10 s.
	QueueTimeout time.Duration

	// RequestTimeout bounds the guest's time for one request; a guest
	// still busy then is stopped, its instance discarded and the request
	// answered 504. It is also the bound of an instance's initialisation.
	// Default 60 s. The client going away does not stop the guest: it
	// cannot notice, and stopping it would cost the instance.
	RequestTimeout time.Duration

	// MaxRequestBodyBytes is the largest request body passed to the guest;
	// a larger one is answered 413 without taking an instance. Default 8
	// MiB: the body is copied into the instance's memory whole.
	MaxRequestBodyBytes int64

	// OnInstanceExit, when set, is called (on the request's goroutine) each
	// time an instance is discarded because it exited, trapped, hit its
	// memory limit or its request timed out, with how it ended in the terms
	// of a container: the node agent counts these as restarts.
	OnInstanceExit func(ExitStatus)

	// CPU, when set, holds all instances together to its limit and counts
	// their CPU time (see CPU): with an enforced limit each instance has
	// an OS thread of its own in the CPU's cgroup, and its calls are handed
	// to it.
	CPU *CPU

	// App is as in RunSpec; each instance has subscriptions and watches of
	// its own, which live as long as the instance (across requests).
	App skiffrt.AppServices
}

func (s *HandlerSpec) setDefaults() {
	if s.PoolSize <= 0 {
		s.PoolSize = max(1, goruntime.GOMAXPROCS(0))
	}
	if s.QueueSize <= 0 {
		s.QueueSize = 128
	}
	if s.QueueTimeout <= 0 {
		s.QueueTimeout = 10 * time.Second
	}
	if s.RequestTimeout <= 0 {
		s.RequestTimeout = 60 * time.Second
	}
	if s.MaxRequestBodyBytes <= 0 {
		s.MaxRequestBodyBytes = 8 << 20
	}
}

// HandlerStats counts what a Handler did, for tests and metrics.
type HandlerStats struct {
	Instances int // alive now, idle or busy
	Idle      int
	Waiting   int // requests waiting for an instance

	Created   uint64 // instances initialised
	Discarded uint64 // instances that exited, trapped, hit their memory limit or timed out
	OOMKilled uint64 // of Discarded, those that hit the memory limit
	Rejected  uint64 // requests answered 503 (queue full, queue timeout, closed)
	Requests  uint64 // requests handed to ServeHTTP, whatever their answer
}

// Handler serves HTTP requests by calling an SDK handler module, one request
// per instance at a time, from a pool of instances. It is an http.Handler
// for the host's own listener. All methods are safe for concurrent use.
type Handler struct {
	r    *Runtime
	mod  *Module
	spec HandlerSpec
	mc   wazero.ModuleConfig
	// socks configures each instance's sockets.
	socks wasisock.Config

	// life ends with Close or the Runtime's Close; it bounds every call
	// into an instance.
	life   context.Context
	cancel context.CancelCauseFunc

	// tokens holds one entry per request that has an instance (or is
	// creating one): its capacity is PoolSize.
	tokens  chan struct{}
	waiting atomic.Int64

	mu     sync.Mutex
	unhook func() bool // undoes the Close of this Handler when the Runtime closes (which ends its instances' threads, cpu.go)
	idle   []*instance // most recently used last
	live   int
	closed bool
	calls  sync.WaitGroup // requests holding a token

	created, discarded, oomKilled, rejected, requests atomic.Uint64
}

// instance is one instantiated handler module.
type instance struct {
	mod           api.Module
	alloc, handle api.Function
	mem           *limitAllocator
	buf           []byte      // the request's encoding, reused
	thread        guestThread // where its calls run (cpu.go)
	socks         *wasisock.Table
	app           *appState
}

// close closes the instance and ends its thread.
func (inst *instance) close() {
	if inst.mod != nil {
		_ = inst.mod.Close(context.Background())
	}
	inst.thread.stop()
	inst.socks.Close()
	inst.app.close()
}

// NewHandler returns a Handler serving mod, an SDK handler module (see
// IsHandler), with spec. It creates the first instance before returning, so
// a module that cannot start fails here: ErrNotHandler, ErrInvalidSpec,
// ErrInstantiate, or an error saying how its initialisation ended.
func (r *Runtime) NewHandler(ctx context.Context, mod *Module, spec HandlerSpec) (*Handler, error) {
	if mod == nil || mod.r != r {
		return nil, ErrForeignModule
	}
	if !mod.IsHandler() {
		return nil, fmt.Errorf("wasm: handler %s: %w", mod.digest, ErrNotHandler)
	}
	spec.setDefaults()
	out := &lockedWriters{}
	noSpace := new(wasisock.NoSpace)
	mc, err := r.moduleConfig(RunSpec{
		noSpace:          noSpace,
		Args:             spec.Args,
		Env:              spec.Env,
		Mounts:           spec.Mounts,
		Hostname:         spec.Hostname,
		Stdout:           out.wrap(spec.Stdout),
		Stderr:           out.wrap(spec.Stderr),
		MemoryLimitBytes: spec.MemoryLimitBytes,
	})
	if err != nil {
		return nil, fmt.Errorf("wasm: handler %s: %w", mod.digest, err)
	}
	socks, err := socketConfig(RunSpec{PodIP: spec.PodIP, DNS: spec.DNS, Firewall: spec.Firewall})
	if err != nil {
		return nil, fmt.Errorf("wasm: handler %s: %w", mod.digest, err)
	}
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	// Every request runs under life: its WASI functions find noSpace there.
	life, cancel := context.WithCancelCause(wasisock.WithNoSpace(r.life, noSpace))
	h := &Handler{
		r: r, mod: mod, spec: spec, mc: mc, socks: socks,
		life: life, cancel: cancel,
		tokens: make(chan struct{}, spec.PoolSize),
	}

	// The first instance, to fail now rather than on the first request.
	h.tokens <- struct{}{}
	inst, err := h.newInstance(ctx)
	<-h.tokens
	if err != nil {
		cancel(err)
		return nil, err
	}
	h.mu.Lock()
	h.live++
	h.idle = append(h.idle, inst)
	h.unhook = context.AfterFunc(r.life, func() { h.Close(context.Background()) })
	h.mu.Unlock()
	return h, nil
}

// Stats returns the Handler's counters.
func (h *Handler) Stats() HandlerStats {
	h.mu.Lock()
	defer h.mu.Unlock()
	return HandlerStats{
		Instances: h.live,
		Idle:      len(h.idle),
		Waiting:   int(h.waiting.Load()),
		Created:   h.created.Load(),
		Discarded: h.discarded.Load(),
		OOMKilled: h.oomKilled.Load(),
		Rejected:  h.rejected.Load(),
		Requests:  h.requests.Load(),
	}
}

// Close stops taking requests (they are answered 503), closes idle
// instances, and waits for requests in flight until ctx ends; then it stops
// them (their instances are closed where they stand). Close is idempotent.
func (h *Handler) Close(ctx context.Context) error {
	h.mu.Lock()
	already := h.closed
	h.closed = true
	idle := h.idle
	h.idle = nil
	h.live -= len(idle)
	unhook := h.unhook
	h.mu.Unlock()
	if already {
		return nil
	}
	unhook()
	for _, inst := range idle {
		inst.close()
	}
	done := make(chan struct{})
	go func() {
		h.calls.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("wasm: close handler: waiting for requests: %w", ctx.Err())
	}
	h.cancel(ErrHandlerClosed)
	<-done // stopped guests return at once
	return err
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	// Every request counts, answered or refused: the load the pod is
	// under is what an autoscaler on requests per second needs to see.
	h.requests.Add(1)
	// Read the body before taking an instance: a slow client must not hold
	// one.
	body, err := io.ReadAll(io.LimitReader(req.Body, h.spec.MaxRequestBodyBytes+1))
	if err != nil {
		http.Error(w, "reading request body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if int64(len(body)) > h.spec.MaxRequestBodyBytes {
		http.Error(w, fmt.Sprintf("request body larger than %d bytes", h.spec.MaxRequestBodyBytes), http.StatusRequestEntityTooLarge)
		return
	}
	uri := req.RequestURI
	if uri == "" {
		uri = req.URL.RequestURI()
	}
	resp, status, msg := h.call(req.Context(), &abi.Request{
		Method:     req.Method,
		RequestURI: uri,
		Host:       req.Host,
		RemoteAddr: req.RemoteAddr,
		Header:     req.Header,
		Body:       body,
	})
	if resp == nil {
		if status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "1")
		}
		http.Error(w, msg, status)
		return
	}
	hdr := w.Header()
	copyGuestHeader(hdr, resp.Header)
	// The body is sent whole, with its length.
	hdr.Del("Transfer-Encoding")
	if bodyAllowed(resp.Status) {
		hdr.Set("Content-Length", strconv.Itoa(len(resp.Body)))
	}
	w.WriteHeader(resp.Status)
	_, _ = w.Write(resp.Body)
}

// copyGuestHeader copies the header a guest answered into dst, keeping to
// what HTTP allows. The guest's names arrive as it wrote them, not
// canonicalised as http.Header keys are: a "content-length" or
// "transfer-encoding" would then pass the host's Del and Set of the
// canonical names, and the client would get two lengths, or a chunked body
// that is not chunked. That is the framing of the response, and through a
// proxy in front a way to smuggle responses, so names are canonicalised
// here. Names and values HTTP does not allow (control characters, line
// breaks, an empty name) are dropped: net/http would write some of them as
// they are and the client could not parse the response.
func copyGuestHeader(dst, src http.Header) {
	for k, vs := range src {
		if !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		ck := textproto.CanonicalMIMEHeaderKey(k)
		for _, v := range vs {
			if httpguts.ValidHeaderFieldValue(v) {
				dst[ck] = append(dst[ck], v)
			}
		}
	}
}

func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

// call serves one request on an instance. It returns the response, or nil
// with the status and message to answer instead.
func (h *Handler) call(ctx context.Context, areq *abi.Request) (*abi.Response, int, string) {
	inst, err := h.acquire(ctx)
	if err != nil {
		switch {
		case errors.Is(err, errQueue), errors.Is(err, ErrHandlerClosed), errors.Is(err, ErrClosed):
			h.rejected.Add(1)
			return nil, http.StatusServiceUnavailable, err.Error()
		case ctx.Err() != nil:
			// The client went away while waiting: nobody reads this.
			return nil, http.StatusServiceUnavailable, err.Error()
		}
		return nil, http.StatusInternalServerError, err.Error()
	}
	defer h.calls.Done()

	cctx, cancel := context.WithTimeoutCause(h.life, h.spec.RequestTimeout, errRequestTimeout)
	defer cancel()
	var resp *abi.Response
	sctx, detach := inst.socks.Attach(cctx)
	sctx = attachApp(sctx, inst.app)
	inst.mem.enter()
	inst.thread.do(func() { resp, err = inst.serve(sctx, areq) })
	inst.mem.leave()
	detach()
	if err == nil {
		h.release(inst)
		return resp, 0, ""
	}
	st := h.discard(cctx, inst, err)
	switch {
	case errors.Is(context.Cause(cctx), errRequestTimeout):
		return nil, http.StatusGatewayTimeout, "wasm handler: request timed out"
	case h.life.Err() != nil:
		return nil, http.StatusServiceUnavailable, "wasm handler: closing"
	}
	return nil, http.StatusInternalServerError, "wasm handler failed: " + st.Reason + firstLineOf(st.Message)
}

func firstLineOf(s string) string {
	if s == "" {
		return ""
	}
	return ": " + firstLine(s)
}

var (
	errQueue          = errors.New("wasm handler: all instances busy")
	errRequestTimeout = errors.New("wasm handler: request timed out")
)

// acquire returns an idle instance or creates one, waiting in the bounded
// queue when PoolSize instances are busy. On success the caller holds a
// token and a count in calls, and must release or discard the instance.
func (h *Handler) acquire(ctx context.Context) (*instance, error) {
	select {
	case h.tokens <- struct{}{}:
	default:
		if h.waiting.Add(1) > int64(h.spec.QueueSize) {
			h.waiting.Add(-1)
			return nil, fmt.Errorf("%w and %d requests waiting", errQueue, h.spec.QueueSize)
		}
		t := time.NewTimer(h.spec.QueueTimeout)
		select {
		case h.tokens <- struct{}{}:
			t.Stop()
			h.waiting.Add(-1)
		case <-t.C:
			h.waiting.Add(-1)
			return nil, fmt.Errorf("%w for %v", errQueue, h.spec.QueueTimeout)
		case <-ctx.Done():
			t.Stop()
			h.waiting.Add(-1)
			return nil, ctx.Err()
		case <-h.life.Done():
			t.Stop()
			h.waiting.Add(-1)
			return nil, ErrHandlerClosed
		}
	}

	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		<-h.tokens
		return nil, ErrHandlerClosed
	}
	h.calls.Add(1)
	if n := len(h.idle); n > 0 {
		inst := h.idle[n-1]
		h.idle = h.idle[:n-1]
		h.mu.Unlock()
		return inst, nil
	}
	// No idle instance: then fewer than PoolSize are alive (each busy one
	// holds a token, and so does this request), so one may be created.
	h.live++
	h.mu.Unlock()

	inst, err := h.newInstance(ctx)
	if err != nil {
		h.mu.Lock()
		h.live--
		h.mu.Unlock()
		h.calls.Done()
		<-h.tokens
		return nil, err
	}
	return inst, nil
}

// release returns a healthy instance to the pool.
func (h *Handler) release(inst *instance) {
	h.mu.Lock()
	if h.closed {
		h.live--
		h.mu.Unlock()
		inst.close()
	} else {
		h.idle = append(h.idle, inst)
		h.mu.Unlock()
	}
	<-h.tokens
}

// discard closes a failed instance, reports how it ended and frees its place
// in the pool for a new one.
func (h *Handler) discard(ctx context.Context, inst *instance, err error) ExitStatus {
	st := classify(ctx, err, inst.mem)
	if errors.Is(context.Cause(ctx), errRequestTimeout) {
		st.Message = fmt.Sprintf("request took longer than %v: %s", h.spec.RequestTimeout, st.Message)
	}
	inst.close()
	h.mu.Lock()
	h.live--
	h.mu.Unlock()
	<-h.tokens
	if h.life.Err() == nil {
		// Instances stopped by Close are not failures of the guest.
		h.discarded.Add(1)
		if st.Reason == ReasonOOMKilled {
			h.oomKilled.Add(1)
		}
		h.r.log.Debug("wasm handler instance discarded", "digest", h.mod.digest,
			"reason", st.Reason, "code", st.Code, "message", st.Message)
		if h.spec.OnInstanceExit != nil {
			h.spec.OnInstanceExit(st)
		}
	}
	return st
}

// newInstance instantiates and initialises one instance.
func (h *Handler) newInstance(ctx context.Context) (*instance, error) {
	if err := h.r.begin(); err != nil {
		return nil, err
	}
	defer h.r.work.Done()
	mod := h.mod

	// Bounded by the caller, the request timeout and the Handler's life.
	ctx, cancel := context.WithTimeout(ctx, h.spec.RequestTimeout)
	defer cancel()
	stop := context.AfterFunc(h.life, cancel)
	defer stop()

	mem, st, ok := newAllocator(mod, h.spec.MemoryLimitBytes, h.spec.Meter)
	if !ok {
		return nil, fmt.Errorf("wasm: handler %s: %s: %s", mod.digest, st.Reason, st.Message)
	}
	socks, err := wasisock.NewTable(h.socks)
	if err != nil {
		return nil, fmt.Errorf("wasm: handler %s: sockets: %w", mod.digest, err)
	}
	inst := &instance{mem: mem, socks: socks}
	ctx, detach := socks.Attach(experimental.WithMemoryAllocator(ctx, mem))
	defer detach()
	ctx, inst.app = withApp(ctx, h.spec.App)
	// See Run: a Free while the guest may run on the memory waits.
	mem.enter()
	defer mem.leave()
	m, err := h.r.wr.InstantiateModule(ctx, mod.compiled, h.mc)
	if err != nil {
		socks.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("wasm: handler %s: instantiate: %w", mod.digest, err)
		}
		return nil, fmt.Errorf("wasm: handler %s: %w: %w", mod.digest, ErrInstantiate, err)
	}
	inst.mod = m
	fail := func(what string, err error) (*instance, error) {
		inst.close()
		st := classify(ctx, err, inst.mem)
		return nil, fmt.Errorf("wasm: handler %s: %s: %s (exit code %d) %s", mod.digest, what, st.Reason, st.Code, st.Message)
	}
	if inst.mem.refused {
		return fail("instantiate", errors.New("initial memory exceeds the limit"))
	}
	inst.thread = h.spec.CPU.newGuestThread()
	// Go's runtime and package init functions (where sdk.Handle is called)
	// run in _initialize.
	if init := m.ExportedFunction("_initialize"); init != nil {
		inst.thread.do(func() { _, err = init.Call(ctx) })
		if err != nil {
			return fail("_initialize", err)
		}
	}
	if v := m.ExportedFunction(abi.ExportVersion); v != nil {
		var res []uint64
		inst.thread.do(func() { res, err = v.Call(ctx) })
		if err != nil {
			return fail(abi.ExportVersion, err)
		}
		if uint32(res[0]) != abi.Version {
			inst.close()
			return nil, fmt.Errorf("wasm: handler %s: %w: ABI version %d, this host speaks %d", mod.digest, ErrNotHandler, uint32(res[0]), abi.Version)
		}
	}
	inst.alloc = m.ExportedFunction(abi.ExportAlloc)
	inst.handle = m.ExportedFunction(abi.ExportHandle)
	h.created.Add(1)
	return inst, nil
}

// serve passes one request through the instance. An error means the
// instance is unusable: it trapped, exited, broke the ABI or was stopped.
func (inst *instance) serve(ctx context.Context, areq *abi.Request) (*abi.Response, error) {
	inst.buf = abi.AppendRequest(inst.buf[:0], areq)
	if uint64(len(inst.buf)) > 1<<31 { // the guest's address space is 32-bit
		return nil, errors.New("request does not fit in 32-bit memory")
	}
	n := len(inst.buf)
	res, err := inst.alloc.Call(ctx, uint64(n))
	if err != nil {
		return nil, err
	}
	mem := inst.mod.Memory()
	ptr := uint32(res[0])
	if !mem.Write(ptr, inst.buf) {
		return nil, fmt.Errorf("%s returned %#x, outside memory", abi.ExportAlloc, ptr)
	}
	// Drop a large request's encoding rather than keep it for every
	// later request.
	if cap(inst.buf) > 1<<20 {
		inst.buf = nil
	}
	res, err = inst.handle.Call(ctx, uint64(ptr), uint64(n))
	if err != nil {
		return nil, err
	}
	if res[0] == 0 {
		return nil, fmt.Errorf("%s refused the request encoding", abi.ExportHandle)
	}
	rptr, rlen := uint32(res[0]>>32), uint32(res[0])
	b, ok := mem.Read(rptr, rlen)
	if !ok {
		return nil, fmt.Errorf("%s returned %d bytes at %#x, outside memory", abi.ExportHandle, rlen, rptr)
	}
	resp, err := abi.DecodeResponse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", abi.ExportHandle, err)
	}
	if resp.Status < 200 || resp.Status > 999 {
		return nil, fmt.Errorf("%s: invalid status %d", abi.ExportHandle, resp.Status)
	}
	// The body is a view of guest memory, which the next call may reuse.
	resp.Body = bytes.Clone(resp.Body)
	return resp, nil
}

// lockedWriters serialises the writes of all instances of a Handler to its
// Stdout and Stderr.
type lockedWriters struct{ mu sync.Mutex }

func (l *lockedWriters) wrap(w io.Writer) io.Writer {
	if w == nil {
		return nil
	}
	return lockedWriter{l, w}
}

type lockedWriter struct {
	l *lockedWriters
	w io.Writer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.l.mu.Lock()
	defer w.l.mu.Unlock()
	return w.w.Write(p)
}
