// Package podbench measures what the engine adds to running Wasm pods:
// pod create → Ready latency for batches of pods of a small module, against
// instantiating the same module directly in wazero in the same run; the
// engine's memory per idle pod; and requests/s through an SDK handler module
// against the same handler compiled natively.
package podbench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/skiffhq/skiff/engine"
	"github.com/skiffhq/skiff/internal/latency"
	"github.com/skiffhq/skiff/internal/sleeper"
	"github.com/skiffhq/skiff/runtime/wasm"
)

// Options of a run. Zero values take the defaults.
type Options struct {
	// Counts are the batch sizes; default 1, 100 and 1000.
	Counts []int
	// Concurrency is how many clients create a batch's pods; default 16.
	Concurrency int
	// HandlerWasm is an SDK handler module (examples/handler) and
	// NativeHandler the same handler compiled for the host; with both the
	// run compares requests/s. Either nil skips that part.
	HandlerWasm   []byte
	NativeHandler http.Handler
	// Requests is how many requests each side of the handler comparison
	// serves; default 20000.
	Requests int
	// Dir is the engine's data directory; default a temporary directory.
	Dir    string
	Logger *slog.Logger
}

// Row is one line of the latency table.
type Row struct {
	Pods               int
	EngineP50, P99     time.Duration
	WazeroP50, WzP99   time.Duration
	PerSecond          float64
	MemoryPerPodBytes  int64 // for the largest batch only
	HeapPerPodBytes    int64
	GoroutinesPerPod   float64
	AllReadyIn         time.Duration
	WazeroInstantiates int
}

// readyTimeout bounds the wait for one batch.
const readyTimeout = 10 * time.Minute

// Run starts an engine, runs the batches, and prints the tables to w.
func Run(ctx context.Context, o Options, w io.Writer) ([]Row, error) {
	if len(o.Counts) == 0 {
		o.Counts = []int{1, 100, 1000}
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 16
	}
	if o.Requests <= 0 {
		o.Requests = 20000
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Dir == "" {
		d, err := os.MkdirTemp("", "skiff-bench-pods-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		o.Dir = d
	}
	module := sleeper.Module()
	// The wazero-only memory baseline runs first, in a process that holds
	// nothing else yet.
	perInstance, err := wazeroMemory(ctx, module, slices.Max(o.Counts))
	if err != nil {
		return nil, err
	}

	// The sleeper's pods set no memory limit; the node's default (512 MiB)
	// would let admission take only memory/512 MiB of them. The sleeper
	// holds one 64 KiB page: 1 MiB each lets a thousand fit in any node.
	e, err := engine.New(engine.Config{DataDir: filepath.Join(o.Dir, "engine"), NodeName: "bench",
		APIListen: "127.0.0.1:0", PodCIDR: "127.66.0.0/16", MaxPods: slices.Max(o.Counts) + 10,
		DefaultPodMemoryLimit: 1 << 20, Logger: o.Logger})
	if err != nil {
		return nil, err
	}
	if err := e.Start(ctx); err != nil {
		return nil, fmt.Errorf("start engine: %w", err)
	}
	defer e.Stop(context.Background())
	rc, err := e.RESTConfig()
	if err != nil {
		return nil, err
	}
	ref, err := engine.PushImage(ctx, rc, module, "bench/sleeper:1")
	if err != nil {
		return nil, err
	}
	cs, err := e.Clientset()
	if err != nil {
		return nil, err
	}

	// One pod first, not measured: the module's pull and compilation, and
	// the first use of every informer and connection, are not what a batch
	// should time.
	if _, err := batch(ctx, cs, ref, 1, 1, false, "bench-warmup"); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	var rows []Row
	for _, n := range o.Counts {
		wz, err := wazeroBaseline(ctx, module, n)
		if err != nil {
			return nil, err
		}
		row, err := batch(ctx, cs, ref, n, o.Concurrency, n == slices.Max(o.Counts), fmt.Sprintf("bench-%d", n))
		if err != nil {
			return nil, err
		}
		row.WazeroP50, row.WzP99, row.WazeroInstantiates = latency.Percentile(wz, 50), latency.Percentile(wz, 99), len(wz)
		rows = append(rows, row)
	}
	printRows(w, rows, perInstance, o.Concurrency)
	if o.HandlerWasm != nil && o.NativeHandler != nil {
		if err := compareHandler(ctx, w, o.HandlerWasm, o.NativeHandler, o.Requests); err != nil {
			return rows, err
		}
	}
	return rows, nil
}

// wazeroBaseline instantiates the module n times straight on wazero (the
// compiler, WASI, a compiled module from the same bytes), without running
// _start, which never returns: the least any engine must do per pod.
func wazeroBaseline(ctx context.Context, module []byte, n int) ([]time.Duration, error) {
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, r)
	compiled, err := r.CompileModule(ctx, module)
	if err != nil {
		return nil, err
	}
	cfg := wazero.NewModuleConfig().WithStartFunctions().WithName("")
	if m, err := r.InstantiateModule(ctx, compiled, cfg); err == nil { // warm-up, not measured
		m.Close(ctx)
	}
	out := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		m, err := r.InstantiateModule(ctx, compiled, cfg)
		d := time.Since(start)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
		defer m.Close(ctx)
	}
	slices.Sort(out)
	return out, nil
}

