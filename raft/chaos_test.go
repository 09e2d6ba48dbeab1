package raft

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// TestClusterChaos runs writers and readers against three servers while a
// bounded loop kills and restarts servers (the leader in most rounds), then
// checks what clients were promised:
//   - every acknowledged create is present on every server, with the
//     revision and value the client was given;
//   - each sequential writer saw strictly increasing revisions;
//   - all servers hold identical state (equal hashes at the same revision);
//   - the history of writes and linearizable reads on shared keys is
//     linearizable (porcupine), reads served by any server.
func TestClusterChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos test skipped in -short mode")
	}
	c := newCluster(t, 3, func(i int, cfg *Config) {
		// Small segments and snapshots, so restarts also go through
		// snapshot installs and log truncation.
		cfg.SnapshotThreshold, cfg.TrailingLogs, cfg.SnapshotInterval = 256, 64, 200*time.Millisecond
		cfg.WALSegmentSize = 64 << 10
		cfg.ApplyTimeout = 3 * time.Second
	})
	c.waitLeader()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))

	const regKeys = 2
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for k := range regKeys {
		if _, err := c.server(0).Create(ctxT(t), regKey(k), []byte("init")); err != nil {
			t.Fatal(err)
		}
	}

	pick := func(r *rand.Rand) *Store {
		_, ss := c.running()
		if len(ss) == 0 {
			return nil
		}
		return ss[r.IntN(len(ss))]
	}

	// Creators: each creates its own keys one after another.
	const creators = 4
	acked := make([][]KeyValue, creators)
	var wg sync.WaitGroup
	var ambiguous atomic.Int64
	var errMu sync.Mutex
	errKinds := map[string]int{}
	defer func() { t.Logf("errors: %v", errKinds) }()
	for w := range creators {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for n := 0; n < 100000 && ctx.Err() == nil; n++ {
				s := pick(r)
				if s == nil {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				key := fmt.Sprintf("/chaos/c%d/%06d", w, n)
				octx, ocancel := context.WithTimeout(ctx, 2*time.Second)
				kv, err := s.Create(octx, key, []byte(key))
				ocancel()
				if err != nil {
					ambiguous.Add(1) // it may or may not exist; nothing to check
					errMu.Lock()
					errKinds[firstLine(err)]++
					errMu.Unlock()
					continue
				}
				acked[w] = append(acked[w], kv)
			}
		}()
	}

	// Register clients: writes of unique values and linearizable reads on a
	// few shared keys, through random servers.
	const regClients = 3
	var histMu sync.Mutex
	var history []porcupine.Operation
	start := time.Now()
	now := func() int64 { return int64(time.Since(start)) }
	for cl := range regClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(cl), 2))
			for n := 0; n < 100000 && ctx.Err() == nil; n++ {
				s := pick(r)
				if s == nil {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				in := regInput{key: r.IntN(regKeys), write: r.IntN(2) == 0, value: fmt.Sprintf("%d-%d", cl, n)}
				octx, ocancel := context.WithTimeout(ctx, 2*time.Second)
				op := porcupine.Operation{ClientId: cl, Input: in, Call: now(), Metadata: s.ID()}
				if in.write {
					_, err := s.Update(octx, regKey(in.key), []byte(in.value), 0)
					op.Return = now()
					if err != nil {
						// Unknown outcome: it may take effect at any time
						// after the call, or never.
						op.Return = math.MaxInt64
					}
				} else {
					kv, _, err := s.Get(octx, regKey(in.key), ReadOptions{})
					op.Return = now()
					if err != nil {
						ocancel()
						continue // a failed read tells nothing
					}
					op.Output = string(kv.Value)
				}
				ocancel()
				histMu.Lock()
				history = append(history, op)
				histMu.Unlock()
			}
		}()
	}

	// Faults: a bounded number of rounds.
	const rounds = 6
	for round := range rounds {
		time.Sleep(250 * time.Millisecond)
		victim := c.waitLeader()
		if round%3 == 2 {
			victim = rng.IntN(3) // sometimes a follower (or the leader again)
		}
		t.Logf("round %d: killing %s", round, c.id(victim))
		c.kill(victim)
		c.waitLeader()
		time.Sleep(250 * time.Millisecond)
		c.start(victim)
	}
	time.Sleep(250 * time.Millisecond)
	cancel()
	wg.Wait()
	c.waitLeader()
	c.waitConverged(30 * time.Second)

	total := 0
	for w, kvs := range acked {
		total += len(kvs)
		for i := 1; i < len(kvs); i++ {
			if kvs[i].ModRev <= kvs[i-1].ModRev {
				t.Fatalf("creator %d: revision %d after %d (%s after %s)", w, kvs[i].ModRev, kvs[i-1].ModRev,
					kvs[i].Key, kvs[i-1].Key)
			}
		}
	}
	if total < 100 {
		t.Fatalf("only %d writes acknowledged: the test exercised too little", total)
	}
	_, ss := c.running()
	for _, s := range ss {
		for _, kvs := range acked {
			for _, want := range kvs {
				got, _, err := s.Get(context.Background(), want.Key, ReadOptions{Stale: true})
				if err != nil || got.ModRev != want.ModRev || string(got.Value) != want.Key {
					t.Fatalf("%s lost an acknowledged write: %s at rev %d: got %+v, %v",
						s.ID(), want.Key, want.ModRev, got, err)
				}
			}
		}
	}
	res, info := porcupine.CheckOperationsVerbose(regModel, history, 60*time.Second)
	if res == porcupine.Illegal {
		t.Log(firstStaleRead(history))
		t.Log(stuckPoint(info, history))
		// The visualization shows the longest linearizable prefix and where
		// it breaks; kept outside the test's temporary directory to read.
		path := filepath.Join(os.TempDir(), fmt.Sprintf("skiff-chaos-%d.html", time.Now().UnixNano()))
		if err := porcupine.VisualizePath(regModel, info, path); err != nil {
			path = "not written: " + err.Error()
		}
		t.Fatalf("history of %d operations is not linearizable; visualization: %s", len(history), path)
	}
	st := ss[0].Stats()
	t.Logf("%d creates acknowledged, %d ambiguous; %d register operations (%v); final rev %d, snapshots restored %d",
		total, ambiguous.Load(), len(history), res, st.Rev, st.SnapshotsRestored)
}

