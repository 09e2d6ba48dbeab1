package builtin

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"
	"time"

	skiffrt "github.com/skiffhq/skiff/runtime"
)

// Bounds on what an archive may ask of the node, as the kernel bounds a
// path (PATH_MAX) and GNU tar a link target: a longer name fails that entry
// with "File name too long".
const (
	maxName = 4096
	maxLink = 4096
)

// tarOpts are the options of a tar command line: the ones kubectl sends
// and no more.
type tarOpts struct {
	mode        byte   // 'c' or 'x'
	file        string // -f; only "-" is served
	dir         string // -C
	touch       bool   // -m: extracted files get the time of extraction
	noSamePerms bool   // --no-same-permissions: the umask (022) applies
	names       []string
}

// usage answers a command line this tar does not serve, as GNU tar answers
// one it does not understand.
func usage(st Streams, format string, a ...any) int {
	fmt.Fprintf(st.Stderr, "tar: "+format+"\nTry 'tar --help' or 'tar --usage' for more information.\n", a...)
	return 2
}

// parseTar reads GNU tar's command line as far as kubectl uses it: an
// old-style first argument of bundled letters ("cf -"), short options
// (bundled, with their arguments attached or following: "-xmf -", "-C dir",
// "-Cdir"), --no-same-owner, --no-same-permissions and "--". Option letters
// that take an argument (f, C) take them in order, as GNU tar does. A
// message for the usage error comes back when the line is not served.
func parseTar(args []string) (tarOpts, string) {
	o := tarOpts{}
	var pending []byte // letters waiting for their argument (old style)
	setMode := func(m byte) string {
		if o.mode != 0 && o.mode != m {
			return "You may not specify more than one '-Acdtrux', '--delete' or  '--test-label' option"
		}
		o.mode = m
		return ""
	}
	letter := func(c byte, arg func() (string, bool)) string {
		switch c {
		case 'c', 'x':
			return setMode(c)
		case 'm':
			o.touch = true
		case 'f', 'C':
			a, ok := arg()
			if !ok {
				return fmt.Sprintf("option requires an argument -- '%c'", c)
			}
			if c == 'f' {
				o.file = a
			} else {
				o.dir = a
			}
		default:
			return fmt.Sprintf("invalid option -- '%c'", c)
		}
		return ""
	}
	i := 0
	// Old style: a first argument without a dash is a bundle of letters
	// whose arguments follow it in order.
	if len(args) > 0 && args[0] != "" && !strings.HasPrefix(args[0], "-") {
		bundle := args[0]
		i = 1
		for k := 0; k < len(bundle); k++ {
			c := bundle[k]
			if c == 'f' || c == 'C' {
				pending = append(pending, c)
				continue
			}
			if msg := letter(c, nil); msg != "" {
				return o, msg
			}
		}
		for _, c := range pending {
			msg := letter(c, func() (string, bool) {
				if i >= len(args) {
					return "", false
				}
				i++
				return args[i-1], true
			})
			if msg != "" {
				return o, msg
			}
		}
	}
	for ; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			o.names = append(o.names, args[i+1:]...)
			i = len(args)
		case a == "--no-same-owner":
			// Always so: the node keeps owning what it writes.
		case a == "--no-same-permissions":
			o.noSamePerms = true
		case strings.HasPrefix(a, "--"):
			return o, fmt.Sprintf("unrecognized option '%s'", a)
		case strings.HasPrefix(a, "-") && a != "-":
			for k := 1; k < len(a); k++ {
				rest := a[k+1:]
				consumed := false
				msg := letter(a[k], func() (string, bool) {
					consumed = true
					if rest != "" {
						return rest, true
					}
					if i+1 >= len(args) {
						return "", false
					}
					i++
					return args[i], true
				})
				if msg != "" {
					return o, msg
				}
				if consumed {
					break
				}
			}
		default:
			o.names = append(o.names, a)
		}
	}
	switch {
	case o.mode == 0:
		return o, "You must specify one of the '-Acdtrux', '--delete' or '--test-label' options"
	case o.file != "-":
		// Archives in the container's own files are not served: kubectl
		// streams them.
		if o.file == "" {
			return o, "only an archive on standard input or output (-f -) is supported by the node's built-in tar"
		}
		return o, fmt.Sprintf("%s: only an archive on standard input or output (-f -) is supported by the node's built-in tar", o.file)
	case o.mode == 'x' && len(o.names) > 0:
		return o, "extracting chosen members is not supported by the node's built-in tar"
	}
	return o, ""
}

