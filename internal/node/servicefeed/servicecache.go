package servicefeed

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// ServiceCache is a shared informer's view of the cluster's Services over
// the feed, for a node agent's Service environment variables
// (agent.ServiceSource). It lives here rather than in the agent because
// client-go's informer machinery links its REST client, which the
// architecture rules keep out of the agent.
type ServiceCache struct {
	inf    cache.SharedIndexInformer
	lister corelisters.ServiceLister
	cancel context.CancelFunc
	done   chan struct{}
}

// StartServiceCache runs an informer of Services over s until Stop. It
// does not wait for the first list: HasSynced tells.
func (s *Subscriber) StartServiceCache() (*ServiceCache, error) {
	lw, err := s.ListerWatcher(Services)
	if err != nil {
		return nil, err
	}
	inf := cache.NewSharedIndexInformer(lw, &corev1.Service{}, 0,
		cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	ctx, cancel := context.WithCancel(context.Background())
	c := &ServiceCache{inf: inf, lister: corelisters.NewServiceLister(inf.GetIndexer()), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		inf.Run(ctx.Done())
	}()
	return c, nil
}

// HasSynced reports whether the first full list has arrived.
func (c *ServiceCache) HasSynced() bool { return c.inf.HasSynced() }

// List returns the Services of namespace ns, shared with the cache: the
// caller must not modify them.
func (c *ServiceCache) List(ns string) ([]*corev1.Service, error) {
	svcs, err := c.lister.Services(ns).List(labels.Everything())
	if err != nil {
		return nil, fmt.Errorf("servicefeed: list Services of %s: %w", ns, err)
	}
	return svcs, nil
}

// Stop ends the informer and waits for it. Stop the cache before its
// Subscriber.
func (c *ServiceCache) Stop() {
	c.cancel()
	<-c.done
}
