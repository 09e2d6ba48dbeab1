// Package controller holds what skiff's workload controllers share, in the
// shape of Kubernetes' pkg/controller: a worker loop over a rate-limited
// workqueue, creation and deletion expectations, pod readiness and
// availability, the order in which surplus pods are deleted, and the
// adoption and release of objects through controller ownerReferences.
package controller

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// MaxRetries is how many times a key is retried with back-off before it is
// dropped until its next event (or resync), as upstream controllers do: a
// permanently failing object must not occupy a worker forever.
const MaxRetries = 15

// NewQueue returns the rate-limited queue of object keys a controller
// works from: per-item exponential back-off (5ms to 1000s) bounded by an
// overall token bucket, client-go's default controller limiter.
func NewQueue(name string) workqueue.TypedRateLimitingInterface[string] {
	return workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: name})
}

// Loop runs workers that take keys from Queue and call Sync on each, the
// sample-controller shape every skiff controller has.
type Loop struct {
	Name  string
	Queue workqueue.TypedRateLimitingInterface[string]
	// Sync reconciles one key. An error retries the key with back-off, up
	// to MaxRetries times.
	Sync func(ctx context.Context, key string) error
	// Synced are the informers that must have listed before the first Sync:
	// a controller acting on a half-filled cache would create duplicates.
	Synced []cache.InformerSynced
	Log    *slog.Logger
}

// Run blocks until ctx ends, then shuts the queue down and returns once
// every worker has finished its current key.
func (l *Loop) Run(ctx context.Context, workers int) {
	defer l.Queue.ShutDown()
	if !cache.WaitForCacheSync(ctx.Done(), l.Synced...) {
		return
	}
	l.Log.Debug("controller started", "controller", l.Name, "workers", workers)
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for l.next(ctx) {
			}
		}()
	}
	<-ctx.Done()
	l.Queue.ShutDown()
	wg.Wait()
}

func (l *Loop) next(ctx context.Context) bool {
	key, quit := l.Queue.Get()
	if quit {
		return false
	}
	defer l.Queue.Done(key)
	start := time.Now()
	err := l.Sync(ctx, key)
	switch {
	case err == nil:
		l.Queue.Forget(key)
	case ctx.Err() != nil:
		// Stopping: the next leader starts from its own lists.
	case l.Queue.NumRequeues(key) < MaxRetries:
		l.Log.Debug("sync failed, retrying", "controller", l.Name, "key", key, "err", err)
		l.Queue.AddRateLimited(key)
	default:
		l.Log.Warn("sync failed, dropping key until its next change", "controller", l.Name, "key", key, "err", err)
		l.Queue.Forget(key)
	}
	if d := time.Since(start); d > time.Second {
		l.Log.Debug("slow sync", "controller", l.Name, "key", key, "took", d)
	}
	return true
}

// KeyOf is the namespace/name key of an informer object, or of the object
// a tombstone stands for; "" when obj is neither.
func KeyOf(obj any) string {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		return ""
	}
	return key
}
