package testbed_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiffhq/skiff/internal/testbed"
)

// The register model over ConfigMaps: each key is a ConfigMap whose data
// "v" is the register's value ("" while it does not exist). A put reads the
// ConfigMap and then updates it with the resourceVersion it read (or
// creates it): when acknowledged it took effect once, at some instant
// between its call and its return. A get is a plain GET, which Kubernetes
// serves as a quorum read.

type kvInput struct {
	key   int
	put   bool
	value string
}

var kvModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		by := map[int][]porcupine.Operation{}
		for _, op := range history {
			k := op.Input.(kvInput).key
			by[k] = append(by[k], op)
		}
		keys := make([]int, 0, len(by))
		for k := range by {
			keys = append(keys, k)
		}
		sort.Ints(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, by[k])
		}
		return out
	},
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		in := input.(kvInput)
		if in.put {
			return true, in.value
		}
		return output.(string) == state.(string), state
	},
	Equal: func(a, b any) bool { return a == b },
	DescribeOperation: func(input, output any) string {
		in := input.(kvInput)
		if in.put {
			return fmt.Sprintf("put(k%d, %q)", in.key, in.value)
		}
		return fmt.Sprintf("get(k%d) -> %q", in.key, output)
	},
}

// history collects operations from concurrent clients.
type history struct {
	start time.Time
	mu    sync.Mutex
	ops   []porcupine.Operation

	acked, ambiguous, failed, reads atomic.Int64
}

func (h *history) now() int64 { return int64(time.Since(h.start)) }

func (h *history) add(op porcupine.Operation) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

const (
	linKeys = 3
	// opTimeout bounds one request; an operation that hits it has an
	// unknown outcome.
	opTimeout = 3 * time.Second
	// maxOpsPerClient bounds each client's loop besides the nemesis' end.
	maxOpsPerClient = 5000
)

func cmName(k int) string { return fmt.Sprintf("lin-%d", k) }

// definitelyNotApplied: errors after which the write surely did not take
// effect: a refused precondition, or a connection that never opened.
func definitelyNotApplied(err error) bool {
	return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) || apierrors.IsNotFound(err) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH)
}

// runClient loops until stop, choosing a key and get or put at random,
// against one server's API.
func runClient(id int, cs kubernetes.Interface, h *history, stop <-chan struct{}, errKinds func(string)) {
	rng := rand.New(rand.NewPCG(uint64(id), uint64(time.Now().UnixNano())))
	cms := cs.CoreV1().ConfigMaps("default")
	for n := 0; n < maxOpsPerClient; n++ {
		select {
		case <-stop:
			return
		default:
		}
		k := rng.IntN(linKeys)
		put := rng.IntN(2) == 0
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		call := h.now()
		cm, err := cms.Get(ctx, cmName(k), metav1.GetOptions{})
		readAt := h.now()
		current, exists := "", false
		switch {
		case err == nil:
			current, exists = cm.Data["v"], true
		case apierrors.IsNotFound(err):
		default:
			cancel()
			errKinds("get: " + errKind(err))
			time.Sleep(50 * time.Millisecond) // a down server answers at once; don't spin
			continue                          // a failed read tells nothing
		}
		// Every successful read is a get in the history, also a put's.
		h.add(porcupine.Operation{ClientId: id, Input: kvInput{key: k}, Call: call, Output: current, Return: readAt})
		h.reads.Add(1)
		if !put {
			cancel()
			continue
		}
		value := fmt.Sprintf("c%d-%d", id, n)
		op := porcupine.Operation{ClientId: id, Input: kvInput{key: k, put: true, value: value}, Call: h.now()}
		if exists {
			cm.Data = map[string]string{"v": value}
			_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
		} else {
			_, err = cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: cmName(k)}, Data: map[string]string{"v": value}}, metav1.CreateOptions{})
		}
		cancel()
		switch {
		case err == nil:
			op.Return = h.now()
			h.acked.Add(1)
		case definitelyNotApplied(err):
			h.failed.Add(1)
			errKinds("put: " + errKind(err))
			continue
		default:
			// Unknown outcome: it may take effect at any time after the
			// call, or never (porcupine's convention for it).
			op.Return = math.MaxInt64
			h.ambiguous.Add(1)
			errKinds("put: " + errKind(err))
		}
		h.add(op)
	}
}

// errKind is a short class of err, for the summary.
func errKind(err error) string {
	if st, ok := err.(apierrors.APIStatus); ok {
		return fmt.Sprintf("%d %s", st.Status().Code, st.Status().Reason)
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded), strings.Contains(err.Error(), "deadline exceeded"), strings.Contains(err.Error(), "Client.Timeout"):
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), strings.Contains(err.Error(), "connection reset"):
		return "connection reset"
	case strings.Contains(err.Error(), "EOF"):
		return "EOF"
	}
	s := err.Error()
	if len(s) > 60 {
		s = s[:60]
	}
	return s
}

// nemesis is one fault: inject it, and undo it.
type fault struct {
	name string
	do   func() error
}