// tarRun is one tar command's state: where it reports, and whether an
// entry failed (GNU tar goes on with the next, and exits 2 at the end).
type tarRun struct {
	ctx    context.Context
	v      *view
	o      tarOpts
	st     Streams
	failed bool
	warned map[string]bool
}

func (t *tarRun) errorf(format string, a ...any) {
	t.failed = true
	fmt.Fprintf(t.st.Stderr, "tar: "+format+"\n", a...)
}

func (t *tarRun) warnOnce(msg string) {
	if !t.warned[msg] {
		t.warned[msg] = true
		fmt.Fprintf(t.st.Stderr, "tar: %s\n", msg)
	}
}

// fatal ends the command as GNU tar ends on an error it cannot go past.
func (t *tarRun) fatal(format string, a ...any) int {
	fmt.Fprintf(t.st.Stderr, "tar: "+format+"\n", a...)
	fmt.Fprintf(t.st.Stderr, "tar: Error is not recoverable: exiting now\n")
	return 2
}

func (t *tarRun) exit() int {
	if t.failed {
		fmt.Fprintf(t.st.Stderr, "tar: Exiting with failure status due to previous errors\n")
		return 2
	}
	return 0
}

func runTar(ctx context.Context, args []string, v *view, st Streams) int {
	o, msg := parseTar(args)
	if msg != "" {
		return usage(st, "%s", msg)
	}
	t := &tarRun{ctx: ctx, v: v, o: o, st: st, warned: map[string]bool{}}
	if o.mode == 'c' {
		return t.create()
	}
	return t.extract()
}

// guestDir is -C's directory as a guest path (relative to the root, a Wasm
// guest's working directory).
func (t *tarRun) guestDir() string { return path.Clean("/" + t.o.dir) }

// guestPath is a command-line path as the guest means it: relative to -C,
// or to the root (a Wasm guest's working directory).
func (t *tarRun) guestPath(p string) string {
	if strings.HasPrefix(p, "/") {
		return path.Clean(p)
	}
	return path.Join(t.guestDir(), p)
}

// memberName is the name a path is archived under: GNU tar's, without the
// leading "/" (said once on stderr) or "../" parts.
func (t *tarRun) memberName(p string) string {
	clean := path.Clean(p)
	if strings.HasPrefix(clean, "/") {
		t.warnOnce("Removing leading `/' from member names")
		clean = strings.TrimLeft(clean, "/")
	}
	for strings.HasPrefix(clean, "../") || clean == ".." {
		t.warnOnce("Removing leading `../' from member names")
		clean = strings.TrimPrefix(strings.TrimPrefix(clean, ".."), "/")
	}
	return clean
}

// create writes the archive of o.names to stdout.
func (t *tarRun) create() int {
	if len(t.o.names) == 0 {
		fmt.Fprintf(t.st.Stderr, "tar: Cowardly refusing to create an empty archive\nTry 'tar --help' or 'tar --usage' for more information.\n")
		return 2
	}
	if t.o.dir != "" {
		if info, err := t.v.stat(t.guestDir()); err != nil || !info.IsDir() {
			if err == nil {
				err = syscall.ENOTDIR
			}
			return t.fatal("%s: Cannot open: %s", t.o.dir, errnoText(err))
		}
	}
	bw := bufio.NewWriterSize(t.st.Stdout, 32<<10)
	tw := tar.NewWriter(bw)
	for _, name := range t.o.names {
		if t.ctx.Err() != nil {
			return 2
		}
		member := t.memberName(name)
		if member == "." || member == "" {
			member = ""
		}
		if err := t.add(tw, t.guestPath(name), name, member); err != nil {
			// The output is gone (the client went away): nothing more to say.
			return 2
		}
	}
	if err := tw.Close(); err != nil {
		return 2
	}
	if err := bw.Flush(); err != nil {
		return 2
	}
	return t.exit()
}

