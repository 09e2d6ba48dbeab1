// Package garbagecollector is skiff's garbage collector, in the shape of
// Kubernetes' (pkg/controller/garbagecollector): an owner index built from
// informers over the resources that carry ownerReferences, and workers
// that delete the objects whose owners are all gone (background
// deletion), delete an owner's dependents before the owner itself
// (foreground: the foregroundDeletion finalizer), or release them (orphan:
// the orphan finalizer). The API server only marks: DELETE sets the
// finalizer and deletionTimestamp for Foreground and Orphan and removes
// the object at once for Background; the rest happens here.
package garbagecollector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiffhq/skiff/internal/controllers/controller"
	"github.com/skiffhq/skiff/internal/informer"
)

// Name is the controller's name, as its field manager.
const Name = "garbage-collector"

// Resource is a resource the collector watches.
type Resource struct {
	GVR        schema.GroupVersionResource
	Kind       string
	Namespaced bool
}

// DefaultResources are the built-in resources whose objects carry (or are
// named by) ownerReferences: workloads and what they make, and the
// configuration objects applications hang off their owners.
var DefaultResources = []Resource{
	{schema.GroupVersionResource{Version: "v1", Resource: "pods"}, "Pod", true},
	{schema.GroupVersionResource{Version: "v1", Resource: "services"}, "Service", true},
	{schema.GroupVersionResource{Version: "v1", Resource: "endpoints"}, "Endpoints", true},
	{schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}, "ConfigMap", true},
	{schema.GroupVersionResource{Version: "v1", Resource: "secrets"}, "Secret", true},
	{schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}, "ServiceAccount", true},
	{schema.GroupVersionResource{Version: "v1", Resource: "persistentvolumeclaims"}, "PersistentVolumeClaim", true},
	{schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}, "Deployment", true},
	{schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "replicasets"}, "ReplicaSet", true},
	{schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "daemonsets"}, "DaemonSet", true},
	{schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "statefulsets"}, "StatefulSet", true},
	{schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "controllerrevisions"}, "ControllerRevision", true},
	{schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "jobs"}, "Job", true},
	{schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "cronjobs"}, "CronJob", true},
	{schema.GroupVersionResource{Group: "discovery.k8s.io", Version: "v1", Resource: "endpointslices"}, "EndpointSlice", true},
	{schema.GroupVersionResource{Group: "policy", Version: "v1", Resource: "poddisruptionbudgets"}, "PodDisruptionBudget", true},
	{schema.GroupVersionResource{Group: "networking.k8s.io", Version: "v1", Resource: "ingresses"}, "Ingress", true},
}

// Config of a collector.
type Config struct {
	Client dynamic.Interface // required
	// Resources are the resources watched (DefaultResources if nil).
	Resources []Resource
	// Mapper resolves owner kinds outside Resources, to look the owner up;
	// without it such owners count as present (nothing is deleted for them).
	Mapper meta.RESTMapper
	// Resync replays the informers' objects now and then (0: never).
	Resync time.Duration
	// Discover, when set, is asked every Rediscover for the resources to
	// watch, and those not watched yet are added (custom resources defined
	// after the start), as Kubernetes' collector resyncs its monitors.
	Discover   func() ([]Resource, error)
	Rediscover time.Duration // default 30 s, Kubernetes' period
	Logger     *slog.Logger  // default slog.Default()
}

// Collector is the garbage collector. It owns its informers (a dynamic
// factory, each object cut down to its metadata).
type Collector struct {
	client dynamic.Interface
	mapper meta.RESTMapper
	cfg    Config

	kindsMu   sync.RWMutex
	byKind    map[schema.GroupKind]Resource
	watched   map[schema.GroupVersionResource]bool
	lastReset time.Time // of the mapper, after a miss
	factory   dynamicinformer.DynamicSharedInformerFactory
	synced    []cache.InformerSynced
	graph     *graph
	log       *slog.Logger
	queue     workqueue.TypedRateLimitingInterface[string]
	loop      *controller.Loop

	mu     sync.Mutex
	absent map[types.UID]struct{} // owners confirmed gone (uids are never reused)
}

