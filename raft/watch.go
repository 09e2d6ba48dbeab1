package raft

import (
	"context"
	"fmt"
	"sync"
)

// Watch streams the changes under prefix after revision from (0: from now).
// A revision older than the history answers ErrCompacted. The watch ends when
// ctx ends, Stop is called, or it falls too far behind (ErrWatchOverflow).
func (s *Store) Watch(ctx context.Context, prefix string, from int64) (*Watcher, error) {
	if from < 0 {
		return nil, fmt.Errorf("watch from revision %d: %w", from, ErrInvalid)
	}
	w := newWatcher(prefix, s.cfg.WatchQueue)
	if err := s.idx.register(w, from); err != nil {
		return nil, fmt.Errorf("watch %q from %d: %w", prefix, from, err)
	}
	wctx, cancel := context.WithCancel(ctx)
	var once sync.Once
	w.stop = func() {
		once.Do(func() {
			cancel()
			<-w.done
			s.idx.unregister(w)
		})
	}
	go func() {
		w.run(wctx)
		s.idx.unregister(w)
	}()
	return w, nil
}

// Watcher delivers events for a key prefix in revision order. Read Events until
// it is closed, then Err says why (nil after Stop or the context's end).
//
// The FSM never blocks on a watcher: events are queued, and a watcher whose
// queue exceeds its bound is closed with ErrWatchOverflow, as Kubernetes closes
// a watch whose client cannot keep up. The client watches again from the last
// revision it received.
type Watcher struct {
	prefix string
	out    chan Event
	limit  int

	mu     sync.Mutex
	queue  []Event
	err    error
	closed bool
	wake   chan struct{}
	done   chan struct{}
	stop   func()
}

func newWatcher(prefix string, limit int) *Watcher {
	return &Watcher{
		prefix: prefix,
		out:    make(chan Event, 64),
		limit:  limit,
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
	}
}

// Events is closed when the watch ends.
func (w *Watcher) Events() <-chan Event { return w.out }

// Err is the reason the watch ended; valid once Events is closed.
func (w *Watcher) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Stop ends the watch. It is safe to call more than once.
func (w *Watcher) Stop() { w.stop() }

// push queues an event; called by the FSM with the index lock held.
func (w *Watcher) push(ev Event) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	if len(w.queue) >= w.limit {
		w.closed, w.err, w.queue = true, ErrWatchOverflow, nil
		w.mu.Unlock()
		w.signal()
		return
	}
	w.queue = append(w.queue, ev)
	w.mu.Unlock()
	w.signal()
}

// fail ends the watch with err unless it has already ended.
func (w *Watcher) fail(err error) {
	w.mu.Lock()
	if !w.closed {
		w.closed, w.err = true, err
	}
	w.mu.Unlock()
	w.signal()
}

func (w *Watcher) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// run moves queued events to out until the watch ends. Events queued before a
// failure are dropped: the consumer resumes from the last revision it saw.
func (w *Watcher) run(ctx context.Context) {
	defer close(w.done)
	defer close(w.out)
	for {
		w.mu.Lock()
		batch, closed := w.queue, w.closed
		w.queue = nil
		w.mu.Unlock()
		if closed {
			return
		}
		for _, ev := range batch {
			select {
			case w.out <- ev:
			case <-ctx.Done():
				w.fail(nil)
				return
			}
		}
		select {
		case <-w.wake:
		case <-ctx.Done():
			w.fail(nil)
			return
		}
	}
}
