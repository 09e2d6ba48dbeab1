package builtin

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"
	"time"

	skiffrt "github.com/skiffhq/skiff/runtime"
)

// view is a container's file system as its guest sees it: its mounts at
// their guest paths, and the directories above them (the "virtual"
// directories, which hold nothing but the way to the mounts). Nothing else
// exists.
type view struct {
	mounts []*mount // longest guest path first, so the innermost mount wins
}

type mount struct {
	guest string // clean and absolute
	host  string
	ro    bool
	quota skiffrt.DiskQuota

	root    *os.Root // opened on first use
	openErr error
}

func newView(ms []skiffrt.Mount) *view {
	v := &view{}
	for _, m := range ms {
		g := path.Clean("/" + m.GuestPath)
		// The node writes the NodeFiles directory (resolv.conf, hosts)
		// for every container: never the container's to change.
		v.mounts = append(v.mounts, &mount{guest: g, host: m.HostPath, ro: m.ReadOnly || m.NodeFiles, quota: m.Quota})
	}
	slices.SortStableFunc(v.mounts, func(a, b *mount) int { return len(b.guest) - len(a.guest) })
	return v
}

func (v *view) close() {
	for _, m := range v.mounts {
		if m.root != nil {
			m.root.Close()
		}
	}
}

// open returns the mount's root, opening it once.
func (m *mount) open() (*os.Root, error) {
	if m.root == nil && m.openErr == nil {
		m.root, m.openErr = os.OpenRoot(m.host)
	}
	return m.root, m.openErr
}

// under reports whether guest path p is at or below dir.
func under(p, dir string) bool {
	return p == dir || dir == "/" || strings.HasPrefix(p, dir+"/")
}

// resolve finds the mount holding guest path p (clean, absolute) and p's
// path relative to the mount's directory ("." for the mount itself); nil
// when no mount holds it.
func (v *view) resolve(p string) (*mount, string) {
	for _, m := range v.mounts {
		if p == m.guest {
			return m, "."
		}
		if under(p, m.guest) {
			return m, strings.TrimPrefix(strings.TrimPrefix(p, m.guest), "/")
		}
	}
	return nil, ""
}

// aboveMount reports whether guest path p is a directory on the way to a
// mount (a proper ancestor of a mount's guest path).
func (v *view) aboveMount(p string) bool {
	for _, m := range v.mounts {
		if m.guest != p && under(m.guest, p) {
			return true
		}
	}
	return false
}

// mountNames are the names directly under guest directory p that lead to
// a mount (a mount point, or a directory above one).
func (v *view) mountNames(p string) []string {
	var names []string
	for _, m := range v.mounts {
		if m.guest == p || !under(m.guest, p) {
			continue
		}
		rest := strings.TrimPrefix(strings.TrimPrefix(m.guest, p), "/")
		name, _, _ := strings.Cut(rest, "/")
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	return names
}

// virtualDir is the FileInfo of a directory above the mounts.
type virtualDir string

func (d virtualDir) Name() string       { return path.Base(string(d)) }
func (d virtualDir) Size() int64        { return 0 }
func (d virtualDir) Mode() fs.FileMode  { return fs.ModeDir | 0o755 }
func (d virtualDir) ModTime() time.Time { return time.Unix(0, 0) }
func (d virtualDir) IsDir() bool        { return true }
func (d virtualDir) Sys() any           { return nil }

// lstat describes guest path p (clean, absolute) without following a last
// symbolic link. A path of no mount and above none is fs.ErrNotExist.
func (v *view) lstat(p string) (fs.FileInfo, error) {
	m, rel := v.resolve(p)
	if m == nil {
		if v.aboveMount(p) || p == "/" {
			return virtualDir(p), nil
		}
		return nil, &fs.PathError{Op: "lstat", Path: p, Err: fs.ErrNotExist}
	}
	root, err := m.open()
	if err != nil {
		return nil, err
	}
	info, err := root.Lstat(rel)
	if errors.Is(err, fs.ErrNotExist) && v.aboveMount(p) {
		// A nested mount under a directory its parent mount lacks.
		return virtualDir(p), nil
	}
	return info, err
}

// stat is lstat following a last symbolic link, within its mount (where
// os.Root resolves it), as tar -C and test do.
func (v *view) stat(p string) (fs.FileInfo, error) {
	info, err := v.lstat(p)
	if err != nil || info.Mode()&fs.ModeSymlink == 0 {
		return info, err
	}
	m, rel := v.resolve(p)
	root, err := m.open()
	if err != nil {
		return nil, err
	}
	return root.Stat(rel)
}

// errnoText is the C library's text for err, as GNU tar prints it
// ("No such file or directory"). os.Root refuses a path that would leave
// its directory (through "..", or a symbolic link pointing out) with an
// error of its own: to the guest that is a path it may not follow.
func errnoText(err error) string {
	var errno syscall.Errno
	switch {
	case errors.As(err, &errno):
		t := errno.Error()
		return strings.ToUpper(t[:1]) + t[1:]
	case errors.Is(err, fs.ErrNotExist):
		return "No such file or directory"
	case errors.Is(err, fs.ErrPermission):
		return "Permission denied"
	case errors.Is(err, fs.ErrExist):
		return "File exists"
	case strings.Contains(err.Error(), "path escapes from parent"):
		return "Permission denied"
	}
	return err.Error()
}
