package wasm

import (
	"io"
	"io/fs"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/sys"

	skiffrt "github.com/skiffhq/skiff/runtime"
	"github.com/skiffhq/skiff/runtime/wasm/internal/wasisock"
)

// quotaFS holds a mounted directory to a DiskQuota (an emptyDir's
// sizeLimit): every call that makes the directory hold more asks the quota
// first, and every call that frees something gives it back, counted as
// skiffrt.DiskQuota documents.
//
// Why refuse writes rather than evict the pod afterwards, as the kubelet
// does: the kubelet measures volumes every few seconds, and a guest writing
// as fast as wazero lets it fills gigabytes between two measurements (a
// 20Mi emptyDir once filled a 75 GB disk). Asking before each write bounds
// the volume exactly, and the guest learns why with the errno every program
// already handles: ENOSPC, as on a full disk. A write that only partly fits
// writes the part that fits and reports the short count, as a filling disk
// does; the next one gets ENOSPC.
//
// wazero 1.12 has no ENOSPC errno: a refusal returns EIO and is counted in
// ns, and the WASI functions turn that EIO into ENOSPC (wasisock.NoSpace).
type quotaFS struct {
	experimentalsys.FS
	q  skiffrt.DiskQuota
	ns *wasisock.NoSpace
}

// full is the errno of a refused change.
func full(ns *wasisock.NoSpace) experimentalsys.Errno {
	ns.Refuse()
	return experimentalsys.EIO
}

// reserveAll reserves exactly n bytes or nothing.
func reserveAll(q skiffrt.DiskQuota, n int64) bool {
	got := q.Reserve(n)
	if got < n {
		if got > 0 {
			q.Release(got)
		}
		return false
	}
	return true
}

// entryCost is what removing the name st describes gives back: the entry,
// and the content when this was the file's last link.
func entryCost(st sys.Stat_t) int64 {
	n := int64(skiffrt.EntryBytes)
	if st.Mode.IsRegular() && st.Nlink <= 1 {
		n += st.Size
	}
	return n
}

// OpenFile implements experimentalsys.FS.
func (f quotaFS) OpenFile(path string, flag experimentalsys.Oflag, perm fs.FileMode) (experimentalsys.File, experimentalsys.Errno) {
	writable := flag&(experimentalsys.O_WRONLY|experimentalsys.O_RDWR) != 0
	var before sys.Stat_t
	existed := true
	if flag&(experimentalsys.O_CREAT|experimentalsys.O_TRUNC) != 0 {
		st, errno := f.FS.Lstat(path)
		existed = errno == 0
		if existed && flag&experimentalsys.O_TRUNC != 0 && st.Mode.Type() == fs.ModeSymlink {
			st, errno = f.FS.Stat(path) // truncation applies to the target
			existed = errno == 0
		}
		before = st
	}
	created := flag&experimentalsys.O_CREAT != 0 && !existed
	if created && !reserveAll(f.q, skiffrt.EntryBytes) {
		return nil, full(f.ns)
	}
	file, errno := f.FS.OpenFile(path, flag, perm)
	if errno != 0 {
		if created {
			f.q.Release(skiffrt.EntryBytes)
		}
		return nil, errno
	}
	if existed && writable && flag&experimentalsys.O_TRUNC != 0 && before.Mode.IsRegular() && before.Size > 0 {
		f.q.Release(before.Size)
	}
	if !writable {
		// Nothing written through it can grow a file: a descriptor opened
		// read-only refuses writes and truncation.
		return file, 0
	}
	return &quotaFile{File: file, q: f.q, ns: f.ns}, 0
}

// Mkdir implements experimentalsys.FS.
func (f quotaFS) Mkdir(path string, perm fs.FileMode) experimentalsys.Errno {
	return f.newEntry(func() experimentalsys.Errno { return f.FS.Mkdir(path, perm) })
}

// Symlink implements experimentalsys.FS.
func (f quotaFS) Symlink(target, link string) experimentalsys.Errno {
	return f.newEntry(func() experimentalsys.Errno { return f.FS.Symlink(target, link) })
}

// newEntry reserves one entry's bytes for create, and gives them back if
// create fails.
func (f quotaFS) newEntry(create func() experimentalsys.Errno) experimentalsys.Errno {
	if !reserveAll(f.q, skiffrt.EntryBytes) {
		return full(f.ns)
	}
	errno := create()
	if errno != 0 {
		f.q.Release(skiffrt.EntryBytes)
	}
	return errno
}

// Link implements experimentalsys.FS: a new name, no new content.
func (f quotaFS) Link(oldPath, newPath string) experimentalsys.Errno {
	if !reserveAll(f.q, skiffrt.EntryBytes) {
		return full(f.ns)
	}
	errno := f.FS.Link(oldPath, newPath)
	if errno != 0 {
		f.q.Release(skiffrt.EntryBytes)
	}
	return errno
}

