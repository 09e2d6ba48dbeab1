// Package dirlock gives one process at a time a data directory: two
// engines on one raft log or one node directory would corrupt both, and the
// second would otherwise hang on a library's own file lock with no word of
// why.
package dirlock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// FileName is the lock file inside the directory; it holds the pid of the
// process that has the directory.
const FileName = "lock"

// ErrInUse: another process holds the directory. Nothing was changed.
var ErrInUse = errors.New("data directory in use")

// Lock is a held directory lock.
type Lock struct {
	f *os.File
}

// Acquire takes dir for this process, or fails at once with ErrInUse
// naming the directory and the holder's pid. The lock is the kernel's
// (flock where there is one): it goes with the process, so a crashed
// holder never leaves the directory locked.
func Acquire(dir string) (*Lock, error) {
	path := filepath.Join(dir, FileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	if err := lockFile(f); err != nil {
		f.Close()
		if errors.Is(err, errWouldBlock) {
			holder := "another process"
			if b, rerr := os.ReadFile(path); rerr == nil {
				if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil {
					holder = "process " + strconv.Itoa(pid)
				}
			}
			return nil, fmt.Errorf("%w: %s is used by %s (one skiff per data directory)", ErrInUse, dir, holder)
		}
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &Lock{f: f}, nil
}

// Release gives the directory up. Safe to call more than once.
func (l *Lock) Release() {
	if l == nil || l.f == nil {
		return
	}
	unlockFile(l.f)
	l.f.Close()
	l.f = nil
}
