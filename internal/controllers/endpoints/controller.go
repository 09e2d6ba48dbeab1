// Package endpoints keeps the endpoints of every Service with a selector:
// the EndpointSlices (discovery.k8s.io/v1) that service proxies and DNS read,
// and the legacy core/v1 Endpoints object that `kubectl get endpoints` and
// `kubectl describe service` show. It has the shape of Kubernetes' own
// endpointslice and endpoints controllers: informers on Services, Pods,
// Nodes, EndpointSlices and Endpoints; event handlers that enqueue Service
// keys; workers that compute the desired objects from the listers and write
// the difference.
//
// Services without a selector are left alone (their slices and Endpoints
// belong to whoever made them), as are ExternalName Services.
package endpoints

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiffhq/skiff/internal/controllers/controller"
)

// ManagedBy is the value of the endpointslice.kubernetes.io/managed-by label
// on the EndpointSlices this controller owns. Kubernetes' controller uses
// "endpointslice-controller.k8s.io"; another value keeps the two apart if a
// cluster ever runs both, and tells a reader who wrote the slice.
const ManagedBy = "endpointslice-controller.skiff.dev"

// Config of a controller. Zero values take the documented defaults.
type Config struct {
	// Client reaches the API. Required.
	Client kubernetes.Interface
	// Workers is how many Services are synced at once. Default 2: the
	// machines skiff targets are small, and a sync is a few API calls.
	Workers int
	// MaxEndpointsPerSlice bounds each EndpointSlice. Default 100,
	// Kubernetes' --max-endpoints-per-slice default.
	MaxEndpointsPerSlice int
	// Recorder receives Warning events on a Service whose endpoints could
	// not be written, where `kubectl describe service` shows them. Default:
	// none (the failures are still logged).
	Recorder record.EventRecorder
	// Logger. Default slog.Default().
	Logger *slog.Logger
}

// Name is the component name of the controller's events.
const Name = "endpointslice-controller"

// Controller is a running endpoints controller.
type Controller struct {
	cfg    Config
	log    *slog.Logger
	client kubernetes.Interface

	services  corelisters.ServiceLister
	pods      corelisters.PodLister
	nodes     corelisters.NodeLister
	slices    discoverylisters.EndpointSliceLister
	endpoints corelisters.EndpointsLister

	queue   workqueue.TypedRateLimitingInterface[string]
	written *tracker

	cancel    context.CancelFunc
	factories []informers.SharedInformerFactory
	wg        sync.WaitGroup
}

// maxRetries bounds how often one Service's sync is retried after errors
// before the controller waits for the next change to it (about a minute of
// backoff in all).
const maxRetries = 15

// Start builds the informers, waits (bounded by ctx) for them to sync, and
// starts the workers.
func Start(ctx context.Context, cfg Config) (*Controller, error) {
	if cfg.Client == nil {
		return nil, errors.New("endpoints: Client is required")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 2
	}
	if cfg.MaxEndpointsPerSlice <= 0 {
		cfg.MaxEndpointsPerSlice = 100
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Controller{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "endpoints"),
		client:  cfg.Client,
		written: newTracker(),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](10*time.Millisecond, 10*time.Second),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "endpoints"}),
	}
	factory := informers.NewSharedInformerFactory(cfg.Client, 0)
	// Only the slices this controller manages: the others are not its
	// business, and a large cluster's proxy-made or mirrored slices would
	// only cost memory here.
	sliceFactory := informers.NewSharedInformerFactoryWithOptions(cfg.Client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.LabelSelector = discoveryv1.LabelManagedBy + "=" + ManagedBy
		}))
	c.factories = []informers.SharedInformerFactory{factory, sliceFactory}

	svcInf := factory.Core().V1().Services()
	podInf := factory.Core().V1().Pods()
	nodeInf := factory.Core().V1().Nodes()
	epInf := factory.Core().V1().Endpoints()
	sliceInf := sliceFactory.Discovery().V1().EndpointSlices()
	c.services, c.pods, c.nodes = svcInf.Lister(), podInf.Lister(), nodeInf.Lister()
	c.endpoints, c.slices = epInf.Lister(), sliceInf.Lister()

	handlers := []struct {
		inf cache.SharedIndexInformer
		h   cache.ResourceEventHandler
	}{
		{svcInf.Informer(), cache.ResourceEventHandlerFuncs{
			AddFunc:    c.enqueueObject,
			UpdateFunc: func(_, o any) { c.enqueueObject(o) },
			DeleteFunc: c.enqueueObject,
		}},
		{podInf.Informer(), cache.ResourceEventHandlerFuncs{
			AddFunc:    func(o any) { c.podChanged(nil, o) },
			UpdateFunc: c.podChanged,
			DeleteFunc: func(o any) { c.podChanged(nil, o) },
		}},
		{sliceInf.Informer(), cache.ResourceEventHandlerFuncs{
			AddFunc:    func(o any) { c.sliceChanged(o, false) },
			UpdateFunc: func(_, o any) { c.sliceChanged(o, false) },
			DeleteFunc: func(o any) { c.sliceChanged(o, true) },
		}},
		{epInf.Informer(), cache.ResourceEventHandlerFuncs{
			UpdateFunc: func(_, o any) { c.endpointsChanged(o, false) },
			DeleteFunc: func(o any) { c.endpointsChanged(o, true) },
		}},
	}
	for _, h := range handlers {
		if _, err := h.inf.AddEventHandler(h.h); err != nil {
			return nil, fmt.Errorf("endpoints: %w", err)
		}
	}
	_ = nodeInf.Informer() // registered before Start: zones come from node labels

	runCtx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	for _, f := range c.factories {
		f.Start(runCtx.Done())
	}
	synced := []cache.InformerSynced{svcInf.Informer().HasSynced, podInf.Informer().HasSynced,
		nodeInf.Informer().HasSynced, epInf.Informer().HasSynced, sliceInf.Informer().HasSynced}
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		c.Stop()
		return nil, fmt.Errorf("endpoints: informers did not sync: %w", ctx.Err())
	}
	c.enqueueLeftovers()
	for range cfg.Workers {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			for c.processNext(runCtx) {
			}
		}()
	}
	return c, nil
}

