package raft

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/testutil"
)

func testConfig(t *testing.T, id, dir string) Config {
	return Config{ID: id, Dir: dir, Bootstrap: true, HeartbeatTimeout: 150 * time.Millisecond,
		ApplyTimeout: 5 * time.Second, Logger: testutil.Logger(t)}
}

// openSingle starts a one-server store and waits until it leads.
func openSingle(t *testing.T, cfg Config) *Store {
	t.Helper()
	s, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	testutil.Eventually(t, 10*time.Second, func() error {
		if !s.IsLeader() {
			return errors.New("not leader yet")
		}
		return nil
	})
	return s
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestCreateGetUpdateDelete(t *testing.T) {
	s := openSingle(t, testConfig(t, "s1", t.TempDir()))
	ctx := ctxT(t)

	kv, err := s.Create(ctx, "/registry/pods/default/a", []byte("v1"))
	if err != nil {
		t.Fatal(err)
	}
	if kv.CreateRev != kv.ModRev || kv.ModRev <= 0 {
		t.Fatalf("created kv revisions: %+v", kv)
	}
	if _, err := s.Create(ctx, "/registry/pods/default/a", []byte("again")); !errors.Is(err, ErrKeyExists) {
		t.Fatalf("second create: want ErrKeyExists, got %v", err)
	}
	got, rev, err := s.Get(ctx, "/registry/pods/default/a", ReadOptions{})
	if err != nil || string(got.Value) != "v1" || rev < kv.ModRev {
		t.Fatalf("get: %+v rev %d err %v", got, rev, err)
	}

	up, err := s.Update(ctx, kv.Key, []byte("v2"), kv.ModRev)
	if err != nil {
		t.Fatal(err)
	}
	if up.ModRev <= kv.ModRev || up.CreateRev != kv.CreateRev {
		t.Fatalf("update revisions: before %+v after %+v", kv, up)
	}
	// A compare-and-swap on the old revision conflicts and reports the current state.
	cur, err := s.Update(ctx, kv.Key, []byte("stale"), kv.ModRev)
	if !errors.Is(err, ErrConflict) || cur.ModRev != up.ModRev || string(cur.Value) != "v2" {
		t.Fatalf("stale update: kv %+v err %v", cur, err)
	}
	if _, err := s.Update(ctx, "/registry/pods/default/missing", []byte("x"), 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("update missing: %v", err)
	}
	if _, err := s.Delete(ctx, kv.Key, kv.ModRev); !errors.Is(err, ErrConflict) {
		t.Fatalf("conditional delete on stale revision: %v", err)
	}
	del, err := s.Delete(ctx, kv.Key, up.ModRev)
	if err != nil || string(del.Value) != "v2" || del.ModRev <= up.ModRev {
		t.Fatalf("delete: %+v %v", del, err)
	}
	if _, _, err := s.Get(ctx, kv.Key, ReadOptions{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	// The key's past is still readable inside the history window.
	old, _, err := s.Get(ctx, kv.Key, ReadOptions{Revision: up.ModRev})
	if err != nil || string(old.Value) != "v2" {
		t.Fatalf("get at past revision: %+v %v", old, err)
	}
	if _, err := s.Create(ctx, "", nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty key: %v", err)
	}
}

func TestListPagingAtOneRevision(t *testing.T) {
	s := openSingle(t, testConfig(t, "s1", t.TempDir()))
	ctx := ctxT(t)
	for i := 0; i < 25; i++ {
		if _, err := s.Create(ctx, fmt.Sprintf("/registry/cm/ns/k%02d", i), []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Create(ctx, "/registry/cmx/other", nil); err != nil { // same prefix bytes, other resource
		t.Fatal(err)
	}
	page, err := s.List(ctx, "/registry/cm/", ListOptions{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	listRev := page.Rev
	// Writes between pages must not show in later pages of the same list.
	if _, err := s.Delete(ctx, "/registry/cm/ns/k15", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, "/registry/cm/ns/k20", []byte("changed"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, "/registry/cm/ns/k99", nil); err != nil {
		t.Fatal(err)
	}
	var all []KeyValue
	all = append(all, page.KVs...)
	for pages := 1; page.More; pages++ {
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		page, err = s.List(ctx, "/registry/cm/", ListOptions{Limit: 10, StartKey: page.NextKey,
			ReadOptions: ReadOptions{Revision: listRev}})
		if err != nil {
			t.Fatal(err)
		}
		if page.Rev != listRev {
			t.Fatalf("page at revision %d, want %d", page.Rev, listRev)
		}
		all = append(all, page.KVs...)
	}
	if len(all) != 25 {
		t.Fatalf("listed %d keys, want 25", len(all))
	}
	for i, kv := range all {
		if kv.Key != fmt.Sprintf("/registry/cm/ns/k%02d", i) || string(kv.Value) != strconv.Itoa(i) {
			t.Fatalf("item %d: %s=%s", i, kv.Key, kv.Value)
		}
	}
	now, err := s.List(ctx, "/registry/cm/", ListOptions{})
	if err != nil || len(now.KVs) != 25 || now.More { // 25 - k15 + k99
		t.Fatalf("current list: %d keys more=%v err=%v", len(now.KVs), now.More, err)
	}
	if n := s.Count("/registry/cm/"); n != 25 {
		t.Fatalf("count %d", n)
	}
}

func collect(t *testing.T, w *Watcher, n int) []Event {
	t.Helper()
	var evs []Event
	timeout := time.After(10 * time.Second)
	for len(evs) < n {
		select {
		case ev, ok := <-w.Events():
			if !ok {
				t.Fatalf("watch closed after %d events: %v", len(evs), w.Err())
			}
			evs = append(evs, ev)
		case <-timeout:
			t.Fatalf("got %d of %d events", len(evs), n)
		}
	}
	return evs
}

func TestWatchReplaysMissedEventsInOrder(t *testing.T) {
	s := openSingle(t, testConfig(t, "s1", t.TempDir()))
	ctx := ctxT(t)
	a, err := s.Create(ctx, "/registry/pods/ns/a", []byte("1"))
	if err != nil {
		t.Fatal(err)
	}
	from := a.ModRev
	// The events a client missed after it saw revision `from`:
	b, _ := s.Create(ctx, "/registry/pods/ns/b", []byte("1"))
	a2, _ := s.Update(ctx, "/registry/pods/ns/a", []byte("2"), 0)
	_, _ = s.Create(ctx, "/registry/svc/ns/x", []byte("not a pod"))
	bd, err := s.Delete(ctx, "/registry/pods/ns/b", 0)
	if err != nil {
		t.Fatal(err)
	}

	w, err := s.Watch(ctx, "/registry/pods/", from)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	// A live event after the replay must follow it.
	c, _ := s.Create(ctx, "/registry/pods/ns/c", []byte("1"))

	evs := collect(t, w, 4)
	want := []struct {
		typ     EventType
		key     string
		rev     int64
		created bool
	}{{Put, "/registry/pods/ns/b", b.ModRev, true}, {Put, "/registry/pods/ns/a", a2.ModRev, false},
		{Deleted, "/registry/pods/ns/b", bd.ModRev, false}, {Put, "/registry/pods/ns/c", c.ModRev, true}}
	for i, w := range want {
		ev := evs[i]
		if ev.Type != w.typ || ev.KV.Key != w.key || ev.Rev() != w.rev || ev.Created != w.created {
			t.Fatalf("event %d: got %v %s rev %d created %v, want %+v", i, ev.Type, ev.KV.Key, ev.Rev(), ev.Created, w)
		}
	}
	if string(evs[1].PrevKV.Value) != "1" || string(evs[2].KV.Value) != "1" {
		t.Fatalf("prev value / deleted value wrong: %+v", evs[1:3])
	}
	select {
	case ev := <-w.Events():
		t.Fatalf("unexpected extra event %+v", ev)
	case <-time.After(50 * time.Millisecond):
	}
}

func TestWatchCompacted(t *testing.T) {
	cfg := testConfig(t, "s1", t.TempDir())
	cfg.HistorySize = 10
	s := openSingle(t, cfg)
	ctx := ctxT(t)
	first, err := s.Create(ctx, "/k/first", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if _, err := s.Update(ctx, "/k/first", []byte(strconv.Itoa(i)), 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Watch(ctx, "/k/", first.ModRev); !errors.Is(err, ErrCompacted) {
		t.Fatalf("watch from compacted revision: %v", err)
	}
	if _, _, err := s.Get(ctx, "/k/first", ReadOptions{Revision: first.ModRev}); !errors.Is(err, ErrCompacted) {
		t.Fatalf("get at compacted revision: %v", err)
	}
	if _, err := s.List(ctx, "/k/", ListOptions{ReadOptions: ReadOptions{Revision: first.ModRev}}); !errors.Is(err, ErrCompacted) {
		t.Fatalf("list at compacted revision: %v", err)
	}
	// The edge of the window still works: the last 10 revisions are there.
	st := s.Stats()
	w, err := s.Watch(ctx, "/k/", st.CompactRev)
	if err != nil {
		t.Fatalf("watch from compact revision %d: %v", st.CompactRev, err)
	}
	defer w.Stop()
	if evs := collect(t, w, 10); evs[9].Rev() != st.Rev {
		t.Fatalf("last replayed rev %d, want %d", evs[9].Rev(), st.Rev)
	}
	// Compaction drops superseded versions: only one remains for the key.
	s.idx.mu.RLock()
	h, _ := s.idx.tree.Get(&keyHist{key: "/k/first"})
	n := len(h.versions)
	s.idx.mu.RUnlock()
	if n > 11 {
		t.Fatalf("%d versions kept for a key with a 10-event window", n)
	}
}

func TestSlowWatcherIsClosedNotBlocking(t *testing.T) {
	cfg := testConfig(t, "s1", t.TempDir())
	cfg.WatchQueue = 5
	s := openSingle(t, cfg)
	ctx := ctxT(t)
	w, err := s.Watch(ctx, "/", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	// Nobody reads w; writes must still complete.
	for i := 0; i < 200; i++ {
		if _, err := s.Create(ctx, fmt.Sprintf("/k/%d", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	for range 1000 {
		if _, ok := <-w.Events(); !ok {
			break
		}
	}
	if !errors.Is(w.Err(), ErrWatchOverflow) {
		t.Fatalf("slow watcher ended with %v", w.Err())
	}
}

func TestRestartKeepsAcknowledgedWrites(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, "s1", dir)
	cfg.SnapshotThreshold = 50 // so the restart goes through a snapshot and a log tail
	cfg.TrailingLogs = 10
	cfg.SnapshotInterval = 50 * time.Millisecond
	s := openSingle(t, cfg)
	ctx := ctxT(t)
	acked := map[string]int64{}
	for i := 0; i < 300; i++ {
		k := fmt.Sprintf("/k/%03d", i)
		kv, err := s.Create(ctx, k, []byte(k))
		if err != nil {
			t.Fatal(err)
		}
		acked[k] = kv.ModRev
		if i == 150 {
			if err := s.Snapshot(); err != nil {
				t.Fatal(err)
			}
		}
	}
	before := s.Stats()
	hashBefore, _ := s.StateHash()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openSingle(t, cfg)
	testutil.Eventually(t, 10*time.Second, func() error {
		if st := s2.Stats(); st.Rev != before.Rev {
			return fmt.Errorf("rev %d after restart, want %d", st.Rev, before.Rev)
		}
		return nil
	})
	for k, rev := range acked {
		kv, _, err := s2.Get(ctx, k, ReadOptions{})
		if err != nil || kv.ModRev != rev || string(kv.Value) != k {
			t.Fatalf("%s after restart: %+v %v", k, kv, err)
		}
	}
	if h, _ := s2.StateHash(); h != hashBefore {
		t.Fatal("state hash differs after restart")
	}
	if s2.Stats().SnapshotsRestored == 0 {
		t.Fatal("restart did not restore the snapshot")
	}
	// Revisions continue from where they were.
	kv, err := s2.Create(ctx, "/k/after", nil)
	if err != nil || kv.ModRev != before.Rev+1 {
		t.Fatalf("first write after restart: %+v %v (rev before %d)", kv, err, before.Rev)
	}
}

// TestCrashKeepsAcknowledgedWrites kills a writing process with SIGKILL and
// checks that every write it had acknowledged is there after a restart.
func TestCrashKeepsAcknowledgedWrites(t *testing.T) {
	if os.Getenv("SKIFF_CRASH_CHILD") != "" {
		crashChild()
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashKeepsAcknowledgedWrites$")
	cmd.Env = append(os.Environ(), "SKIFF_CRASH_CHILD="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill() // our own child, by its PID
	acked := map[string]int64{}
	sc := bufio.NewScanner(out)
	for len(acked) < 300 && sc.Scan() {
		var k string
		var rev int64
		if _, err := fmt.Sscanf(sc.Text(), "ack %s %d", &k, &rev); err == nil {
			acked[k] = rev
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if len(acked) < 300 {
		t.Fatalf("child acknowledged only %d writes", len(acked))
	}
	s := openSingle(t, testConfig(t, "crash", dir))
	ctx := ctxT(t)
	for k, rev := range acked {
		var kv KeyValue
		testutil.Eventually(t, 10*time.Second, func() (err error) {
			kv, _, err = s.Get(ctx, k, ReadOptions{})
			return err
		})
		if kv.ModRev != rev {
			t.Fatalf("%s: rev %d after crash, acknowledged at %d", k, kv.ModRev, rev)
		}
	}
}

// crashChild writes until it is killed, printing each acknowledged write.
func crashChild() {
	dir := os.Getenv("SKIFF_CRASH_CHILD")
	cfg := Config{ID: "crash", Dir: dir, Bootstrap: true, HeartbeatTimeout: 150 * time.Millisecond}
	s, err := Open(context.Background(), cfg)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	ctx := context.Background()
	if err := s.WaitLeader(ctx); err != nil {
		os.Exit(1)
	}
	w := bufio.NewWriter(os.Stdout)
	for i := 0; i < 100000; i++ { // bounded; the parent kills us long before
		k := "/crash/" + strconv.Itoa(i)
		kv, err := s.Create(ctx, k, []byte(strings.Repeat("x", 200)))
		if err != nil {
			continue
		}
		fmt.Fprintf(w, "ack %s %d\n", k, kv.ModRev)
		w.Flush()
	}
	os.Exit(0)
}

// Errors that cross the forwarding RPC keep their sentinel, also when the
// leader wrapped it with context, and keep the leader's message.
func TestWireErrorsKeepSentinels(t *testing.T) {
	for _, e := range wireErrors {
		for _, err := range []error{e, fmt.Errorf("%w: raft apply: leadership lost", e)} {
			got := errFromWire(errToWire(err))
			if !errors.Is(got, e) || got.Error() != err.Error() {
				t.Errorf("%q came back as %q (is %v: %v)", err, got, e, errors.Is(got, e))
			}
		}
	}
	both := fmt.Errorf("%w: %w", ErrIndeterminate, ErrStopped)
	if got := errFromWire(errToWire(both)); !errors.Is(got, ErrIndeterminate) {
		t.Errorf("indeterminate-and-stopped came back as %v", got)
	}
	other := errors.New("membership change for s4: not found")
	if got := errFromWire(errToWire(other)); got.Error() != other.Error() || errors.Is(got, ErrNotFound) {
		t.Errorf("plain error came back as %v", got)
	}
	if got := errFromWire("no encoding here"); got.Error() != "no encoding here" {
		t.Errorf("unencoded message came back as %v", got)
	}
}

// A write that races Close, or comes after it, answers ErrStopped at once
// and is never applied later.
func TestWriteAfterCloseReturnsStopped(t *testing.T) {
	s := openSingle(t, testConfig(t, "s1", t.TempDir()))
	ctx := ctxT(t)
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Create(ctx, fmt.Sprintf("/k/%d", i), nil)
			errs <- err
		}()
		if i == 20 {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	wg.Wait() // would hang until ctx's 20s end if a queued write were lost
	close(errs)
	for err := range errs {
		if err != nil && !errors.Is(err, ErrStopped) && !errors.Is(err, ErrIndeterminate) {
			t.Errorf("write around Close: %v", err)
		}
	}
	for range 20 {
		if _, err := s.Create(ctx, "/k/late", nil); !errors.Is(err, ErrStopped) {
			t.Fatalf("write after Close: %v", err)
		}
	}
}
