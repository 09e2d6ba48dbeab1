package wasm

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/skiffhq/skiff/sdk/abi"
)

// FirstListenerFD is the guest file descriptor of RunSpec.Listeners[0]; the
// i-th listener is FirstListenerFD+i, and connections the guest accepts get
// descriptors above the listeners. See package sdk/abi for why the number is
// so high and how a Go guest turns it into a net.Listener.
const FirstListenerFD = abi.FirstListenerFD

// ErrListen means a listener of the RunSpec could not be opened (the address
// is in use or not assigned to this host). Nothing ran; the same spec may
// work once the address is free.
var ErrListen = errors.New("wasm: cannot open listener")

// Listener is a TCP socket the host opens for a guest before it starts: a
// container port, bound on the pod's IP. The guest accepts connections on it
// through WASI's sock_accept; it cannot open sockets of its own.
//
// Sockets are served by this package rather than by wazero's
// experimental/sock, whose wazero 1.12 implementation does not work for a Go
// guest (the comment at the top of listen_linux.go says why): here
// poll_oneoff really waits for the guest's sockets, so Go's network poller
// parks goroutines as it does natively, an idle server uses no CPU, closed
// connections are closed, and a cancelled Run stops a guest blocked on a
// socket. Package sdk/abi documents the guest's side; sdk.Listener does it
// for Go.
type Listener struct {
	// Host is the IP address (or host name) to bind, e.g. the pod IP; ""
	// binds every address of the host.
	Host string
	// Port is the TCP port, 0..65535 (0 lets the kernel choose one, which
	// only makes sense with TCP).
	Port int

	// TCP, when set, is an already open listener to serve instead of opening
	// Host:Port. Run serves a duplicate of its descriptor and closes only the
	// duplicate: the caller keeps TCP and closes it. While the caller holds
	// it, connections queue in the kernel between Runs (a restarting pod
	// loses none); closing it between Runs refuses them as a dead container
	// does.
	TCP *net.TCPListener
}

// validateListeners is the part of moduleConfig's validation that concerns
// Listeners.
func validateListeners(ls []Listener) error {
	for i, l := range ls {
		if l.TCP == nil && (l.Port < 0 || l.Port > 65535) {
			return fmt.Errorf("%w: listener %d: port %d out of range", ErrInvalidSpec, i, l.Port)
		}
	}
	return nil
}

// instantiateWASI instantiates WASI preview1 into wr: wazero's functions,
// with the ones that touch sockets or wait (poll_oneoff) replaced by this
// package's (wrapWASI). A replacement passes every call that is not about a
// Run's sockets to wazero's own function, so guests without Listeners behave
// exactly as with wasi_snapshot_preview1.Instantiate.
func instantiateWASI(ctx context.Context, wr wazero.Runtime) (api.Closer, error) {
	// wazero's implementations, to delegate to: a compiled host module lists
	// the Go function behind each export.
	stock, err := wasi_snapshot_preview1.NewBuilder(wr).Compile(ctx)
	if err != nil {
		return nil, fmt.Errorf("wasm: compile WASI preview1: %w", err)
	}
	defer stock.Close(ctx)

	b := wr.NewHostModuleBuilder(wasi_snapshot_preview1.ModuleName)
	wasi_snapshot_preview1.NewFunctionExporter().ExportFunctions(b)
	for name, def := range stock.ExportedFunctions() {
		orig, ok := def.GoFunction().(api.GoModuleFunction)
		if !ok {
			return nil, fmt.Errorf("wasm: WASI function %s has no Go implementation to wrap", name)
		}
		fn := wrapWASI(name, orig)
		if fn == nil {
			continue
		}
		// A later export of the same name replaces wazero's.
		b.NewFunctionBuilder().
			WithGoModuleFunction(fn, def.ParamTypes(), def.ResultTypes()).
			WithParameterNames(def.ParamNames()...).
			WithResultNames(def.ResultNames()...).
			Export(name)
	}
	return b.Instantiate(ctx)
}

// WASI errno values (wasi_snapshot_preview1 numbering, not the host's).
const (
	errnoSuccess     = 0
	errnoAgain       = 6
	errnoBadf        = 8
	errnoConnaborted = 13
	errnoConnrefused = 14
	errnoConnreset   = 15
	errnoFault       = 21
	errnoHostunreach = 23
	errnoIntr        = 27
	errnoInval       = 28
	errnoIO          = 29
	errnoMfile       = 33
	errnoNetdown     = 38
	errnoNetunreach  = 40
	errnoNfile       = 41
	errnoNobufs      = 42
	errnoNomem       = 48
	errnoNotconn     = 53
	errnoNotdir      = 54
	errnoNotsup      = 58
	errnoPipe        = 64
	errnoSpipe       = 70
	errnoTimedout    = 73
)

