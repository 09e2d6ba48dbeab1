//go:build !linux

package wasm

import (
	"errors"
	"io"
	"os"

	skiffrt "github.com/skiffhq/skiff/runtime"
)

type terminal struct{ slave *os.File }

func openTerminal() (*terminal, error) {
	return nil, errors.New("no pseudo-terminals on this platform")
}

func (t *terminal) attach(io.Reader, io.Writer, <-chan skiffrt.TerminalSize, <-chan struct{}) {}

func (t *terminal) close() {}

func (t *terminal) hangUp() {}
