//go:build !linux

package terminal

import (
	"errors"
	"io"
	"os"

	skiffrt "github.com/skiffhq/skiff/runtime"
)

// Terminal is a pseudo-terminal where the platform has them; Open says it
// has none here.
type Terminal struct{ slave *os.File }

// Open fails: pseudo-terminals are implemented for Linux only, and an exec
// then uses plain streams.
func Open() (*Terminal, error) {
	return nil, errors.New("no pseudo-terminals on this platform")
}

func (t *Terminal) Slave() *os.File { return t.slave }

func (t *Terminal) Attach(io.Reader, io.Writer, <-chan skiffrt.TerminalSize, <-chan struct{}) {}

func (t *Terminal) Close() {}

func (t *Terminal) HangUp() {}
