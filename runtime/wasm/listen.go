package wasm

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	skiffrt "github.com/skiffhq/skiff/runtime"
	"github.com/skiffhq/skiff/runtime/wasm/internal/wasisock"
)

// ErrListen means a listener of the RunSpec could not be opened (the address
// is in use or not assigned to this host). Nothing ran; the same spec may
// work once the address is free.
// It is a runtime.ErrPortUnavailable too, which the node agent reports.
var ErrListen error = listenError{}

type listenError struct{}

func (listenError) Error() string { return "wasm: cannot open listener" }

func (listenError) Is(target error) bool { return target == skiffrt.ErrPortUnavailable }

// Listener is a TCP socket the host opens for a guest before it starts: a
// container port, bound on the pod's IP. The guest finds the Run's
// listeners where wazero and wasmtime put pre-opened sockets: right after
// the pre-opened directories of the Run's mounts (fd 3 when it has none),
// in order, and the environment says where (LISTEN_FDS, LISTEN_FDNAMES and
// LISTEN_FDS_FIRST_FD; package sdk/abi documents it). A listener is bound
// from the start and listens once the guest first accepts on it or polls
// it, so until then a connection is refused, as a container's port is
// before its server listens.
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
	// Name is the listener's name in LISTEN_FDNAMES (the container port's
	// name); "" names it "port-<Port>".
	Name string

	// TCP, when set, is an already open listener to serve instead of opening
	// Host:Port. Run serves a duplicate of its descriptor and closes only the
	// duplicate: the caller keeps TCP and closes it. It listens already, so
	// connections queue in the kernel before the guest accepts and between
	// Runs (a restarting server loses none): an embedder's choice, unlike a
	// pod's port.
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

// openSockets opens the Run's sockets and returns ctx carrying them for
// the WASI functions, and a release function that closes every socket of
// the Run.
func openSockets(ctx context.Context, spec RunSpec) (context.Context, func(), error) {
	cfg, err := socketConfig(spec)
	if err != nil {
		return ctx, nil, err
	}
	ctx, release, err := wasisock.Open(ctx, cfg)
	if err != nil {
		return ctx, nil, fmt.Errorf("%w: %w", ErrListen, err)
	}
	return ctx, release, nil
}

// socketConfig is what the guest's sockets need from spec.
func socketConfig(spec RunSpec) (wasisock.Config, error) {
	cfg := wasisock.Config{FirstListenerFD: firstListenerFD(spec.Mounts), Firewall: spec.Firewall}
	for _, l := range spec.Listeners {
		cfg.Listeners = append(cfg.Listeners, wasisock.Listener{Host: l.Host, Port: l.Port, TCP: l.TCP})
	}
	if spec.PodIP != "" {
		ip, err := netip.ParseAddr(spec.PodIP)
		if err != nil {
			return cfg, fmt.Errorf("%w: pod IP %q: %w", ErrInvalidSpec, spec.PodIP, err)
		}
		cfg.PodIP = ip.Unmap()
	}
	if d := spec.DNS; d != nil && len(d.Nameservers) > 0 {
		cfg.Resolver = &wasisock.Resolver{Nameservers: d.Nameservers, Searches: d.Searches, Ndots: d.Ndots}
	}
	return cfg, nil
}

// firstListenerFD is the guest descriptor of a Run's first listener: after
// stdio and the pre-opened directories of its mounts (the node's files,
// NodeFiles, come after the listeners).
func firstListenerFD(ms []Mount) uint32 {
	n := uint32(3)
	for _, m := range ms {
		if !m.NodeFiles {
			n++
		}
	}
	return n
}

// listenerEnv is the environment that tells the guest where its listeners
// are, in the systemd socket-activation convention (wasmtime --listenfd):
// LISTEN_FDS, LISTEN_FDNAMES, and LISTEN_FDS_FIRST_FD (systemfd's
// extension, for listeners that are not at fd 3). LISTEN_PID is what a Go
// wasip1 guest's os.Getpid returns (always 3), so Go's socket-activation
// packages, which compare the two, accept the listeners.
func listenerEnv(spec RunSpec) []string {
	if len(spec.Listeners) == 0 {
		return nil
	}
	names := make([]string, len(spec.Listeners))
	for i, l := range spec.Listeners {
		names[i] = l.Name
		if names[i] == "" {
			names[i] = "port-" + strconv.Itoa(l.Port)
		}
	}
	return []string{
		"LISTEN_FDS=" + strconv.Itoa(len(spec.Listeners)),
		"LISTEN_FDNAMES=" + strings.Join(names, ":"),
		"LISTEN_FDS_FIRST_FD=" + strconv.FormatUint(uint64(firstListenerFD(spec.Mounts)), 10),
		"LISTEN_PID=3",
	}
}
