package raft

import (
	"context"
	"errors"
	"fmt"
	"time"

	hraft "github.com/hashicorp/raft"
)

// writeReq is one caller's write waiting for a group-commit lane
// (batchWorker); done receives its results.
type writeReq struct {
	ops  []op
	size int
	done chan writeResp
}

type writeResp struct {
	rs  []result
	err error
}

// Create writes key if it does not exist and returns its new state.
func (s *Store) Create(ctx context.Context, key string, value []byte) (KeyValue, error) {
	return s.write(ctx, op{typ: opCreate, key: key, value: value})
}

// Update replaces key's value. With expectModRev != 0 it is a compare-and-swap:
// ErrConflict (with the current state) if the key's ModRev differs.
func (s *Store) Update(ctx context.Context, key string, value []byte, expectModRev int64) (KeyValue, error) {
	return s.write(ctx, op{typ: opUpdate, key: key, value: value, expectRev: expectModRev})
}

// Delete removes key, conditionally on its ModRev when expectModRev != 0. It
// returns the last state, with ModRev set to the deletion's revision.
func (s *Store) Delete(ctx context.Context, key string, expectModRev int64) (KeyValue, error) {
	return s.write(ctx, op{typ: opDelete, key: key, expectRev: expectModRev})
}

// write queues one op for group commit and waits for its result. If ctx ends
// first, the write may still happen (ErrIndeterminate wraps ctx's error).
func (s *Store) write(ctx context.Context, o op) (KeyValue, error) {
	if o.key == "" {
		return KeyValue{}, fmt.Errorf("write with empty key: %w", ErrInvalid)
	}
	req := &writeReq{ops: []op{o}, size: len(o.key) + len(o.value) + 16, done: make(chan writeResp, 1)}
	select {
	case s.writes <- req:
	case <-ctx.Done():
		return KeyValue{}, ctx.Err()
	case <-s.ctx.Done():
		return KeyValue{}, ErrStopped
	}
	var r writeResp
	select {
	case r = <-req.done:
	case <-ctx.Done():
		return KeyValue{}, fmt.Errorf("%w: %w", ErrIndeterminate, ctx.Err())
	case <-s.stopped:
		// Close drained the queue before this request entered it (the
		// first select may pick the send even when the store is closing):
		// no worker will ever take it, unless one answered already.
		select {
		case r = <-req.done:
		default:
			return KeyValue{}, ErrStopped
		}
	}
	if r.err != nil {
		return KeyValue{}, r.err
	}
	res := r.rs[0]
	if res.err != nil {
		return res.kv, fmt.Errorf("%s %q: %w", opName(o.typ), o.key, res.err)
	}
	return res.kv, nil
}

func opName(t OpType) string {
	switch t {
	case opCreate:
		return "create"
	case opUpdate:
		return "update"
	default:
		return "delete"
	}
}

// batchWorker is one group-commit lane: it takes a request, gathers whatever
// else is already queued (without waiting), submits the lot as one raft entry
// and hands each caller its results. MaxInflight lanes run at once, so new
// batches form while earlier ones commit.
func (s *Store) batchWorker() {
	defer s.workers.Done()
	for {
		var first *writeReq
		select {
		case first = <-s.writes:
		case <-s.ctx.Done():
			return
		}
		batch, size := []*writeReq{first}, first.size
	gather:
		for size < s.cfg.MaxBatchBytes {
			select {
			case r := <-s.writes:
				batch, size = append(batch, r), size+r.size
			default:
				break gather
			}
		}
		var ops []op
		for _, r := range batch {
			ops = append(ops, r.ops...)
		}
		rs, err := s.submit(encodeOps(ops))
		if err == nil && len(rs) != len(ops) {
			err = fmt.Errorf("raft returned %d results for %d writes", len(rs), len(ops))
		}
		for _, r := range batch {
			if err != nil {
				r.done <- writeResp{err: err}
				continue
			}
			r.done <- writeResp{rs: rs[:len(r.ops)]}
			rs = rs[len(r.ops):]
		}
	}
}

// submit gets an encoded batch applied by the leader: locally when this server
// leads, else forwarded. It retries only where nothing can have been applied.
func (s *Store) submit(batch []byte) ([]result, error) {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.ApplyTimeout)
	defer cancel()
	for {
		var rs []result
		var err error
		if s.IsLeader() {
			rs, err = s.applyLocal(batch)
		} else if addr, _ := s.raft.LeaderWithID(); addr != "" {
			var reply []byte
			if err = s.fwd.call(ctx, addr, "Apply", batch, &reply); err == nil {
				rs, err = decodeResults(reply)
			}
		} else {
			err = errRemoteNotLeader
		}
		switch {
		case errors.Is(err, errLost):
			return nil, fmt.Errorf("%w: %w", ErrIndeterminate, err)
		case !errors.Is(err, errRemoteNotLeader) && !errors.Is(err, errDial):
			return rs, err
		}
		if !sleepCtx(ctx, 20*time.Millisecond) {
			if s.ctx.Err() != nil {
				return nil, ErrStopped
			}
			return nil, fmt.Errorf("%w: %w", ErrNoLeader, err)
		}
	}
}

// applyLocal applies a batch through this server's raft, which must lead.
func (s *Store) applyLocal(batch []byte) ([]result, error) {
	f := s.raft.Apply(batch, s.cfg.ApplyTimeout)
	if err := f.Error(); err != nil {
		switch {
		case errors.Is(err, hraft.ErrNotLeader):
			return nil, errRemoteNotLeader
		case errors.Is(err, hraft.ErrRaftShutdown):
			// raft answers this also for entries it had already committed
			// when it shut down: the outcome is unknown.
			return nil, fmt.Errorf("%w: %w", ErrIndeterminate, ErrStopped)
		}
		return nil, fmt.Errorf("%w: raft apply: %w", ErrIndeterminate, err)
	}
	switch r := f.Response().(type) {
	case []result:
		return r, nil
	case error:
		return nil, r
	default:
		return nil, fmt.Errorf("raft apply: unexpected response %T", r)
	}
}
