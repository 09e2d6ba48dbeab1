//go:build !linux

package wasisock

import (
	"context"
	"errors"

	"github.com/tetratelabs/wazero/api"
)

// Open refuses listeners: serving them needs Linux (ppoll, accept4,
// eventfd). Commands without listeners run everywhere.
func Open(ctx context.Context, ls []Listener) (context.Context, func(), error) {
	if len(ls) == 0 {
		return ctx, func() {}, nil
	}
	return ctx, nil, errors.New("listeners need Linux")
}

// wrapWASI replaces only poll_oneoff's sleeps, so a cancelled Run wakes a
// sleeping guest here too (see sleepClocks).
func wrapWASI(name string, orig api.GoModuleFunction) api.GoModuleFunction {
	if name != "poll_oneoff" {
		return nil
	}
	return api.GoModuleFunc(func(ctx context.Context, mod api.Module, stack []uint64) {
		a, e := readPollArgs(mod, stack)
		switch {
		case e != errnoSuccess:
			stack[0] = e
		case a.clockOnly():
			stack[0] = sleepClocks(ctx, mod, a)
		default:
			orig.Call(ctx, mod, stack)
		}
	})
}

// isRunSocket: no Run has sockets here.
func isRunSocket(context.Context, uint64) bool { return false }
