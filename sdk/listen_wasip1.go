//go:build wasip1

package sdk

import (
	"fmt"
	"net"
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