// wazeroMemory is the Go heap one idle instance of the module costs on
// wazero alone (n instances, each blocked in _start), the baseline of the
// engine's memory per idle pod.
func wazeroMemory(ctx context.Context, module []byte, n int) (int64, error) {
	rt, err := wasm.New(ctx, wasm.Config{})
	if err != nil {
		return 0, err
	}
	defer rt.Close(ctx)
	mod, err := rt.Compile(ctx, module)
	if err != nil {
		return 0, err
	}
	before := readMemory()
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rt.Run(runCtx, mod, wasm.RunSpec{})
		}()
	}
	time.Sleep(time.Second) // every instance reaches its poll_oneoff
	after := readMemory()
	cancel()
	wg.Wait()
	return (after.heap - before.heap) / int64(n), nil
}

// batch creates n pods with c clients and waits until each is Ready,
// timing each from the start of its create call to the watch event that
// shows it Ready. With measureMemory, it reads the process's memory before
// and with the n pods running idle.
func batch(ctx context.Context, cs kubernetes.Interface, ref string, n, c int, measureMemory bool, ns string) (Row, error) {
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return Row{}, err
	}
	var before memory
	if measureMemory {
		before = readMemory()
	}
	wctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	watcher, err := cs.CoreV1().Pods(ns).Watch(wctx, metav1.ListOptions{})
	if err != nil {
		return Row{}, err
	}
	defer watcher.Stop()

	var mu sync.Mutex
	started := make(map[string]time.Time, n)
	readyAt := make(map[string]time.Time, n)
	allReady := make(chan struct{})
	go func() {
		for ev := range watcher.ResultChan() {
			if ev.Type != watch.Added && ev.Type != watch.Modified {
				continue
			}
			p, ok := ev.Object.(*corev1.Pod)
			if !ok || !podReady(p) {
				continue
			}
			mu.Lock()
			if _, seen := readyAt[p.Name]; !seen {
				readyAt[p.Name] = time.Now()
				if len(readyAt) == n {
					close(allReady)
				}
			}
			mu.Unlock()
		}
	}()

	class := "wasm"
	begin := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, c)
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "sleeper-" + strconv.FormatInt(i, 10)},
					Spec: corev1.PodSpec{RuntimeClassName: &class, TerminationGracePeriodSeconds: new(int64),
						Containers: []corev1.Container{{Name: "sleeper", Image: ref}}}}
				mu.Lock()
				started[pod.Name] = time.Now()
				mu.Unlock()
				if _, err := cs.CoreV1().Pods(ns).Create(wctx, pod, metav1.CreateOptions{}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return Row{}, fmt.Errorf("create pods: %w", err)
	}
	select {
	case <-allReady:
	case <-wctx.Done():
		mu.Lock()
		got := len(readyAt)
		mu.Unlock()
		return Row{}, fmt.Errorf("%d pods: only %d Ready within %s", n, got, readyTimeout)
	}
	row := Row{Pods: n, AllReadyIn: time.Since(begin)}
	mu.Lock()
	lat := make([]time.Duration, 0, n)
	for name, t := range readyAt {
		lat = append(lat, t.Sub(started[name]))
	}
	mu.Unlock()
	slices.Sort(lat)
	row.EngineP50, row.P99 = latency.Percentile(lat, 50), latency.Percentile(lat, 99)
	row.PerSecond = float64(n) / row.AllReadyIn.Seconds()
	if measureMemory {
		time.Sleep(2 * time.Second) // let status writes and event bursts settle
		after := readMemory()
		row.MemoryPerPodBytes = (after.rss - before.rss) / int64(n)
		row.HeapPerPodBytes = (after.heap - before.heap) / int64(n)
		row.GoroutinesPerPod = float64(after.goroutines-before.goroutines) / float64(n)
	}
	zero := int64(0)
	if err := cs.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{}); err != nil {
		return row, fmt.Errorf("delete pods: %w", err)
	}
	deadline := time.Now().Add(readyTimeout)
	for time.Now().Before(deadline) {
		l, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err == nil && len(l.Items) == 0 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	return row, nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

type memory struct {
	rss, heap  int64
	goroutines int
}

// readMemory reads the process's resident set (VmRSS) and Go heap in use
// after a GC.
func readMemory() memory {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m := memory{heap: int64(ms.HeapInuse), goroutines: runtime.NumGoroutine()}
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				m.rss = kb << 10
			}
		}
	}
	return m
}

