package wasm

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	skiffrt "github.com/skiffhq/skiff/runtime"
	"github.com/skiffhq/skiff/sdk/abi"
)

// TestAppStreamBounds: a subscription nobody reads keeps its newest
// abi.MaxQueued messages, the instance's streams together at most
// abi.MaxQueuedBytes, and the next message taken says how many were
// dropped.
func TestAppStreamBounds(t *testing.T) {
	var total atomic.Int64
	s := newAppStream(false, &total)
	for i := range abi.MaxQueued + 10 {
		s.push(appItem{msg: skiffrt.AppMessage{Subject: "s", Data: []byte{byte(i)}}, size: 2})
	}
	it, dropped, ok := s.pop()
	if !ok || dropped != 10 || it.msg.Data[0] != 10 {
		t.Fatalf("first pop = %v %d %v; want message 10 after 10 dropped", it.msg.Data, dropped, ok)
	}
	if _, dropped, _ := s.pop(); dropped != 0 {
		t.Fatalf("second pop reports %d dropped again", dropped)
	}

	// Two streams share the instance's byte budget.
	t2 := newAppStream(false, &total)
	big := abi.MaxQueuedBytes / 4
	for range 3 {
		t2.push(appItem{size: big})
	}
	for range 3 {
		s.push(appItem{size: big})
	}
	if got := total.Load(); got > abi.MaxQueuedBytes {
		t.Fatalf("the instance holds %d bytes, more than %d", got, abi.MaxQueuedBytes)
	}
	s.push(appItem{size: abi.MaxQueuedBytes + 1}) // larger than everything: dropped at once
	s.close()
	t2.close()
	if got := total.Load(); got != 0 {
		t.Fatalf("closed streams still count %d bytes", got)
	}
	s.push(appItem{size: 1}) // after close: ignored
	if total.Load() != 0 {
		t.Fatal("a closed stream queued a message")
	}
}

// TestAppStreamNextEndsWithContext: a wait ends with the run's context,
// however long the guest asked to wait.
func TestAppStreamNextEndsWithContext(t *testing.T) {
	var total atomic.Int64
	s := newAppStream(true, &total)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	done := make(chan bool)
	go func() {
		_, _, ok := s.next(ctx, guestTimeout(abi.MaxTimeoutMillis))
		done <- ok
	}()
	select {
	case ok := <-done:
		if ok {
			t.Fatal("next returned an item nobody pushed")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("next outlived its context")
	}
	go func() { time.Sleep(10 * time.Millisecond); s.push(appItem{ent: skiffrt.KVEntry{Key: "k"}, size: 1}) }()
	if it, _, ok := s.next(context.Background(), 10*time.Second); !ok || it.ent.Key != "k" {
		t.Fatalf("next = %+v, %v", it, ok)
	}
}
