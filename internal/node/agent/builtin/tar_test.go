package builtin

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	skiffrt "github.com/skiffhq/skiff/runtime"
)

// run runs a builtin and returns its exit code, stdout and stderr.
func run(t *testing.T, mounts []skiffrt.Mount, stdin []byte, argv ...string) (int, []byte, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), argv, mounts, Streams{Stdin: bytes.NewReader(stdin), Stdout: &out, Stderr: &errb})
	return code, out.Bytes(), errb.String()
}

// archive builds a tar stream of the given members (a name ending in "/"
// is a directory; "name -> target" a symbolic link).
func archive(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for name, body := range files {
		hdr := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}
		switch {
		case strings.HasSuffix(name, "/"):
			hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeDir, 0o755, 0
		case strings.Contains(name, " -> "):
			n, target, _ := strings.Cut(name, " -> ")
			hdr = &tar.Header{Name: n, Linkname: target, Typeflag: tar.TypeSymlink, Mode: 0o777}
			body = ""
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func members(t *testing.T, b []byte) map[string]string {
	t.Helper()
	out := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		if hdr.Typeflag == tar.TypeSymlink {
			body = []byte("-> " + hdr.Linkname)
		}
		out[hdr.Name] = string(body)
	}
}

// What kubectl cp sends, both ways, over an emptyDir at /data and a
// read-only volume at /config.
func TestTarRoundTrip(t *testing.T) {
	data, config := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(config, "app.conf"), []byte("x=1\n"), 0o644)
	mounts := []skiffrt.Mount{{HostPath: data, GuestPath: "/data"}, {HostPath: config, GuestPath: "/config", ReadOnly: true}}

	// kubectl cp ./dir pod:/data/dir, after `test -d /data/dir` failed.
	if code, _, _ := run(t, mounts, nil, "test", "-d", "/data/dir"); code != 1 {
		t.Fatalf("test -d of a missing directory: %d", code)
	}
	if code, _, _ := run(t, mounts, nil, "test", "-d", "/data"); code != 0 {
		t.Fatalf("test -d /data: %d", code)
	}
	in := archive(t, map[string]string{"dir/": "", "dir/a.txt": "alpha\n", "dir/sub/b.txt": "beta\n", "dir/l -> a.txt": ""})
	code, _, stderr := run(t, mounts, in, "tar", "--no-same-permissions", "--no-same-owner", "-xmf", "-", "-C", "/data")
	if code != 0 {
		t.Fatalf("tar x: %d %s", code, stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(data, "dir", "sub", "b.txt")); string(b) != "beta\n" {
		t.Fatalf("extracted b.txt: %q", b)
	}
	// And back: kubectl cp pod:/data/dir ./out.
	code, out, stderr := run(t, mounts, nil, "tar", "cf", "-", "/data/dir")
	if code != 0 || stderr != "tar: Removing leading `/' from member names\n" {
		t.Fatalf("tar c: %d %q", code, stderr)
	}
	got := members(t, out)
	want := map[string]string{"data/dir/": "", "data/dir/a.txt": "alpha\n", "data/dir/sub/": "", "data/dir/sub/b.txt": "beta\n", "data/dir/l": "-> a.txt"}
	if len(got) != len(want) {
		t.Fatalf("archive members %q, want %q", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("member %s: %q, want %q (all: %q)", k, got[k], v, got)
		}
	}
	// The root holds the mounts and nothing else.
	_, out, _ = run(t, mounts, nil, "tar", "cf", "-", "/")
	got = members(t, out)
	if got["config/app.conf"] != "x=1\n" || got["data/dir/a.txt"] != "alpha\n" {
		t.Fatalf("tar of /: %q", got)
	}
}

func TestTarRefusals(t *testing.T) {
	data, config, outside := t.TempDir(), t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret"), []byte("node secret"), 0o600)
	// A hostPath volume may already hold links that point out.
	os.Symlink(outside, filepath.Join(data, "abs"))
	os.Symlink("../../../../../../../../"+outside, filepath.Join(data, "rel"))
	mounts := []skiffrt.Mount{{HostPath: data, GuestPath: "/data"}, {HostPath: config, GuestPath: "/config", ReadOnly: true}}

	for _, tc := range []struct {
		argv   []string
		stdin  []byte
		code   int
		stderr string
	}{
		{[]string{"tar", "cf", "-", "/etc/passwd"}, nil, 2,
			"tar: Removing leading `/' from member names\ntar: /etc/passwd: Cannot stat: No such file or directory\ntar: Exiting with failure status due to previous errors\n"},
		{[]string{"tar", "cf", "-", "/data/abs/secret"}, nil, 2, "Cannot stat: "},
		{[]string{"tar", "cf", "-", "/data/rel/secret"}, nil, 2, "Cannot stat: "},
		{[]string{"tar", "-xmf", "-", "-C", "/etc"}, archive(t, map[string]string{"x": "y"}), 2,
			"tar: /etc: Cannot open: No such file or directory\ntar: Error is not recoverable: exiting now\n"},
		{[]string{"tar", "-xmf", "-", "-C", "/config"}, archive(t, map[string]string{"x": "y"}), 2,
			"tar: x: Cannot open: Read-only file system"},
		{[]string{"tar", "-xmf", "-", "-C", "/data"}, archive(t, map[string]string{"../x": "y"}), 2, "Member name contains '..'"},
		{[]string{"tar", "-xmf", "-", "-C", "/data"}, archive(t, map[string]string{"up -> ../../x": ""}), 2,
			"tar: up: Cannot create symlink to '../../x': Operation not permitted"},
		{[]string{"tar", "-xmf", "-", "-C", "/data"}, archive(t, map[string]string{"abs/secret": "overwritten"}), 2, "tar: abs/secret: Cannot "},
		{[]string{"tar", "-xmf", "-", "-C", "/"}, archive(t, map[string]string{"etc/x": "y"}), 2, "tar: etc/x: Cannot open: No such file or directory"},
		{[]string{"tar", "czf", "-", "/data"}, nil, 2, "tar: invalid option -- 'z'\nTry 'tar --help' or 'tar --usage' for more information.\n"},
		{[]string{"tar", "--gzip", "-cf", "-", "/data"}, nil, 2, "tar: unrecognized option '--gzip'"},
		{[]string{"tar", "cf", "/data/out.tar", "/data"}, nil, 2, "only an archive on standard input or output"},
		{[]string{"tar", "-f", "-"}, nil, 2, "You must specify one of"},
		{[]string{"tar", "-xmf", "-", "-C", "/data"}, []byte("not a tar archive at all, but long enough to be looked at........"), 2,
			"This does not look like a tar archive"},
	} {
		code, _, stderr := run(t, mounts, tc.stdin, tc.argv...)
		if code != tc.code || !strings.Contains(stderr, tc.stderr) {
			t.Errorf("%q: exit %d, stderr %q; want %d and %q", tc.argv, code, stderr, tc.code, tc.stderr)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(outside, "secret")); string(b) != "node secret" {
		t.Fatalf("a file outside the mounts changed: %q", b)
	}
	if _, err := os.Stat(filepath.Join(outside, "x")); err == nil {
		t.Fatal("a link led an extraction out of the mount")
	}
}

// quota is a DiskQuota of a fixed size.
type quota struct {
	mu         sync.Mutex
	used, size int64
}

func (q *quota) Reserve(n int64) int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	got := min(n, q.size-q.used)
	q.used += got
	return got
}

func (q *quota) Release(n int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.used -= n
}

func TestTarQuota(t *testing.T) {
	data := t.TempDir()
	q := &quota{size: 64 << 10}
	mounts := []skiffrt.Mount{{HostPath: data, GuestPath: "/data", Quota: q}}
	big := strings.Repeat("x", 100<<10)
	if code, _, stderr := run(t, mounts, archive(t, map[string]string{"small": "hi"}), "tar", "-xmf", "-", "-C", "/data"); code != 0 {
		t.Fatalf("a file that fits: exit %d %q", code, stderr)
	}
	code, _, stderr := run(t, mounts, archive(t, map[string]string{"big": big}), "tar", "-xmf", "-", "-C", "/data")
	if code != 2 || !strings.Contains(stderr, "tar: big: Cannot write: No space left on device") {
		t.Fatalf("past the quota: exit %d %q", code, stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(data, "small")); string(b) != "hi" {
		t.Fatalf("the file that fits: %q", b)
	}
	usage, err := skiffrt.DiskUsage(data)
	if err != nil {
		t.Fatal(err)
	}
	if q.used != usage || usage > q.size {
		t.Fatalf("quota counts %d, the directory holds %d (limit %d)", q.used, usage, q.size)
	}
	// Replacing a file gives its bytes back.
	run(t, mounts, archive(t, map[string]string{"big": "now small"}), "tar", "xf", "-", "-C", "/data")
	usage, _ = skiffrt.DiskUsage(data)
	if q.used != usage {
		t.Fatalf("after a replace the quota counts %d, the directory holds %d", q.used, usage)
	}
}

// The command lines kubectl sends (and the documented manual ones) parse;
// others are usage errors.
func TestParseTar(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want tarOpts
	}{
		{[]string{"cf", "-", "/data/x"}, tarOpts{mode: 'c', file: "-", names: []string{"/data/x"}}},
		{[]string{"-xmf", "-"}, tarOpts{mode: 'x', file: "-", touch: true}},
		{[]string{"-xmf", "-", "-C", "/data"}, tarOpts{mode: 'x', file: "-", touch: true, dir: "/data"}},
		{[]string{"--no-same-permissions", "--no-same-owner", "-xmf", "-", "-C", "/data"},
			tarOpts{mode: 'x', file: "-", touch: true, dir: "/data", noSamePerms: true}},
		{[]string{"xf", "-", "-C", "/tmp/bar"}, tarOpts{mode: 'x', file: "-", dir: "/tmp/bar"}},
		{[]string{"-xf-", "-C/data"}, tarOpts{mode: 'x', file: "-", dir: "/data"}},
		{[]string{"-c", "-f", "-", "--", "-odd-name"}, tarOpts{mode: 'c', file: "-", names: []string{"-odd-name"}}},
	} {
		got, msg := parseTar(tc.args)
		if msg != "" || got.mode != tc.want.mode || got.file != tc.want.file || got.dir != tc.want.dir ||
			got.touch != tc.want.touch || got.noSamePerms != tc.want.noSamePerms || strings.Join(got.names, ",") != strings.Join(tc.want.names, ",") {
			t.Errorf("parseTar(%q) = %+v %q, want %+v", tc.args, got, msg, tc.want)
		}
	}
	for _, args := range [][]string{{"cvf", "-", "x"}, {"-t"}, {"cf"}, {"-c", "-x", "-f", "-"}, {"xf", "-", "member"}, {"--append"}} {
		if _, msg := parseTar(args); msg == "" {
			t.Errorf("parseTar(%q) accepted", args)
		}
	}
}

// A link to a directory inside the mount serves as the directory (for -C,
// test -d and a member's parents), as with GNU tar; os.Root keeps it there.
func TestTarLinkedDirectory(t *testing.T) {
	data := t.TempDir()
	os.Mkdir(filepath.Join(data, "real"), 0o755)
	os.Symlink("real", filepath.Join(data, "link"))
	mounts := []skiffrt.Mount{{HostPath: data, GuestPath: "/data"}}
	if code, _, _ := run(t, mounts, nil, "test", "-d", "/data/link"); code != 0 {
		t.Fatalf("test -d of a link to a directory: %d", code)
	}
	for _, argv := range [][]string{{"tar", "xf", "-", "-C", "/data/link"}, {"tar", "xf", "-", "-C", "/data"}} {
		name := "a.txt"
		if argv[4] == "/data" {
			name = "link/b.txt"
		}
		if code, _, stderr := run(t, mounts, archive(t, map[string]string{name: "x"}), argv...); code != 0 {
			t.Fatalf("%q with %s: %d %s", argv, name, code, stderr)
		}
	}
	for _, f := range []string{"a.txt", "b.txt"} {
		if _, err := os.Stat(filepath.Join(data, "real", f)); err != nil {
			t.Fatalf("extracted through the link: %v", err)
		}
	}
}
