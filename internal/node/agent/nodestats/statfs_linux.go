package nodestats

import (
	"fmt"

	"golang.org/x/sys/unix"
)

func Statfs(path string) (Disk, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return Disk{}, fmt.Errorf("Statfs of the data directory: %w", err)
	}
	return Disk{Blocks: st.Blocks, Available: st.Bavail, Inodes: st.Files, FreeInodes: st.Ffree}, nil
}
