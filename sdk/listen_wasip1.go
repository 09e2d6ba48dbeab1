//go:build wasip1

package sdk

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"syscall"

	"github.com/skiffhq/skiff/sdk/abi"
)

// Listener returns the i-th pre-opened listener of the pod: the i-th
// container port, counting from 0. It fails if the host opened fewer.
//
// The descriptor is set non-blocking before Go sees it: os.NewFile puts a
// descriptor under Go's network poller only when it is non-blocking already,
// and a blocking accept would stop every goroutine of the program.
func Listener(i int) (net.Listener, error) {
	if i < 0 {
		return nil, fmt.Errorf("sdk: listener %d: negative index", i)
	}
	fd := abi.FirstListenerFD + i
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

// Listeners returns every pre-opened listener, in container port order.
func Listeners() ([]net.Listener, error) {
	var out []net.Listener
	for i := 0; ; i++ {
		// A missing descriptor is the end of the list.
		var st syscall.Stat_t
		if err := syscall.Fstat(abi.FirstListenerFD+i, &st); err != nil {
			return out, nil
		}
		ln, err := Listener(i)
		if err != nil {
			for _, l := range out {
				_ = l.Close()
			}
			return nil, err
		}
		out = append(out, ln)
	}
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
