package raft

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/testutil"
)

// cluster runs n store servers in this process, each on its own loopback
// address (127.0.0.1, 127.0.0.2, …) over the real TCP transport, each with its
// own data directory, so a server can be closed ("killed") and started again
// from its disk at the same address.
type cluster struct {
	t     *testing.T
	dir   string
	addrs []string
	tune  func(i int, c *Config)

	mu      sync.Mutex
	servers []*Store // nil while a server is down
}

// newCluster starts n servers: the first bootstraps, the others join as voters.
func newCluster(t *testing.T, n int, tune func(i int, c *Config)) *cluster {
	t.Helper()
	c := &cluster{t: t, dir: t.TempDir(), tune: tune, servers: make([]*Store, n)}
	for i := range n {
		c.addrs = append(c.addrs, freeAddr(t, fmt.Sprintf("127.0.0.%d", i+1)))
	}
	t.Cleanup(c.closeAll)
	c.start(0)
	testutil.Eventually(t, 10*time.Second, func() error {
		if !c.server(0).IsLeader() {
			return errors.New("first server does not lead yet")
		}
		return nil
	})
	for i := 1; i < n; i++ {
		c.join(i)
	}
	return c
}

// freeAddr finds a free TCP port on ip. The port is released before the store
// binds it; on a quiet loopback nobody takes it in between.
func freeAddr(t *testing.T, ip string) string {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Skipf("cannot listen on %s (loopback aliases unavailable): %v", ip, err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func (c *cluster) id(i int) string { return fmt.Sprintf("s%d", i+1) }

func (c *cluster) config(i int) Config {
	cfg := Config{ID: c.id(i), Dir: filepath.Join(c.dir, c.id(i)), Bind: c.addrs[i], Bootstrap: i == 0,
		HeartbeatTimeout: 200 * time.Millisecond, ApplyTimeout: 5 * time.Second, Logger: testutil.Logger(c.t)}
	if c.tune != nil {
		c.tune(i, &cfg)
	}
	return cfg
}

// start opens server i from its directory.
func (c *cluster) start(i int) *Store {
	c.t.Helper()
	s, err := Open(context.Background(), c.config(i))
	if err != nil {
		c.t.Fatalf("start %s: %v", c.id(i), err)
	}
	c.mu.Lock()
	c.servers[i] = s
	c.mu.Unlock()
	return s
}

// join adds a new server i as a voter through any running server.
func (c *cluster) join(i int) *Store {
	c.t.Helper()
	s := c.start(i)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.server(0).AddVoter(ctx, c.id(i), c.addrs[i]); err != nil {
		c.t.Fatalf("add voter %s: %v", c.id(i), err)
	}
	return s
}

// add starts one more server, new and empty, and joins it.
func (c *cluster) add() *Store {
	c.t.Helper()
	i := len(c.addrs)
	c.addrs = append(c.addrs, freeAddr(c.t, fmt.Sprintf("127.0.0.%d", i+1)))
	c.mu.Lock()
	c.servers = append(c.servers, nil)
	c.mu.Unlock()
	return c.join(i)
}

// kill closes server i. Everything it acknowledged is on its disk already.
func (c *cluster) kill(i int) {
	c.t.Helper()
	c.mu.Lock()
	s := c.servers[i]
	c.servers[i] = nil
	c.mu.Unlock()
	if s != nil {
		if err := s.Close(); err != nil {
			c.t.Logf("close %s: %v", c.id(i), err)
		}
	}
}

func (c *cluster) server(i int) *Store {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.servers[i]
}

// running returns the servers that are up, with their positions.
func (c *cluster) running() (idx []int, ss []*Store) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, s := range c.servers {
		if s != nil {
			idx, ss = append(idx, i), append(ss, s)
		}
	}
	return idx, ss
}

// waitLeader waits until exactly one running server leads and every running
// server agrees on it, and returns its position.
func (c *cluster) waitLeader() int {
	c.t.Helper()
	leader := -1
	// Elections take well under a second here; the bound is for a CI
	// machine running other packages' CPU-heavy tests beside this one.
	testutil.Eventually(c.t, 30*time.Second, func() error {
		idx, ss := c.running()
		leader = -1
		for k, s := range ss {
			if s.IsLeader() {
				if leader >= 0 {
					return fmt.Errorf("two leaders: %s and %s", c.id(leader), c.id(idx[k]))
				}
				leader = idx[k]
			}
		}
		if leader < 0 {
			return errors.New("no leader")
		}
		for _, s := range ss {
			if id, _ := s.Leader(); id != c.id(leader) {
				return fmt.Errorf("%s thinks the leader is %q, not %s", s.ID(), id, c.id(leader))
			}
		}
		return nil
	})
	return leader
}

// waitConverged waits until every running server has applied the same
// revision and holds the same data (equal state hashes).
func (c *cluster) waitConverged(timeout time.Duration) {
	c.t.Helper()
	testutil.Eventually(c.t, timeout, func() error {
		_, ss := c.running()
		h0, rev0 := ss[0].StateHash()
		for _, s := range ss[1:] {
			if h, rev := s.StateHash(); h != h0 || rev != rev0 {
				return fmt.Errorf("%s at rev %d hash %x, %s at rev %d hash %x", ss[0].ID(), rev0, h0, s.ID(), rev, h)
			}
		}
		return nil
	})
}

func (c *cluster) closeAll() {
	for i := range c.servers {
		c.kill(i)
	}
}

func TestClusterWritesThroughFollower(t *testing.T) {
	c := newCluster(t, 3, nil)
	leader := c.waitLeader()
	follower := c.server((leader + 1) % 3)
	ctx := ctxT(t)

	kv, err := follower.Create(ctx, "/registry/configmaps/ns/a", []byte("from follower"))
	if err != nil {
		t.Fatalf("create through follower: %v", err)
	}
	// Errors come back from the leader as the same sentinels.
	if _, err := follower.Create(ctx, "/registry/configmaps/ns/a", nil); !errors.Is(err, ErrKeyExists) {
		t.Fatalf("duplicate create through follower: %v", err)
	}
	if _, err := follower.Update(ctx, kv.Key, []byte("x"), kv.ModRev+100); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale CAS through follower: %v", err)
	}
	// A linearizable read on any server sees the acknowledged write at once.
	for i := range 3 {
		got, _, err := c.server(i).Get(ctx, kv.Key, ReadOptions{})
		if err != nil || got.ModRev != kv.ModRev || string(got.Value) != "from follower" {
			t.Fatalf("read on %s: %+v %v", c.id(i), got, err)
		}
	}
	ms, err := follower.Members()
	if err != nil || len(ms) != 3 {
		t.Fatalf("members: %+v %v", ms, err)
	}
	c.waitConverged(10 * time.Second)
}

