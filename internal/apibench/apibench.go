// Package apibench measures the Kubernetes API's cost over the store: the
// same creates, gets and lists made through client-go over HTTPS on
// loopback and directly on the store, in one run, side by side.
package apibench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiffhq/skiff/internal/benchenv"
	"github.com/skiffhq/skiff/internal/latency"
	"github.com/skiffhq/skiff/raft"
)

// Options of a run. Zero values take the defaults.
type Options struct {
	Objects     int    // objects created (and then read); default 2000
	Concurrency int    // concurrent clients; default 16
	Gets        int    // gets per side; default Objects
	Lists       int    // lists of all objects per side; default 20
	Dir         string // where the store lives; default a temporary directory
	Logger      *slog.Logger
}

// Result is one row: an operation on one side.
type Result struct {
	Op, Side  string
	Count     int
	PerSecond float64
	P50, P99  time.Duration
}

// Run creates Objects ConfigMaps through each side, then gets and lists
// them, and prints a table with the API/store ratio of each operation.
func Run(ctx context.Context, o Options, w io.Writer) ([]Result, error) {
	if o.Objects <= 0 {
		o.Objects = 2000
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 16
	}
	if o.Gets <= 0 {
		o.Gets = o.Objects
	}
	if o.Lists <= 0 {
		o.Lists = 20
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	env, err := benchenv.Start(ctx, o.Dir, "skiff-apibench-", "", o.Logger)
	if err != nil {
		return nil, err
	}
	defer env.Close()
	st, api := env.Store, env.API
	kc, err := api.Kubeconfig()
	if err != nil {
		return nil, err
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(kc)
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = -1, 0 // measure the server, not client-side throttling
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	cms := cs.CoreV1().ConfigMaps("default")
	value := map[string]string{"config": string(make([]byte, 200))}
	storeValue, _ := json.Marshal(&corev1.ConfigMap{TypeMeta: metav1.TypeMeta{Kind: "ConfigMap", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: "default", UID: "00000000-0000-0000-0000-000000000000"}, Data: value})

	fmt.Fprintf(w, "skiff API benchmark\ngo %s %s/%s  GOMAXPROCS=%d  %s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH,
		runtime.GOMAXPROCS(0), benchenv.Versions("k8s.io/client-go", "github.com/hashicorp/raft", "github.com/hashicorp/raft-wal"))
	fmt.Fprintf(w, "%d ConfigMaps (~%d-byte objects), %d concurrent clients, %d gets, %d lists of all objects per side\n",
		o.Objects, len(storeValue), o.Concurrency, o.Gets, o.Lists)
	fmt.Fprintln(w, "api: client-go typed client, HTTPS on loopback, JSON; store: raft.Store calls in the same process, one server, raft-wal with fsync")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "op\tside\tcount\tops/s\tp50\tp99\tapi/store time\t")
	var results []Result
	defer tw.Flush() // one table at the end: tabwriter aligns only what it holds
	row := func(op string, conc int, apiFn, storeFn func(i int) error, n int) error {
		a, err := measure(ctx, n, conc, apiFn)
		if err != nil {
			return fmt.Errorf("%s through the API: %w", op, err)
		}
		s, err := measure(ctx, n, conc, storeFn)
		if err != nil {
			return fmt.Errorf("%s on the store: %w", op, err)
		}
		a.Op, a.Side, s.Op, s.Side = op, "api", op, "store"
		ratio := float64(a.P50) / float64(max(s.P50, 1))
		fmt.Fprintf(tw, "%s\tapi\t%d\t%.0f\t%v\t%v\t%.1fx (p50)\t\n", op, a.Count, a.PerSecond, a.P50.Round(time.Microsecond), a.P99.Round(time.Microsecond), ratio)
		fmt.Fprintf(tw, "%s\tstore\t%d\t%.0f\t%v\t%v\t\t\n", op, s.Count, s.PerSecond, s.P50.Round(time.Microsecond), s.P99.Round(time.Microsecond))
		results = append(results, a, s)
		return nil
	}
	err = row("create", o.Concurrency, func(i int) error {
		_, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%d", i)}, Data: value}, metav1.CreateOptions{})
		return err
	}, func(i int) error {
		_, err := st.Create(ctx, fmt.Sprintf("/bench/store/default/cm-%d", i), storeValue)
		return err
	}, o.Objects)
	if err != nil {
		return results, err
	}
	err = row("get", o.Concurrency, func(int) error {
		_, err := cms.Get(ctx, fmt.Sprintf("cm-%d", rand.IntN(o.Objects)), metav1.GetOptions{})
		return err
	}, func(int) error {
		_, _, err := st.Get(ctx, fmt.Sprintf("/bench/store/default/cm-%d", rand.IntN(o.Objects)), raft.ReadOptions{})
		return err
	}, o.Gets)
	if err != nil {
		return results, err
	}
	// Lists run one at a time: with a 2-core machine and 16 concurrent
	// multi-megabyte lists, latency would mostly be queueing.
	err = row(fmt.Sprintf("list %d (1 client)", o.Objects), 1, func(int) error {
		l, err := cms.List(ctx, metav1.ListOptions{})
		if err == nil && len(l.Items) != o.Objects {
			err = fmt.Errorf("listed %d", len(l.Items))
		}
		return err
	}, func(int) error {
		l, err := st.List(ctx, "/bench/store/default/", raft.ListOptions{})
		if err == nil && len(l.KVs) != o.Objects {
			err = fmt.Errorf("listed %d", len(l.KVs))
		}
		return err
	}, o.Lists)
	return results, err
}

// measure runs fn for i in [0, n) on conc goroutines and times each call.
func measure(ctx context.Context, n, conc int, fn func(i int) error) (Result, error) {
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for range min(conc, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				t := time.Now()
				if err := fn(i); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				lat[i] = time.Since(t)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return Result{}, firstErr
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	slices.Sort(lat)
	return Result{Count: n, PerSecond: float64(n) / elapsed.Seconds(), P50: latency.Percentile(lat, 50), P99: latency.Percentile(lat, 99)}, nil
}