// add archives guest path p (shown as shown in messages) under member
// name, and what is below it. Only a failed write of the archive is
// returned; a file that cannot be read is reported and skipped.
func (t *tarRun) add(tw *tar.Writer, p, shown, member string) error {
	if err := t.ctx.Err(); err != nil {
		return err
	}
	info, err := t.v.lstat(p)
	if err != nil {
		t.errorf("%s: Cannot stat: %s", shown, errnoText(err))
		return nil
	}
	m, rel := t.v.resolve(p)
	var link string
	if info.Mode()&fs.ModeSymlink != 0 {
		root, err := m.open()
		if err == nil {
			link, err = root.Readlink(rel)
		}
		if err != nil {
			t.errorf("%s: Cannot readlink: %s", shown, errnoText(err))
			return nil
		}
	}
	switch {
	case info.Mode().IsRegular(), info.IsDir(), info.Mode()&fs.ModeSymlink != 0:
	case info.Mode()&fs.ModeSocket != 0:
		t.warnOnce(shown + ": socket ignored")
		return nil
	default:
		// Devices and pipes: a volume has no business holding them, and
		// reading a pipe could block the copy for ever.
		t.errorf("%s: Cannot archive this kind of file", shown)
		return nil
	}
	// Entries of the root itself ("tar cf - /") are its children only.
	if member != "" {
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			t.errorf("%s: %v", shown, err)
			return nil
		}
		hdr.Name = member
		if info.IsDir() {
			hdr.Name += "/"
		}
		// The node's owners mean nothing in a container.
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			if err := t.copyFile(tw, m, rel, shown, hdr.Size); err != nil {
				return err
			}
		}
	}
	if !info.IsDir() {
		return nil
	}
	names, err := t.readDir(p, m, rel, info)
	if err != nil {
		t.errorf("%s: Cannot open: %s", shown, errnoText(err))
		return nil
	}
	for _, n := range names {
		child := n
		if member != "" {
			child = member + "/" + n
		}
		if err := t.add(tw, path.Join(p, n), path.Join(shown, n), child); err != nil {
			return err
		}
	}
	return nil
}

