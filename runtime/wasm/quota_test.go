package wasm

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/experimental/sysfs"

	"github.com/skiffhq/skiff/internal/wasmbuild"
	skiffrt "github.com/skiffhq/skiff/runtime"
	"github.com/skiffhq/skiff/runtime/wasm/internal/wasisock"
)

// testQuota is a DiskQuota with a fixed limit.
type testQuota struct {
	mu          sync.Mutex
	limit, used int64
	refusals    int
}

func (q *testQuota) Reserve(n int64) int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	got := min(n, max(0, q.limit-q.used))
	if got < n {
		q.refusals++
	}
	q.used += got
	return got
}

func (q *testQuota) Release(n int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.used -= n
}

func (q *testQuota) Used() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.used
}

// TestQuotaFSCountsWhatTheDirectoryHolds drives the quota file system call
// by call: growth is refused past the limit with a short write and then a
// refusal (EIO counted as ENOSPC), and every way of freeing space gives it
// back. After each step the quota's count equals what DiskUsage finds on
// disk, so a restart's scan and the tracking agree.
func TestQuotaFSCountsWhatTheDirectoryHolds(t *testing.T) {
	dir := t.TempDir()
	const limit = 64 << 10
	q := &testQuota{limit: limit}
	ns := new(wasisock.NoSpace)
	fsys := quotaFS{FS: confinedFS{sysfs.DirFS(dir)}, q: q, ns: ns}
	agree := func(step string) {
		t.Helper()
		du, err := skiffrt.DiskUsage(dir)
		if err != nil {
			t.Fatal(err)
		}
		if got := q.Used(); got != du {
			t.Fatalf("%s: quota counts %d bytes, the directory holds %d", step, got, du)
		}
		if du > limit {
			t.Fatalf("%s: the directory holds %d bytes, over the limit %d", step, du, limit)
		}
	}
	open := func(name string, flag experimentalsys.Oflag) experimentalsys.File {
		t.Helper()
		f, errno := fsys.OpenFile(name, flag, 0o644)
		if errno != 0 {
			t.Fatalf("open %s: %v", name, errno)
		}
		return f
	}

	f := open("a", experimentalsys.O_CREAT|experimentalsys.O_RDWR)
	agree("create")
	chunk := make([]byte, 16<<10)
	var written int
	var errno experimentalsys.Errno
	for range 8 { // 128 KiB asked, 64 KiB allowed: bounded
		var n int
		n, errno = f.Write(chunk)
		written += n
		if errno != 0 {
			break
		}
	}
	if errno != experimentalsys.EIO || q.refusals == 0 {
		t.Fatalf("write past the limit: errno %v, refusals %d; want EIO (ENOSPC to the guest) and a refusal", errno, q.refusals)
	}
	if want := limit - skiffrt.EntryBytes; written != want {
		t.Errorf("wrote %d bytes, want exactly what fits: %d", written, want)
	}
	agree("fill")
	if n, errno := f.Pwrite([]byte("x"), 1<<20); errno == 0 {
		t.Fatalf("pwrite far past the end succeeded (%d bytes)", n)
	}
	if n, errno := f.Pwrite([]byte("overwrite"), 0); errno != 0 || n != 9 {
		t.Fatalf("overwriting inside a full file: %d, %v", n, errno)
	}
	if errno := f.Truncate(limit * 2); errno == 0 {
		t.Fatal("growing truncate past the limit succeeded")
	}
	if _, errno := fsys.OpenFile("b", experimentalsys.O_CREAT|experimentalsys.O_WRONLY, 0o644); errno == 0 {
		t.Fatal("creating a file in a full volume succeeded")
	}
	if errno := fsys.Mkdir("d", 0o755); errno == 0 {
		t.Fatal("mkdir in a full volume succeeded")
	}
	agree("refusals")

	if errno := f.Truncate(1 << 10); errno != 0 {
		t.Fatal(errno)
	}
	agree("shrink")
	f.Close()
	if errno := fsys.Mkdir("d", 0o755); errno != 0 {
		t.Fatal(errno)
	}
	g := open("d/b", experimentalsys.O_CREAT|experimentalsys.O_WRONLY|experimentalsys.O_APPEND)
	if _, errno := g.Write(make([]byte, 8<<10)); errno != 0 {
		t.Fatal(errno)
	}
	g.Close()
	agree("append in a subdirectory")
	if errno := fsys.Link("d/b", "c"); errno != 0 {
		t.Fatal(errno)
	}
	agree("link")
	if errno := fsys.Unlink("c"); errno != 0 { // d/b still holds the content
		t.Fatal(errno)
	}
	agree("unlink one of two links")
	h := open("a", experimentalsys.O_WRONLY|experimentalsys.O_TRUNC)
	h.Close()
	agree("O_TRUNC")
	if errno := fsys.Rename("d/b", "a"); errno != 0 {
		t.Fatal(errno)
	}
	agree("rename over")
	if errno := fsys.Unlink("a"); errno != 0 {
		t.Fatal(errno)
	}
	if errno := fsys.Rmdir("d"); errno != 0 {
		t.Fatal(errno)
	}
	agree("unlink and rmdir")
	if got := q.Used(); got != 0 {
		t.Errorf("empty volume counts %d bytes", got)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("volume not empty: %v", entries)
	}
}

// TestMountQuotaStopsAGuestWithENOSPC runs a Go guest that writes 1 MiB
// chunks into a mount with a 3 MiB quota: it stops at the limit, sees
// ENOSPC (not wazero's EIO), and the directory holds no more than the limit.
func TestMountQuotaStopsAGuestWithENOSPC(t *testing.T) {
	mod, err := shared.Compile(context.Background(), wasmbuild.Build(t, "./testdata/filler", false))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	const limit = 3 << 20
	q := &testQuota{limit: limit}
	var out syncBuffer
	st, err := shared.Run(context.Background(), mod, RunSpec{
		Args:   []string{"filler", "/data", "8"}, // 8 MiB asked: bounded if the quota failed
		Mounts: []Mount{{HostPath: dir, GuestPath: "/data", Quota: q}},
		Stdout: &out, Stderr: &out,
	})
	if err != nil || st.Code != 0 {
		t.Fatalf("run: %+v, %v\n%s", st, err, out.String())
	}
	if !strings.Contains(out.String(), "(ENOSPC)") {
		t.Fatalf("guest did not stop with ENOSPC:\n%s", out.String())
	}
	var total int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				total += info.Size()
			}
		}
		return nil
	})
	if total > limit || total < limit-(1<<20) {
		t.Errorf("volume holds %d bytes; want at most the limit %d and no less than one chunk under it", total, limit)
	}
	if q.Used() > limit {
		t.Errorf("quota counts %d bytes, over its limit", q.Used())
	}
}