// poll_oneoff's layout: a subscription is 48 bytes, an event 32.
const (
	subscriptionSize = 48
	eventSize        = 32

	eventtypeClock   = 0
	eventtypeFdRead  = 1
	eventtypeFdWrite = 2

	subclockAbstime      = 1
	eventFdReadwriteHup  = 1
	maxPollSubscriptions = 1 << 16 // Go's netpoller allows 65535
)

var le = binary.LittleEndian

// subscription is one decoded poll_oneoff subscription.
type subscription struct {
	userdata uint64
	typ      byte
	fd       uint32        // fd_read and fd_write
	timeout  time.Duration // clock: relative
	abstime  bool          // clock: absolute, which wazero 1.12 does not support either
}

func decodeSubscription(b []byte) subscription {
	s := subscription{userdata: le.Uint64(b[0:]), typ: b[8]}
	switch s.typ {
	case eventtypeClock:
		s.timeout = time.Duration(min(le.Uint64(b[24:]), 1<<63-1))
		s.abstime = le.Uint16(b[40:])&subclockAbstime != 0
	case eventtypeFdRead, eventtypeFdWrite:
		s.fd = le.Uint32(b[16:])
	}
	return s
}

// putEvent writes one event into out.
func putEvent(out []byte, userdata uint64, errno uint16, typ byte, hangup bool) {
	clear(out[:eventSize])
	le.PutUint64(out[0:], userdata)
	le.PutUint16(out[8:], errno)
	out[10] = typ
	if hangup {
		le.PutUint16(out[24:], eventFdReadwriteHup)
	}
}

// pollArgs are poll_oneoff's decoded arguments.
type pollArgs struct {
	subs    []subscription
	out     []byte // nsubscriptions events
	nevents uint32 // address of the result count
}

// readPollArgs decodes poll_oneoff's arguments from the guest's memory; a
// zero errno means ok.
func readPollArgs(mod api.Module, stack []uint64) (pollArgs, uint64) {
	in, out, n, nevents := uint32(stack[0]), uint32(stack[1]), uint32(stack[2]), uint32(stack[3])
	if n == 0 || n > maxPollSubscriptions {
		return pollArgs{}, errnoInval
	}
	mem := mod.Memory()
	inBuf, ok := mem.Read(in, n*subscriptionSize)
	if !ok {
		return pollArgs{}, errnoFault
	}
	outBuf, ok := mem.Read(out, n*eventSize)
	if !ok {
		return pollArgs{}, errnoFault
	}
	a := pollArgs{subs: make([]subscription, n), out: outBuf, nevents: nevents}
	for i := range a.subs {
		a.subs[i] = decodeSubscription(inBuf[i*subscriptionSize:])
		switch a.subs[i].typ {
		case eventtypeClock, eventtypeFdRead, eventtypeFdWrite:
		default:
			return pollArgs{}, errnoInval
		}
		if a.subs[i].abstime {
			return pollArgs{}, errnoNotsup
		}
	}
	return a, errnoSuccess
}

// clockOnly reports whether every subscription is a clock: a sleep.
func (a pollArgs) clockOnly() bool {
	for _, s := range a.subs {
		if s.typ != eventtypeClock {
			return false
		}
	}
	return true
}

// minTimeout is the shortest clock timeout, or -1 without clocks.
func (a pollArgs) minTimeout() time.Duration {
	d := time.Duration(-1)
	for _, s := range a.subs {
		if s.typ == eventtypeClock && (d < 0 || s.timeout < d) {
			d = s.timeout
		}
	}
	return d
}

// putClockEvents writes an event for every clock that has run out after
// elapsed and returns how many events are in out then, starting at n.
func (a pollArgs) putClockEvents(n int, elapsed time.Duration) int {
	for _, s := range a.subs {
		if s.typ == eventtypeClock && s.timeout <= elapsed {
			putEvent(a.out[n*eventSize:], s.userdata, errnoSuccess, eventtypeClock, false)
			n++
		}
	}
	return n
}

// sleepClocks serves a poll_oneoff of clocks only (how Go's time.Sleep and
// timers wait in a wasip1 guest with nothing else to do). wazero 1.12
// sleeps on the host without looking at the context, so a guest asleep for an
// hour could not be stopped for an hour; here the sleep ends with ctx, and
// the instance is then closed by wazero (WithCloseOnContextDone) as soon as
// the guest runs again.
func sleepClocks(ctx context.Context, mod api.Module, a pollArgs) uint64 {
	d := a.minTimeout()
	start := time.Now()
	if d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	n := a.putClockEvents(0, time.Since(start))
	if !mod.Memory().WriteUint32Le(a.nevents, uint32(n)) {
		return errnoFault
	}
	return errnoSuccess
}
