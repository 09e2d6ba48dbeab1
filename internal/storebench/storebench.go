// Package storebench measures the write path of skiff's replicated object
// store (package raft) beside a baseline measured in the same run, on the same
// disk: bbolt committing every write with fsync, the cost of storing an object
// durably on one machine without consensus.
//
// For every (servers, writers) pair Run starts a fresh store cluster inside
// this process (loopback TCP, one data directory per server), lets the writer
// goroutines Create unique keys for Options.Duration, and reports acknowledged
// writes per second, latency percentiles and the bytes written to disk per
// write and server. Scenarios run one after another, so their disk writes and
// CPU use never mix.
package storebench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	hraft "github.com/hashicorp/raft"
	wal "github.com/hashicorp/raft-wal"
	"go.etcd.io/bbolt"

	"github.com/skiffhq/skiff/internal/latency"
	"github.com/skiffhq/skiff/raft"
)

// Scenario names, as Result.Scenario and the table's first column give them.
const (
	// ScenarioSkiff is a store cluster of Result.Servers servers in this
	// process, every write a Create sent to the leader: the main figure.
	ScenarioSkiff = "skiff"
	// ScenarioSkiffFollower is the same cluster with the writes sent to the
	// followers (writer i to follower i mod N-1), which forward them to the
	// leader: what a client connected to a follower sees. Only for Servers > 1.
	ScenarioSkiffFollower = "skiff-via-follower"
	// ScenarioBoltFsync is the baseline: one bbolt file, one db.Update with one
	// put per write, each committed with fsync. bbolt runs one write
	// transaction at a time, so concurrent writers queue: that is the nature of
	// a local embedded store without group commit.
	ScenarioBoltFsync = "bbolt-fsync"
	// ScenarioBoltBatch is the baseline through db.Batch, bbolt's own group
	// commit: concurrent calls share a transaction (up to 1000 calls, and a
	// call waits up to 10ms for company), so one writer alone pays the delay.
	ScenarioBoltBatch = "bbolt-batch"
)

// HeartbeatTimeout is the raft heartbeat and election timeout of the
// benchmark's servers (their leader lease is half of it). The store's default,
// 1s, is for real networks; its tests use 150ms on loopback. The benchmark
// takes 500ms: on loopback a cluster still forms within about a second, and on
// a 2-core machine saturated by 64 writers, fsyncs and three servers, a
// follower that is starved of CPU for a few hundred milliseconds does not
// start an election in the middle of a measurement. The timeout does not
// enter the steady-state write path: replication is driven by writes, not by
// heartbeats.
const HeartbeatTimeout = 500 * time.Millisecond

// Options configure Run. Zero values take the documented defaults.
type Options struct {
	// Duration is how long each scenario writes. Default 5s.
	Duration time.Duration
	// Servers lists the store cluster sizes to measure. Default {1, 3}.
	Servers []int
	// Writers lists the numbers of concurrent writer goroutines. Default
	// {1, 64}: one client alone (pure latency) and a busy API server.
	Writers []int
	// ValueSize is each value's size in bytes. Default 300, a small
	// Kubernetes object.
	ValueSize int
	// Dir is where Run makes its temporary directory (removed at the end).
	// It must be on the disk under test. Default os.TempDir().
	Dir string
	// Logger receives progress and the stores' logs. Default: discard.
	Logger *slog.Logger
	// LeaderOnly skips the skiff-via-follower rows. Default false: they are
	// measured for every cluster with more than one server.
	LeaderOnly bool
	// MaxWrites bounds each scenario's writes besides Duration, so that a
	// fast machine cannot grow the latency record without limit. Default
	// 5,000,000.
	MaxWrites int
}

