package raft

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
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
				op := porcupine.Operation{ClientId: cl, Input: in, Call: now()}
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
		t.Fatalf("history of %d operations is not linearizable: %v", len(history), info.PartialLinearizations())
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
