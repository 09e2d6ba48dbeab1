package logs

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// TestLogReadDuringRotation reads a container's log over and over while its
// writer rotates it as fast as it can (a bounded number of records, each
// rotating the file): every read must succeed. A rotation that renamed the
// file away before making the new one let a read in between fail with
// "open <host path>/0.log: no such file or directory", an error whose text
// kubectl showed with the node's path in it.
func TestLogReadDuringRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "0.log")
	// Two records fill a file: every other record rotates it.
	lf, err := OpenFile(path, 400)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	out := lf.Stream("stdout")
	const records = 4000 // ~2000 rotations of files under 400 bytes: bounded
	line := strings.Repeat("r", 120)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		for i := range records {
			fmt.Fprintf(out, "%05d %s\n", i, line)
		}
	}()
	tail := int64(1)
	reads, failures := 0, 0
	var first error
	for reading := true; reading && reads < 100000; reads++ {
		select {
		case <-done:
			reading = false // one more read after the writer stopped
		default:
		}
		opts := corev1.PodLogOptions{}
		if reads%2 == 1 {
			opts.TailLines = &tail
		}
		r := Reader{Path: path, Options: opts, Running: func() bool { return false }}
		if err := r.Copy(ctx, io.Discard); err != nil {
			failures++
			if first == nil {
				first = err
			}
		}
	}
	wg.Wait()
	if first != nil {
		t.Errorf("%d of %d reads during rotation failed; the first: %v", failures, reads, first)
		if strings.Contains(first.Error(), dir) {
			t.Errorf("the error names the host path: %v", first)
		}
	}
}
