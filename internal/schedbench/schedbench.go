// Package schedbench measures the scheduler at scale: a real store and API
// server in this process, N fake Ready nodes (Node objects, no agents), P
// pending pods created before the scheduler starts, then the pods bound
// per second, printed beside the store's raw write rate measured in the
// same run on the same store. Each binding is one store write, so the
// store's rate bounds the scheduler's; the ratio says how much of it the
// scheduler keeps.
package schedbench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/skiffhq/skiff/internal/benchenv"
	"github.com/skiffhq/skiff/internal/scheduler"
)

// Options of a run. Zero values take the defaults.
type Options struct {
	Nodes   []int // fake node counts; default 100, 1000
	Pods    []int // pending pods per scenario; default 1000, 10000
	Writers int   // concurrent writers creating pods and measuring the store; default 64
	// MinStoreWrites is the fewest raw store writes measured, whatever
	// the pod count: a few hundred are over before the store's batching
	// settles. Default 10000.
	MinStoreWrites int
	Timeout        time.Duration // bound on each scenario's wait for every pod to bind; default 5m
	Dir            string        // where the stores live; default a temporary directory
	Logger         *slog.Logger
}

// Result is one scenario.
type Result struct {
	Nodes, Pods int
	Elapsed     time.Duration // scheduler start to the last pod seen bound
	PerSecond   float64       // pods bound per second
	StoreWrites float64       // raw store creates per second, same store, same run
	APIBinds    float64       // Bindings per second written straight through the API, no scheduler
}

