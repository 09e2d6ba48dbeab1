//go:build unix

package builtin

import (
	"io/fs"
	"syscall"
)

// nlink is how many names the file has; 1 when the system does not say.
func nlink(info fs.FileInfo) uint64 {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink)
	}
	return 1
}