func TestClusterLeaderKillElectsNewLeader(t *testing.T) {
	c := newCluster(t, 3, nil)
	ctx := ctxT(t)
	old := c.waitLeader()
	before, err := c.server(old).Create(ctx, "/k/before", []byte("1"))
	if err != nil {
		t.Fatal(err)
	}
	c.kill(old)
	leader := c.waitLeader()
	if leader == old {
		t.Fatalf("%s still leads after being killed", c.id(old))
	}
	// Writes continue through both survivors, and revisions keep increasing.
	last := before.ModRev
	for i := range 3 {
		s := c.server(i)
		if s == nil {
			continue
		}
		kv, err := s.Create(ctx, "/k/after-"+s.ID(), []byte("2"))
		if err != nil {
			t.Fatalf("write on %s after failover: %v", s.ID(), err)
		}
		if kv.ModRev <= last {
			t.Fatalf("revision went from %d to %d across failover", last, kv.ModRev)
		}
		last = kv.ModRev
	}
	// The killed server comes back from its disk and catches up.
	c.start(old)
	c.waitConverged(15 * time.Second)
	got, _, err := c.server(old).Get(ctx, "/k/before", ReadOptions{Stale: true})
	if err != nil || got.ModRev != before.ModRev {
		t.Fatalf("old leader after restart: %+v %v", got, err)
	}
}

func TestClusterCatchUpBySnapshot(t *testing.T) {
	// Small logs: a snapshot every 64 entries keeping 16, in 16 KiB segments
	// (raft-wal truncates whole segments only), so a server that misses
	// hundreds of writes cannot be served from the log.
	c := newCluster(t, 3, func(i int, cfg *Config) {
		cfg.SnapshotThreshold, cfg.TrailingLogs, cfg.SnapshotInterval = 64, 16, 100*time.Millisecond
		cfg.WALSegmentSize = 16 << 10
	})
	ctx := ctxT(t)
	leader := c.waitLeader()
	lagger := (leader + 2) % 3
	c.kill(lagger) // it has taken no snapshot of its own

	s := c.server(leader)
	for i := range 600 {
		if _, err := s.Create(ctx, fmt.Sprintf("/k/%04d", i), []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Snapshot(); err != nil {
		t.Fatal(err)
	}
	for i := 600; i < 700; i++ { // a log tail after the snapshot
		if _, err := s.Create(ctx, fmt.Sprintf("/k/%04d", i), []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	back := c.start(lagger)
	c.waitConverged(20 * time.Second)
	if n := back.Stats().SnapshotsRestored; n == 0 {
		t.Fatalf("lagging server caught up without installing a snapshot (restores %d)", n)
	}
	if n := back.Count("/k/"); n != 700 {
		t.Fatalf("lagging server has %d keys, want 700", n)
	}

	// A brand-new server joins and catches up the same way.
	fresh := c.add()
	c.waitConverged(20 * time.Second)
	if fresh.Stats().SnapshotsRestored == 0 {
		t.Fatal("new server caught up without a snapshot")
	}
	// Revisions continue past the restored state on every server.
	kv, err := fresh.Create(ctx, "/k/last", nil)
	if err != nil {
		t.Fatal(err)
	}
	c.waitConverged(10 * time.Second)
	if got := c.server(lagger).Stats().Rev; got != kv.ModRev {
		t.Fatalf("restored server at rev %d, last write at %d", got, kv.ModRev)
	}
}
