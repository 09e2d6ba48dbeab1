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
	// Bind is the TCP address ("host:port", port 0 for any free one) raft
	// and write forwarding listen on. Default "": no listener and no network
	// transport at all; raft talks to itself in process. A single server
	// has no one to talk to, and a port nobody needs is attack surface. Such
	// a store must Bootstrap (or have state on disk), cannot add servers
	// (ErrNoListener), and refuses a log whose raft configuration names other
	// servers. Reopen it with Bind set to grow a cluster: a leader that finds
	// another address for itself in the configuration (the in-process one, or
	// a port 0 that got another port) puts its current one there.
	Bind string
	// Advertise is the address other servers dial; default the bound address.
	// Only with Bind.
	Advertise string
	// TLS secures every raft and forwarding connection, both ends with this
	// one config: give it Certificates (or GetCertificate and
	// GetClientCertificate) and RootCAs, the cluster's CA. The server side
	// always requires a client certificate and verifies it against ClientCAs
	// (default RootCAs), whatever ClientAuth says, so a peer without a
	// certificate from the cluster's CA cannot complete a handshake; MinVersion
	// defaults to TLS 1.3, since every peer is skiff. Open uses a copy.
	// Default nil: plain TCP, only for tests and benchmarks on loopback
	// (anyone who reaches the port may read and write the store). Ignored
	// without Bind.
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
	if c.Bind == "" && c.Advertise != "" {
		return fmt.Errorf("store config: Advertise %q without Bind: %w", c.Advertise, ErrInvalid)
	}
	if c.Bind == "" {
		c.TLS = nil
	}
	if c.TLS != nil {
		t := c.TLS.Clone()
		if len(t.Certificates) == 0 && (t.GetCertificate == nil || t.GetClientCertificate == nil) {
			return fmt.Errorf("store config: TLS without a certificate for both ends: %w", ErrInvalid)
		}
		if t.RootCAs == nil {
			// Without it the client would trust the system's CAs and
			// the server would verify client certificates against them.
			return fmt.Errorf("store config: TLS without RootCAs (the cluster CA): %w", ErrInvalid)
		}
		if t.ClientCAs == nil {
			t.ClientCAs = t.RootCAs
		}
		t.ClientAuth = tls.RequireAndVerifyClientCert
		if t.MinVersion == 0 {
			t.MinVersion = tls.VersionTLS13
		}
		c.TLS = t
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
	trans transport
	mux   *muxLayer // nil without a listener (Config.Bind empty)
	fwd   *forwarder

	// readyTerm is the term in which this leader has applied everything
	// committed before it (a barrier), so its applied index can serve reads.
	readyTerm atomic.Uint64

	writes  chan *writeReq
	stopped chan struct{} // closed once no batch worker will take a queued write
	ctx     context.Context
	cancel  context.CancelFunc
	workers sync.WaitGroup
	bg      sync.WaitGroup // keepAddress, which ends when raft has shut down
	once    sync.Once
}

// transport is what the store needs of raft's transport: both the TCP one and
// the in-process one close.
type transport interface {
	hraft.Transport
	Close() error
}

// localAddr is the address a store with no listener gives raft, and so the
// one its log's configuration names: it is not host:port, so nothing can dial
// it, and it is the same on every start, so a restart finds itself.
const localAddr hraft.ServerAddress = "local"

// publicAddr is addr as callers see it: "" for the in-process address.
func publicAddr(addr hraft.ServerAddress) string {
	if addr == localAddr {
		return ""
	}
	return string(addr)
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
	if cfg.Bind == "" {
		// raft sends itself nothing: an unconnected in-process transport
		// is all a lone server needs.
		_, s.trans = hraft.NewInmemTransport(localAddr)
	} else {
		if s.mux, err = newMuxLayer(cfg.Bind, cfg.Advertise, cfg.TLS, s.log); err != nil {
			cleanup()
			return nil, err
		}
		s.mux.forward = serveForward(s)
		s.trans = hraft.NewNetworkTransportWithConfig(&hraft.NetworkTransportConfig{
			Stream: s.mux, MaxPool: 3, Timeout: 10 * time.Second, Logger: hlog})
	}
	s.fwd = &forwarder{mux: s.mux, timeout: cfg.HeartbeatTimeout, clients: map[string]*rpc.Client{}}

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
	if cfg.Bind == "" && !hasState && !cfg.Bootstrap {
		cleanup()
		return nil, fmt.Errorf("a server with no state must bootstrap to run without a listener, nobody could add it: %w",
			ErrNoListener)
	}
	if s.raft, err = hraft.NewRaft(rc, s.fsm, logs, s.wal, snaps, s.trans); err != nil {
		s.trans.Close()
		cleanup()
		return nil, fmt.Errorf("start raft: %w", err)
	}
	if cfg.Bind == "" {
		// NewRaft has read the configuration from disk; its goroutines
		// do nothing before a heartbeat timeout has passed.
		if err := s.aloneInConfiguration(); err != nil {
			s.Close()
			return nil, err
		}
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
	s.bg.Add(1)
	go s.keepAddress()
	if s.mux != nil {
		// Accept connections only now: forwarding RPCs use s.raft. Peers
		// that dialled earlier wait in the listen backlog.
		go s.mux.serve()
	}
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
		s.bg.Wait()
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

// ID is this server's raft ID.
func (s *Store) ID() string { return s.cfg.ID }

// Addr is the address other servers reach this one at; "" when it has no
// listener (Config.Bind empty).
func (s *Store) Addr() string { return publicAddr(s.trans.LocalAddr()) }

// IsLeader reports whether this server is the raft leader now.
func (s *Store) IsLeader() bool { return s.raft.State() == hraft.Leader }

// Leader returns the current leader's ID and address as this server knows
// them; empty when unknown.
func (s *Store) Leader() (id, addr string) {
	a, i := s.raft.LeaderWithID()
	return string(i), publicAddr(a)
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
