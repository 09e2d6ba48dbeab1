// Package namespace is skiff's namespace controller, in the shape of
// Kubernetes' (pkg/controller/namespace): the API server only marks a
// deleted namespace (deletionTimestamp, phase Terminating) and keeps it
// while spec.finalizers holds "kubernetes"; this controller then deletes
// every namespaced resource's objects in it, one DeleteCollection per
// resource (a list and a delete each where a resource has no
// deletecollection), waits for the pods to terminate gracefully on their
// nodes, reports progress and trouble in the namespace's status conditions
// (NamespaceDeletionDiscoveryFailure, NamespaceDeletionGroupVersionParsingFailure,
// NamespaceDeletionContentFailure, NamespaceContentRemaining,
// NamespaceFinalizersRemaining, with Kubernetes' reasons and messages), and
// at last removes the "kubernetes" finalizer through namespaces/<name>/finalize,
// after which the API server removes the namespace.
package namespace

import (
	"context"
	"errors"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiffhq/skiff/internal/controllers/controller"
	"github.com/skiffhq/skiff/internal/informer"
)

// Name is the controller's name, as its events' source and in logs.
const Name = "namespace-controller"

// Config of a controller.
type Config struct {
	Client     kubernetes.Interface               // required: namespaces, their status and /finalize
	Dynamic    dynamic.Interface                  // required: the content of every resource
	Namespaces coreinformers.NamespaceInformer    // required
	Pods       coreinformers.PodInformer          // required: a pod's end wakes its namespace
	Discovery  discovery.ServerResourcesInterface // default Client.Discovery()
	Logger     *slog.Logger                       // default slog.Default()
}

// Controller is a namespace controller.
type Controller struct {
	client     kubernetes.Interface
	dynamic    dynamic.Interface
	discovery  discovery.ServerResourcesInterface
	namespaces corelisters.NamespaceLister
	log        *slog.Logger
	queue      workqueue.TypedRateLimitingInterface[string]
	loop       *controller.Loop
}

// New registers the controller's handlers on the informers, which the
// caller starts.
func New(cfg Config) (*Controller, error) {
	if cfg.Client == nil || cfg.Dynamic == nil || cfg.Namespaces == nil || cfg.Pods == nil {
		return nil, errors.New("namespace: Client, Dynamic, Namespaces and Pods are required")
	}
	if cfg.Discovery == nil {
		cfg.Discovery = cfg.Client.Discovery()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Controller{client: cfg.Client, dynamic: cfg.Dynamic, discovery: cfg.Discovery,
		namespaces: cfg.Namespaces.Lister(), log: cfg.Logger.With("controller", Name),
		queue: controller.NewQueue("namespace")}
	nsInf, podInf := cfg.Namespaces.Informer(), cfg.Pods.Informer()
	if _, err := nsInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.namespaceChanged,
		UpdateFunc: func(_, cur any) { c.namespaceChanged(cur) },
	}); err != nil {
		return nil, err
	}
	// Pods are what a namespace's deletion waits for longest (their grace
	// period on the node): the last one's removal should finish the
	// namespace now, not at the next estimate.
	if _, err := podInf.AddEventHandler(cache.ResourceEventHandlerFuncs{DeleteFunc: c.podGone}); err != nil {
		return nil, err
	}
	c.loop = &controller.Loop{Name: Name, Queue: c.queue, Sync: c.sync, Log: c.log,
		Synced: []cache.InformerSynced{nsInf.HasSynced, podInf.HasSynced}}
	return c, nil
}

// Run works until ctx ends, with workers deleting namespaces in parallel.
func (c *Controller) Run(ctx context.Context, workers int) { c.loop.Run(ctx, workers) }

// namespaceChanged queues a namespace being deleted; the others are no
// business of this controller.
func (c *Controller) namespaceChanged(obj any) {
	ns, ok := informer.ObjectOf[*corev1.Namespace](obj)
	if !ok || ns.DeletionTimestamp == nil {
		return
	}
	c.queue.Add(ns.Name)
}

func (c *Controller) podGone(obj any) {
	p, ok := informer.ObjectOf[*corev1.Pod](obj)
	if !ok {
		return
	}
	if ns, err := c.namespaces.Get(p.Namespace); err == nil && ns.DeletionTimestamp != nil {
		c.queue.Add(ns.Name)
	}
}

// sync moves one terminating namespace on: content deleted, conditions
// set, and, once nothing is left, the finalizer removed. Content that is
// still going (pods terminating, objects held by finalizers) brings the
// namespace back after an estimate, as upstream's ResourcesRemainingError.
func (c *Controller) sync(ctx context.Context, name string) error {
	ns, err := c.namespaces.Get(name)
	if err != nil || ns.DeletionTimestamp == nil {
		return nil // gone or not being deleted
	}
	d := &deleter{client: c.client, dynamic: c.dynamic, discovery: c.discovery, log: c.log}
	wait, err := d.delete(ctx, name)
	if err != nil {
		return err
	}
	if wait > 0 {
		c.log.Debug("namespace content remaining", "namespace", name, "recheck", wait)
		c.queue.AddAfter(name, wait)
	}
	return nil
}

// maxRecheck bounds how long a namespace waits before its content is
// looked at again when nothing wakes it earlier.
const maxRecheck = 30 * time.Second
