package storebench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/skiffhq/skiff/raft"
)

// formTimeout bounds forming a cluster, and the wait for the servers to agree
// after a run.
const formTimeout = 30 * time.Second

// cluster is n store servers in this process.
type cluster struct {
	servers []*raft.Store
}

// startCluster opens n servers under dir: the first bootstraps a cluster and
// leads it, the others join as voters through it. It returns once every
// server is a voter and has applied a write made after the last one joined.
func startCluster(ctx context.Context, dir string, n int, log *slog.Logger) (*cluster, error) {
	ctx, cancel := context.WithTimeout(ctx, formTimeout)
	defer cancel()
	c := &cluster{}
	for i := range n {
		id := fmt.Sprintf("s%d", i)
		s, err := raft.Open(ctx, raft.Config{ID: id, Dir: filepath.Join(dir, id), Bind: "127.0.0.1:0",
			Bootstrap: i == 0, HeartbeatTimeout: HeartbeatTimeout, Logger: log})
		if err != nil {
			c.close()
			return nil, fmt.Errorf("open store server %s: %w", id, err)
		}
		c.servers = append(c.servers, s)
		if i == 0 {
			if err := poll(ctx, func() error {
				if !s.IsLeader() {
					return errors.New("bootstrapped server is not leader yet")
				}
				return nil
			}); err != nil {
				c.close()
				return nil, err
			}
			continue
		}
		if err := c.servers[0].AddVoter(ctx, id, s.Addr()); err != nil {
			c.close()
			return nil, fmt.Errorf("add voter %s: %w", id, err)
		}
	}
	if err := c.ready(ctx); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// ready checks that all servers are voters and waits until each has applied
// a fresh write, so none is still catching up when the measurement starts.
func (c *cluster) ready(ctx context.Context) error {
	var leader *raft.Store
	if err := poll(ctx, func() error {
		if leader = c.leader(); leader == nil {
			return errors.New("no leader")
		}
		return nil
	}); err != nil {
		return err
	}
	ms, err := leader.Members()
	if err != nil {
		return fmt.Errorf("cluster members: %w", err)
	}
	voters := 0
	for _, m := range ms {
		if m.Voter {
			voters++
		}
	}
	if voters != len(c.servers) {
		return fmt.Errorf("cluster has %d voters of %d servers: %+v", voters, len(c.servers), ms)
	}
	kv, err := leader.Create(ctx, "/registry/storebench/ready", nil)
	if err != nil {
		return fmt.Errorf("write after forming the cluster: %w", err)
	}
	return poll(ctx, func() error {
		for _, s := range c.servers {
			if rev := s.Rev(); rev < kv.ModRev {
				return fmt.Errorf("server %s at revision %d, want %d", s.ID(), rev, kv.ModRev)
			}
			if id, _ := s.Leader(); id == "" {
				return fmt.Errorf("server %s knows no leader", s.ID())
			}
		}
		return nil
	})
}

// leader returns the server that leads now, or nil.
func (c *cluster) leader() *raft.Store {
	for _, s := range c.servers {
		if s.IsLeader() {
			return s
		}
	}
	return nil
}

// followers returns every server but leader.
func (c *cluster) followers(leader *raft.Store) []*raft.Store {
	var fs []*raft.Store
	for _, s := range c.servers {
		if s != leader {
			fs = append(fs, s)
		}
	}
	return fs
}

// check looks for anomalies after a run: a change of leader or term since
// startTerm, and servers that do not reach the same state (revision and
// data hash) in time. It returns them as notes for the result.
func (c *cluster) check(ctx context.Context, leader *raft.Store, startTerm uint64) []string {
	var notes []string
	if st := leader.Stats(); !leader.IsLeader() || st.Term != startTerm {
		notes = append(notes, fmt.Sprintf("leadership changed during the run (term %d -> %d, leader now %q)",
			startTerm, st.Term, st.Leader))
	}
	if len(c.servers) == 1 {
		return notes
	}
	ctx, cancel := context.WithTimeout(ctx, formTimeout)
	defer cancel()
	err := poll(ctx, func() error {
		want := leader.Rev()
		for _, s := range c.servers {
			if rev := s.Rev(); rev != want {
				return fmt.Errorf("server %s at revision %d, leader at %d", s.ID(), rev, want)
			}
		}
		return nil
	})
	if err != nil {
		return append(notes, fmt.Sprintf("servers did not converge: %v", err))
	}
	// StateHash reads the whole index under its read lock: only now, with no
	// writes left, is that cheap enough and the hashes comparable.
	h0, rev0 := c.servers[0].StateHash()
	for _, s := range c.servers[1:] {
		if h, rev := s.StateHash(); h != h0 || rev != rev0 {
			notes = append(notes, fmt.Sprintf("state of %s (rev %d, hash %x) differs from %s (rev %d, hash %x)",
				s.ID(), rev, h, c.servers[0].ID(), rev0, h0))
		}
	}
	return notes
}

// close closes every server, followers first, so that no follower loses its
// leader and campaigns while the rest shut down; it is safe to call again.
func (c *cluster) close() error {
	leader := c.leader()
	var errs []error
	for _, s := range c.servers {
		if s != leader {
			if err := s.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close %s: %w", s.ID(), err))
			}
		}
	}
	if leader != nil {
		if err := leader.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close %s: %w", leader.ID(), err))
		}
	}
	return errors.Join(errs...)
}

// poll calls fn every 10ms until it returns nil or ctx ends, then returns
// fn's last error wrapped with ctx's.
func poll(ctx context.Context, fn func() error) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		err := fn()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", err, ctx.Err())
		case <-t.C:
		}
	}
}
