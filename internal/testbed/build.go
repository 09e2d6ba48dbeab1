package testbed

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// Skiff builds the skiff binary (github.com/skiffhq/skiff/cmd/skiff) once
// per test process and returns its path. The test binary's TestMain calls
// RemoveBuilt after the tests to remove it.
func Skiff(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "skiff-testbed-bin")
		if buildErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		bin := filepath.Join(buildDir, "skiff")
		if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/skiffhq/skiff/cmd/skiff").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build skiff: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(buildDir, "skiff")
}

// RemoveBuilt removes the binary Skiff built, if any.
func RemoveBuilt() {
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
}