// Run measures every (nodes, pods) scenario, each on a fresh store, and
// prints one table.
func Run(ctx context.Context, o Options, w io.Writer) ([]Result, error) {
	if len(o.Nodes) == 0 {
		o.Nodes = []int{100, 1000}
	}
	if len(o.Pods) == 0 {
		o.Pods = []int{1000, 10000}
	}
	if o.Writers <= 0 {
		o.Writers = 64
	}
	if o.MinStoreWrites <= 0 {
		o.MinStoreWrites = 10000
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	fmt.Fprintf(w, "skiff scheduler benchmark\ngo %s %s/%s  GOMAXPROCS=%d %s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH,
		runtime.GOMAXPROCS(0), benchenv.Versions("k8s.io/client-go", "github.com/hashicorp/raft", "github.com/hashicorp/raft-wal"))
	fmt.Fprintf(w, "fake Ready nodes (64 cpu, 256Gi, 110 pods), pending pods (100m, 128Mi) created by %d writers before the scheduler starts;\n", o.Writers)
	fmt.Fprintf(w, "bound/s: scheduler start to the last pod seen bound by a watch; store: raw creates of pod-sized values (at least %d), the same store, same writers;\n", o.MinStoreWrites)
	fmt.Fprintln(w, "api binds/s: the same number of Bindings written straight through the API by the same writers, no scheduler (another scheduler's pods, to a node that is not there)")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	defer tw.Flush()
	fmt.Fprintln(tw, "nodes\tpods\tseconds\tbound/s\tstore writes/s\tbound/store\tapi binds/s\tbound/api binds\t")
	var out []Result
	for _, n := range o.Nodes {
		for _, p := range o.Pods {
			r, err := scenario(ctx, o, n, p)
			if err != nil {
				return out, fmt.Errorf("%d nodes, %d pods: %w", n, p, err)
			}
			fmt.Fprintf(tw, "%d\t%d\t%.2f\t%.0f\t%.0f\t%.2f\t%.0f\t%.2f\t\n", n, p, r.Elapsed.Seconds(), r.PerSecond,
				r.StoreWrites, r.PerSecond/r.StoreWrites, r.APIBinds, r.PerSecond/r.APIBinds)
			out = append(out, r)
		}
	}
	return out, nil
}

func scenario(ctx context.Context, o Options, nodes, pods int) (Result, error) {
	res := Result{Nodes: nodes, Pods: pods}
	env, err := benchenv.Start(ctx, o.Dir, "skiff-schedbench-", "", o.Logger)
	if err != nil {
		return res, err
	}
	defer env.Close()
	st := env.Store
	// The engine's own path: client-go over the in-process transport.
	cs, err := kubernetes.NewForConfig(env.InProcess())
	if err != nil {
		return res, err
	}

	// The store's raw rate first, on values the size of a pod.
	value, _ := json.Marshal(pendingPod(0))
	raw := max(pods, o.MinStoreWrites)
	start := time.Now()
	if err := benchenv.Parallel(ctx, raw, o.Writers, func(i int) error {
		_, err := st.Create(ctx, fmt.Sprintf("/bench/raw/%d", i), value)
		return err
	}); err != nil {
		return res, fmt.Errorf("raw store writes: %w", err)
	}
	res.StoreWrites = float64(raw) / time.Since(start).Seconds()

	// The API's own rate for the scheduler's write: Bindings of pods this
	// scheduler leaves alone, to a node name no Node has (a binding does
	// not check it), so they take no room from the scheduler's nodes.
	if err := benchenv.Parallel(ctx, pods, o.Writers, func(i int) error {
		p := pendingPod(i)
		p.Name, p.Spec.SchedulerName = fmt.Sprintf("direct-%d", i), "bench-direct"
		_, err := cs.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{})
		return err
	}); err != nil {
		return res, fmt.Errorf("create pods to bind directly: %w", err)
	}
	start = time.Now()
	if err := benchenv.Parallel(ctx, pods, o.Writers, func(i int) error {
		return cs.CoreV1().Pods("default").Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("direct-%d", i)},
			Target: corev1.ObjectReference{Kind: "Node", Name: "bench-absent-node"}}, metav1.CreateOptions{})
	}); err != nil {
		return res, fmt.Errorf("direct bindings: %w", err)
	}
	res.APIBinds = float64(pods) / time.Since(start).Seconds()

	if err := benchenv.Parallel(ctx, nodes, o.Writers, func(i int) error {
		_, err := cs.CoreV1().Nodes().Create(ctx, fakeNode(i), metav1.CreateOptions{})
		return err
	}); err != nil {
		return res, fmt.Errorf("create nodes: %w", err)
	}
	if err := benchenv.Parallel(ctx, pods, o.Writers, func(i int) error {
		_, err := cs.CoreV1().Pods("default").Create(ctx, pendingPod(i), metav1.CreateOptions{})
		return err
	}); err != nil {
		return res, fmt.Errorf("create pods: %w", err)
	}

	// The engine's event path: the Scheduled events are writes too. The
	// broadcaster stops after the scheduler (deferred first, runs last).
	events := record.NewBroadcaster()
	defer events.Shutdown()
	events.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: cs.CoreV1().Events("")})
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	factory := informers.NewSharedInformerFactory(cs, 0)
	podInf := factory.Core().V1().Pods()
	var bound atomic.Int64
	all := make(chan struct{})
	if _, err := podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(old, cur any) {
			if old.(*corev1.Pod).Spec.NodeName == "" && cur.(*corev1.Pod).Spec.NodeName != "" && bound.Add(1) == int64(pods) {
				close(all)
			}
		},
	}); err != nil {
		return res, err
	}
	s, err := scheduler.New(scheduler.Config{Client: cs, Pods: podInf, Nodes: factory.Core().V1().Nodes(),
		Recorder: events.NewRecorder(scheme.Scheme, corev1.EventSource{Component: scheduler.Name}), Logger: o.Logger})
	if err != nil {
		return res, err
	}
	factory.Start(sctx.Done())
	for typ, ok := range factory.WaitForCacheSync(sctx.Done()) {
		if !ok {
			return res, fmt.Errorf("informer %v did not sync", typ)
		}
	}
	start = time.Now()
	wg.Add(1)
	go func() { defer wg.Done(); s.Run(sctx) }()
	select {
	case <-all:
	case <-time.After(o.Timeout):
		return res, fmt.Errorf("%d of %d pods bound after %v", bound.Load(), pods, o.Timeout)
	case <-ctx.Done():
		return res, ctx.Err()
	}
	res.Elapsed = time.Since(start)
	res.PerSecond = float64(pods) / res.Elapsed.Seconds()
	return res, nil
}

func fakeNode(i int) *corev1.Node {
	name := fmt.Sprintf("node-%d", i)
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelHostname: name}},
		Status: corev1.NodeStatus{
			Capacity: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("64"), corev1.ResourceMemory: resource.MustParse("256Gi"),
				corev1.ResourcePods: resource.MustParse("110")},
			Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("64"), corev1.ResourceMemory: resource.MustParse("256Gi"),
				corev1.ResourcePods: resource.MustParse("110")},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}
}

func pendingPod(i int) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("pod-%d", i), Namespace: "default",
		Labels: map[string]string{"app": "bench"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.invalid/app:1",
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")}}}}}}
}
