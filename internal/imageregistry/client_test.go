package imageregistry

import (
	"fmt"
	"strings"
	"testing"
)

func TestCandidates(t *testing.T) {
	dg := digestOf([]byte("x"))
	for _, tt := range []struct {
		image string
		want  string // "repos|tag|digest", or "" for not ours
	}{
		{"hello:1", "hello,library/hello|1|"},
		{"hello", "hello,library/hello|latest|"},
		{"demo/app:v2", "demo/app|v2|"},
		{"docker.io/demo/app:v2", "demo/app|v2|"},
		{"index.docker.io/library/hello:1", "library/hello,hello|1|"},
		{"docker.io/hello", "hello,library/hello|latest|"},
		{"registry.skiff.local/demo/app:v2", "demo/app|v2|"},
		{"registry.skiff.local:443/demo/app:v2", "demo/app|v2|"},
		{"hello@" + dg, "hello,library/hello||" + dg},
		{"hello:1@" + dg, "hello,library/hello|1|" + dg},
		{"library/a/b:1", "library/a/b|1|"},
		{"ghcr.io/demo/app:v2", ""},
		{"localhost:5000/app:1", ""},
		{"localhost/app:1", ""},
		{"Hello:1", ""},
		{"hello:-1", ""},
		{"hello@sha256:12", ""},
		{"", ""},
		{"/", ""},
		{"a//b:1", ""},
		// Docker Hub's spellings, normalised by the reference library:
		// "library/" is implied for one component, whichever host is
		// written, and the written spelling is tried first.
		{"index.docker.io/hello", "hello,library/hello|latest|"},
		{"docker.io/library/hello@" + dg, "library/hello,hello||" + dg},
		{"registry-1.docker.io/hello:1", "hello,library/hello|1|"},
		{"registry-1.docker.io/library/hello:1", "library/hello,hello|1|"},
		{"docker.io/library/a/b:1", "library/a/b|1|"},
		// The embedded registry by name, with a port: no "library/".
		{"registry.skiff.local:5000/hello@" + dg, "hello||" + dg},
		{"registry.skiff.local/library/hello:1", "library/hello|1|"},
		// A host with a port is a host, not a tag.
		{"127.0.0.1:5000/hello:1", ""},
		{"[::1]:5000/hello:1", ""},
		// Digests the embedded registry cannot hold, and non-names: an
		// image ID, a name too long once "library/" is implied.
		{"hello@sha512:" + strings.Repeat("a", 128), ""},
		{"hello@sha256:" + strings.Repeat("A", 64), ""},
		{strings.Repeat("a", 64), ""},
		{strings.Repeat("a", 250), ""},
	} {
		repos, tag, digest, ok := candidates(tt.image)
		got := ""
		if ok {
			got = fmt.Sprintf("%s|%s|%s", strings.Join(repos, ","), tag, digest)
		}
		if got != tt.want {
			t.Errorf("candidates(%q) = %q, want %q", tt.image, got, tt.want)
		}
	}
}

func FuzzCandidates(f *testing.F) {
	for _, s := range []string{"hello:1", "docker.io/library/x@sha256:" + strings.Repeat("a", 64), "a/b/c:d", "::@@//"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, image string) {
		repos, _, _, ok := candidates(image)
		for _, r := range repos {
			if !ok || !nameRe.MatchString(r) {
				t.Fatalf("candidates(%q) gave repository %q (ok %v)", image, r, ok)
			}
		}
	})
}

// TestResolve resolves pod images against the embedded registry over the
// bus, as the node agent does.
func TestResolve(t *testing.T) {
	e := newEnv(t, t.TempDir(), Config{})
	cfg, layer := []byte(`{"os":"wasip1"}`), []byte("\x00asm\x01\x00\x00\x00")
	e.pushManifest(t, "hello", "1", cfg, layer)
	d, _ := e.pushManifest(t, "demo/app", "v2", cfg, layer)
	e.pushManifest(t, "library/busybox", "latest", cfg, layer)
	c := NewClient(e.busConn(t))
	for _, tt := range []struct{ image, want string }{
		{"hello:1", Host + "/hello:1"},
		{"docker.io/library/hello:1", Host + "/hello:1"},
		{"demo/app:v2", Host + "/demo/app:v2"},
		{"docker.io/demo/app:v2", Host + "/demo/app:v2"},
		{"demo/app@" + d, Host + "/demo/app@" + d},
		{"demo/app:v2@" + d, Host + "/demo/app:v2@" + d},
		{"busybox", Host + "/library/busybox:latest"},
		{Host + "/hello:1", Host + "/hello:1"},
		{"hello:2", ""},
		{"demo/app:v3", ""},
		{"other/app@" + d, ""}, // the digest exists, but not in that repository
		{"ghcr.io/hello:1", ""},
		{"Not A Reference", ""},
	} {
		ref, ok, err := c.Resolve(testCtx(t), tt.image)
		if err != nil {
			t.Fatalf("Resolve(%q): %v", tt.image, err)
		}
		if ok != (tt.want != "") || ref != tt.want {
			t.Errorf("Resolve(%q) = %q, %v; want %q", tt.image, ref, ok, tt.want)
		}
	}
	// When the registry cannot be asked, Resolve says so.
	e.stop()
	if _, _, err := c.Resolve(testCtx(t), "hello:1"); err == nil {
		t.Fatal("Resolve with the registry gone: no error")
	}
}
