package raft

import (
	"context"
	"errors"
	"fmt"
	"time"

	hraft "github.com/hashicorp/raft"
)

// ReadOptions choose a read's consistency and revision.
type ReadOptions struct {
	// Stale serves the read from this server's state without asking the
	// leader: fast, but it may miss writes acknowledged elsewhere.
	Stale bool
	// Revision reads the state as of that revision (0: the latest). A
	// revision older than the history answers ErrCompacted.
	Revision int64
}

// ListOptions page a list.
type ListOptions struct {
	ReadOptions
	// Limit caps the keys returned; 0 means all.
	Limit int
	// StartKey continues a paged list: the NextKey of the previous page, read
	// at the previous page's Rev.
	StartKey string
}

// ListResult is one page.
type ListResult struct {
	KVs []KeyValue
	// Rev is the revision the page was read at; pass it back with NextKey to
	// get the next page of the same snapshot.
	Rev int64
	// More is true when keys remain; NextKey is the first of them.
	More    bool
	NextKey string
}

// Get returns key's state and the revision it was read at.
func (s *Store) Get(ctx context.Context, key string, opts ReadOptions) (KeyValue, int64, error) {
	if err := s.readBarrier(ctx, opts); err != nil {
		return KeyValue{}, 0, err
	}
	kv, rev, err := s.idx.get(key, opts.Revision)
	if err != nil {
		return kv, rev, fmt.Errorf("get %q: %w", key, err)
	}
	return kv, rev, nil
}

// List returns the keys under prefix in key order, one page at a time, all
// pages at one revision.
func (s *Store) List(ctx context.Context, prefix string, opts ListOptions) (ListResult, error) {
	if opts.Limit < 0 {
		return ListResult{}, fmt.Errorf("list limit %d: %w", opts.Limit, ErrInvalid)
	}
	if err := s.readBarrier(ctx, opts.ReadOptions); err != nil {
		return ListResult{}, err
	}
	res, err := s.idx.list(prefix, opts.StartKey, opts.Revision, opts.Limit)
	if err != nil {
		return res, fmt.Errorf("list %q: %w", prefix, err)
	}
	return res, nil
}

// Count returns how many keys exist under prefix, from local state.
func (s *Store) Count(prefix string) int { return s.idx.count(prefix) }

// Rev is the latest revision this server has applied.
func (s *Store) Rev() int64 {
	rev, _, _, _ := s.idx.stats()
	return rev
}

// readBarrier makes a read linearizable unless it allows stale data or names
// a past revision (which every server answers the same way once it has it).
func (s *Store) readBarrier(ctx context.Context, opts ReadOptions) error {
	if opts.Stale || (opts.Revision > 0 && opts.Revision <= s.Rev()) {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ApplyTimeout)
	defer cancel()
	for {
		var idx uint64
		var err error
		if s.IsLeader() {
			idx, err = s.leaderReadIndex()
		} else if addr, _ := s.raft.LeaderWithID(); addr != "" {
			err = s.fwd.call(ctx, addr, "ReadIndex", struct{}{}, &idx)
		} else {
			err = errRemoteNotLeader
		}
		if err == nil {
			select {
			case <-s.idx.waitApplied(idx):
				return nil
			case <-ctx.Done():
				return fmt.Errorf("wait for applied index %d: %w", idx, ctx.Err())
			}
		}
		if !errors.Is(err, errRemoteNotLeader) && !errors.Is(err, errDial) && !errors.Is(err, errLost) {
			return err
		}
		if !sleepCtx(ctx, 20*time.Millisecond) {
			return fmt.Errorf("linearizable read: %w: %w", ErrNoLeader, err)
		}
	}
}

// leaderReadIndex returns a log index whose application makes a server's
// FSM hold every write acknowledged before the call: the last command entry
// at or below the leader's commit index, once the leader itself has applied
// it. (The leader's own applied index is not enough: a follower may learn
// of a commit and apply it before the leader's FSM does, and a read there
// followed by one elsewhere would then go back in time.) Leadership is
// confirmed after the commit index is read (confirmTerm), and a barrier once
// per term makes the commit index cover every earlier term's entries.
func (s *Store) leaderReadIndex() (uint64, error) {
	if !s.IsLeader() {
		return 0, errRemoteNotLeader
	}
	term := s.raft.CurrentTerm()
	if s.readyTerm.Load() != term {
		if err := s.raft.Barrier(s.cfg.ApplyTimeout).Error(); err != nil {
			return 0, errRemoteNotLeader
		}
		s.readyTerm.Store(term)
	}
	commit := s.raft.CommitIndex()
	if err := s.confirmTerm(term); err != nil {
		return 0, err
	}
	target, err := s.lastCommandAtOrBelow(commit)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.ApplyTimeout)
	defer cancel()
	select {
	case <-s.idx.waitApplied(target):
	case <-ctx.Done():
		return 0, fmt.Errorf("leader FSM did not reach %d: %w", target, ctx.Err())
	}
	return target, nil
}

// maxReadScan bounds how far behind the commit index leaderReadIndex looks
// for command entries; past it, a barrier settles the question.
const maxReadScan = 4096

// lastCommandAtOrBelow is the index of the last command entry at or below
// commit, or the FSM's applied index when there is none above it. Entries
// the log no longer holds are inside a snapshot, applied already.
func (s *Store) lastCommandAtOrBelow(commit uint64) (uint64, error) {
	_, _, _, applied := s.idx.stats()
	if commit <= applied {
		return applied, nil
	}
	if commit-applied > maxReadScan {
		if err := s.raft.Barrier(s.cfg.ApplyTimeout).Error(); err != nil {
			return 0, errRemoteNotLeader
		}
		_, _, _, applied = s.idx.stats()
		return applied, nil
	}
	var l hraft.Log
	for i := commit; i > applied; i-- {
		if err := s.logs.GetLog(i, &l); err != nil {
			if errors.Is(err, hraft.ErrLogNotFound) {
				continue
			}
			return 0, fmt.Errorf("read log entry %d: %w", i, err)
		}
		if l.Type == hraft.LogCommand {
			return i, nil
		}
	}
	return applied, nil
}

// confirmTerm proves this server still led in term at a moment after the
// caller read its applied index: a majority of voters, itself included,
// answer a question sent after that read with that same term. Terms never
// go down, so a leader of a later term elected before the read would have
// needed a vote from one of them, which would answer the later term. (raft's
// VerifyLeader is not used: it may count a heartbeat acknowledgement whose
// request left before the read began, so its proof can predate the read.)
func (s *Store) confirmTerm(term uint64) error {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return errRemoteNotLeader
	}
	var peers []hraft.Server
	voters, self := 0, false
	for _, sv := range f.Configuration().Servers {
		if sv.Suffrage != hraft.Voter {
			continue
		}
		voters++
		if sv.ID == hraft.ServerID(s.cfg.ID) {
			self = true
		} else {
			peers = append(peers, sv)
		}
	}
	if !self {
		return errRemoteNotLeader
	}
	need := voters/2 + 1 - 1 // a majority, less this server
	confirmed := make(chan bool, len(peers))
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.HeartbeatTimeout)
	defer cancel()
	for _, p := range peers {
		go func() {
			var t uint64
			err := s.fwd.call(ctx, p.Address, "Term", struct{}{}, &t)
			confirmed <- err == nil && t == term
		}()
	}
	for answered := 0; need > 0 && answered < len(peers); answered++ {
		if <-confirmed {
			need--
		}
	}
	if need > 0 || !s.IsLeader() || s.raft.CurrentTerm() != term {
		return errRemoteNotLeader
	}
	return nil
}
