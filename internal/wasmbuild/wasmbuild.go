// Package wasmbuild builds Go packages as Wasm modules (GOOS=wasip1
// GOARCH=wasm) for tests, once per test binary.
package wasmbuild

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

type key struct {
	pkg     string
	reactor bool
}

type build struct {
	once sync.Once
	bin  []byte
	err  string
}

var (
	mu     sync.Mutex
	builds = map[key]*build{}
)

// Build compiles the Go package pkg (a directory such as "./testdata/x" or
// "../../examples/printenv", relative to the test's working directory, or an
// import path) for wasip1 and returns the module's bytes. With reactor it is
// built with -buildmode=c-shared: a WASI reactor exporting `_initialize`, as
// an SDK handler module must be; otherwise a command exporting `_start`.
//
// The result is kept for the life of the test binary, so tests may call Build
// freely (also in parallel: concurrent calls for one package wait for one
// build). A failed build fails tb with the compiler's output.
func Build(tb testing.TB, pkg string, reactor bool) []byte {
	tb.Helper()
	k := key{pkg, reactor}
	if abs, err := filepath.Abs(pkg); err == nil && isDir(pkg) {
		k.pkg = abs
	}
	mu.Lock()
	b, ok := builds[k]
	if !ok {
		b = &build{}
		builds[k] = b
	}
	mu.Unlock()

	b.once.Do(func() { b.bin, b.err = compile(k) })
	if b.err != "" {
		tb.Fatalf("wasmbuild: %s", b.err)
	}
	return b.bin
}

func compile(k key) ([]byte, string) {
	dir, err := os.MkdirTemp("", "skiff-wasmbuild-")
	if err != nil {
		return nil, err.Error()
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "module.wasm")
	args := []string{"build", "-o", out}
	if k.reactor {
		args = append(args, "-buildmode=c-shared")
	}
	pkg := k.pkg
	if filepath.IsAbs(pkg) {
		// Build from inside the package's directory, so its module is
		// found wherever the test runs.
		args = append(args, ".")
	} else {
		args = append(args, pkg)
	}
	cmd := exec.Command("go", args...)
	if filepath.IsAbs(pkg) {
		cmd.Dir = pkg
	}
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, "go " + strings.Join(args, " ") + ": " + err.Error() + "\n" + string(msg)
	}
	bin, err := os.ReadFile(out)
	if err != nil {
		return nil, err.Error()
	}
	return bin, ""
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}
