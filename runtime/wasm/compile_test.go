package wasm

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// TestCompileCache: the same bytes compile once per Runtime, and a second
// Runtime on the same CacheDir loads the machine code wazero stored there.
func TestCompileCache(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()

	r1, err := New(ctx, Config{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	m1, err := r1.Compile(ctx, guestBin["printenv"])
	if err != nil {
		t.Fatal(err)
	}
	m2, err := r1.Compile(ctx, slices.Clone(guestBin["printenv"]))
	if err != nil {
		t.Fatal(err)
	}
	if m1 != m2 {
		t.Error("the same bytes compiled twice gave two Modules")
	}
	if got, want := r1.CacheStats(), (CacheStats{MemoryHits: 1, Compiled: 1}); got != want {
		t.Errorf("first runtime: %+v, want %+v", got, want)
	}
	files := cacheFiles(t, dir)
	if len(files) == 0 {
		t.Fatal("wazero wrote nothing into CacheDir")
	}
	if err := r1.Close(ctx); err != nil {
		t.Fatal(err)
	}

	// A "restarted" node: a new Runtime on the same directory.
	r2, err := New(ctx, Config{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close(ctx)
	m3, err := r2.Compile(ctx, guestBin["printenv"])
	if err != nil {
		t.Fatal(err)
	}
	if got, want := r2.CacheStats(), (CacheStats{DiskHits: 1}); got != want {
		t.Errorf("second runtime: %+v, want %+v", got, want)
	}
	// The evidence behind DiskHits, checked directly: the same entries,
	// the very same files (a compilation renames a new file into place).
	after := cacheFiles(t, dir)
	if len(after) != len(files) {
		t.Errorf("cache entries: %d before, %d after", len(files), len(after))
	}
	for name, fi := range files {
		if fi2, ok := after[name]; !ok || !os.SameFile(fi, fi2) {
			t.Errorf("cache entry %s was rewritten", name)
		}
	}
	if m3.Digest() != m1.Digest() || !strings.HasPrefix(m3.Digest(), "sha256:") {
		t.Errorf("digests %s and %s", m1.Digest(), m3.Digest())
	}
	var stdout bytes.Buffer
	st, err := r2.Run(ctx, m3, RunSpec{Args: []string{"printenv"}, Env: []string{"GREETING=from cache"}, Stdout: &stdout})
	if err != nil || st.Reason != ReasonCompleted || !strings.Contains(stdout.String(), "GREETING=from cache\n") {
		t.Errorf("run from cache: %+v, %v\n%s", st, err, &stdout)
	}
}

// cacheFiles lists the regular files under dir.
func cacheFiles(t *testing.T, dir string) map[string]os.FileInfo {
	t.Helper()
	files := map[string]os.FileInfo{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		files[p] = fi
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestCompileConcurrent: many goroutines compiling the same bytes at once
// share one compilation.
func TestCompileConcurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, err := New(ctx, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	bin := tiny(tinySpec{memPages: 1})
	const n = 16
	mods := make([]*Module, n)
	var wg sync.WaitGroup
	release := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-release
			m, err := r.Compile(ctx, bin)
			if err != nil {
				t.Error(err)
			}
			mods[i] = m
		}()
	}
	close(release)
	wg.Wait()
	for _, m := range mods {
		if m != mods[0] {
			t.Fatal("different Modules for the same bytes")
		}
	}
	if got, want := r.CacheStats(), (CacheStats{MemoryHits: n - 1, Compiled: 1}); got != want {
		t.Errorf("stats %+v, want %+v", got, want)
	}
}
