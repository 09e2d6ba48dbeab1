package wasisock

import (
	"context"
	"runtime"

	"github.com/tetratelabs/wazero/api"
)

// fixWazero returns a replacement of wazero's WASI function name that works
// around a wazero 1.12 bug a guest can trigger, or nil if name has none.
// Each was found by FuzzHostileGuest in runtime/wasm: wazero recovers a
// host panic and traps the guest, so none takes the engine down, but a panic
// in host code is a bug that may leave its state half changed, and the
// guest did nothing a Linux process could not do.
func fixWazero(name string, orig api.GoModuleFunction) api.GoModuleFunction {
	switch name {
	case "fd_filestat_set_times":
		// When a file cannot set its times, wazero falls back to setting them
		// by path through the file's file system, which stdio given as a Go
		// reader or writer (how a Run's stdio always is, but for an exec's
		// terminal) does not have: a nil dereference. Such a file has no
		// times; the answer is the ENOSYS that made wazero fall back.
		return api.GoModuleFunc(func(ctx context.Context, mod api.Module, stack []uint64) {
			defer func() {
				if r := recover(); r != nil {
					if _, ok := r.(runtime.Error); !ok {
						panic(r) // a proc_exit or a cancellation: not this bug
					}
					stack[0] = errnoNosys
				}
			}()
			orig.Call(ctx, mod, stack)
		})
	}
	return nil
}
