package agent

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
)

// A container's output reaches its log and each attached client from the
// attach on; the stdin pipe takes what clients write and ends on close.
func TestAttachHub(t *testing.T) {
	h := newAttachHub()
	var log bytes.Buffer
	out := h.output(&log, false)
	errOut := h.output(&log, true)
	io.WriteString(out, "before\n")
	var cout, cerr bytes.Buffer
	sub := h.subscribe(&cout, &cerr)
	io.WriteString(out, "after\n")
	io.WriteString(errOut, "oops\n")
	h.unsubscribe(sub) // waits until the queued output is written
	io.WriteString(out, "detached\n")
	if log.String() != "before\nafter\noops\ndetached\n" || cout.String() != "after\n" || cerr.String() != "oops\n" {
		t.Fatalf("log %q, client stdout %q, stderr %q", log.String(), cout.String(), cerr.String())
	}

	in := h.newStdin()
	got := make(chan string)
	go func() {
		b, _ := io.ReadAll(in)
		got <- string(b)
	}()
	h.feed(context.Background(), strings.NewReader("typed\n"))
	h.closeStdin()
	if s := <-got; s != "typed\n" {
		t.Fatalf("the process read %q", s)
	}
	// Input after the close goes nowhere, and does not block.
	h.feed(context.Background(), strings.NewReader("late\n"))
}
