package wasm

import (
	"context"
	"fmt"
	"net"

	skiffrt "github.com/skiffhq/skiff/runtime"
	"github.com/skiffhq/skiff/runtime/wasm/internal/wasisock"
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
// It is a runtime.ErrPortUnavailable too, which the node agent reports.
var ErrListen error = listenError{}

type listenError struct{}

func (listenError) Error() string { return "wasm: cannot open listener" }

func (listenError) Is(target error) bool { return target == skiffrt.ErrPortUnavailable }

// Listener is a TCP socket the host opens for a guest before it starts: a
// container port, bound on the pod's IP. The guest accepts connections on it
// through WASI's sock_accept; it cannot open sockets of its own.
//
// Sockets are served by this package rather than by wazero's
// experimental/sock, whose wazero 1.12 implementation does not work for a Go
// guest (runtime/wasm/internal/wasisock says why): here
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

// openSockets opens the Run's listeners and returns ctx carrying them for the
// WASI functions (package wasisock serves them), and a release function that
// closes every socket of the Run. Without listeners it returns ctx unchanged.
func openSockets(ctx context.Context, ls []Listener) (context.Context, func(), error) {
	hostListeners := make([]wasisock.Listener, len(ls))
	for i, l := range ls {
		hostListeners[i] = wasisock.Listener(l)
	}
	ctx, release, err := wasisock.Open(ctx, hostListeners)
	if err != nil {
		return ctx, nil, fmt.Errorf("%w: %w", ErrListen, err)
	}
	return ctx, release, nil
}
