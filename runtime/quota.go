package runtime

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
)

// DiskQuota bounds what writes through a Mount may store on the node's disk
// (an emptyDir's sizeLimit, a pod's ephemeral-storage limit). The runtime
// asks before every change that makes the directory hold more and tells
// after every change that makes it hold less; the quota decides.
//
// What counts, the same for the runtime's tracking and for DiskUsage's scan
// of what is already there: each byte of a regular file's size, once however
// many links it has (holes included: a sparse file may become dense), and
// EntryBytes for each name (file, directory, symbolic link or hard link), so
// that creating empty files cannot exhaust the node's inodes for free. Data
// written to a file after its last link was removed while it is still open
// counts and is never given back (the bytes do leave the disk when it is
// closed): that errs on the side of the disk.
//
// A DiskQuota is shared by every mount of the volume, in every container
// and restart of the pod, and is safe for concurrent use.
type DiskQuota interface {
	// Reserve asks for n more bytes (n > 0) and returns how many of them
	// may be used, from 0 to n. A write gets the bytes that fit, as on a
	// disk that fills up (a short write), and ENOSPC ("no space left on
	// device") when none do.
	Reserve(n int64) int64
	// Release gives back n bytes (n > 0): reserved and not used, or freed
	// by a truncate, an unlink, a rename over a file, or a rmdir.
	Release(n int64)
}

// EntryBytes is what a file, directory or link counts besides its content:
// one block of a common file system.
const EntryBytes = 4096

// DiskUsage returns what the files under dir count towards a DiskQuota (see
// DiskQuota), dir itself excluded. A file with several links under dir
// counts once.
func DiskUsage(dir string) (int64, error) {
	var total int64
	seen := map[fileID]bool{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p != dir {
				return nil // removed while we walked
			}
			return err
		}
		if p == dir {
			return nil
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		total += EntryBytes
		if !info.Mode().IsRegular() {
			return nil
		}
		if id, linked := hardLinked(info); linked {
			if seen[id] {
				return nil // its content counted at its first name
			}
			seen[id] = true
		}
		total += info.Size()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("disk usage of %s: %w", dir, err)
	}
	return total, nil
}
