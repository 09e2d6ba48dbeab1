//go:build linux

package storebench

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// writeBytes returns this process's write_bytes from /proc/self/io: the bytes
// it caused to be sent to the storage layer. Linux charges buffered writes
// when a page cache page is dirtied (whole pages, so a small write that
// re-dirties a page after its fsync counts 4 KiB), and direct I/O when it is
// submitted. The filesystem's own journal writes are not included.
func writeBytes() (int64, error) {
	f, err := os.Open("/proc/self/io")
	if err != nil {
		return 0, fmt.Errorf("read I/O counters: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != "write_bytes" {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(val), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse write_bytes in /proc/self/io: %w", err)
		}
		return n, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read /proc/self/io: %w", err)
	}
	return 0, fmt.Errorf("no write_bytes in /proc/self/io")
}

// syncFS flushes the filesystem holding dir (syncfs(2)): only that
// filesystem, not every disk of the machine as sync(2) would.
func syncFS(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open %s for syncfs: %w", dir, err)
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("syncfs %s: %w", dir, err)
	}
	return nil
}

// fsType names the filesystem holding dir, and reports whether it lives in
// memory (tmpfs, ramfs), where write_bytes stays 0 and fsync costs nothing.
func fsType(dir string) (name string, inMemory bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return "unknown", false
	}
	switch int64(st.Type) {
	case unix.TMPFS_MAGIC:
		return "tmpfs", true
	case unix.RAMFS_MAGIC:
		return "ramfs", true
	case unix.EXT4_SUPER_MAGIC:
		return "ext2/3/4", false
	case unix.XFS_SUPER_MAGIC:
		return "xfs", false
	case unix.BTRFS_SUPER_MAGIC:
		return "btrfs", false
	case unix.OVERLAYFS_SUPER_MAGIC:
		return "overlayfs", false
	}
	return fmt.Sprintf("fs type %#x", st.Type), false
}

// kernelRelease is uname -r.
func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}