func printRows(w io.Writer, rows []Row, wazeroHeapPerInstance int64, concurrency int) {
	fmt.Fprintf(w, "pod create → Ready (sleeper module, %d bytes); GOMAXPROCS=%d, %s, wazero %s\n",
		len(sleeper.Module()), runtime.GOMAXPROCS(0), runtime.Version(), wasm.WazeroVersion())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "pods\tengine p50\tengine p99\twazero instantiate p50\twazero p99\tp50 ratio\tall Ready in\tpods/s\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%.0f×\t%s\t%.0f\t\n", r.Pods, r.EngineP50.Round(10*time.Microsecond), r.P99.Round(10*time.Microsecond),
			r.WazeroP50, r.WzP99, float64(r.EngineP50)/float64(max(r.WazeroP50, 1)), r.AllReadyIn.Round(time.Millisecond), r.PerSecond)
	}
	tw.Flush()
	fmt.Fprintf(w, "(a batch's pods are created by %d clients at once, so a pod's latency includes waiting behind the rest of its batch;\n"+
		" wazero instantiates one module after another, warm)\n", concurrency)
	for _, r := range rows {
		if r.MemoryPerPodBytes != 0 || r.HeapPerPodBytes != 0 {
			fmt.Fprintf(w, "memory per idle pod at %d pods: %.1f KiB resident (VmRSS delta), %.1f KiB Go heap, %.1f goroutines; "+
				"the same module idle on wazero alone: %.1f KiB Go heap per instance (ratio %.1f×)\n",
				r.Pods, float64(r.MemoryPerPodBytes)/1024, float64(r.HeapPerPodBytes)/1024, r.GoroutinesPerPod,
				float64(wazeroHeapPerInstance)/1024, float64(r.HeapPerPodBytes)/float64(max(wazeroHeapPerInstance, 1)))
		}
	}
}

// compareHandler serves the same handler as an SDK module through the
// runtime's instance pool and natively through net/http, each on a
// loopback listener, and drives both with the same keep-alive clients.
func compareHandler(ctx context.Context, w io.Writer, module []byte, native http.Handler, requests int) error {
	rt, err := wasm.New(ctx, wasm.Config{})
	if err != nil {
		return err
	}
	defer rt.Close(ctx)
	mod, err := rt.Compile(ctx, module)
	if err != nil {
		return err
	}
	if !mod.IsHandler() {
		return errors.New("handler module exports no SDK handler")
	}
	h, err := rt.NewHandler(ctx, mod, wasm.HandlerSpec{Env: []string{"GREETING=hello"}})
	if err != nil {
		return err
	}
	defer h.Close(ctx)
	clients := 2 * runtime.GOMAXPROCS(0)
	wasmRPS, wasmP50, err := drive(ctx, h, requests, clients)
	if err != nil {
		return fmt.Errorf("sdk handler: %w", err)
	}
	nativeRPS, nativeP50, err := drive(ctx, native, requests, clients)
	if err != nil {
		return fmt.Errorf("native handler: %w", err)
	}
	fmt.Fprintf(w, "\nSDK handler vs native (%d requests, %d keep-alive clients, loopback HTTP/1.1, pool %d instances)\n",
		requests, clients, runtime.GOMAXPROCS(0))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "side\treq/s\tp50\t")
	fmt.Fprintf(tw, "native net/http\t%.0f\t%s\t\n", nativeRPS, nativeP50)
	fmt.Fprintf(tw, "SDK handler (wasm)\t%.0f\t%s\t\n", wasmRPS, wasmP50)
	fmt.Fprintf(tw, "wasm/native\t%.2f\t\t\n", wasmRPS/nativeRPS)
	return tw.Flush()
}

func drive(ctx context.Context, h http.Handler, requests, clients int) (float64, time.Duration, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, 0, err
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	defer srv.Close()
	url := "http://" + ln.Addr().String() + "/"
	tr := &http.Transport{MaxIdleConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	var next atomic.Int64
	lat := make([][]time.Duration, clients)
	var firstErr atomic.Value
	var wg sync.WaitGroup
	begin := time.Now()
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(requests) && ctx.Err() == nil {
				t := time.Now()
				resp, err := client.Get(url)
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					firstErr.CompareAndSwap(nil, fmt.Errorf("status %d", resp.StatusCode))
					return
				}
				lat[i] = append(lat[i], time.Since(t))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(begin)
	if err, _ := firstErr.Load().(error); err != nil {
		return 0, 0, err
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	return float64(len(all)) / elapsed.Seconds(), latency.Percentile(all, 50), nil
}