func regKey(k int) string { return fmt.Sprintf("/chaos/reg/%d", k) }

type regInput struct {
	key   int
	write bool
	value string
}

// regModel is a set of independent registers: a write sets a value, a read
// returns the current one.
var regModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		by := map[int][]porcupine.Operation{}
		for _, op := range history {
			k := op.Input.(regInput).key
			by[k] = append(by[k], op)
		}
		var out [][]porcupine.Operation
		for _, ops := range by {
			out = append(out, ops)
		}
		return out
	},
	Init: func() any { return "init" },
	Step: func(state, input, output any) (bool, any) {
		in := input.(regInput)
		if in.write {
			return true, in.value
		}
		return output.(string) == state.(string), state
	},
	DescribeOperation: func(input, output any) string {
		in := input.(regInput)
		if in.write {
			return fmt.Sprintf("put(%d, %s)", in.key, in.value)
		}
		return fmt.Sprintf("get(%d) -> %v", in.key, output)
	},
}

func firstLine(err error) string {
	s := err.Error()
	if len(s) > 80 {
		s = s[:80]
	}
	return s
}

// firstStaleRead explains a linearizability failure in the simplest terms
// it can: a read that returned a value although a later acknowledged write
// had finished before the read began.
func firstStaleRead(history []porcupine.Operation) string {
	writes := map[string]porcupine.Operation{}
	for _, op := range history {
		if in := op.Input.(regInput); in.write {
			writes[in.value] = op
		}
	}
	for _, r := range history {
		in := r.Input.(regInput)
		if in.write {
			continue
		}
		v := r.Output.(string)
		wv, ok := writes[v]
		if !ok && v != "init" {
			return fmt.Sprintf("read %+v returned %q, which nobody wrote", r, v)
		}
		if ok && wv.Call > r.Return {
			return fmt.Sprintf("read (client %d on %v, %d..%d) returned %q written later (%d..%d)", r.ClientId, r.Metadata, r.Call, r.Return, v, wv.Call, wv.Return)
		}
		for _, w := range writes {
			wi := w.Input.(regInput)
			if wi.key != in.key || w.Return == math.MaxInt64 || w.Return >= r.Call {
				continue
			}
			if v == "init" || w.Call > wv.Return {
				return fmt.Sprintf("stale read: client %d on %v read %q at %d..%d; the write of %q (client %d on %v, %d..%d) had finished before, and it started after %q was written (%d..%d on %v)",
					r.ClientId, r.Metadata, v, r.Call, r.Return, wi.value, w.ClientId, w.Metadata, w.Call, w.Return, v, wv.Call, wv.Return, wv.Metadata)
			}
		}
	}
	return "no single stale read found: the violation involves several operations"
}

// stuckPoint prints the operations around where porcupine got stuck: the
// last operation of the longest linearizable prefix it found, and every
// operation of that key not in the prefix that overlaps it in time.
func stuckPoint(info porcupine.LinearizationInfo, history []porcupine.Operation) string {
	var out strings.Builder
	for pi, part := range info.PartialLinearizationsOperations() {
		var best []porcupine.Operation
		for _, lin := range part {
			if len(lin) > len(best) {
				best = lin
			}
		}
		if len(best) == 0 {
			continue
		}
		placed := map[[2]int64]bool{}
		for _, op := range best {
			placed[[2]int64{int64(op.ClientId), op.Call}] = true
		}
		last := best[len(best)-1]
		key := last.Input.(regInput).key
		fmt.Fprintf(&out, "partition %d (key %d): prefix of %d; last placed %s; not placed, nearby:\n", pi, key, len(best), describe(last))
		n := 0
		for _, op := range history {
			if op.Input.(regInput).key != key || placed[[2]int64{int64(op.ClientId), op.Call}] {
				continue
			}
			if op.Call <= last.Return+int64(20*time.Millisecond) && n < 25 {
				fmt.Fprintf(&out, "  %s\n", describe(op))
				if in := op.Input.(regInput); !in.write {
					for _, w := range history {
						if wi := w.Input.(regInput); wi.write && wi.value == op.Output {
							fmt.Fprintf(&out, "      value written by %s\n", describe(w))
						}
					}
				}
				n++
			}
		}
	}
	return out.String()
}

func describe(op porcupine.Operation) string {
	in := op.Input.(regInput)
	ret := "?"
	if op.Return != math.MaxInt64 {
		ret = fmt.Sprint(op.Return)
	}
	if in.write {
		return fmt.Sprintf("client %d on %v put(%d,%s) %d..%s", op.ClientId, op.Metadata, in.key, in.value, op.Call, ret)
	}
	return fmt.Sprintf("client %d on %v get(%d)->%v %d..%s", op.ClientId, op.Metadata, in.key, op.Output, op.Call, ret)
}