func (o *Options) setDefaults() error {
	if o.Duration <= 0 {
		o.Duration = 5 * time.Second
	}
	if len(o.Servers) == 0 {
		o.Servers = []int{1, 3}
	}
	if len(o.Writers) == 0 {
		o.Writers = []int{1, 64}
	}
	for _, n := range o.Servers {
		if n < 1 {
			return fmt.Errorf("store benchmark: %d servers: need at least 1", n)
		}
	}
	for _, n := range o.Writers {
		if n < 1 {
			return fmt.Errorf("store benchmark: %d writers: need at least 1", n)
		}
	}
	if o.ValueSize <= 0 {
		o.ValueSize = 300
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MaxWrites <= 0 {
		o.MaxWrites = 5_000_000
	}
	return nil
}

// Result is one scenario's measurement.
type Result struct {
	// Scenario is one of the Scenario constants.
	Scenario string
	// Servers is the store cluster size (1 for the bbolt baselines);
	// Writers the number of concurrent writer goroutines.
	Servers, Writers int
	// Writes counts acknowledged writes; Errors the writes that failed (not
	// in Writes, nor in the latencies).
	Writes, Errors int
	// Elapsed runs from the writers' start until the last one returned.
	Elapsed time.Duration
	// WritesPerSec is Writes / Elapsed.
	WritesPerSec float64
	// P50, P99 and Max are the latencies of acknowledged writes.
	P50, P99, Max time.Duration
	// BytesPerWrite is what the process wrote to disk during the scenario
	// (/proc/self/io write_bytes) divided by Writes and by Servers: bytes per
	// write on each server. 0 when not measured (not Linux).
	BytesPerWrite float64
	// Ratio is WritesPerSec divided by the bbolt-fsync baseline's at the same
	// Writers: above 1, the scenario beats a local fsync per write.
	Ratio float64
	// Note tells of anomalies seen during the scenario: failed writes, a
	// leadership change, servers that disagree after the run. Empty if none.
	Note string
}

// Run measures every scenario for every (Servers, Writers) pair and prints a
// header and one table row per scenario to w as soon as it finishes. It
// returns the results gathered so far with any error; when ctx ends it stops
// early and returns an error wrapping ctx.Err().
func Run(ctx context.Context, opts Options, w io.Writer) (results []Result, err error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(opts.Dir, "skiff-storebench-")
	if err != nil {
		return nil, fmt.Errorf("store benchmark data dir: %w", err)
	}
	defer func() {
		if rerr := os.RemoveAll(dir); rerr != nil && err == nil {
			err = fmt.Errorf("remove store benchmark data: %w", rerr)
		}
	}()
	value := make([]byte, opts.ValueSize)
	rng := rand.New(rand.NewChaCha8([32]byte{'s', 'k', 'i', 'f', 'f'}))
	for i := range value {
		value[i] = byte(rng.Uint32())
	}
	b := &bench{opts: opts, dir: dir, log: opts.Logger, value: value}
	_, ioErr := writeBytes()
	b.measureIO = ioErr == nil
	if err := b.printHeader(w, ioErr); err != nil {
		return nil, err
	}
	tw := newTable(w)
	if err := tw.header(); err != nil {
		return nil, err
	}

	type scenario struct {
		name             string
		servers, writers int
		run              func(context.Context) (Result, error)
	}
	for _, writers := range opts.Writers {
		scs := []scenario{
			{ScenarioBoltFsync, 1, writers, func(ctx context.Context) (Result, error) { return b.bolt(ctx, writers, false) }},
			{ScenarioBoltBatch, 1, writers, func(ctx context.Context) (Result, error) { return b.bolt(ctx, writers, true) }},
		}
		for _, servers := range opts.Servers {
			scs = append(scs, scenario{ScenarioSkiff, servers, writers, func(ctx context.Context) (Result, error) {
				return b.skiff(ctx, servers, writers, false)
			}})
			if servers > 1 && !opts.LeaderOnly {
				scs = append(scs, scenario{ScenarioSkiffFollower, servers, writers, func(ctx context.Context) (Result, error) {
					return b.skiff(ctx, servers, writers, true)
				}})
			}
		}
		var base float64
		for _, sc := range scs {
			if err := ctx.Err(); err != nil {
				return results, fmt.Errorf("store benchmark stopped: %w", err)
			}
			b.log.Info("store benchmark scenario", "scenario", sc.name, "servers", sc.servers, "writers", sc.writers)
			r, err := sc.run(ctx)
			if err != nil {
				return results, fmt.Errorf("store benchmark %s servers=%d writers=%d: %w", sc.name, sc.servers, sc.writers, err)
			}
			if sc.name == ScenarioBoltFsync {
				base = r.WritesPerSec
			}
			if base > 0 {
				r.Ratio = r.WritesPerSec / base
			}
			results = append(results, r)
			if err := tw.row(r, b.measureIO); err != nil {
				return results, err
			}
		}
	}
	return results, nil
}

type bench struct {
	opts      Options
	dir       string
	log       *slog.Logger
	value     []byte
	measureIO bool
}

// key is the object key of writer w's seq-th write, shaped like the key of a
// namespaced Kubernetes object.
func key(w, seq int) string {
	return "/registry/configmaps/bench/w" + strconv.Itoa(w) + "-" + strconv.Itoa(seq)
}

// skiff measures a fresh cluster of n servers, writing to the leader or, with
// viaFollower, to the followers.
func (b *bench) skiff(ctx context.Context, n, writers int, viaFollower bool) (Result, error) {
	name := ScenarioSkiff
	if viaFollower {
		name = ScenarioSkiffFollower
	}
	r := Result{Scenario: name, Servers: n, Writers: writers}
	dir := filepath.Join(b.dir, fmt.Sprintf("%s-n%d-w%d", name, n, writers))
	defer os.RemoveAll(dir)
	c, err := startCluster(ctx, dir, n, b.log)
	if err != nil {
		return r, err
	}
	defer c.close()
	leader := c.leader()
	if leader == nil {
		return r, errors.New("no leader after the cluster formed")
	}
	targets := []*raft.Store{leader}
	if viaFollower {
		targets = c.followers(leader)
	}
	startTerm := leader.Stats().Term

	io0, err := b.ioMark()
	if err != nil {
		return r, err
	}
	l := drive(ctx, writers, b.opts.Duration, b.opts.MaxWrites, func(ctx context.Context, w, seq int) error {
		_, err := targets[w%len(targets)].Create(ctx, key(w, seq), b.value)
		return err
	})
	if err := ctx.Err(); err != nil {
		return r, fmt.Errorf("stopped: %w", err)
	}
	notes := l.notes()
	notes = append(notes, c.check(ctx, leader, startTerm)...)
	if err := c.close(); err != nil {
		return r, fmt.Errorf("close stores: %w", err)
	}
	if err := b.fill(&r, l, io0); err != nil {
		return r, err
	}
	r.Note = strings.Join(notes, "; ")
	return r, nil
}

var benchBucket = []byte("bench")

// bolt measures the baseline: a fresh bbolt file with default options
// (NoSync false: every commit is fsynced), one put per commit, through
// db.Update or, with batch, db.Batch.
func (b *bench) bolt(ctx context.Context, writers int, batch bool) (Result, error) {
	name := ScenarioBoltFsync
	if batch {
		name = ScenarioBoltBatch
	}
	r := Result{Scenario: name, Servers: 1, Writers: writers}
	dir := filepath.Join(b.dir, fmt.Sprintf("%s-w%d", name, writers))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return r, fmt.Errorf("create bbolt dir: %w", err)
	}
	defer os.RemoveAll(dir)
	db, err := bbolt.Open(filepath.Join(dir, "bench.db"), 0o600, nil)
	if err != nil {
		return r, fmt.Errorf("open bbolt: %w", err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(benchBucket)
		return err
	}); err != nil {
		return r, fmt.Errorf("create bbolt bucket: %w", err)
	}
	commit := db.Update
	if batch {
		commit = db.Batch
	}

	io0, err := b.ioMark()
	if err != nil {
		return r, err
	}
	l := drive(ctx, writers, b.opts.Duration, b.opts.MaxWrites, func(_ context.Context, w, seq int) error {
		k := []byte(key(w, seq))
		return commit(func(tx *bbolt.Tx) error { return tx.Bucket(benchBucket).Put(k, b.value) })
	})
	if err := ctx.Err(); err != nil {
		return r, fmt.Errorf("stopped: %w", err)
	}
	if err := db.Close(); err != nil {
		return r, fmt.Errorf("close bbolt: %w", err)
	}
	if err := b.fill(&r, l, io0); err != nil {
		return r, err
	}
	r.Note = strings.Join(l.notes(), "; ")
	return r, nil
}

