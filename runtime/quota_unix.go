//go:build unix

package runtime

import (
	"io/fs"
	"syscall"
)

type fileID struct{ dev, ino uint64 }

// hardLinked identifies a file with more than one link, so that its content
// counts once.
func hardLinked(info fs.FileInfo) (fileID, bool) {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok || st.Nlink < 2 {
		return fileID{}, false
	}
	return fileID{uint64(st.Dev), uint64(st.Ino)}, true //nolint:unconvert // Dev is uint32 on some platforms
}
