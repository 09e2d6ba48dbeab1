// Package wasisock serves a wasm Run's sockets to its guest: WASI
// preview1's socket functions and poll_oneoff, in place of wazero's.
//
// wazero 1.12's own sockets (experimental/sock) do not work for a Go guest;
// the comment at the top of sockets_linux.go says why. Here every socket is a
// non-blocking host descriptor owned by the Run, and poll_oneoff waits for
// them in ppoll, so Go's network poller parks goroutines as it does natively,
// an idle server uses no CPU, closed connections are closed, and a cancelled
// Run stops a guest blocked on a socket. poll_oneoff is here because waiting
// for sockets is its main work; it also makes a sleeping guest cancellable.
//
// Package runtime/wasm owns the public face of this (RunSpec.Listeners and
// ErrListen); package sdk/abi documents the guest's side.
package wasisock

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// Listener is a TCP socket to open for a guest before it starts; the i-th
// of a Run is guest descriptor Config.FirstListenerFD+i. It has the fields of
// runtime/wasm's Listener, which documents them, so one converts to the
// other.
type Listener struct {
	Host string
	Port int
	TCP  *net.TCPListener
}

// InstantiateWASI instantiates WASI preview1 into wr: wazero's functions,
// with the ones that touch sockets or wait (poll_oneoff) replaced by this
// package's (wrapWASI), the ones that number files bounded (limitFiles),
// wazero's bugs a guest can reach worked around (fixWazero), and the ones
// that can fill a disk answering ENOSPC for a quota's refusals
// (wrapNoSpace). A replacement passes every call that is not about a
// Run's sockets to wazero's own function, so guests without Listeners behave
// exactly as with wasi_snapshot_preview1.Instantiate.
func InstantiateWASI(ctx context.Context, wr wazero.Runtime) (api.Closer, error) {
	// wazero's implementations, to delegate to: a compiled host module lists
	// the Go function behind each export.
	stock, err := wasi_snapshot_preview1.NewBuilder(wr).Compile(ctx)
	if err != nil {
		return nil, fmt.Errorf("wasm: compile WASI preview1: %w", err)
	}
	defer stock.Close(ctx)

	b := wr.NewHostModuleBuilder(wasi_snapshot_preview1.ModuleName)
	wasi_snapshot_preview1.NewFunctionExporter().ExportFunctions(b)
	defs := stock.ExportedFunctions()
	var fdClose api.GoModuleFunction
	if def := defs["fd_close"]; def != nil {
		fdClose, _ = def.GoFunction().(api.GoModuleFunction)
	}
	if fdClose == nil {
		return nil, errors.New("wasm: WASI function fd_close has no Go implementation to call")
	}
	for name, def := range defs {
		orig, ok := def.GoFunction().(api.GoModuleFunction)
		if !ok {
			return nil, fmt.Errorf("wasm: WASI function %s has no Go implementation to wrap", name)
		}
		fn, replaced := orig, false
		for _, wrap := range []func(string, api.GoModuleFunction) api.GoModuleFunction{
			fixWazero,
			wrapWASI,
			func(name string, fn api.GoModuleFunction) api.GoModuleFunction { return limitFiles(name, fn, fdClose) },
			wrapNoSpace,
		} {
			if w := wrap(name, fn); w != nil {
				fn, replaced = w, true
			}
		}
		if !replaced {
			continue // wazero's own, exported above
		}
		// A later export of the same name replaces wazero's.
		b.NewFunctionBuilder().
			WithGoModuleFunction(fn, def.ParamTypes(), def.ResultTypes()).
			WithParameterNames(def.ParamNames()...).
			WithResultNames(def.ResultNames()...).
			Export(name)
	}
	for name, n := range extensionParams {
		params := make([]api.ValueType, n)
		for i := range params {
			params[i] = api.ValueTypeI32
		}
		b.NewFunctionBuilder().
			WithGoModuleFunction(extensionFunc(name), params, []api.ValueType{api.ValueTypeI32}).
			Export(name)
	}
	return b.Instantiate(ctx)
}

// The extension's constants (WasmEdge's wasi api.hpp numbering).
const (
	afUnspec = 0
	afInet   = 1
	afInet6  = 2

	sockAny    = 0
	sockDgram  = 1
	sockStream = 2

	solSocket = 0
	// ipprotoTCP is the option level of TCP options in wasi-go and
	// stealthrocket/net (Linux's number).
	ipprotoTCP = 6

	aiPassive     = 1 << 0
	aiNumericHost = 1 << 2
	aiNumericServ = 1 << 3

	protoIP  = 0
	protoTCP = 1
	protoUDP = 2

	// addressV2Size is the size of a WasmEdge v2 address buffer: a
	// little-endian u16 family, then the address bytes.
	addressV2Size = 128

	errnoAfnosupport    = 5
	errnoAddrinuse      = 3
	errnoAddrnotavail   = 4
	errnoInprogress     = 26
	errnoIsconn         = 30
	errnoNoent          = 44
	errnoNoprotoopt     = 50
	errnoProtonosupport = 66
	errnoNotsock        = 57
)

// extensionParams are the functions of the WasmEdge sockets extension
// with their parameter counts (all i32; each returns an errno): the
// functions wazero's WASI module does not have.
var extensionParams = map[string]int{
	"sock_open": 3, "sock_bind": 3, "sock_listen": 2, "sock_connect": 3,
	"sock_getlocaladdr": 3, "sock_getpeeraddr": 3, "sock_recv_from": 8, "sock_send_to": 7,
	"sock_getsockopt": 5, "sock_setsockopt": 5, "sock_getaddrinfo": 8,
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
	errnoNosys       = 52
	errnoNotconn     = 53
	errnoNotdir      = 54
	errnoNotsup      = 58
	errnoPipe        = 64
	errnoSpipe       = 70
	errnoTimedout    = 73
)
