package wasisock

import (
	"context"
	"sync/atomic"

	"github.com/tetratelabs/wazero/api"
)

// NoSpace carries a disk quota's refusals from a Run's mounted file systems
// to its WASI functions, so that the guest reads ENOSPC ("no space left on
// device"), as on a full disk.
//
// Why a side channel: wazero 1.12's experimental/sys.Errno has no ENOSPC, and
// its WASI functions turn every errno they do not know into EIO, which
// programs do not read as "full". The file system counts its refusals here;
// the functions that can fill a disk compare the count around wazero's call
// and answer ENOSPC for an EIO that came with a refusal. A command is one
// instance, so the count is exact; the instances of a handler pool share one,
// and a genuine EIO in one instance while another is refused could read as
// ENOSPC, which is harmless.
type NoSpace struct{ refused atomic.Uint64 }

// Refuse records one refused change; on nil it does nothing.
func (n *NoSpace) Refuse() {
	if n != nil {
		n.refused.Add(1)
	}
}

type noSpaceKey struct{}

// WithNoSpace returns ctx carrying n for the WASI functions of calls made
// with it.
func WithNoSpace(ctx context.Context, n *NoSpace) context.Context {
	return context.WithValue(ctx, noSpaceKey{}, n)
}

func noSpace(ctx context.Context) *NoSpace {
	n, _ := ctx.Value(noSpaceKey{}).(*NoSpace)
	return n
}

// errnoNospc is WASI preview1's ENOSPC.
const errnoNospc = 51

// noSpaceFuncs are the WASI functions that can make a directory hold more.
var noSpaceFuncs = map[string]bool{
	"fd_write": true, "fd_pwrite": true, "fd_allocate": true, "fd_filestat_set_size": true,
	"path_open": true, "path_create_directory": true, "path_symlink": true, "path_link": true,
}

// wrapNoSpace returns name's function answering ENOSPC where next answered
// EIO for a refusal, or nil when name cannot fill a disk.
func wrapNoSpace(name string, next api.GoModuleFunction) api.GoModuleFunction {
	if !noSpaceFuncs[name] {
		return nil
	}
	return api.GoModuleFunc(func(ctx context.Context, mod api.Module, stack []uint64) {
		n := noSpace(ctx)
		if n == nil {
			next.Call(ctx, mod, stack)
			return
		}
		before := n.refused.Load()
		next.Call(ctx, mod, stack)
		if uint32(stack[0]) == errnoIO && n.refused.Load() != before {
			stack[0] = errnoNospc
		}
	})
}
