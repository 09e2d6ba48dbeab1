package apiserver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/skiffhq/skiff/internal/testutil"
	"github.com/skiffhq/skiff/raft"
)

// newTestServer is an API server on a one-server store with a small watch
// history (so compaction is easy to reach), reached through client-go over
// the in-process transport.
func newTestServer(t testing.TB, history int) (*Server, *rest.Config) {
	t.Helper()
	dir := t.TempDir()
	st, err := raft.Open(context.Background(), raft.Config{ID: "t", Dir: dir + "/raft", Bootstrap: true,
		HeartbeatTimeout: 150 * time.Millisecond, HistorySize: history, Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := st.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Listen: "127.0.0.1:0", PKIDir: dir + "/pki", Token: "test-token", Store: st, Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ensureDefaults(ctx); err != nil {
		t.Fatal(err)
	}
	cfg := &rest.Config{Host: "http://in-process", Transport: s.InProcessTransport(), QPS: -1,
		// Force protobuf request bodies: the server must decode them.
		ContentConfig: rest.ContentConfig{ContentType: "application/vnd.kubernetes.protobuf"}}
	return s, cfg
}

func TestInformerSeesAddModifyDelete(t *testing.T) {
	_, cfg := newTestServer(t, 1000)
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var mu sync.Mutex
	var seen []string
	record := func(kind string, obj any) {
		if p, ok := obj.(*corev1.Pod); ok {
			mu.Lock()
			seen = append(seen, kind+" "+p.Name)
			mu.Unlock()
		}
	}
	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace("default"))
	inf := factory.Core().V1().Pods().Informer()
	inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { record("ADDED", o) },
		UpdateFunc: func(_, o any) { record("MODIFIED", o) },
		DeleteFunc: func(o any) { record("DELETED", o) },
	})
	stop := make(chan struct{})
	defer close(stop)
	factory.Start(stop)
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		t.Fatal("informer did not sync")
	}

	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p1"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "example.com/app:1"}}}}
	created, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}) // protobuf body
	if err != nil {
		t.Fatal(err)
	}
	created.Labels = map[string]string{"changed": "yes"}
	if _, err := cs.CoreV1().Pods("default").Update(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cs.CoreV1().Pods("default").Delete(ctx, "p1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if fmt.Sprint(seen) != "[ADDED p1 MODIFIED p1 DELETED p1]" {
			return fmt.Errorf("events so far: %v", seen)
		}
		return nil
	})
	// A stale update through the typed client is a 409.
	if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	stale := created.DeepCopy()
	stale.ResourceVersion = created.ResourceVersion // from the pod's first life
	if _, err := cs.CoreV1().Pods("default").Update(ctx, stale, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Fatalf("stale update: %v", err)
	}
}

func TestWatchFromCompactedVersionIsGoneAndInformerRelists(t *testing.T) {
	_, cfg := newTestServer(t, 10)
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cms := cs.CoreV1().ConfigMaps("default")
	first, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "first"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 30 { // push "first" out of the 10-event history
		if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%d", i)}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	// A raw watch from the compacted version gets an ERROR event: 410 Expired.
	w, err := cms.Watch(ctx, metav1.ListOptions{ResourceVersion: first.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	ev := <-w.ResultChan()
	w.Stop()
	st, ok := ev.Object.(*metav1.Status)
	if ev.Type != watch.Error || !ok || st.Code != 410 || st.Reason != metav1.StatusReasonExpired {
		t.Fatalf("watch from a compacted version: %v %+v", ev.Type, ev.Object)
	}

	// An informer whose first watch starts at that old version relists and
	// still ends up with every object.
	var lists atomic.Int32
	var once sync.Once
	lw := &cache.ListWatch{
		ListFunc: func(o metav1.ListOptions) (runtime.Object, error) {
			lists.Add(1)
			return cms.List(ctx, o)
		},
		WatchFunc: func(o metav1.ListOptions) (watch.Interface, error) {
			once.Do(func() { o.ResourceVersion = first.ResourceVersion })
			return cms.Watch(ctx, o)
		},
	}
	store, ctrl := cache.NewInformer(lw, &corev1.ConfigMap{}, 0, cache.ResourceEventHandlerFuncs{})
	stop := make(chan struct{})
	defer close(stop)
	go ctrl.Run(stop)
	testutil.Eventually(t, 15*time.Second, func() error {
		if n := lists.Load(); n < 2 {
			return fmt.Errorf("listed %d times, want a relist after 410", n)
		}
		return nil
	})
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "after-relist"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		if _, ok, _ := store.GetByKey("default/after-relist"); !ok || len(store.ListKeys()) != 32 {
			return fmt.Errorf("informer holds %d objects", len(store.ListKeys()))
		}
		return nil
	})
}

func TestInProcessErrorsAreStatuses(t *testing.T) {
	_, cfg := newTestServer(t, 100)
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	_, err := cs.CoreV1().ConfigMaps("default").Get(ctx, "missing", metav1.GetOptions{})
	var se *apierrors.StatusError
	if !errors.As(err, &se) || se.ErrStatus.Code != 404 || se.ErrStatus.Details.Name != "missing" {
		t.Fatalf("get missing: %#v", err)
	}
	_, err = cs.CoreV1().ConfigMaps("nowhere").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{})
	if !apierrors.IsNotFound(err) {
		t.Fatalf("create in a missing namespace: %v", err)
	}
}

// A paged list returns every object of one revision, whatever is written
// between the pages.
func TestListPagesAtOneResourceVersion(t *testing.T) {
	_, cfg := newTestServer(t, 1000)
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	cms := cs.CoreV1().ConfigMaps("default")
	for i := range 7 {
		if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p%d", i)}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	opts := metav1.ListOptions{Limit: 2}
	var rv string
	for page := 0; page < 10; page++ {
		l, err := cms.List(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		if rv == "" {
			rv = l.ResourceVersion
			// Written after the first page: not part of this list.
			if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "p-late"}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		} else if l.ResourceVersion != rv {
			t.Fatalf("page %d at resourceVersion %s, first page at %s", page, l.ResourceVersion, rv)
		}
		if len(l.Items) > 2 {
			t.Fatalf("page of %d items with limit 2", len(l.Items))
		}
		for _, cm := range l.Items {
			names = append(names, cm.Name)
		}
		if l.Continue == "" {
			break
		}
		opts.Continue = l.Continue
	}
	if fmt.Sprint(names) != "[p0 p1 p2 p3 p4 p5 p6]" {
		t.Fatalf("paged list: %v", names)
	}
	if _, err := cms.List(ctx, metav1.ListOptions{Limit: 2, Continue: "not-a-token"}); !apierrors.IsBadRequest(err) {
		t.Fatalf("bad continue token: %v", err)
	}
}
