// Package deployment is skiff's Deployment controller: it gives each pod
// template of a Deployment its own ReplicaSet (<deployment>-<hash>, pods
// labelled pod-template-hash), rolls from the old ones to the new one with
// the RollingUpdate (maxSurge/maxUnavailable) or Recreate strategy, scales
// proportionally, numbers revisions, prunes old ReplicaSets past
// revisionHistoryLimit, and reports replicas, updated, ready and available
// replicas with the Available and Progressing conditions kubectl rollout
// status waits on, as Kubernetes' Deployment controller does.
package deployment

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
const Name = "deployment-controller"

var kind = appsv1.SchemeGroupVersion.WithKind("Deployment")

// Config of a controller.
type Config struct {
	Client      kubernetes.Interface             // required
	Deployments appsinformers.DeploymentInformer // required
	ReplicaSets appsinformers.ReplicaSetInformer // required
	Pods        coreinformers.PodInformer        // required (Recreate waits for old pods to go)
	Recorder    record.EventRecorder             // required
	Logger      *slog.Logger                     // default slog.Default()
}

// Controller is a Deployment controller. Its event handlers run on the
// informers' goroutines and only enqueue keys; Run's workers do the rest.
type Controller struct {
	client   kubernetes.Interface
	dLister  appslisters.DeploymentLister
	rsLister appslisters.ReplicaSetLister
	pods     corelisters.PodLister
	recorder record.EventRecorder
	log      *slog.Logger
	queue    workqueue.TypedRateLimitingInterface[string]
	loop     *controller.Loop
	now      func() time.Time
}

// New registers the controller's handlers on the informers, which the
// caller starts.
func New(cfg Config) (*Controller, error) {
	if cfg.Client == nil || cfg.Deployments == nil || cfg.ReplicaSets == nil || cfg.Pods == nil || cfg.Recorder == nil {
		return nil, errors.New("deployment: Client, Deployments, ReplicaSets, Pods and Recorder are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Controller{
		client: cfg.Client, dLister: cfg.Deployments.Lister(), rsLister: cfg.ReplicaSets.Lister(),
		pods: cfg.Pods.Lister(), recorder: cfg.Recorder, log: cfg.Logger.With("controller", Name),
		queue: controller.NewQueue("deployment"), now: time.Now,
	}
	dInf, rsInf, podInf := cfg.Deployments.Informer(), cfg.ReplicaSets.Informer(), cfg.Pods.Informer()
	if _, err := dInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueue,
		UpdateFunc: func(_, cur any) { c.enqueue(cur) },
		DeleteFunc: c.enqueue,
	}); err != nil {
		return nil, err
	}
	if _, err := rsInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: c.addRS, UpdateFunc: c.updateRS, DeleteFunc: c.deleteRS,
	}); err != nil {
		return nil, err
	}
	if _, err := podInf.AddEventHandler(cache.ResourceEventHandlerFuncs{DeleteFunc: c.deletePod}); err != nil {
		return nil, err
	}
	c.loop = &controller.Loop{Name: Name, Queue: c.queue, Sync: c.sync, Log: c.log,
		Synced: []cache.InformerSynced{dInf.HasSynced, rsInf.HasSynced, podInf.HasSynced}}
	return c, nil
}

// Run works until ctx ends, with workers syncing Deployments in parallel
// (never the same one twice at once).
func (c *Controller) Run(ctx context.Context, workers int) { c.loop.Run(ctx, workers) }

func (c *Controller) enqueue(obj any) {
	if key := controller.KeyOf(obj); key != "" {
		c.queue.Add(key)
	}
}

// owner is the Deployment a controllerRef names in ns, if it still is that
// one.
func (c *Controller) owner(ns string, ref *metav1.OwnerReference) *appsv1.Deployment {
	d, _ := controller.Resolve(ref, kind, c.dLister.Deployments(ns).Get)
	return d
}

// selecting lists the Deployments whose selector matches an orphan
// ReplicaSet: each of them may want to adopt it.
func (c *Controller) selecting(rs *appsv1.ReplicaSet) []*appsv1.Deployment {
	all, err := c.dLister.Deployments(rs.Namespace).List(labels.Everything())
	if err != nil {
		return nil
	}
	return controller.Selecting(all, func(d *appsv1.Deployment) *metav1.LabelSelector { return d.Spec.Selector }, rs.Labels)
}

func (c *Controller) addRS(obj any) {
	rs := obj.(*appsv1.ReplicaSet)
	if rs.DeletionTimestamp != nil {
		c.deleteRS(rs)
		return
	}
	if ref := metav1.GetControllerOf(rs); ref != nil {
		if d := c.owner(rs.Namespace, ref); d != nil {
			c.enqueue(d)
		}
		return
	}
	for _, d := range c.selecting(rs) {
		c.enqueue(d)
	}
}

func (c *Controller) updateRS(old, cur any) {
	oldRS, rs := old.(*appsv1.ReplicaSet), cur.(*appsv1.ReplicaSet)
	if rs.ResourceVersion == oldRS.ResourceVersion {
		return
	}
	curRef, oldRef := metav1.GetControllerOf(rs), metav1.GetControllerOf(oldRS)
	if oldRef != nil && (curRef == nil || curRef.UID != oldRef.UID) {
		if d := c.owner(oldRS.Namespace, oldRef); d != nil {
			c.enqueue(d)
		}
	}
	if curRef != nil {
		if d := c.owner(rs.Namespace, curRef); d != nil {
			c.enqueue(d)
		}
		return
	}
	if !labels.Equals(rs.Labels, oldRS.Labels) || oldRef != nil {
		for _, d := range c.selecting(rs) {
			c.enqueue(d)
		}
	}
}

func (c *Controller) deleteRS(obj any) {
	rs, ok := informer.ObjectOf[*appsv1.ReplicaSet](obj)
	if !ok {
		return
	}
	if d := c.owner(rs.Namespace, metav1.GetControllerOf(rs)); d != nil {
		c.enqueue(d)
	}
}

// deletePod wakes a Recreate Deployment when the last pod of its old
// ReplicaSets is gone: only then may the new ones start.
func (c *Controller) deletePod(obj any) {
	pod, ok := informer.ObjectOf[*corev1.Pod](obj)
	if !ok {
		return
	}
	ref := metav1.GetControllerOf(pod)
	if ref == nil || ref.Kind != "ReplicaSet" {
		return
	}
	rs, err := c.rsLister.ReplicaSets(pod.Namespace).Get(ref.Name)
	if err != nil || rs.UID != ref.UID {
		return
	}
	if d := c.owner(rs.Namespace, metav1.GetControllerOf(rs)); d != nil && d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
		c.enqueue(d)
	}
}
