//go:build wasip1

package sdk

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"syscall"
)

// Listener returns the i-th pre-opened listener of the pod: the i-th
// container port, counting from 0. It fails if the host opened fewer.
// The host says where the listeners are in the environment (LISTEN_FDS,
// LISTEN_FDS_FIRST_FD; package sdk/abi).
//
// The descriptor is set non-blocking before Go sees it: os.NewFile puts a
// descriptor under Go's network poller only when it is non-blocking already,
// and a blocking accept would stop every goroutine of the program.
func Listener(i int) (net.Listener, error) {
	first, n := listenFDs()
	if i < 0 || i >= n {
		return nil, fmt.Errorf("sdk: listener %d: the pod has %d", i, n)
	}
	fd := first + i
	if err := syscall.SetNonblock(fd, true); err != nil {
		return nil, fmt.Errorf("sdk: listener %d (fd %d): %w", i, fd, err)
	}
	f := os.NewFile(uintptr(fd), fmt.Sprintf("listener-%d", i))
	ln, err := net.FileListener(f)
	// FileListener works on its own copy of the descriptor.
	_ = f.Close()
	if err != nil {
		return nil, fmt.Errorf("sdk: listener %d (fd %d): %w", i, fd, err)
	}
	return ln, nil
}

// listenFDs is the first listener's descriptor and how many there are, from
// the environment (systemd's convention; fd 3 when the host says no other).
func listenFDs() (first, n int) {
	n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if err != nil || n < 0 {
		return 3, 0
	}
	first = 3
	if f, err := strconv.Atoi(os.Getenv("LISTEN_FDS_FIRST_FD")); err == nil && f >= 3 {
		first = f
	}
	return first, n
}

// Listeners returns every pre-opened listener, in container port order.
func Listeners() ([]net.Listener, error) {
	_, n := listenFDs()
	out := make([]net.Listener, 0, n)
	for i := range n {
		ln, err := Listener(i)
		if err != nil {
			for _, l := range out {
				_ = l.Close()
			}
			return nil, err
		}
		out = append(out, ln)
	}
	return out, nil
}

// Serve serves h with net/http on every pre-opened listener and returns when
// one fails: the main of a command that serves HTTP on its container ports.
// (A handler module calls Handle in init instead and has no main loop.)
func Serve(h http.Handler) error {
	lns, err := Listeners()
	if err != nil {
		return err
	}
	if len(lns) == 0 {
		return errors.New("sdk: no pre-opened listeners (the pod declares no container ports)")
	}
	errc := make(chan error, len(lns))
	for _, ln := range lns {
		go func() { errc <- http.Serve(ln, h) }()
	}
	err = <-errc
	for _, ln := range lns {
		_ = ln.Close()
	}
	return err
}