// maxAbsent bounds the cache of owners known to be gone.
const maxAbsent = 10000

// New builds the collector and its informers; Run starts them.
func New(cfg Config) (*Collector, error) {
	if cfg.Client == nil {
		return nil, errors.New("garbagecollector: Client is required")
	}
	if cfg.Resources == nil {
		cfg.Resources = DefaultResources
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Rediscover == 0 {
		cfg.Rediscover = 30 * time.Second
	}
	c := &Collector{client: cfg.Client, mapper: cfg.Mapper, cfg: cfg, byKind: map[schema.GroupKind]Resource{}, watched: map[schema.GroupVersionResource]bool{},
		factory: dynamicinformer.NewDynamicSharedInformerFactory(cfg.Client, cfg.Resync),
		graph:   newGraph(), log: cfg.Logger.With("controller", Name), queue: controller.NewQueue("garbagecollector"),
		absent: map[types.UID]struct{}{}}
	for _, res := range cfg.Resources {
		synced, err := c.watch(res)
		if err != nil {
			return nil, err
		}
		c.synced = append(c.synced, synced)
	}
	c.loop = &controller.Loop{Name: Name, Queue: c.queue, Sync: c.sync, Log: c.log, Synced: c.synced}
	return c, nil
}

// watch adds res's informer (its factory starts it on the next Start).
func (c *Collector) watch(res Resource) (cache.InformerSynced, error) {
	c.kindsMu.Lock()
	c.byKind[schema.GroupKind{Group: res.GVR.Group, Kind: res.Kind}] = res
	c.watched[res.GVR] = true
	c.kindsMu.Unlock()
	inf := c.factory.ForResource(res.GVR).Informer()
	if err := inf.SetTransform(metadataOnly); err != nil {
		return nil, fmt.Errorf("garbagecollector: %s: %w", res.GVR, err)
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.observe(res, obj, false) },
		UpdateFunc: func(_, obj any) { c.observe(res, obj, false) },
		DeleteFunc: func(obj any) { c.observe(res, obj, true) },
	}); err != nil {
		return nil, err
	}
	return inf.HasSynced, nil
}

// rediscover watches the resources Discover lists that are not watched
// yet, every Rediscover, until ctx ends. A resource that goes away (a
// deleted CRD) keeps its informer, which only fails to list until then.
func (c *Collector) rediscover(ctx context.Context) {
	if c.cfg.Discover == nil {
		return
	}
	tick := time.NewTicker(c.cfg.Rediscover)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		res, err := c.cfg.Discover()
		if err != nil && len(res) == 0 {
			c.log.Debug("rediscovering resources", "err", err)
			continue
		}
		added := 0
		for _, r := range res {
			c.kindsMu.RLock()
			known := c.watched[r.GVR]
			c.kindsMu.RUnlock()
			if known {
				continue
			}
			if _, err := c.watch(r); err != nil {
				c.log.Warn("watching a new resource", "resource", r.GVR, "err", err)
				continue
			}
			added++
		}
		if added > 0 {
			c.log.Info("garbage collector watches new resources", "added", added)
			c.factory.Start(ctx.Done())
		}
	}
}

// Run starts the informers and works until ctx ends.
func (c *Collector) Run(ctx context.Context, workers int) {
	c.factory.Start(ctx.Done())
	go c.rediscover(ctx)
	c.loop.Run(ctx, workers)
	c.factory.Shutdown()
}

