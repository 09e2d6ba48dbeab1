package raft

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/rpc"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	hraft "github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
)

// Config configures one store server. Zero values take the documented defaults.
type Config struct {
	// ID names this server in the raft configuration. Required; it must stay
	// the same across restarts, or the server rejoins as a stranger.
	ID string
	// Dir holds the log (wal/) and snapshots (snapshots/). Required.
	Dir string
	// Bind is the TCP address for raft and forwarding. Default "127.0.0.1:0"
	// (loopback, a free port): a single server needs no reachable port.
	Bind string
	// Advertise is the address other servers dial; default the bound address.
	Advertise string
	// TLS, when set, wraps every raft and forwarding connection (both ends use
	// it: give it Certificates and RootCAs). Default nil: plain TCP, for
	// loopback and single-server use.
	TLS *tls.Config
	// Bootstrap makes a server with no state on disk form a new cluster with
	// itself as the only voter. Ignored when state exists, so it is safe to
	// pass on every start of the first server.
	Bootstrap bool
	// HistorySize is how many past events (revisions) watches and paged lists
	// can reach back. Default 10000: Kubernetes clients re-list on 410 Gone, so
	// the window only needs to cover a reconnect, and it costs memory per event.
	HistorySize int
	// WatchQueue bounds the events queued for one slow watcher before it is
	// closed with ErrWatchOverflow. Default HistorySize: a watcher that lags
	// more than that could not resume from history anyway.
	WatchQueue int
	// HeartbeatTimeout sets raft's heartbeat and election timeouts (the lease
	// is half). Default 1s, raft's own default, for real networks; tests on
	// loopback use ~150ms to fail over quickly.
	HeartbeatTimeout time.Duration
	// ApplyTimeout bounds how long one write may wait for a leader and for
	// commit. Default 10s.
	ApplyTimeout time.Duration
	// SnapshotThreshold is the number of new log entries after which raft takes
	// a snapshot; SnapshotInterval how often it checks. Defaults 8192 and 30s:
	// a small log keeps restarts fast and the disk bounded.
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	// TrailingLogs is how many entries stay in the log after a snapshot, so a
	// briefly lagging follower catches up from the log rather than by a whole
	// snapshot. Default 10240.
	TrailingLogs uint64
	// WALSegmentSize is the size of one raft-wal log segment file. The log is
	// truncated behind a snapshot only by whole segments, so this is also how
	// much log a server keeps at least. Default 64 MiB (raft-wal's own); small
	// devices or tests may want less.
	WALSegmentSize int
	// MaxInflight is how many group-commit batches may be in raft at once.
	// Default 4: enough to keep the pipeline full while the next batch forms.
	MaxInflight int
	// MaxBatchBytes caps the encoded size of one batch. Default 1 MiB.
	MaxBatchBytes int
	// Logger receives the store's and raft's logs. Default slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() error {
	if c.ID == "" || c.Dir == "" {
		return fmt.Errorf("store config needs ID and Dir: %w", ErrInvalid)
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.HistorySize, 10000)
	def(&c.WatchQueue, c.HistorySize)
	def(&c.MaxInflight, 4)
	def(&c.MaxBatchBytes, 1<<20)
	def(&c.WALSegmentSize, wal.DefaultSegmentSize)
	if c.Bind == "" {
		c.Bind = "127.0.0.1:0"
	}
	if c.HeartbeatTimeout <= 0 {
		c.HeartbeatTimeout = time.Second
	}
	if c.ApplyTimeout <= 0 {
		c.ApplyTimeout = 10 * time.Second
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = 8192
	}
	if c.SnapshotInterval <= 0 {
		c.SnapshotInterval = 30 * time.Second
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = 10240
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Store is one server of the replicated object store.
type Store struct {
	cfg   Config
	log   *slog.Logger
	idx   *index
	fsm   *fsm
	raft  *hraft.Raft
	logs  hraft.LogStore // the cached log raft uses, read by leaderReadIndex
	wal   *wal.WAL
	meta  *metadb.BoltMetaDB // owned here: wal.Close leaves it (and its file lock) open
	trans *hraft.NetworkTransport
	mux   *muxLayer
	fwd   *forwarder

	// readyTerm is the term in which this leader has applied everything
	// committed before it (a barrier), so its applied index can serve reads.
	readyTerm atomic.Uint64

	writes  chan *writeReq
	stopped chan struct{} // closed once no batch worker will take a queued write
	ctx     context.Context
	cancel  context.CancelFunc
	workers sync.WaitGroup
	once    sync.Once
}

// Open starts a store server from cfg.Dir, restoring what is on disk.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	walDir := filepath.Join(cfg.Dir, "wal")
	if err := os.MkdirAll(walDir, 0o700); err != nil {
		return nil, fmt.Errorf("create store dir: %w", err)
	}
	s := &Store{cfg: cfg, log: cfg.Logger.With("store", cfg.ID), idx: newIndex(cfg.HistorySize),
		writes: make(chan *writeReq, 1024), stopped: make(chan struct{})}
	s.fsm = &fsm{idx: s.idx}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	hlog := newHCLogger(s.log)

	var err error
	cleanup := func() {
		if s.wal != nil {
			s.wal.Close()
		}
		s.meta.Close()
		if s.mux != nil {
			s.mux.Close()
		}
		s.cancel()
	}
	s.meta = &metadb.BoltMetaDB{}
	if s.wal, err = wal.Open(walDir, wal.WithMetaStore(s.meta), wal.WithLogger(hlog),
		wal.WithSegmentSize(cfg.WALSegmentSize)); err != nil {
		cleanup()
		return nil, fmt.Errorf("open raft log %s: %w", walDir, err)
	}
	snaps, err := hraft.NewFileSnapshotStoreWithLogger(cfg.Dir, 2, hlog)
	if err != nil {
		cleanup()
		return nil, fmt.Errorf("open snapshot store: %w", err)
	}
	if s.mux, err = newMuxLayer(cfg.Bind, cfg.Advertise, cfg.TLS, s.log); err != nil {
		cleanup()
		return nil, err
	}
	s.mux.forward = serveForward(s)
	s.fwd = &forwarder{mux: s.mux, timeout: cfg.HeartbeatTimeout, clients: map[string]*rpc.Client{}}
	s.trans = hraft.NewNetworkTransportWithConfig(&hraft.NetworkTransportConfig{
		Stream: s.mux, MaxPool: 3, Timeout: 10 * time.Second, Logger: hlog})

	rc := hraft.DefaultConfig()
	rc.LocalID = hraft.ServerID(cfg.ID)
	rc.Logger = hlog
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.HeartbeatTimeout
	rc.LeaderLeaseTimeout = cfg.HeartbeatTimeout / 2
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.TrailingLogs = cfg.TrailingLogs

	logs, err := hraft.NewLogCache(512, s.wal)
	if err != nil {
		cleanup()
		return nil, fmt.Errorf("log cache: %w", err)
	}
	s.logs = logs
	hasState, err := hraft.HasExistingState(logs, s.wal, snaps)
	if err != nil {
		cleanup()
		return nil, fmt.Errorf("inspect raft state: %w", err)
	}
	if s.raft, err = hraft.NewRaft(rc, s.fsm, logs, s.wal, snaps, s.trans); err != nil {
		s.trans.Close()
		cleanup()
		return nil, fmt.Errorf("start raft: %w", err)
	}
	if cfg.Bootstrap && !hasState {
		boot := hraft.Configuration{Servers: []hraft.Server{{
			Suffrage: hraft.Voter, ID: rc.LocalID, Address: s.trans.LocalAddr()}}}
		if err := s.raft.BootstrapCluster(boot).Error(); err != nil {
			s.Close()
			return nil, fmt.Errorf("bootstrap raft: %w", err)
		}
	}
	for i := 0; i < cfg.MaxInflight; i++ {
		s.workers.Add(1)
		go s.batchWorker()
	}
	// Accept connections only now: forwarding RPCs use s.raft. Peers that
	// dialled earlier wait in the listen backlog.
	go s.mux.serve()
	s.log.Info("store open", "dir", cfg.Dir, "addr", s.trans.LocalAddr(), "existing_state", hasState)
	return s, nil
}

// Close stops the server. Acknowledged writes are on disk already; Close
// takes no snapshot, so a restart replays the log exactly as after a crash.
func (s *Store) Close() error {
	var err error
	s.once.Do(func() {
		s.cancel()
		s.workers.Wait()
		// The workers are gone: writes still queued were never submitted.
		for drained := false; !drained; {
			select {
			case r := <-s.writes:
				r.done <- writeResp{err: ErrStopped}
			default:
				drained = true
			}
		}
		close(s.stopped)
		err = s.raft.Shutdown().Error()
		s.fwd.close()
		s.trans.Close()
		if werr := s.wal.Close(); err == nil {
			err = werr
		}
		if merr := s.meta.Close(); err == nil {
			err = merr
		}
		s.idx.closeWatchers(ErrStopped)
	})
	return err
}

// ID is this server's raft ID; Addr the address others reach it at.
func (s *Store) ID() string   { return s.cfg.ID }
func (s *Store) Addr() string { return string(s.trans.LocalAddr()) }

// IsLeader reports whether this server is the raft leader now.
func (s *Store) IsLeader() bool { return s.raft.State() == hraft.Leader }

// Leader returns the current leader's ID and address as this server knows
// them; empty when unknown.
func (s *Store) Leader() (id, addr string) {
	a, i := s.raft.LeaderWithID()
	return string(i), string(a)
}

// WaitLeader blocks until this server knows a leader, or ctx ends.
func (s *Store) WaitLeader(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if id, _ := s.Leader(); id != "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for leader: %w: %w", ErrNoLeader, ctx.Err())
		case <-s.ctx.Done():
			return ErrStopped
		case <-t.C:
		}
	}
}

// sleepCtx waits d unless ctx ends first (then false). Writes, reads and
// membership changes retry with it while no leader is known.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
