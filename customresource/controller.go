package customresource

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// Reconciler brings the world in line with one object. obj is the object
// as the informer last saw it, or nil when it no longer exists (clean up
// what it owned, if owner references do not already). A returned error
// retries the key with back-off; nil forgets its failures.
type Reconciler[T any] func(ctx context.Context, key types.NamespacedName, obj *T) error

// Controller runs Kubernetes' controller loop for one kind: an informer
// keeps a cache of the objects and queues the key of every change; workers
// take keys from a rate-limited work queue, so one key is never reconciled
// twice at once, bursts of changes to one object collapse into one call,
// and failures back off per key.
type Controller[T any] struct {
	Kind      *Kind[T]
	Config    *rest.Config
	Reconcile Reconciler[T]
	// Namespace limits the controller to one namespace; "" watches all.
	Namespace string
	// Workers is how many keys are reconciled in parallel. Default 1.
	Workers int
	// Resync, when set, queues every object again at this period, which
	// repairs drift made outside the API.
	Resync time.Duration
	// Logger receives reconcile failures. Default slog.Default().
	Logger *slog.Logger
}

// Run runs the controller until ctx ends. It returns an error only when
// it cannot start (no client, or the cache never synced).
func (c *Controller[T]) Run(ctx context.Context) error {
	if c.Kind == nil || c.Config == nil || c.Reconcile == nil {
		return errors.New("customresource: controller needs Kind, Config and Reconcile")
	}
	log := c.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("controller", c.Kind.GVR.Resource)
	dc, err := dynamic.NewForConfig(c.Config)
	if err != nil {
		return fmt.Errorf("customresource: dynamic client: %w", err)
	}
	factory := dynamicinformer.NewFilteredDynamicSharedInformerFactory(dc, c.Resync, c.Namespace, nil)
	informer := factory.ForResource(c.Kind.GVR).Informer()
	queue := workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[types.NamespacedName](),
		workqueue.TypedRateLimitingQueueConfig[types.NamespacedName]{Name: c.Kind.GVR.Resource})
	defer queue.ShutDown()
	enqueue := func(obj any) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		if u, ok := obj.(*unstructured.Unstructured); ok {
			queue.Add(types.NamespacedName{Namespace: u.GetNamespace(), Name: u.GetName()})
		}
	}
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue, UpdateFunc: func(_, obj any) { enqueue(obj) }, DeleteFunc: enqueue,
	}); err != nil {
		return fmt.Errorf("customresource: event handler: %w", err)
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
		return fmt.Errorf("customresource: %s cache did not sync: %w", c.Kind.GVR.Resource, ctx.Err())
	}
	workers := max(c.Workers, 1)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c.next(ctx, log, informer.GetIndexer(), queue) {
			}
		}()
	}
	<-ctx.Done()
	queue.ShutDown()
	wg.Wait()
	return nil
}

// next reconciles one key; false once the queue is shut down.
func (c *Controller[T]) next(ctx context.Context, log *slog.Logger, store cache.Indexer,
	queue workqueue.TypedRateLimitingInterface[types.NamespacedName]) bool {
	key, shutdown := queue.Get()
	if shutdown {
		return false
	}
	defer queue.Done(key)
	var obj *T
	cacheKey := key.Name
	if key.Namespace != "" {
		cacheKey = key.Namespace + "/" + key.Name
	}
	item, exists, err := store.GetByKey(cacheKey)
	if err == nil && exists {
		if u, ok := item.(*unstructured.Unstructured); ok {
			obj, err = c.Kind.FromUnstructured(u)
		}
	}
	if err == nil {
		err = c.Reconcile(ctx, key, obj)
	}
	switch {
	case err == nil:
		queue.Forget(key)
	case ctx.Err() != nil:
	default:
		// A conflict is the normal outcome of racing another writer: the
		// informer's next event brings the newer object, and the retry
		// starts from it.
		if !apierrors.IsConflict(err) {
			log.Warn("reconcile failed", "key", key.String(), "err", err)
		}
		queue.AddRateLimited(key)
	}
	return true
}