// ioMark flushes the data filesystem and reads the process's write counter.
// The flush sits before the first reading and after the stores closed, so
// the scenario's delayed writeback has reached the disk before its figure is
// taken and the previous scenario's cannot leak into it. (Linux charges
// buffered writes to write_bytes when pages are dirtied, so the flush mostly
// settles the disk rather than the counter; raft-wal and bbolt fsync every
// commit anyway.)
func (b *bench) ioMark() (int64, error) {
	if !b.measureIO {
		return 0, nil
	}
	if err := syncFS(b.dir); err != nil {
		return 0, err
	}
	return writeBytes()
}

// fill completes r from a load and the write counter's reading before it.
func (b *bench) fill(r *Result, l load, io0 int64) error {
	r.Writes, r.Errors, r.Elapsed = len(l.lat), l.errors, l.elapsed
	if r.Writes == 0 {
		if l.firstErr != nil {
			return fmt.Errorf("no write succeeded: %w", l.firstErr)
		}
		return errors.New("no write completed")
	}
	r.WritesPerSec = float64(r.Writes) / l.elapsed.Seconds()
	r.P50, r.P99, r.Max = latency.Percentile(l.lat, 50), latency.Percentile(l.lat, 99), l.lat[len(l.lat)-1]
	if b.measureIO {
		io1, err := b.ioMark()
		if err != nil {
			return err
		}
		r.BytesPerWrite = float64(io1-io0) / float64(r.Writes) / float64(r.Servers)
	}
	return nil
}

