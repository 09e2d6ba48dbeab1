//go:build !linux

package wasisock

import (
	"context"
	"errors"
	"net/netip"

	"github.com/tetratelabs/wazero/api"

	skiffrt "github.com/skiffhq/skiff/runtime"
)

// Config is what a Run's sockets need from the Run; see the Linux
// implementation.
type Config struct {
	Listeners       []Listener
	FirstListenerFD uint32
	PodIP           netip.Addr
	Resolver        *Resolver
	Firewall        skiffrt.Firewall
}

// Open refuses listeners: serving them needs Linux (ppoll, accept4,
// eventfd). Commands without listeners run everywhere, without sockets.
func Open(ctx context.Context, cfg Config) (context.Context, func(), error) {
	if len(cfg.Listeners) == 0 {
		return ctx, func() {}, nil
	}
	return ctx, nil, errors.New("listeners need Linux")
}

// Table is the sockets of one guest instance: none here.
type Table struct{}

// NewTable refuses listeners, as Open does.
func NewTable(cfg Config) (*Table, error) {
	if len(cfg.Listeners) > 0 {
		return nil, errors.New("listeners need Linux")
	}
	return &Table{}, nil
}

// Attach returns ctx unchanged.
func (*Table) Attach(ctx context.Context) (context.Context, func()) { return ctx, func() {} }

// Close does nothing.
func (*Table) Close() {}

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

// extensionFunc: guest sockets need Linux; every function of the
// extension answers ENOSYS here.
func extensionFunc(string) api.GoModuleFunction {
	return api.GoModuleFunc(func(_ context.Context, _ api.Module, stack []uint64) {
		stack[0] = errnoNosys
	})
}

// isRunSocket: no Run has sockets here.
func isRunSocket(context.Context, uint64) bool { return false }