// metadataOnly keeps what the collector reads of an object, so the
// informers' caches hold no pod specs or secret data.
func metadataOnly(obj any) (any, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return obj, nil
	}
	out := &unstructured.Unstructured{Object: map[string]any{}}
	out.SetAPIVersion(u.GetAPIVersion())
	out.SetKind(u.GetKind())
	out.SetNamespace(u.GetNamespace())
	out.SetName(u.GetName())
	out.SetUID(u.GetUID())
	out.SetResourceVersion(u.GetResourceVersion())
	out.SetOwnerReferences(u.GetOwnerReferences())
	out.SetFinalizers(u.GetFinalizers())
	out.SetDeletionTimestamp(u.GetDeletionTimestamp())
	return out, nil
}

func (c *Collector) observe(res Resource, obj any, deleted bool) {
	u, ok := informer.ObjectOf[*unstructured.Unstructured](obj)
	if !ok {
		return
	}
	it := &item{gvr: res.GVR, apiVersion: res.GVR.GroupVersion().String(), kind: res.Kind,
		namespace: u.GetNamespace(), name: u.GetName(), uid: u.GetUID(), owners: u.GetOwnerReferences(),
		deleting: u.GetDeletionTimestamp() != nil, finalizers: u.GetFinalizers()}
	if deleted {
		old := c.graph.remove(it.uid)
		if old == nil {
			old = it
		}
		// Its dependents lost an owner; an owner waiting for it may go.
		for _, d := range c.graph.dependentsOf(it.uid) {
			c.queue.Add(string(d.uid))
		}
		c.enqueueWaitingOwners(old.owners)
		return
	}
	old := c.graph.upsert(it)
	if old != nil && old.sameState(it) {
		return
	}
	c.queue.Add(string(it.uid))
	if old != nil {
		c.enqueueWaitingOwners(old.owners) // a dropped reference may unblock its owner
	}
	if it.waitingForDependents() {
		for _, d := range c.graph.dependentsOf(it.uid) {
			c.queue.Add(string(d.uid))
		}
	}
}

func (c *Collector) enqueueWaitingOwners(refs []metav1.OwnerReference) {
	for _, ref := range refs {
		if o := c.graph.get(ref.UID); o != nil && o.deleting {
			c.queue.Add(string(o.uid))
		}
	}
}

// sync looks at one object: an owner being deleted in the foreground or
// orphaning its dependents, or a dependent whose owners may be gone.
func (c *Collector) sync(ctx context.Context, key string) error {
	it := c.graph.get(types.UID(key))
	if it == nil {
		return nil
	}
	if it.deleting {
		switch {
		case it.hasFinalizer(metav1.FinalizerOrphanDependents):
			return c.orphanDependents(ctx, it)
		case it.hasFinalizer(metav1.FinalizerDeleteDependents):
			return c.deleteDependentsFirst(ctx, it)
		}
		return nil
	}
	if len(it.owners) == 0 {
		return nil
	}
	solid, dangling, waiting, err := c.classifyOwners(ctx, it, it.owners)
	if err != nil || len(dangling)+len(waiting) == 0 {
		return err
	}
	// About to act on the index's view of the dependent, which may lag
	// behind it: an orphaning owner has just dropped its reference, and the
	// owner's removal can arrive first. Decide again on the object as it
	// is now, as Kubernetes' collector does, so a released dependent is
	// never deleted for a reference it no longer has.
	fresh, err := c.client.Resource(it.gvr).Namespace(it.namespace).Get(ctx, it.name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return fmt.Errorf("reading %s %s/%s: %w", it.gvr.Resource, it.namespace, it.name, err)
	case fresh.GetUID() != it.uid:
		return nil // replaced by another with the same name
	}
	if owners := fresh.GetOwnerReferences(); !slices.EqualFunc(owners, it.owners, sameOwnerRef) {
		if len(owners) == 0 {
			return nil
		}
		if solid, dangling, waiting, err = c.classifyOwners(ctx, it, owners); err != nil || len(dangling)+len(waiting) == 0 {
			return err
		}
	}
	switch {
	case len(solid) > 0:
		// Another owner keeps it: only the references to owners that are
		// gone or going come off.
		drop := map[types.UID]bool{}
		for _, r := range append(dangling, waiting...) {
			drop[r.UID] = true
		}
		return c.dropOwnerRefs(ctx, it, drop)
	case len(waiting) > 0 && c.graph.hasDependents(it.uid):
		// Its owner waits for it, and it has dependents of its own: they
		// go first too.
		return c.delete(ctx, it, metav1.DeletePropagationForeground)
	default:
		return c.delete(ctx, it, metav1.DeletePropagationBackground)
	}
}