// load is what the writers of one scenario did.
type load struct {
	lat      []time.Duration // acknowledged writes' latencies, sorted
	errors   int
	firstErr error
	elapsed  time.Duration
}

func (l load) notes() []string {
	if l.errors == 0 {
		return nil
	}
	return []string{fmt.Sprintf("%d writes failed, first: %v", l.errors, l.firstErr)}
}

// drive runs writers goroutines, released together, each calling write with
// its number and a sequence number until d has passed, maxWrites writes have
// been started in all, or ctx ends. A failed write is counted and the writer
// goes on with its next key. Writes cut short by ctx are not counted.
func drive(ctx context.Context, writers int, d time.Duration, maxWrites int, write func(ctx context.Context, w, seq int) error) load {
	var (
		started  atomic.Int64
		wg       sync.WaitGroup
		mu       sync.Mutex
		all      []time.Duration
		l        load
		release  = make(chan struct{})
		deadline time.Time
	)
	perWriter := min(maxWrites/writers+1, 1<<16)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, perWriter)
			errs := 0
			var firstErr error
			<-release
			for seq := 0; ctx.Err() == nil && started.Add(1) <= int64(maxWrites); seq++ {
				t := time.Now()
				if !t.Before(deadline) {
					break
				}
				if err := write(ctx, w, seq); err != nil {
					if ctx.Err() != nil {
						break
					}
					if errs++; firstErr == nil {
						firstErr = err
					}
					continue
				}
				lat = append(lat, time.Since(t))
			}
			mu.Lock()
			defer mu.Unlock()
			all = append(all, lat...)
			l.errors += errs
			if l.firstErr == nil {
				l.firstErr = firstErr
			}
		}()
	}
	t0 := time.Now()
	deadline = t0.Add(d)
	close(release)
	wg.Wait()
	l.elapsed = time.Since(t0)
	slices.Sort(all)
	l.lat = all
	return l
}

// --- output ---

// depVersion is the version of module path that this binary was built
// with, from the build information. Test binaries carry no dependency list,
// so it falls back to the module cache path (module@version/file.go) that
// the compiler recorded for fn, a function of that module; "unknown" if
// neither says.
func depVersion(bi *debug.BuildInfo, path string, fn any) string {
	if bi != nil {
		for _, d := range bi.Deps {
			if d.Path != path {
				continue
			}
			if d.Replace != nil {
				return d.Replace.Version + " (replaced)"
			}
			return d.Version
		}
	}
	if f := runtime.FuncForPC(reflect.ValueOf(fn).Pointer()); f != nil {
		file, _ := f.FileLine(f.Entry())
		if _, rest, ok := strings.Cut(file, path+"@"); ok {
			if v, _, ok := strings.Cut(rest, "/"); ok {
				return v
			}
		}
	}
	return "unknown"
}

