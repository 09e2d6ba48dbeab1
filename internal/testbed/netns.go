package testbed

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// dialIn dials addr from inside the network namespace at nsPath (a
// /run/netns/NAME file) and returns a connection that lives there.
//
// A socket belongs to the namespace of the thread that created it, so the
// dial runs on a fresh goroutine locked to its OS thread, which enters the
// namespace first. That thread is never unlocked: it stays in the other
// namespace, and the Go runtime ends a locked thread when its goroutine
// returns, so no other goroutine ever runs there by accident. The socket
// keeps its namespace after the thread is gone.
//
// addr must be a literal IP and port: a name would be resolved on other
// threads, and Go dials a literal address on the calling goroutine (no
// parallel fallback dials on other goroutines).
func dialIn(ctx context.Context, nsPath, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s in %s: %w", addr, nsPath, err)
	}
	if net.ParseIP(host) == nil {
		return nil, fmt.Errorf("dial %s in %s: the host must be a literal IP, not a name", addr, nsPath)
	}
	type result struct {
		c   net.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: see above
		c, err := func() (net.Conn, error) {
			if err := enter(nsPath); err != nil {
				return nil, err
			}
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}()
		done <- result{c, err}
	}()
	r := <-done // DialContext honours ctx, so this wait is bounded by it
	if r.err != nil {
		return nil, fmt.Errorf("dial %s in %s: %w", addr, nsPath, r.err)
	}
	return r.c, nil
}

// enter moves the calling OS thread into the network namespace at nsPath.
// The caller must have locked the thread and must never unlock it.
func enter(nsPath string) error {
	f, err := os.Open(nsPath)
	if err != nil {
		return fmt.Errorf("open network namespace: %w", err)
	}
	defer f.Close()
	if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("setns %s: %w", nsPath, err)
	}
	return nil
}
