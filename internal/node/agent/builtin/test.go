package builtin

import (
	"fmt"
	"path"
	"strings"
)

// runTest is test(1) for one unary file operator, what `kubectl cp` asks
// before it copies into a pod (`test -d DIR`: is the destination a
// directory?): -d, -e, -f, -s. A missing path is false (exit 1); a line it
// does not serve is an error (exit 2), as coreutils' test answers one it
// cannot parse.
func runTest(args []string, v *view, st Streams) int {
	if len(args) != 2 || !strings.HasPrefix(args[0], "-") {
		fmt.Fprintf(st.Stderr, "test: the node's built-in test serves only -d, -e, -f or -s FILE\n")
		return 2
	}
	p := args[1]
	if !strings.HasPrefix(p, "/") {
		p = "/" + p // a Wasm guest's working directory is the root
	}
	p = path.Clean(p)
	info, err := v.stat(p) // test follows links, within the mount
	var ok bool
	switch args[0] {
	case "-d":
		ok = err == nil && info.IsDir()
	case "-e":
		ok = err == nil
	case "-f":
		ok = err == nil && info.Mode().IsRegular()
	case "-s":
		ok = err == nil && info.Size() > 0
	default:
		fmt.Fprintf(st.Stderr, "test: %s: unary operator expected\n", args[0])
		return 2
	}
	if ok {
		return 0
	}
	return 1
}