func sameOwnerRef(a, b metav1.OwnerReference) bool { return a.UID == b.UID }

// classifyOwners sorts a dependent's owner references by their owners'
// state: present, gone (dangling), or deleting in the foreground (waiting).
func (c *Collector) classifyOwners(ctx context.Context, it *item, owners []metav1.OwnerReference) (solid, dangling, waiting []metav1.OwnerReference, err error) {
	for _, ref := range owners {
		state, err := c.ownerState(ctx, it, ref)
		if err != nil {
			return nil, nil, nil, err
		}
		switch state {
		case ownerPresent:
			solid = append(solid, ref)
		case ownerWaiting:
			waiting = append(waiting, ref)
		default:
			dangling = append(dangling, ref)
		}
	}
	return solid, dangling, waiting, nil
}

type ownerStatus int

const (
	ownerAbsent ownerStatus = iota
	ownerPresent
	ownerWaiting // being deleted in the foreground
)

// ownerState says whether ref's object exists: from the index when it is
// there; otherwise by asking the API (the index may lag behind a new
// owner), remembering the owners found gone.
func (c *Collector) ownerState(ctx context.Context, dep *item, ref metav1.OwnerReference) (ownerStatus, error) {
	if o := c.graph.get(ref.UID); o != nil {
		if o.waitingForDependents() {
			return ownerWaiting, nil
		}
		return ownerPresent, nil
	}
	c.mu.Lock()
	_, gone := c.absent[ref.UID]
	c.mu.Unlock()
	if gone {
		return ownerAbsent, nil
	}
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return ownerAbsent, nil // a reference no object can satisfy
	}
	gvr, namespaced, ok := c.resourceOf(gv.WithKind(ref.Kind))
	if !ok {
		c.log.Debug("owner of an unknown kind counts as present", "dependent", dep.namespace+"/"+dep.name,
			"apiVersion", ref.APIVersion, "kind", ref.Kind)
		return ownerPresent, nil
	}
	ns := ""
	if namespaced {
		ns = dep.namespace
	}
	o, err := c.client.Resource(gvr).Namespace(ns).Get(ctx, ref.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err), err == nil && o.GetUID() != ref.UID:
		c.mu.Lock()
		if len(c.absent) >= maxAbsent {
			clear(c.absent)
		}
		c.absent[ref.UID] = struct{}{}
		c.mu.Unlock()
		return ownerAbsent, nil
	case err != nil:
		return ownerAbsent, fmt.Errorf("looking up owner %s %s/%s: %w", ref.Kind, ns, ref.Name, err)
	case o.GetDeletionTimestamp() != nil && slices.Contains(o.GetFinalizers(), metav1.FinalizerDeleteDependents):
		return ownerWaiting, nil
	}
	return ownerPresent, nil
}

func (c *Collector) resourceOf(gvk schema.GroupVersionKind) (schema.GroupVersionResource, bool, bool) {
	c.kindsMu.RLock()
	res, ok := c.byKind[gvk.GroupKind()]
	c.kindsMu.RUnlock()
	if ok {
		return res.GVR, res.Namespaced, true
	}
	if c.mapper == nil {
		return schema.GroupVersionResource{}, false, false
	}
	m, err := c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		// A kind defined since the mapper's discovery (a new CRD): read
		// discovery again, at most every few seconds.
		r, resettable := c.mapper.(meta.ResettableRESTMapper)
		c.kindsMu.Lock()
		again := resettable && time.Since(c.lastReset) > 5*time.Second
		if again {
			c.lastReset = time.Now()
		}
		c.kindsMu.Unlock()
		if !again {
			return schema.GroupVersionResource{}, false, false
		}
		r.Reset()
		if m, err = c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
			return schema.GroupVersionResource{}, false, false
		}
	}
	return m.Resource, m.Scope.Name() == meta.RESTScopeNameNamespace, true
}

