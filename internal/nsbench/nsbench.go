// Package nsbench measures how long deleting a namespace takes: a
// namespace holding N objects (ConfigMaps, Secrets, headless Services and
// Deployments of 0 replicas) is deleted through the API and timed until it
// is gone, with the namespace controller doing the work as in the engine;
// beside it, the same count of raw deletes on the store, in the same run,
// so the ratio shows what the API and the controller add. Two sizes show
// whether the cost per object stays flat (linear growth).
package nsbench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"text/tabwriter"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"

	"github.com/skiffhq/skiff/internal/benchenv"
	"github.com/skiffhq/skiff/internal/controllers/namespace"
	"github.com/skiffhq/skiff/raft"
)

// Options of a run. Zero values take the defaults.
type Options struct {
	Sizes []int // objects per namespace; default 1000, 10000
	// Concurrency of the creating clients and of the store's raw deletes;
	// default 16, as many as the API server's DeleteCollection runs.
	Concurrency int
	// Timeout bounds each namespace's deletion; default 10 minutes.
	Timeout time.Duration
	Dir     string // where the store lives; default a temporary directory
	Logger  *slog.Logger
}

// Result is one size's row.
type Result struct {
	Objects int
	// Namespace is from DELETE until the namespace is gone; Store is the
	// same count of deletes straight on the store.
	Namespace, Store time.Duration
}

// PerObject is the namespace deletion's cost per object.
func (r Result) PerObject() time.Duration { return r.Namespace / time.Duration(max(r.Objects, 1)) }

// Ratio is the namespace deletion's time over the raw store deletes'.
func (r Result) Ratio() float64 { return float64(r.Namespace) / float64(max(r.Store, 1)) }

// Run measures each size in turn and prints a table.
func Run(ctx context.Context, o Options, w io.Writer) ([]Result, error) {
	if len(o.Sizes) == 0 {
		o.Sizes = []int{1000, 10000}
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 16
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	env, err := benchenv.Start(ctx, o.Dir, "skiff-nsbench-", "", o.Logger)
	if err != nil {
		return nil, err
	}
	defer env.Close()
	st := env.Store
	// In-process, as the engine's controllers and embedders reach it.
	cfg := env.InProcess()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	stop, err := startController(ctx, cs, dyn, o.Logger)
	if err != nil {
		return nil, err
	}
	defer stop()

	fmt.Fprintf(w, "skiff namespace deletion benchmark\ngo %s %s/%s  GOMAXPROCS=%d %s\n", runtime.Version(), runtime.GOOS,
		runtime.GOARCH, runtime.GOMAXPROCS(0), benchenv.Versions("k8s.io/client-go", "github.com/hashicorp/raft", "github.com/hashicorp/raft-wal"))
	fmt.Fprintf(w, "objects: 40%% ConfigMaps, 30%% Secrets, 15%% headless Services, 15%% Deployments of 0 replicas; "+
		"namespace: DELETE until gone (namespace controller, in-process API); store: raw deletes of as many keys, %d at a time\n",
		o.Concurrency)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "objects\tnamespace\tper object\tstore deletes\tper object\tstore deletes/s\tnamespace/store\t")
	var results []Result
	for _, n := range o.Sizes {
		r, err := measure(ctx, cs, st, n, o)
		if err != nil {
			tw.Flush()
			return results, fmt.Errorf("%d objects: %w", n, err)
		}
		results = append(results, r)
		fmt.Fprintf(tw, "%d\t%v\t%v\t%v\t%v\t%.0f\t%.1fx\t\n", n, r.Namespace.Round(time.Millisecond), r.PerObject().Round(time.Microsecond),
			r.Store.Round(time.Millisecond), (r.Store / time.Duration(n)).Round(time.Microsecond),
			float64(n)/r.Store.Seconds(), r.Ratio())
	}
	tw.Flush()
	if len(results) >= 2 {
		first, last := results[0], results[len(results)-1]
		fmt.Fprintf(w, "per-object cost at %d / at %d objects: %.2f (1.00 = linear growth)\n", last.Objects, first.Objects,
			float64(last.PerObject())/float64(max(first.PerObject(), 1)))
	}
	return results, nil
}

