package wasm

import (
	"io/fs"
	"path"
	"strings"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
)

// confinedFS is a mounted host directory with the one hole wazero 1.12 leaves
// closed. wazero cleans every guest path and refuses those that climb out of
// the mount, but the host kernel follows symbolic links, and wazero lets a
// guest create a link with a relative target such as "../../../etc/shadow":
// through it the guest reads and writes any host file the engine can (found
// while writing this package; wazero itself refuses absolute targets).
//
// confinedFS refuses a link whose target is absolute or has a ".."
// component. Every link a guest can make then points down from the directory
// holding it, wherever it is renamed to, so no chain of them leads out. This
// is stricter than a container (where "../lib" resolves inside the
// container), and cheaper and race-free compared with resolving each path
// beneath the root: legitimate guests rarely create links.
type confinedFS struct{ experimentalsys.FS }

// Symlink implements experimentalsys.FS.
func (f confinedFS) Symlink(target, link string) experimentalsys.Errno {
	if strings.HasPrefix(target, "/") || hasDotDot(target) {
		return experimentalsys.EPERM
	}
	return f.FS.Symlink(target, link)
}

// Rmdir implements experimentalsys.FS. The mount's own directory is not
// the guest's to remove: wazero 1.12 passes a guest's "" or "d/.." as ".",
// which names the mounted host directory itself, and removed it (found by
// FuzzHostileGuest); the node agent's volume was gone. A container cannot
// remove its mount points either (EBUSY; wazero has no EBUSY, so EPERM, as for
// the links above).
func (f confinedFS) Rmdir(p string) experimentalsys.Errno {
	if isMountRoot(p) {
		return experimentalsys.EPERM
	}
	return f.FS.Rmdir(p)
}

// Rename implements experimentalsys.FS: nor may the guest move the mount's
// directory, or put something in its place.
func (f confinedFS) Rename(from, to string) experimentalsys.Errno {
	if isMountRoot(from) || isMountRoot(to) {
		return experimentalsys.EPERM
	}
	return f.FS.Rename(from, to)
}

// isMountRoot reports whether a path wazero passes to a mounted file system
// names the mount's directory.
func isMountRoot(p string) bool { return path.Clean("/"+p) == "/" }

// hasDotDot reports whether a slash-separated path has a ".." component.
func hasDotDot(p string) bool {
	for part := range strings.SplitSeq(p, "/") {
		if part == ".." {
			return true
		}
	}
	return false
}

// readOnlyFS is wazero's read-only view of a directory with one fix: wazero
// 1.12 answers an open for writing with ENOSYS ("not implemented"), where a
// read-only mount on Linux answers EROFS, which is what programs check for
// (errors.Is(err, syscall.EROFS)) and what a kubectl user expects to read.
type readOnlyFS struct{ experimentalsys.FS }

// OpenFile implements experimentalsys.FS.
func (f readOnlyFS) OpenFile(path string, flag experimentalsys.Oflag, perm fs.FileMode) (experimentalsys.File, experimentalsys.Errno) {
	file, errno := f.FS.OpenFile(path, flag, perm)
	if errno == experimentalsys.ENOSYS && flag&(experimentalsys.O_WRONLY|experimentalsys.O_RDWR) != 0 {
		errno = experimentalsys.EROFS
	}
	return file, errno
}