// Stop ends the workers and the informers. Writes in flight finish or fail
// with the canceled context.
func (c *Controller) Stop() {
	c.cancel()
	c.queue.ShutDown()
	c.wg.Wait()
	for _, f := range c.factories {
		f.Shutdown()
	}
}

// enqueueLeftovers queues the Services of every managed slice and every
// Endpoints object, so that those whose Service went away while no
// controller ran are cleaned up (the Service informer alone never hears of
// them).
func (c *Controller) enqueueLeftovers() {
	if slices, err := c.slices.List(labels.Everything()); err == nil {
		for _, s := range slices {
			if name := s.Labels[discoveryv1.LabelServiceName]; name != "" {
				c.queue.Add(s.Namespace + "/" + name)
			}
		}
	}
	if eps, err := c.endpoints.List(labels.Everything()); err == nil {
		for _, ep := range eps {
			c.queue.Add(ep.Namespace + "/" + ep.Name)
		}
	}
}

func (c *Controller) processNext(ctx context.Context) bool {
	key, shutdown := c.queue.Get()
	if shutdown {
		return false
	}
	defer c.queue.Done(key)
	err := c.syncService(ctx, key)
	switch {
	case err == nil:
		c.queue.Forget(key)
	case ctx.Err() != nil:
		// Stopping: the next controller resyncs everything.
	case c.queue.NumRequeues(key) < maxRetries:
		c.log.Debug("sync failed, retrying", "service", key, "err", err)
		c.queue.AddRateLimited(key)
	default:
		c.log.Warn("sync failed; giving up until the service or its pods change", "service", key, "err", err)
		c.queue.Forget(key)
	}
	return true
}

// enqueueObject queues a Service (or the Service of the same name).
func (c *Controller) enqueueObject(o any) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(o)
	if err == nil {
		c.queue.Add(key)
	}
}

// podChanged queues the Services that select the pod, before and after the
// change. An update that changes nothing an endpoint shows (most status
// writes: container states, restart counts) queues nothing.
func (c *Controller) podChanged(old, cur any) {
	pod := asPod(cur)
	if pod == nil {
		return
	}
	var oldPod *corev1.Pod
	if old != nil {
		if oldPod = asPod(old); oldPod != nil && !endpointRelevantChange(oldPod, pod) {
			return
		}
	}
	services, err := c.services.Services(pod.Namespace).List(labels.Everything())
	if err != nil {
		return
	}
	for _, svc := range services {
		sel := selectorOf(svc)
		if sel == nil {
			continue
		}
		if sel.Matches(labels.Set(pod.Labels)) || oldPod != nil && sel.Matches(labels.Set(oldPod.Labels)) {
			c.queue.Add(svc.Namespace + "/" + svc.Name)
		}
	}
}

// sliceChanged queues the slice's Service unless the event is the echo of
// this controller's own write. deleted says the event is a delete: the
// object a delete event carries is the slice's last state, which would
// otherwise look like the echo of the controller's last write to it.
func (c *Controller) sliceChanged(o any, deleted bool) {
	s, ok := controller.ObjectOf[*discoveryv1.EndpointSlice](o)
	if !ok {
		return
	}
	if s.DeletionTimestamp != nil {
		deleted = true
	}
	name := s.Labels[discoveryv1.LabelServiceName]
	if name == "" {
		return
	}
	if c.written.isEcho(sliceKey(s.Namespace, name, s.Name), s.ResourceVersion, deleted) {
		return
	}
	c.queue.Add(s.Namespace + "/" + name)
}

// endpointsChanged queues the Service of an Endpoints object someone else
// changed or deleted (deleted: a delete event), so a managed one is put
// back.
func (c *Controller) endpointsChanged(o any, deleted bool) {
	ep, ok := controller.ObjectOf[*corev1.Endpoints](o)
	if !ok {
		return
	}
	if c.written.isEcho(endpointsKey(ep.Namespace, ep.Name), ep.ResourceVersion, deleted) {
		return
	}
	c.queue.Add(ep.Namespace + "/" + ep.Name)
}

func asPod(o any) *corev1.Pod {
	p, _ := controller.ObjectOf[*corev1.Pod](o)
	return p
}

// selectorOf is the Service's pod selector, or nil when the controller must
// leave the Service alone: no selector (an empty one selects nothing, since
// JSON cannot tell it from none), or ExternalName.
func selectorOf(svc *corev1.Service) labels.Selector {
	if len(svc.Spec.Selector) == 0 || svc.Spec.Type == corev1.ServiceTypeExternalName {
		return nil
	}
	return labels.SelectorFromSet(svc.Spec.Selector)
}
