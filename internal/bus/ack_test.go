package bus

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/testutil"
)

// Notify returns once a SubscribeAcked subscriber took the message (at its
// ack, before it finished), fails at once with ErrNoResponders when nobody
// subscribes, and times out when the subscriber does not ack in time; a
// plain Publish reaches the same subscriber.
func TestNotifyAcked(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := Start(ctx, Config{Name: "ack-test", Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	pub, err := srv.Connect(ctx, "pub")
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	sub, err := srv.Connect(ctx, "sub")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	if err := Notify(ctx, pub, "t.beat", 1); !errors.Is(err, ErrNoResponders) {
		t.Fatalf("nobody subscribed: %v, want ErrNoResponders", err)
	}
	var got atomic.Int64
	release := make(chan struct{})
	s, err := SubscribeAcked(ctx, sub, "t.>", func(_ context.Context, subject string, v int, ack func()) {
		got.Add(int64(v))
		if v == 2 {
			ack()
			<-release // slow work after the ack: the sender does not wait for it
		}
		if v == 3 {
			time.Sleep(300 * time.Millisecond) // no ack before returning
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if err := sub.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := Notify(ctx, pub, "t.beat", 2); err != nil {
		t.Fatalf("acked notify: %v", err)
	}
	close(release)
	short, cancelShort := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancelShort()
	if err := Notify(short, pub, "t.beat", 3); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("an ack later than the deadline: %v, want DeadlineExceeded", err)
	}
	if err := Publish(ctx, pub, "t.beat", 4); err != nil {
		t.Fatal(err)
	}
	if err := Notify(ctx, pub, "t.beat", 0); err != nil { // after 3 and 4 (in order)
		t.Fatal(err)
	}
	if got.Load() != 9 {
		t.Fatalf("subscriber saw a sum of %d, want 2+3+4=9", got.Load())
	}
}
