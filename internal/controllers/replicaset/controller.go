// Package replicaset is skiff's ReplicaSet controller: it keeps the number
// of active pods a ReplicaSet selects equal to spec.replicas, creating
// pods from the template (owned by the ReplicaSet, named <rs>-<random>)
// and deleting the least useful ones first, adopts matching orphans,
// releases pods it no longer selects, and reports replicas,
// fullyLabeledReplicas, readyReplicas and availableReplicas in the status,
// as Kubernetes' ReplicaSet controller does.
package replicaset

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/skiffhq/skiff/internal/informer"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	appsinformers "k8s.io/client-go/informers/apps/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiffhq/skiff/internal/controllers/controller"
)

// Name is the controller's name, as its events' source.
const Name = "replicaset-controller"

// BurstReplicas bounds the pods one sync creates or deletes, so one
// ReplicaSet scaled to thousands cannot starve the others; the next sync
// does the rest.
const BurstReplicas = 500

var kind = appsv1.SchemeGroupVersion.WithKind("ReplicaSet")

// Config of a controller.
type Config struct {
	Client      kubernetes.Interface             // required
	Pods        coreinformers.PodInformer        // required
	ReplicaSets appsinformers.ReplicaSetInformer // required
	Recorder    record.EventRecorder             // required
	Logger      *slog.Logger                     // default slog.Default()
}

// Controller is a ReplicaSet controller. Its event handlers run on the
// informers' goroutines and only enqueue keys; Run's workers do the rest.
type Controller struct {
	client   kubernetes.Interface
	rsLister appslisters.ReplicaSetLister
	pods     corelisters.PodLister
	recorder record.EventRecorder
	log      *slog.Logger
	queue    workqueue.TypedRateLimitingInterface[string]
	expect   *controller.Expectations
	loop     *controller.Loop
}

// New registers the controller's handlers on the informers, which the
// caller starts.
func New(cfg Config) (*Controller, error) {
	if cfg.Client == nil || cfg.Pods == nil || cfg.ReplicaSets == nil || cfg.Recorder == nil {
		return nil, errors.New("replicaset: Client, Pods, ReplicaSets and Recorder are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Controller{
		client: cfg.Client, rsLister: cfg.ReplicaSets.Lister(), pods: cfg.Pods.Lister(), recorder: cfg.Recorder,
		log: cfg.Logger.With("controller", Name), queue: controller.NewQueue("replicaset"),
		expect: controller.NewExpectations(),
	}
	rsInf, podInf := cfg.ReplicaSets.Informer(), cfg.Pods.Informer()
	if _, err := rsInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueue,
		UpdateFunc: func(_, cur any) { c.enqueue(cur) },
		DeleteFunc: func(obj any) {
			if key := controller.KeyOf(obj); key != "" {
				c.expect.Delete(key)
				c.queue.Add(key)
			}
		},
	}); err != nil {
		return nil, err
	}
	if _, err := podInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: c.addPod, UpdateFunc: c.updatePod, DeleteFunc: c.deletePod,
	}); err != nil {
		return nil, err
	}
	c.loop = &controller.Loop{Name: Name, Queue: c.queue, Sync: c.sync, Log: c.log,
		Synced: []cache.InformerSynced{rsInf.HasSynced, podInf.HasSynced}}
	return c, nil
}

// Run works until ctx ends, with workers syncing ReplicaSets in parallel
// (never the same one twice at once: the queue guarantees that).
func (c *Controller) Run(ctx context.Context, workers int) { c.loop.Run(ctx, workers) }

func (c *Controller) enqueue(obj any) {
	if key := controller.KeyOf(obj); key != "" {
		c.queue.Add(key)
	}
}

// resolve is the ReplicaSet ref names in ns, if it still is that one.
func (c *Controller) resolve(ns string, ref *metav1.OwnerReference) *appsv1.ReplicaSet {
	rs, _ := controller.Resolve(ref, kind, c.rsLister.ReplicaSets(ns).Get)
	return rs
}

// selecting lists the ReplicaSets whose selector matches an orphan pod:
// each of them may want to adopt it.
func (c *Controller) selecting(pod *corev1.Pod) []*appsv1.ReplicaSet {
	all, err := c.rsLister.ReplicaSets(pod.Namespace).List(labels.Everything())
	if err != nil {
		return nil
	}
	return controller.Selecting(all, func(rs *appsv1.ReplicaSet) *metav1.LabelSelector { return rs.Spec.Selector }, pod.Labels)
}

func (c *Controller) addPod(obj any) {
	pod := obj.(*corev1.Pod)
	if pod.DeletionTimestamp != nil {
		c.deletePod(pod) // seen for the first time already terminating (a relist)
		return
	}
	if ref := metav1.GetControllerOf(pod); ref != nil {
		if rs := c.resolve(pod.Namespace, ref); rs != nil {
			key := controller.KeyOf(rs)
			c.expect.CreationObserved(key)
			c.queue.Add(key)
		}
		return
	}
	for _, rs := range c.selecting(pod) {
		c.enqueue(rs)
	}
}

func (c *Controller) updatePod(old, cur any) {
	oldPod, pod := old.(*corev1.Pod), cur.(*corev1.Pod)
	if pod.ResourceVersion == oldPod.ResourceVersion {
		return // a resync: nothing changed
	}
	labelsChanged := !labels.Equals(pod.Labels, oldPod.Labels)
	if pod.DeletionTimestamp != nil {
		// Terminating counts as deleted: the pod no longer is a replica,
		// and the kubelet may take its grace period to remove it.
		c.deletePod(pod)
		if labelsChanged {
			c.deletePod(oldPod)
		}
		return
	}
	curRef, oldRef := metav1.GetControllerOf(pod), metav1.GetControllerOf(oldPod)
	if oldRef != nil && (curRef == nil || curRef.UID != oldRef.UID) {
		if rs := c.resolve(oldPod.Namespace, oldRef); rs != nil {
			c.enqueue(rs) // released: the old owner may need a replacement
		}
	}
	if curRef != nil {
		rs := c.resolve(pod.Namespace, curRef)
		if rs == nil {
			return
		}
		c.enqueue(rs)
		// A pod that just became ready turns available minReadySeconds
		// later, with no event to say so: look again then.
		if rs.Spec.MinReadySeconds > 0 && !controller.IsPodReady(oldPod) && controller.IsPodReady(pod) {
			c.queue.AddAfter(controller.KeyOf(rs), time.Duration(rs.Spec.MinReadySeconds)*time.Second+time.Second)
		}
		return
	}
	if labelsChanged || oldRef != nil {
		for _, rs := range c.selecting(pod) {
			c.enqueue(rs)
		}
	}
}

func (c *Controller) deletePod(obj any) {
	pod, ok := informer.ObjectOf[*corev1.Pod](obj)
	if !ok {
		return
	}
	ref := metav1.GetControllerOf(pod)
	if ref == nil {
		return
	}
	rs := c.resolve(pod.Namespace, ref)
	if rs == nil {
		return
	}
	key := controller.KeyOf(rs)
	c.expect.DeletionObserved(key, controller.PodKey(pod))
	c.queue.Add(key)
}