func (b *bench) printHeader(w io.Writer, ioErr error) error {
	bi, _ := debug.ReadBuildInfo()
	fsName, inMemory := fsType(b.dir)
	o := b.opts
	var sb strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&sb, format+"\n", args...) }
	p("skiff store benchmark")
	p("go %s %s/%s  GOMAXPROCS=%d  NumCPU=%d  kernel %s", runtime.Version(), runtime.GOOS, runtime.GOARCH,
		runtime.GOMAXPROCS(0), runtime.NumCPU(), kernelRelease())
	p("hashicorp/raft %s  raft-wal %s  bbolt %s", depVersion(bi, "github.com/hashicorp/raft", hraft.NewRaft),
		depVersion(bi, "github.com/hashicorp/raft-wal", wal.Open), depVersion(bi, "go.etcd.io/bbolt", bbolt.Open))
	p("duration %v per scenario (at most %d writes), value %d bytes, servers %v, writers %v",
		o.Duration, o.MaxWrites, o.ValueSize, o.Servers, o.Writers)
	p("data %s (%s)", b.dir, fsName)
	p("skiff: N store servers in this process on loopback TCP, raft-wal log, heartbeat/election timeout %v;", HeartbeatTimeout)
	p("  rows %q send every Create to the leader only; %q rows send them to the followers, which forward.",
		ScenarioSkiff, ScenarioSkiffFollower)
	p("bbolt-fsync: one db.Update (one put, one fsync'd commit) per write, writers serialized by bbolt;")
	p("  bbolt-batch: db.Batch, bbolt's group commit (<=1000 calls or 10ms per commit).")
	if b.measureIO {
		p("bytes/w/srv: /proc/self/io write_bytes over the scenario (syncfs before and after, stores closed)")
		p("  / writes / servers; whole pages as Linux charges them, filesystem journal not included.")
	} else {
		p("bytes/w/srv: not measured: %v", ioErr)
	}
	p("ratio: writes/s / bbolt-fsync writes/s at the same number of writers.")
	if inMemory {
		p("WARNING: %s is on %s: fsync is free and write_bytes stays 0; put Dir on a real disk.", b.dir, fsName)
	}
	p("")
	if _, err := io.WriteString(w, sb.String()); err != nil {
		return fmt.Errorf("write benchmark header: %w", err)
	}
	return nil
}

// table prints aligned rows one at a time. tabwriter aligns only the lines
// between two flushes, so each cell is padded to its column's width first:
// rows flushed one by one still line up (a longer cell shifts only its row).
type table struct {
	tw *tabwriter.Writer
}

var columns = []struct {
	name  string
	width int // negative: left-aligned
}{
	{"scenario", -18}, {"servers", 7}, {"writers", 7}, {"writes", 8}, {"writes/s", 8},
	{"p50", 9}, {"p99", 9}, {"bytes/w/srv", 11}, {"ratio", 6}, {"note", 0},
}

func newTable(w io.Writer) *table {
	return &table{tw: tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)}
}

func (t *table) line(cells []string) error {
	for len(cells) > 0 && cells[len(cells)-1] == "" {
		cells = cells[:len(cells)-1] // no padding at the end of a line
	}
	for i, c := range cells {
		if i > 0 {
			t.tw.Write([]byte{'\t'})
		}
		fmt.Fprintf(t.tw, "%*s", columns[i].width, c)
	}
	t.tw.Write([]byte{'\n'})
	if err := t.tw.Flush(); err != nil {
		return fmt.Errorf("write benchmark table: %w", err)
	}
	return nil
}

func (t *table) header() error {
	cells := make([]string, len(columns))
	for i, c := range columns {
		cells[i] = c.name
	}
	return t.line(cells)
}

func (t *table) row(r Result, measureIO bool) error {
	bytes := "n/a"
	if measureIO {
		bytes = fmt.Sprintf("%.0f", r.BytesPerWrite)
	}
	ratio := "-"
	if r.Ratio > 0 {
		ratio = fmt.Sprintf("%.2f", r.Ratio)
	}
	return t.line([]string{r.Scenario, strconv.Itoa(r.Servers), strconv.Itoa(r.Writers), strconv.Itoa(r.Writes),
		fmt.Sprintf("%.0f", r.WritesPerSec), fmtDur(r.P50), fmtDur(r.P99), bytes, ratio, r.Note})
}

// fmtDur prints a latency with three significant digits in a fixed unit per
// range, so a column reads at a glance.
func fmtDur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}