// delete deletes it with policy, if it still is the object it was.
func (c *Collector) delete(ctx context.Context, it *item, policy metav1.DeletionPropagation) error {
	uid := it.uid
	err := c.client.Resource(it.gvr).Namespace(it.namespace).Delete(ctx, it.name, metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: &uid}, PropagationPolicy: &policy})
	if err == nil || apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		if err == nil {
			c.log.Debug("deleted", "resource", it.gvr.Resource, "object", it.namespace+"/"+it.name, "propagation", policy)
		}
		return nil
	}
	return fmt.Errorf("deleting %s %s/%s: %w", it.gvr.Resource, it.namespace, it.name, err)
}

// deleteDependentsFirst is a foreground deletion: each dependent is looked
// at (it goes unless another owner keeps it); once no dependent that
// blocks the owner's deletion remains, the finalizer comes off and the API
// server removes the owner.
func (c *Collector) deleteDependentsFirst(ctx context.Context, owner *item) error {
	blocking := 0
	for _, d := range c.graph.dependentsOf(owner.uid) {
		for _, ref := range d.owners {
			if ref.UID == owner.uid && ref.BlockOwnerDeletion != nil && *ref.BlockOwnerDeletion {
				blocking++
			}
		}
		if !d.deleting {
			c.queue.Add(string(d.uid))
		}
	}
	if blocking > 0 {
		return nil // each dependent's removal enqueues the owner again
	}
	return c.removeFinalizer(ctx, owner, metav1.FinalizerDeleteDependents)
}

// orphanDependents releases the owner's dependents (their references to it
// come off), then removes the orphan finalizer.
func (c *Collector) orphanDependents(ctx context.Context, owner *item) error {
	var errs []error
	for _, d := range c.graph.dependentsOf(owner.uid) {
		if err := c.dropOwnerRefs(ctx, d, map[types.UID]bool{owner.uid: true}); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return c.removeFinalizer(ctx, owner, metav1.FinalizerOrphanDependents)
}

// dropOwnerRefs removes the references to drop from it.
func (c *Collector) dropOwnerRefs(ctx context.Context, it *item, drop map[types.UID]bool) error {
	return c.update(ctx, it, func(u *unstructured.Unstructured) bool {
		refs := u.GetOwnerReferences()
		kept := slices.DeleteFunc(slices.Clone(refs), func(r metav1.OwnerReference) bool { return drop[r.UID] })
		if len(kept) == len(refs) {
			return false
		}
		u.SetOwnerReferences(kept)
		return true
	})
}

func (c *Collector) removeFinalizer(ctx context.Context, it *item, f string) error {
	return c.update(ctx, it, func(u *unstructured.Unstructured) bool {
		fs := u.GetFinalizers()
		kept := slices.DeleteFunc(slices.Clone(fs), func(s string) bool { return s == f })
		if len(kept) == len(fs) {
			return false
		}
		u.SetFinalizers(kept)
		return true
	})
}

// update reads it afresh, applies mutate (false: nothing to change) and
// writes it back, retrying on conflicts; an object gone or replaced is
// left alone.
func (c *Collector) update(ctx context.Context, it *item, mutate func(*unstructured.Unstructured) bool) error {
	rc := c.client.Resource(it.gvr).Namespace(it.namespace)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		u, err := rc.Get(ctx, it.name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if u.GetUID() != it.uid || !mutate(u) {
			return nil
		}
		_, err = rc.Update(ctx, u, metav1.UpdateOptions{FieldManager: Name})
		return err
	})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("updating %s %s/%s: %w", it.gvr.Resource, it.namespace, it.name, err)
	}
	return nil
}
