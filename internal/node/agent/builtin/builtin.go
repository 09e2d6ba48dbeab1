// Package builtin holds the few programs the node runs itself, on a
// container's volumes, when the container's image has none of its own: a
// Wasm module is one program and brings no tar or test, yet `kubectl cp`
// runs `tar cf - PATH` (from the pod), `test -d DIR` and `tar -xmf - -C DIR`
// (to the pod) through pods/exec, as it would in any container.
//
// They see the container as the container sees itself: only its mounts
// (runtime.Mount), at their guest paths, with their read-only flags and
// their quotas (an emptyDir's sizeLimit and the pod's ephemeral-storage
// limit). Paths outside every mount do not exist, as in the Wasm guest; a
// symbolic link never leads out of its mount (os.Root resolves every path
// beneath the mount's directory), and extraction creates no link that could
// (the Wasm runtime's rule for guests: no absolute target, no ".."
// component). Each program answers as GNU tar or coreutils' test would:
// their messages on stderr and their exit codes, so that kubectl prints what
// it prints against any cluster.
package builtin

import (
	"context"
	"io"
	"path"

	skiffrt "github.com/skiffhq/skiff/runtime"
)

// Streams are a builtin's standard streams; any may be nil (no input, or
// output nobody asked for).
type Streams struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// Has reports whether argv names a builtin program ("tar", "test", or a
// path ending in one of them, such as /bin/tar).
func Has(argv []string) bool {
	if len(argv) == 0 {
		return false
	}
	switch path.Base(argv[0]) {
	case "tar", "test":
		return true
	}
	return false
}

// Run runs the builtin argv names (Has(argv) must hold) over mounts and
// returns its exit code. It returns when the program ends or ctx ends
// (then with exit code 2, as an interrupted tar's failure).
func Run(ctx context.Context, argv []string, mounts []skiffrt.Mount, st Streams) int {
	if st.Stdin == nil {
		st.Stdin = eofReader{}
	}
	if st.Stdout == nil {
		st.Stdout = io.Discard
	}
	if st.Stderr == nil {
		st.Stderr = io.Discard
	}
	v := newView(mounts)
	defer v.close()
	switch path.Base(argv[0]) {
	case "tar":
		return runTar(ctx, argv[1:], v, st)
	case "test":
		return runTest(argv[1:], v, st)
	}
	return 127
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }
