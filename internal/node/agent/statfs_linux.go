package agent

import (
	"fmt"

	"golang.org/x/sys/unix"
)

func statfs(path string) (diskStats, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return diskStats{}, fmt.Errorf("statfs of the data directory: %w", err)
	}
	return diskStats{Blocks: st.Blocks, Available: st.Bavail, Inodes: st.Files, FreeInodes: st.Ffree}, nil
}
