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
	"time"

	"github.com/skiffhq/skiff/internal/informer"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	coreinformers "k8s.io/client-go/informers/core/v1"
	discoveryinformers "k8s.io/client-go/informers/discovery/v1"
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
	// The informers the controller reads, which the caller starts.
	// EndpointSlices should hold only the managed slices: ManagedSlices
	// makes that informer. Required.
	Services       coreinformers.ServiceInformer
	Pods           coreinformers.PodInformer
	Nodes          coreinformers.NodeInformer
	Endpoints      coreinformers.EndpointsInformer
	EndpointSlices discoveryinformers.EndpointSliceInformer
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

// Controller is an endpoints controller. Its event handlers run on the
// informers' goroutines and only enqueue Service keys; Run's workers do the
// rest.
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
	loop    *controller.Loop
}

// ManagedSlices registers on factory, and returns, an EndpointSlice
// informer that holds only the slices this controller manages: the others
// are not its business, and a large cluster's hand-made or mirrored slices
// would only cost memory here. It must be called before anything else asks
// factory for EndpointSlices, which then all get this informer.
func ManagedSlices(factory informers.SharedInformerFactory) discoveryinformers.EndpointSliceInformer {
	inf := factory.InformerFor(&discoveryv1.EndpointSlice{}, func(cs kubernetes.Interface, resync time.Duration) cache.SharedIndexInformer {
		return discoveryinformers.NewFilteredEndpointSliceInformer(cs, metav1.NamespaceAll, resync,
			cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}, func(o *metav1.ListOptions) {
				o.LabelSelector = discoveryv1.LabelManagedBy + "=" + ManagedBy
			})
	})
	return managedSlices{inf}
}

type managedSlices struct{ inf cache.SharedIndexInformer }

func (m managedSlices) Informer() cache.SharedIndexInformer { return m.inf }
func (m managedSlices) Lister() discoverylisters.EndpointSliceLister {
	return discoverylisters.NewEndpointSliceLister(m.inf.GetIndexer())
}

// New registers the controller's handlers on the informers, which the
// caller starts.
func New(cfg Config) (*Controller, error) {
	if cfg.Client == nil || cfg.Services == nil || cfg.Pods == nil || cfg.Nodes == nil || cfg.Endpoints == nil ||
		cfg.EndpointSlices == nil {
		return nil, errors.New("endpoints: Client, Services, Pods, Nodes, Endpoints and EndpointSlices are required")
	}
	if cfg.MaxEndpointsPerSlice <= 0 {
		cfg.MaxEndpointsPerSlice = 100
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Controller{
		cfg:     cfg,
		log:     cfg.Logger.With("controller", Name),
		client:  cfg.Client,
		written: newTracker(),
		queue:   controller.NewQueue("endpoints"),
	}
	svcInf, podInf, nodeInf := cfg.Services.Informer(), cfg.Pods.Informer(), cfg.Nodes.Informer()
	epInf, sliceInf := cfg.Endpoints.Informer(), cfg.EndpointSlices.Informer()
	c.services, c.pods, c.nodes = cfg.Services.Lister(), cfg.Pods.Lister(), cfg.Nodes.Lister()
	c.endpoints, c.slices = cfg.Endpoints.Lister(), cfg.EndpointSlices.Lister()

	// Slices and Endpoints are watched from their first list on, so those
	// whose Service went away while no controller ran are queued and
	// cleaned up: the Service informer alone never hears of them.
	handlers := []struct {
		inf cache.SharedIndexInformer
		h   cache.ResourceEventHandler
	}{
		{svcInf, cache.ResourceEventHandlerFuncs{
			AddFunc:    c.enqueue,
			UpdateFunc: func(_, o any) { c.enqueue(o) },
			DeleteFunc: c.enqueue,
		}},
		{podInf, cache.ResourceEventHandlerFuncs{
			AddFunc:    func(o any) { c.podChanged(nil, o) },
			UpdateFunc: c.podChanged,
			DeleteFunc: func(o any) { c.podChanged(nil, o) },
		}},
		{sliceInf, cache.ResourceEventHandlerFuncs{
			AddFunc:    func(o any) { c.sliceChanged(o, false) },
			UpdateFunc: func(_, o any) { c.sliceChanged(o, false) },
			DeleteFunc: func(o any) { c.sliceChanged(o, true) },
		}},
		{epInf, cache.ResourceEventHandlerFuncs{
			AddFunc:    func(o any) { c.endpointsChanged(o, false) },
			UpdateFunc: func(_, o any) { c.endpointsChanged(o, false) },
			DeleteFunc: func(o any) { c.endpointsChanged(o, true) },
		}},
	}
	for _, h := range handlers {
		if _, err := h.inf.AddEventHandler(h.h); err != nil {
			return nil, fmt.Errorf("endpoints: %w", err)
		}
	}
	// Nodes have no handler (zones come from node labels, read at sync) but
	// must have listed before the first sync all the same.
	c.loop = &controller.Loop{Name: Name, Queue: c.queue, Sync: c.syncService, Log: c.log,
		Synced: []cache.InformerSynced{svcInf.HasSynced, podInf.HasSynced, nodeInf.HasSynced, epInf.HasSynced,
			sliceInf.HasSynced}}
	return c, nil
}

// Run works until ctx ends, with workers syncing Services in parallel
// (never the same one twice at once: the queue guarantees that). Writes in
// flight when ctx ends fail with it.
func (c *Controller) Run(ctx context.Context, workers int) { c.loop.Run(ctx, workers) }

// enqueue queues a Service (or the Service of the same name).
func (c *Controller) enqueue(o any) {
	if key := controller.KeyOf(o); key != "" {
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
	s, ok := informer.ObjectOf[*discoveryv1.EndpointSlice](o)
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
	ep, ok := informer.ObjectOf[*corev1.Endpoints](o)
	if !ok {
		return
	}
	if c.written.isEcho(endpointsKey(ep.Namespace, ep.Name), ep.ResourceVersion, deleted) {
		return
	}
	c.queue.Add(ep.Namespace + "/" + ep.Name)
}

func asPod(o any) *corev1.Pod {
	p, _ := informer.ObjectOf[*corev1.Pod](o)
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
