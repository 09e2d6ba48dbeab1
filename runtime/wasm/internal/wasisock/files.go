package wasisock

import (
	"context"

	"github.com/tetratelabs/wazero/api"
)

// maxFileFD bounds the descriptor numbers of a guest's files and
// directories: a Run holds at most this many (less stdio and mounts), as a
// process holds at most RLIMIT_NOFILE.
//
// wazero 1.12 keeps a Run's files in a table indexed by descriptor, 8 bytes
// per slot up to the highest descriptor, and grows it to whatever number
// fd_renumber is given: a guest renumbering a file to 2^31-1 made the host
// allocate 16 GiB, outside its memory limit (found by FuzzHostileGuest in
// runtime/wasm). It also opens files for as long as the host has
// descriptors, so one guest could leave the engine none. wazero numbers new
// files from 3 up, lowest free first, so a bound on numbers is a bound on
// both: the table stays under 32 KiB and a Run under maxFileFD host
// descriptors for files; sockets have their own bound (maxConns).
const maxFileFD = 4096

// limitFiles returns the replacement of fn, the WASI function name as this
// package serves it, that keeps guest file descriptors below maxFileFD, or
// nil if name needs none. fdClose is wazero's fd_close.
func limitFiles(name string, fn, fdClose api.GoModuleFunction) api.GoModuleFunction {
	switch name {
	case "fd_renumber":
		return api.GoModuleFunc(func(ctx context.Context, mod api.Module, stack []uint64) {
			// Socket numbers are above maxFileFD: fn answers for them when
			// the Run has sockets (sockets cannot be renumbered).
			to := uint32(stack[1])
			if to >= maxFileFD && !isRunSocket(ctx, stack[1]) {
				// What dup2 answers for a number past RLIMIT_NOFILE.
				stack[0] = errnoBadf
				return
			}
			fn.Call(ctx, mod, stack)
		})
	case "path_open":
		return api.GoModuleFunc(func(ctx context.Context, mod api.Module, stack []uint64) {
			result := uint32(stack[8]) // result.opened_fd; stack[0] becomes the errno
			fn.Call(ctx, mod, stack)
			if stack[0] != errnoSuccess {
				return
			}
			fd, ok := mod.Memory().ReadUint32Le(result)
			if ok && fd >= maxFileFD {
				// What open answers at RLIMIT_NOFILE.
				fdClose.Call(ctx, mod, []uint64{uint64(fd)})
				stack[0] = errnoMfile
			}
		})
	}
	return nil
}
