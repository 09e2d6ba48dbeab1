//go:build linux

package wasm

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	skiffrt "github.com/skiffhq/skiff/runtime"
	"github.com/skiffhq/skiff/runtime/image"
)

// An exec with a TTY gives the guest a terminal, and a guest blocked
// reading it ends when the exec's context does: the read sits in the host,
// out of cancellation's reach, so the terminal is hung up.
func TestExecTTYHangsUpOnCancel(t *testing.T) {
	images, err := image.New(image.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	// A runtime of its own: if the guest stayed blocked, closing the shared
	// one would wait for it forever.
	rt, err := New(context.Background(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	mod, err := rt.Compile(context.Background(), guestBin["printenv"])
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPodRuntime(rt, PodConfig{Images: images})
	if err != nil {
		t.Fatal(err)
	}
	img := skiffrt.Image{Ref: "printenv", ID: "sha256:printenv"}
	p.modules[img.ID] = mod

	stdin, _ := io.Pipe() // a client that never types
	var out strings.Builder
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := p.Exec(ctx, img, skiffrt.ContainerSpec{Args: []string{"printenv", "stdin"}, TTY: true, Stdin: stdin, Stdout: &out})
		done <- err
	}()
	time.Sleep(300 * time.Millisecond) // let the guest block in its read
	cancel()
	select {
	case <-done:
		rt.Close(context.Background())
	case <-time.After(20 * time.Second):
		t.Fatal("Exec still blocked 20s after its context ended") // rt is left open: Close would wait for the guest
	}
}
