//go:build linux

package terminal

import (
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	skiffrt "github.com/skiffhq/skiff/runtime"
)

// Terminal is a pseudo-terminal for an exec with a TTY: the guest gets the
// slave side as its stdin, stdout and stderr, so WASI reports a character
// device and isatty is true (an io.Reader or io.Writer would show as some
// other device); the host copies between the master side and the client's
// streams, and applies the client's size changes to it.
type Terminal struct {
	master, slave *os.File
	out           sync.WaitGroup
}

// Open opens a new pseudo-terminal.
func Open() (*Terminal, error) {
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("open pseudo-terminal: %w", err)
	}
	// Through SyscallConn, not Fd: Fd would put the master in blocking
	// mode, and then closing it could not end a read in progress.
	var n int
	err = control(master, func(fd int) error {
		if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
			return fmt.Errorf("unlock pseudo-terminal: %w", err)
		}
		var err error
		if n, err = unix.IoctlGetInt(fd, unix.TIOCGPTN); err != nil {
			return fmt.Errorf("pseudo-terminal number: %w", err)
		}
		return nil
	})
	if err != nil {
		master.Close()
		return nil, err
	}
	slave, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		return nil, fmt.Errorf("open pseudo-terminal %d: %w", n, err)
	}
	return &Terminal{master: master, slave: slave}, nil
}

// Slave is the guest's side: its stdin, stdout and stderr.
func (t *Terminal) Slave() *os.File { return t.slave }

// Attach copies stdin into the terminal and the terminal's output to
// stdout, and applies resizes, until the terminal closes.
func (t *Terminal) Attach(stdin io.Reader, stdout io.Writer, resize <-chan skiffrt.TerminalSize, done <-chan struct{}) {
	if stdin != nil {
		go io.Copy(t.master, stdin) // ends when the master closes
	}
	if stdout == nil {
		stdout = io.Discard
	}
	t.out.Add(1)
	go func() {
		defer t.out.Done()
		io.Copy(stdout, t.master) // EIO once the slave is closed and drained
	}()
	if resize != nil {
		go func() {
			for {
				select {
				case <-done:
					return
				case sz := <-resize:
					control(t.master, func(fd int) error {
						return unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, &unix.Winsize{Row: sz.Height, Col: sz.Width})
					})
				}
			}
		}()
	}
}

// HangUp closes both sides at once, ending any read in progress: the
// client is gone.
func (t *Terminal) HangUp() {
	t.slave.Close()
	t.master.Close()
}

// Close ends the guest's side, waits for its last output to be copied, and
// closes the terminal.
func (t *Terminal) Close() {
	t.slave.Close()
	t.out.Wait()
	t.master.Close()
}

// control runs fn on f's descriptor without changing its blocking mode.
func control(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}