// readDir lists guest directory p: its own entries, and the names that
// lead to mounts below it (which hide what the directory holds under the
// same name, as a mount does).
func (t *tarRun) readDir(p string, m *mount, rel string, info fs.FileInfo) ([]string, error) {
	var names []string
	if _, virtual := info.(virtualDir); !virtual && m != nil {
		root, err := m.open()
		if err != nil {
			return nil, err
		}
		f, err := root.Open(rel)
		if err != nil {
			return nil, err
		}
		names, err = f.Readdirnames(-1)
		f.Close()
		if err != nil {
			return nil, err
		}
	}
	for _, n := range t.v.mountNames(p) {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names, nil
}

// copyFile writes size bytes of the file to the archive: the size its
// header promised, padded with zeros if the file shrank meanwhile, as GNU
// tar does.
func (t *tarRun) copyFile(tw *tar.Writer, m *mount, rel, shown string, size int64) error {
	root, err := m.open()
	var f *os.File
	if err == nil {
		f, err = root.Open(rel)
	}
	var n int64
	if err == nil {
		n, err = io.CopyN(outWriter{tw}, f, size)
		f.Close()
		var we writeError
		if errors.As(err, &we) {
			return we.err // the archive's output failed
		}
	}
	if n < size {
		if err != nil && !errors.Is(err, io.EOF) {
			t.errorf("%s: Read error at byte %d, while reading %d bytes: %s", shown, n, size-n, errnoText(err))
		} else {
			t.errorf("%s: File shrank by %d bytes; padding with zeros", shown, size-n)
		}
		if _, err := io.CopyN(tw, zeros{}, size-n); err != nil {
			return err
		}
	}
	return nil
}

// outWriter marks the archive's write errors, apart from the file's read
// errors.
type outWriter struct{ w io.Writer }

func (o outWriter) Write(p []byte) (int, error) {
	n, err := o.w.Write(p)
	if err != nil {
		err = writeError{err}
	}
	return n, err
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// extract reads the archive on stdin into the directory -C names.
func (t *tarRun) extract() int {
	dir := "/"
	if t.o.dir != "" {
		dir = t.guestDir()
		info, err := t.v.stat(dir)
		if err == nil && !info.IsDir() {
			err = syscall.ENOTDIR
		}
		if err != nil {
			return t.fatal("%s: Cannot open: %s", t.o.dir, errnoText(err))
		}
	}
	tr := tar.NewReader(bufio.NewReaderSize(t.st.Stdin, 32<<10))
	for first := true; ; first = false {
		if t.ctx.Err() != nil {
			return 2
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if first {
				return t.fatal("This does not look like a tar archive")
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return t.fatal("Unexpected EOF in archive")
			}
			return t.fatal("Skipping to next header: %v", err)
		}
		t.extractOne(tr, hdr, dir)
	}
	return t.exit()
}

// extractOne writes one member. Failures are reported and the member
// skipped (tar.Reader skips what was not read).
func (t *tarRun) extractOne(tr *tar.Reader, hdr *tar.Header, dir string) {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return
	}
	name := hdr.Name
	if len(name) > maxName {
		t.errorf("%.64s…: Cannot open: File name too long", name)
		return
	}
	if strings.HasPrefix(name, "/") {
		t.warnOnce("Removing leading `/' from member names")
		name = strings.TrimLeft(name, "/")
	}
	if hasDotDot(name) {
		t.errorf("%s: Member name contains '..'", hdr.Name)
		return
	}
	if path.Clean("/"+name) == "/" {
		return // "./": the directory extracted into, which exists
	}
	p := path.Join(dir, name)
	m, rel := t.v.resolve(p)
	if m == nil || rel == "." {
		// Outside every mount there is nothing to write to; a mount's own
		// directory or one above the mounts exists and is not replaced.
		if hdr.Typeflag == tar.TypeDir && (rel == "." || t.v.aboveMount(p)) {
			return
		}
		op := "Cannot open"
		if hdr.Typeflag == tar.TypeDir {
			op = "Cannot mkdir"
		}
		if rel == "." {
			t.errorf("%s: %s: File exists", name, op)
			return
		}
		t.errorf("%s: %s: No such file or directory", name, op)
		return
	}
	if m.ro {
		op := "Cannot open"
		switch hdr.Typeflag {
		case tar.TypeDir:
			op = "Cannot mkdir"
		case tar.TypeSymlink:
			op = fmt.Sprintf("Cannot create symlink to '%s'", hdr.Linkname)
		case tar.TypeLink:
			op = fmt.Sprintf("Cannot hard link to '%s'", hdr.Linkname)
		}
		t.errorf("%s: %s: Read-only file system", name, op)
		return
	}
	root, err := m.open()
	if err != nil {
		t.errorf("%s: Cannot open: %s", name, errnoText(err))
		return
	}
	w := writer{root: root, q: m.quota}
	// GNU tar makes the directories a member needs.
	if parent := path.Dir(rel); parent != "." {
		if err := w.mkdirAll(parent); err != nil {
			t.errorf("%s: Cannot mkdir: %s", name, errnoText(err))
			return
		}
	}
	perm := fs.FileMode(hdr.Mode) & fs.ModePerm // never setuid, setgid or sticky
	if t.o.noSamePerms {
		perm &^= 0o022
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := w.mkdir(rel, perm|0o700); err != nil {
			t.errorf("%s: Cannot mkdir: %s", name, errnoText(err))
			return
		}
		_ = root.Chmod(rel, perm|0o700) // the node must still be able to clean it up
	case tar.TypeReg, tar.TypeRegA: //nolint:staticcheck // old archives' regular files
		if err := w.replace(rel); err != nil {
			t.errorf("%s: Cannot open: %s", name, errnoText(err))
			return
		}
		if err := w.writeFile(rel, perm, tr); err != nil {
			var we writeError
			if errors.As(err, &we) {
				t.errorf("%s: Cannot write: %s", name, errnoText(we.err))
			} else {
				t.errorf("%s: Cannot open: %s", name, errnoText(err))
			}
			return
		}
	case tar.TypeSymlink:
		target := hdr.Linkname
		if len(target) > maxLink {
			t.errorf("%s: Cannot create symlink: File name too long", name)
			return
		}
		// The Wasm runtime's rule for a guest's links: no absolute target,
		// no "..": every link then points down from its directory, so none
		// leads out of the mount, wherever it is moved.
		if strings.HasPrefix(target, "/") || hasDotDot(target) {
			t.errorf("%s: Cannot create symlink to '%s': Operation not permitted", name, target)
			return
		}
		if err := w.replace(rel); err != nil {
			t.errorf("%s: Cannot create symlink to '%s': %s", name, target, errnoText(err))
			return
		}
		if err := w.symlink(target, rel); err != nil {
			t.errorf("%s: Cannot create symlink to '%s': %s", name, target, errnoText(err))
		}
		return // no times on a link: os.Root has no Lchtimes
	case tar.TypeLink:
		old := strings.TrimLeft(hdr.Linkname, "/")
		om, orel := t.v.resolve(path.Join(dir, old))
		switch {
		case hasDotDot(old):
			t.errorf("%s: Cannot hard link to '%s': Operation not permitted", name, hdr.Linkname)
		case om != m:
			t.errorf("%s: Cannot hard link to '%s': Invalid cross-device link", name, hdr.Linkname)
		default:
			err := w.replace(rel)
			if err == nil {
				err = w.link(orel, rel)
			}
			if err != nil {
				t.errorf("%s: Cannot hard link to '%s': %s", name, hdr.Linkname, errnoText(err))
			}
		}
		return
	default:
		t.errorf("%s: Cannot mknod: Operation not permitted", name)
		return
	}
	if !t.o.touch && !hdr.ModTime.IsZero() {
		_ = root.Chtimes(rel, time.Now(), hdr.ModTime)
	}
}

// hasDotDot reports whether a slash-separated path has a ".." component.
func hasDotDot(p string) bool {
	for part := range strings.SplitSeq(p, "/") {
		if part == ".." {
			return true
		}
	}
	return false
}

// writer changes one mount's directory, holding every change to the
// mount's quota as the Wasm runtime holds a guest's (skiffrt.DiskQuota
// says what counts).
type writer struct {
	root *os.Root
	q    skiffrt.DiskQuota
}

// writeError is a failed write of a file's content (as opposed to its
// creation).
type writeError struct{ err error }

func (e writeError) Error() string { return e.err.Error() }

func (w writer) reserve(n int64) int64 {
	if w.q == nil {
		return n
	}
	return w.q.Reserve(n)
}

func (w writer) release(n int64) {
	if w.q != nil && n > 0 {
		w.q.Release(n)
	}
}

// reserveEntry reserves one new name's bytes, or fails with ENOSPC.
func (w writer) reserveEntry() error {
	got := w.reserve(skiffrt.EntryBytes)
	if got < skiffrt.EntryBytes {
		w.release(got)
		return syscall.ENOSPC
	}
	return nil
}

func (w writer) mkdir(rel string, perm fs.FileMode) error {
	if info, err := w.root.Lstat(rel); err == nil {
		if info.Mode()&fs.ModeSymlink != 0 {
			// A link to a directory serves as one, as GNU tar uses it;
			// os.Root follows it only within the mount.
			info, err = w.root.Stat(rel)
			if err != nil {
				return err
			}
		}
		if info.IsDir() {
			return nil
		}
		return syscall.EEXIST
	}
	if err := w.reserveEntry(); err != nil {
		return err
	}
	if err := w.root.Mkdir(rel, perm); err != nil {
		w.release(skiffrt.EntryBytes)
		return err
	}
	return nil
}

func (w writer) mkdirAll(rel string) error {
	parts := strings.Split(rel, "/")
	for i := range parts {
		if err := w.mkdir(strings.Join(parts[:i+1], "/"), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// replace removes what is at rel so that a member takes its place, as GNU
// tar unlinks an existing file before extracting one of the same name. A
// directory stays (a file cannot replace it; a directory member reuses it).
func (w writer) replace(rel string) error {
	info, err := w.root.Lstat(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if info.IsDir() {
		return syscall.EISDIR
	}
	if err := w.root.Remove(rel); err != nil {
		return err
	}
	freed := int64(skiffrt.EntryBytes)
	if info.Mode().IsRegular() && nlink(info) <= 1 {
		freed += info.Size()
	}
	w.release(freed)
	return nil
}

// writeFile creates rel (which does not exist) with r's content, a chunk
// at a time, each chunk reserved first: what does not fit is not written
// and the write fails with ENOSPC, as the guest's own write would.
func (w writer) writeFile(rel string, perm fs.FileMode, r io.Reader) error {
	if err := w.reserveEntry(); err != nil {
		return err
	}
	f, err := w.root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm|0o600)
	if err != nil {
		w.release(skiffrt.EntryBytes)
		return err
	}
	defer f.Close()
	buf := make([]byte, 32<<10)
	for {
		n, rerr := r.Read(buf)
		if n > 0 {
			got := w.reserve(int64(n))
			wn, werr := f.Write(buf[:got])
			w.release(got - int64(wn))
			if werr != nil {
				return writeError{werr}
			}
			if got < int64(n) {
				return writeError{syscall.ENOSPC}
			}
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			return writeError{rerr}
		}
	}
	if err := f.Chmod(perm); err != nil {
		return err
	}
	return f.Close()
}

func (w writer) symlink(target, rel string) error {
	if err := w.reserveEntry(); err != nil {
		return err
	}
	if err := w.root.Symlink(target, rel); err != nil {
		w.release(skiffrt.EntryBytes)
		return err
	}
	return nil
}

func (w writer) link(old, rel string) error {
	if err := w.reserveEntry(); err != nil {
		return err
	}
	if err := w.root.Link(old, rel); err != nil {
		w.release(skiffrt.EntryBytes)
		return err
	}
	return nil
}
