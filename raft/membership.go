package raft

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	hraft "github.com/hashicorp/raft"
)

// AddVoter adds a server (or updates its address) as a voting member. A
// store with no listener answers ErrNoListener: the new server could never
// reach it.
func (s *Store) AddVoter(ctx context.Context, id, addr string) error {
	if s.mux == nil {
		return fmt.Errorf("add voter %s: %w", id, ErrNoListener)
	}
	if id == "" || addr == "" {
		return fmt.Errorf("add voter needs an ID and an address: %w", ErrInvalid)
	}
	return s.change(ctx, "AddVoter", [2]string{id, addr})
}

// RemoveServer removes a server from the cluster.
func (s *Store) RemoveServer(ctx context.Context, id string) error {
	return s.change(ctx, "RemoveServer", [2]string{id, ""})
}

func (s *Store) change(ctx context.Context, method string, args [2]string) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ApplyTimeout)
	defer cancel()
	for {
		var err error
		if s.IsLeader() {
			err = s.changeLocal(args, method == "AddVoter")
		} else if addr, _ := s.raft.LeaderWithID(); addr != "" {
			err = s.fwd.call(ctx, addr, method, args, &struct{}{})
		} else {
			err = errRemoteNotLeader
		}
		if !errors.Is(err, errRemoteNotLeader) && !errors.Is(err, errDial) {
			return err
		}
		if !sleepCtx(ctx, 20*time.Millisecond) {
			return fmt.Errorf("%s %s: %w: %w", method, args[0], ErrNoLeader, err)
		}
	}
}

func (s *Store) changeLocal(args [2]string, add bool) error {
	var f hraft.IndexFuture
	if add {
		f = s.raft.AddVoter(hraft.ServerID(args[0]), hraft.ServerAddress(args[1]), 0, s.cfg.ApplyTimeout)
	} else {
		f = s.raft.RemoveServer(hraft.ServerID(args[0]), 0, s.cfg.ApplyTimeout)
	}
	if err := f.Error(); err != nil {
		if errors.Is(err, hraft.ErrNotLeader) {
			return errRemoteNotLeader
		}
		return fmt.Errorf("membership change for %s: %w", args[0], err)
	}
	return nil
}

// Member is one server in the raft configuration. Addr is "" for a server
// with no listener.
type Member struct {
	ID, Addr string
	Voter    bool
}

// aloneInConfiguration checks, for a store with no listener, that the raft
// configuration on disk names no other server: they could not reach this
// one, nor it them, so it would wait for a quorum forever.
func (s *Store) aloneInConfiguration() error {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return fmt.Errorf("raft configuration: %w", err)
	}
	var others []string
	for _, sv := range f.Configuration().Servers {
		if sv.ID != hraft.ServerID(s.cfg.ID) {
			others = append(others, fmt.Sprintf("%s at %s", sv.ID, sv.Address))
		}
	}
	if len(others) > 0 {
		return fmt.Errorf("the raft configuration in %s names other servers (%s): a cluster member needs Bind: %w",
			s.cfg.Dir, strings.Join(others, ", "), ErrNoListener)
	}
	return nil
}

// keepAddress makes the raft configuration name this server at its current
// address whenever it leads. The address changes when a store that ran with
// no listener is given one (or the other way round), or when Bind has port 0;
// a configuration naming the old one would send other servers' votes and
// heartbeats nowhere once the cluster grows. Only a leader does it: its
// configuration is the latest, where a follower's may be one it was since
// removed from. It ends when raft shuts down.
func (s *Store) keepAddress() {
	defer s.bg.Done()
	ch := make(chan hraft.Observation, 4)
	obs := hraft.NewObserver(ch, false, func(o *hraft.Observation) bool {
		_, ok := o.Data.(hraft.RaftState)
		return ok
	})
	s.raft.RegisterObserver(obs)
	defer s.raft.DeregisterObserver(obs)
	self, addr := hraft.ServerID(s.cfg.ID), s.trans.LocalAddr()
	for {
		if s.IsLeader() {
			f := s.raft.GetConfiguration()
			if err := f.Error(); err == nil {
				for _, sv := range f.Configuration().Servers {
					if sv.ID != self || sv.Suffrage != hraft.Voter || sv.Address == addr {
						continue
					}
					// AddVoter of a voter that exists changes its address.
					if err := s.raft.AddVoter(self, addr, 0, s.cfg.ApplyTimeout).Error(); err != nil {
						s.log.Warn("raft configuration: own address not updated", "from", sv.Address, "to", addr, "err", err)
					} else {
						s.log.Info("raft configuration: own address updated", "from", sv.Address, "to", addr)
					}
				}
			}
		}
		select {
		case <-ch:
		case <-s.ctx.Done():
			return
		}
	}
}

// Members returns the current raft configuration.
func (s *Store) Members() ([]Member, error) {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("raft configuration: %w", err)
	}
	var ms []Member
	for _, sv := range f.Configuration().Servers {
		ms = append(ms, Member{ID: string(sv.ID), Addr: publicAddr(sv.Address), Voter: sv.Suffrage == hraft.Voter})
	}
	return ms, nil
}

// Snapshot takes a raft snapshot now and truncates the log behind it.
func (s *Store) Snapshot() error {
	if err := s.raft.Snapshot().Error(); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	return nil
}

// Stats is a point-in-time view of this server, for metrics and tests.
type Stats struct {
	ID, State, Leader string
	Term              uint64
	Rev, CompactRev   int64
	Keys              int
	AppliedIndex      uint64
	LastIndex         uint64
	SnapshotsRestored int64
}

// Stats reports this server's state. It is cheap: counters only.
func (s *Store) Stats() Stats {
	rev, compact, keys, applied := s.idx.stats()
	leader, _ := s.Leader()
	return Stats{ID: s.cfg.ID, State: s.raft.State().String(), Leader: leader, Term: s.raft.CurrentTerm(),
		Rev: rev, CompactRev: compact, Keys: keys, AppliedIndex: applied, LastIndex: s.raft.LastIndex(),
		SnapshotsRestored: s.fsm.restores.Load()}
}

// StateHash digests every live key and the revision it was taken at. Servers
// that applied the same log have equal hashes at equal revisions. It reads
// the whole key space under the index's read lock, holding up the apply of
// new writes meanwhile: for tests and consistency checks, not for metrics.
func (s *Store) StateHash() (hash uint64, rev int64) { return s.idx.hash() }