// startController runs the namespace controller over its own informers.
func startController(ctx context.Context, cs kubernetes.Interface, dyn dynamic.Interface, log *slog.Logger) (func(), error) {
	factory := informers.NewSharedInformerFactory(cs, 0)
	c, err := namespace.New(namespace.Config{Client: cs, Dynamic: dyn, Namespaces: factory.Core().V1().Namespaces(),
		Pods: factory.Core().V1().Pods(), Logger: log})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	factory.Start(ctx.Done())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx, 2)
	}()
	return func() {
		cancel()
		<-done
		factory.Shutdown()
	}, nil
}

// measure fills a namespace with n objects, deletes it and times it, then
// times n raw deletes on the store.
func measure(ctx context.Context, cs kubernetes.Interface, st *raft.Store, n int, o Options) (Result, error) {
	name := fmt.Sprintf("bench-%d", n)
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		return Result{}, fmt.Errorf("create namespace: %w", err)
	}
	if err := benchenv.Parallel(ctx, n, o.Concurrency, func(i int) error { return createObject(ctx, cs, name, i) }); err != nil {
		return Result{}, fmt.Errorf("fill namespace: %w", err)
	}
	ns, err := cs.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return Result{}, err
	}
	wctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	// Watch from the namespace's current version, so that its removal
	// cannot slip between the DELETE and the watch.
	wi, err := cs.CoreV1().Namespaces().Watch(wctx, metav1.ListOptions{ResourceVersion: ns.ResourceVersion,
		FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String()})
	if err != nil {
		return Result{}, fmt.Errorf("watch namespace: %w", err)
	}
	defer wi.Stop()
	start := time.Now()
	if err := cs.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		return Result{}, fmt.Errorf("delete namespace: %w", err)
	}
	if err := waitDeleted(wctx, wi); err != nil {
		return Result{}, err
	}
	r := Result{Objects: n, Namespace: time.Since(start)}
	if _, err := cs.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		return r, fmt.Errorf("namespace still there after its deletion event (%v)", err)
	}

	// The baseline: as many keys of the same size on the store, deleted.
	value, err := json.Marshal(configMap(name, 0))
	if err != nil {
		return r, err
	}
	key := func(i int) string { return fmt.Sprintf("/nsbench/%s/%d", name, i) }
	if err := benchenv.Parallel(ctx, n, o.Concurrency, func(i int) error {
		_, err := st.Create(ctx, key(i), value)
		return err
	}); err != nil {
		return r, fmt.Errorf("store creates: %w", err)
	}
	start = time.Now()
	if err := benchenv.Parallel(ctx, n, o.Concurrency, func(i int) error {
		_, err := st.Delete(ctx, key(i), 0)
		return err
	}); err != nil {
		return r, fmt.Errorf("store deletes: %w", err)
	}
	r.Store = time.Since(start)
	return r, nil
}

func waitDeleted(ctx context.Context, wi watch.Interface) error {
	for {
		select {
		case ev, ok := <-wi.ResultChan():
			if !ok {
				return errors.New("namespace watch closed before the namespace went")
			}
			if ev.Type == watch.Deleted {
				return nil
			}
		case <-ctx.Done():
			return fmt.Errorf("namespace not gone: %w", ctx.Err())
		}
	}
}

// createObject creates object i of the mix: 40% ConfigMaps, 30% Secrets,
// 15% headless Services (no ClusterIP to allocate and release), 15%
// Deployments of 0 replicas (no pods).
func createObject(ctx context.Context, cs kubernetes.Interface, ns string, i int) error {
	var err error
	switch k := i % 20; {
	case k < 8:
		_, err = cs.CoreV1().ConfigMaps(ns).Create(ctx, configMap(ns, i), metav1.CreateOptions{})
	case k < 14:
		_, err = cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("s-%d", i)},
			StringData: map[string]string{"token": "0123456789abcdef0123456789abcdef"}}, metav1.CreateOptions{})
	case k < 17:
		_, err = cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("svc-%d", i)},
			Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Selector: map[string]string{"app": "x"},
				Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{})
	default:
		zero := int32(0)
		labels := map[string]string{"app": fmt.Sprintf("d-%d", i)}
		_, err = cs.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("d-%d", i)},
			Spec: appsv1.DeploymentSpec{Replicas: &zero, Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "example.com/app:1"}}}}}},
			metav1.CreateOptions{})
	}
	return err
}

func configMap(ns string, i int) *corev1.ConfigMap {
	return &corev1.ConfigMap{TypeMeta: metav1.TypeMeta{Kind: "ConfigMap", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%d", i), Namespace: ns},
		Data:       map[string]string{"config": "key=value\nother=thing\n"}}
}
