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
// of a Run is guest descriptor abi.FirstListenerFD+i. It has the fields of
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
	errnoNosys       = 52
	errnoNotconn     = 53
	errnoNotdir      = 54
	errnoNotsup      = 58
	errnoPipe        = 64
	errnoSpipe       = 70
	errnoTimedout    = 73
)
