package controller

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// LeaderGate runs Run while Leader reports true: started on gaining
// leadership, its context cancelled (and waited for) on losing it, so the
// control loops of a replicated control plane run on one member at a time.
type LeaderGate struct {
	// Leader reports whether this member leads now. It is polled, every
	// Interval: leadership changes are rare and a second's delay in
	// starting the loops costs nothing.
	Leader   func() bool
	Interval time.Duration
	// Run blocks until its context ends. An error (the loops could not
	// start) is logged and Run is called again on the next poll.
	Run func(ctx context.Context) error
	Log *slog.Logger

	mu      sync.Mutex
	endTerm context.CancelFunc // cancels the running term's Run; nil between terms
}

// Restart ends the running term's Run, if any, as losing and regaining
// leadership would: the next poll starts a fresh one (fresh informers, a
// new dispatcher epoch) while this member still leads. Tests use it to
// restart the control plane without restarting the member.
func (g *LeaderGate) Restart() {
	g.mu.Lock()
	end := g.endTerm
	g.mu.Unlock()
	if end != nil {
		end()
	}
}

// Start begins watching leadership and returns the function that stops
// everything, waiting at most timeout for Run to return.
func (g *LeaderGate) Start(timeout time.Duration) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		g.loop(ctx)
	}()
	return func() {
		cancel()
		select {
		case <-done:
		case <-time.After(timeout):
			g.Log.Warn("control loops did not stop in time", "timeout", timeout)
		}
	}
}

func (g *LeaderGate) loop(ctx context.Context) {
	var cur *term
	defer func() {
		if cur != nil {
			cur.stop()
		}
	}()
	t := time.NewTicker(g.Interval)
	defer t.Stop()
	for {
		if cur != nil {
			select {
			case <-cur.done: // Run returned by itself: try again
				cur.stop()
				cur = nil
			default:
			}
		}
		switch leader := g.Leader(); {
		case leader && cur == nil:
			cur = g.startTerm(ctx)
		case !leader && cur != nil:
			g.Log.Info("leadership lost: stopping the control loops")
			cur.stop()
			cur = nil
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// term is one run of the loops, for one term of leadership.
type term struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func (g *LeaderGate) startTerm(ctx context.Context) *term {
	ctx, cancel := context.WithCancel(ctx)
	t := &term{cancel: cancel, done: make(chan struct{})}
	g.mu.Lock()
	g.endTerm = cancel
	g.mu.Unlock()
	go func() {
		defer close(t.done)
		if err := g.Run(ctx); err != nil {
			g.Log.Error("control loops failed to start", "err", err)
		}
	}()
	return t
}

func (t *term) stop() {
	t.cancel()
	<-t.done
}