// checkLinearizable runs clients through the servers' APIs (client i
// through server i mod n) while faults run one after another with traffic
// between them, then heals everything, reads every key through every
// server, and checks the whole history with porcupine.
func checkLinearizable(t *testing.T, bed *testbed.Bed, servers []*server, clients int, faults func(round int) fault, rounds int) {
	h := &history{start: time.Now()}
	var kindsMu sync.Mutex
	kinds := map[string]int{}
	errKinds := func(k string) { kindsMu.Lock(); kinds[k]++; kindsMu.Unlock() }
	css := make([]kubernetes.Interface, len(servers))
	for i, s := range servers {
		css[i], _ = s.client(t, opTimeout)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() { defer wg.Done(); runClient(c, css[c%len(css)], h, stop, errKinds) }()
	}
	stopped := false
	stopClients := func() {
		if !stopped {
			stopped = true
			close(stop)
			wg.Wait()
		}
	}
	defer stopClients()

	var done []string
	time.Sleep(2 * time.Second) // traffic before the first fault
	for r := range rounds {
		f := faults(r)
		at := time.Since(h.start).Round(time.Millisecond)
		if err := f.do(); err != nil {
			t.Fatalf("fault %d (%s): %v", r, f.name, err)
		}
		done = append(done, fmt.Sprintf("%v %s", at, f.name))
		t.Logf("fault %d at %v: %s", r, at, f.name)
		time.Sleep(2 * time.Second) // traffic between faults
	}
	if err := bed.HealAll(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	stopClients()

	// Final reads through every server, after everything healed: what an
	// acknowledged write left must be there (bounded retries while a
	// restarted server catches up; each success is one more get).
	for i, cs := range css {
		for k := range linKeys {
			if err := poll(60*time.Second, 500*time.Millisecond, func() error {
				ctx, cancel := ctxT(opTimeout)
				defer cancel()
				call := h.now()
				cm, err := cs.CoreV1().ConfigMaps("default").Get(ctx, cmName(k), metav1.GetOptions{})
				v := ""
				switch {
				case err == nil:
					v = cm.Data["v"]
				case apierrors.IsNotFound(err):
				default:
					return err
				}
				h.add(porcupine.Operation{ClientId: clients + i, Input: kvInput{key: k}, Call: call, Output: v, Return: h.now()})
				return nil
			}); err != nil {
				t.Fatalf("final read of %s through server %d: %v", cmName(k), i, err)
			}
		}
	}

	res, info := porcupine.CheckOperationsVerbose(kvModel, h.ops, 2*time.Minute)
	t.Logf("%d operations (%d reads, %d writes acknowledged, %d ambiguous, %d refused) over %v through %d servers by %d clients; %d faults: %s; errors %v; verdict: %v",
		len(h.ops), h.reads.Load(), h.acked.Load(), h.ambiguous.Load(), h.failed.Load(), time.Since(h.start).Round(time.Second),
		len(servers), clients, len(done), strings.Join(done, ", "), kinds, res)
	if h.acked.Load() == 0 {
		t.Fatal("no write was acknowledged: the check tested nothing")
	}
	switch res {
	case porcupine.Ok:
	case porcupine.Illegal:
		path := filepath.Join(os.TempDir(), fmt.Sprintf("skiff-testbed-lin-%d.html", time.Now().UnixNano()))
		if err := porcupine.VisualizePath(kvModel, info, path); err != nil {
			path = "not written: " + err.Error()
		}
		t.Fatalf("the history is not linearizable (an acknowledged write lost or a stale read); visualization: %s", path)
	default:
		t.Fatalf("porcupine could not decide within its time limit (%v)", res)
	}
}

// One server on the bed, clients through its API, and a nemesis that kills
// it (kill -9, then a restart on the same data directory) and cuts its
// link: writes during an outage fail or stay unknown; every acknowledged
// write survives, and the history is linearizable.
func TestLinearizableOneServer(t *testing.T) {
	bed := testbed.New(t)
	h := bed.AddHost("s0")
	s := startServer(t, bed, h, "s0")
	faults := func(r int) fault {
		if r%2 == 0 {
			return fault{"kill -9 s0 and restart it", func() error {
				if err := s.proc.Kill(); err != nil {
					return err
				}
				time.Sleep(time.Second)
				started := time.Now()
				if err := s.restart(); err != nil {
					return err
				}
				t.Logf("s0 restarted: ready %v after its start", time.Since(started).Round(time.Millisecond))
				return nil
			}}
		}
		return fault{"cut s0's link for 3s", func() error {
			if err := h.Isolate(); err != nil {
				return err
			}
			time.Sleep(3 * time.Second)
			return h.Heal()
		}}
	}
	checkLinearizable(t, bed, []*server{s}, 4, faults, 4)
}

// The model catches what the bed's check is for: a write acknowledged and
// then lost, and a stale read; and it accepts an ambiguous write that took
// effect late or never. (No root needed: histories written by hand.)
func TestKVModelCatchesLostWrites(t *testing.T) {
	put := func(c int, v string, call, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: c, Input: kvInput{key: 0, put: true, value: v}, Call: call, Return: ret}
	}
	get := func(c int, v string, call, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: c, Input: kvInput{key: 0}, Call: call, Output: v, Return: ret}
	}
	for _, tc := range []struct {
		name string
		ops  []porcupine.Operation
		ok   bool
	}{
		{"acked write then read", []porcupine.Operation{put(0, "a", 0, 10), get(1, "a", 20, 30)}, true},
		{"acked write lost", []porcupine.Operation{put(0, "a", 0, 10), get(1, "", 20, 30)}, false},
		{"overwritten value comes back", []porcupine.Operation{put(0, "a", 0, 10), put(0, "b", 20, 30), get(1, "a", 40, 50)}, false},
		{"ambiguous write applied late", []porcupine.Operation{put(0, "a", 0, math.MaxInt64), get(1, "", 20, 30), get(1, "a", 40, 50)}, true},
		{"ambiguous write never applied", []porcupine.Operation{put(0, "a", 0, math.MaxInt64), get(1, "", 20, 30)}, true},
		{"ambiguous write undone", []porcupine.Operation{put(0, "a", 0, math.MaxInt64), get(1, "a", 20, 30), get(1, "", 40, 50)}, false},
	} {
		if got := porcupine.CheckOperations(kvModel, tc.ops); got != tc.ok {
			t.Errorf("%s: linearizable %v, want %v", tc.name, got, tc.ok)
		}
	}
}