// Unlink implements experimentalsys.FS.
func (f quotaFS) Unlink(path string) experimentalsys.Errno {
	st, serr := f.FS.Lstat(path)
	errno := f.FS.Unlink(path)
	if errno == 0 && serr == 0 {
		f.q.Release(entryCost(st))
	}
	return errno
}

// Rmdir implements experimentalsys.FS.
func (f quotaFS) Rmdir(path string) experimentalsys.Errno {
	errno := f.FS.Rmdir(path)
	if errno == 0 {
		f.q.Release(skiffrt.EntryBytes)
	}
	return errno
}

// Rename implements experimentalsys.FS: a rename over an existing name
// frees what that name held.
func (f quotaFS) Rename(from, to string) experimentalsys.Errno {
	target, terr := f.FS.Lstat(to)
	if terr == 0 {
		// Two names of one file: rename does nothing, frees nothing.
		if src, serr := f.FS.Lstat(from); serr == 0 && src.Dev == target.Dev && src.Ino == target.Ino {
			return f.FS.Rename(from, to)
		}
	}
	errno := f.FS.Rename(from, to)
	if errno == 0 && terr == 0 {
		f.q.Release(entryCost(target))
	}
	return errno
}

// quotaFile is a file opened for writing under a quotaFS.
type quotaFile struct {
	experimentalsys.File
	q  skiffrt.DiskQuota
	ns *wasisock.NoSpace
}

// Write implements experimentalsys.File.
func (f *quotaFile) Write(buf []byte) (int, experimentalsys.Errno) {
	if len(buf) == 0 {
		return f.File.Write(buf)
	}
	st, errno := f.File.Stat()
	if errno != 0 {
		return 0, errno
	}
	if !st.Mode.IsRegular() {
		return f.File.Write(buf)
	}
	off := st.Size
	if !f.File.IsAppend() {
		if off, errno = f.File.Seek(0, io.SeekCurrent); errno != 0 {
			return 0, errno
		}
	}
	return f.write(st.Size, off, buf, func(b []byte) (int, experimentalsys.Errno) { return f.File.Write(b) })
}

// Pwrite implements experimentalsys.File.
func (f *quotaFile) Pwrite(buf []byte, off int64) (int, experimentalsys.Errno) {
	if len(buf) == 0 {
		return f.File.Pwrite(buf, off)
	}
	st, errno := f.File.Stat()
	if errno != 0 {
		return 0, errno
	}
	if !st.Mode.IsRegular() {
		return f.File.Pwrite(buf, off)
	}
	at := off
	if f.File.IsAppend() {
		at = st.Size // Linux appends a pwrite on an O_APPEND file
	}
	return f.write(st.Size, at, buf, func(b []byte) (int, experimentalsys.Errno) { return f.File.Pwrite(b, off) })
}

// write writes the part of buf that the quota allows, at off in a file of
// size bytes: all of it, a prefix (a short write), or nothing with ENOSPC.
func (f *quotaFile) write(size, off int64, buf []byte, do func([]byte) (int, experimentalsys.Errno)) (int, experimentalsys.Errno) {
	end := off + int64(len(buf))
	if end <= size {
		return do(buf) // overwrites only: nothing new to hold
	}
	growth := end - size // a write past the end also fills the hole before it
	got := f.q.Reserve(growth)
	if got < growth {
		fits := size + got - off
		if fits <= 0 {
			if got > 0 {
				f.q.Release(got)
			}
			return 0, full(f.ns)
		}
		buf = buf[:fits]
	}
	n, errno := do(buf)
	if used := max(0, off+int64(n)-size); used < got {
		f.q.Release(got - used)
	}
	return n, errno
}

// Truncate implements experimentalsys.File (ftruncate, and fd_allocate,
// which wazero implements with it): growing needs the whole growth.
func (f *quotaFile) Truncate(size int64) experimentalsys.Errno {
	st, errno := f.File.Stat()
	if errno != 0 || !st.Mode.IsRegular() || size < 0 {
		return f.File.Truncate(size)
	}
	switch {
	case size > st.Size:
		if !reserveAll(f.q, size-st.Size) {
			return full(f.ns)
		}
		if errno := f.File.Truncate(size); errno != 0 {
			f.q.Release(size - st.Size)
			return errno
		}
	case size < st.Size:
		if errno := f.File.Truncate(size); errno != 0 {
			return errno
		}
		f.q.Release(st.Size - size)
	default:
		return f.File.Truncate(size)
	}
	return 0
}

// Poll implements experimentalsys.Pollable when the file does, as wazero's
// own wrappers forward it.
func (f *quotaFile) Poll(flag experimentalsys.Pflag, timeoutMillis int32) (bool, experimentalsys.Errno) {
	if p, ok := f.File.(experimentalsys.Pollable); ok {
		return p.Poll(flag, timeoutMillis)
	}
	return false, experimentalsys.ENOSYS
}
