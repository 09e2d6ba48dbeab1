package raft

import (
	"context"
	"crypto/tls"
	"errors"
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

// --- writes ---

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

// --- reads ---

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

// --- watch ---

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

// --- membership and maintenance ---

// AddVoter adds a server (or updates its address) as a voting member.
func (s *Store) AddVoter(ctx context.Context, id, addr string) error {
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

// Member is one server in the raft configuration.
type Member struct {
	ID, Addr string
	Voter    bool
}

// Members returns the current raft configuration.
func (s *Store) Members() ([]Member, error) {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("raft configuration: %w", err)
	}
	var ms []Member
	for _, sv := range f.Configuration().Servers {
		ms = append(ms, Member{ID: string(sv.ID), Addr: string(sv.Address), Voter: sv.Suffrage == hraft.Voter})
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
