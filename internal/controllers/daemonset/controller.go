// Package daemonset is skiff's DaemonSet controller: one pod of a
// DaemonSet on every node its template fits (nodeSelector, required node
// affinity, taints against the template's tolerations and the ones
// Kubernetes adds to daemon pods), none on the others, replaced node by
// node on a template change (RollingUpdate with maxUnavailable and
// maxSurge, or OnDelete), with the template's history kept in
// ControllerRevisions, as Kubernetes' DaemonSet controller does.
//
// Pods are not bound by the controller: each is created with a required
// node affinity on its node's metadata.name and placed by the scheduler,
// as Kubernetes has done since 1.12 (docs/rationale.md says why skiff
// does the same).
package daemonset

import (
	"context"
	"errors"
	"log/slog"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
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
const Name = "daemonset-controller"

// BurstReplicas bounds the pods one sync creates or deletes; the next sync
// does the rest.
const BurstReplicas = 250

var kind = appsv1.SchemeGroupVersion.WithKind("DaemonSet")

// Config of a controller.
type Config struct {
	Client     kubernetes.Interface                     // required
	Pods       coreinformers.PodInformer                // required
	Nodes      coreinformers.NodeInformer               // required
	DaemonSets appsinformers.DaemonSetInformer          // required
	Revisions  appsinformers.ControllerRevisionInformer // required
	Recorder   record.EventRecorder                     // required
	Logger     *slog.Logger                             // default slog.Default()
}

// Controller is a DaemonSet controller. Its event handlers only enqueue
// keys; Run's workers do the rest.
type Controller struct {
	client    kubernetes.Interface
	dsLister  appslisters.DaemonSetLister
	pods      corelisters.PodLister
	nodes     corelisters.NodeLister
	revisions appslisters.ControllerRevisionLister
	recorder  record.EventRecorder
	log       *slog.Logger
	queue     workqueue.TypedRateLimitingInterface[string]
	expect    *controller.Expectations
	loop      *controller.Loop
}

// New registers the controller's handlers on the informers, which the
// caller starts.
func New(cfg Config) (*Controller, error) {
	if cfg.Client == nil || cfg.Pods == nil || cfg.Nodes == nil || cfg.DaemonSets == nil || cfg.Revisions == nil || cfg.Recorder == nil {
		return nil, errors.New("daemonset: Client, Pods, Nodes, DaemonSets, Revisions and Recorder are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Controller{
		client: cfg.Client, dsLister: cfg.DaemonSets.Lister(), pods: cfg.Pods.Lister(), nodes: cfg.Nodes.Lister(),
		revisions: cfg.Revisions.Lister(), recorder: cfg.Recorder, log: cfg.Logger.With("controller", Name),
		queue: controller.NewQueue("daemonset"), expect: controller.NewExpectations(),
	}
	dsInf, podInf, nodeInf, revInf := cfg.DaemonSets.Informer(), cfg.Pods.Informer(), cfg.Nodes.Informer(), cfg.Revisions.Informer()
	if _, err := dsInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
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
	pods := &controller.PodOwnerHandler[*appsv1.DaemonSet]{Kind: kind, Queue: c.queue, Expectations: c.expect,
		Get: func(ns, name string) (*appsv1.DaemonSet, error) { return c.dsLister.DaemonSets(ns).Get(name) },
		List: func(ns string) ([]*appsv1.DaemonSet, error) {
			return c.dsLister.DaemonSets(ns).List(labels.Everything())
		},
		Selector: func(ds *appsv1.DaemonSet) *metav1.LabelSelector { return ds.Spec.Selector }}
	if _, err := podInf.AddEventHandler(pods.Funcs()); err != nil {
		return nil, err
	}
	if _, err := nodeInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { c.enqueueAll() },
		UpdateFunc: func(old, cur any) {
			if nodeChanged(old.(*corev1.Node), cur.(*corev1.Node)) {
				c.enqueueAll()
			}
		},
		DeleteFunc: func(any) { c.enqueueAll() },
	}); err != nil {
		return nil, err
	}
	c.loop = &controller.Loop{Name: Name, Queue: c.queue, Sync: c.sync, Log: c.log,
		Synced: []cache.InformerSynced{dsInf.HasSynced, podInf.HasSynced, nodeInf.HasSynced, revInf.HasSynced}}
	return c, nil
}

// Run works until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) { c.loop.Run(ctx, workers) }

func (c *Controller) enqueue(obj any) {
	if key := controller.KeyOf(obj); key != "" {
		c.queue.Add(key)
	}
}

// enqueueAll looks at every DaemonSet again: a node came, went or changed
// what its pods may be.
func (c *Controller) enqueueAll() {
	all, err := c.dsLister.List(labels.Everything())
	if err != nil {
		return
	}
	for _, ds := range all {
		c.enqueue(ds)
	}
}

// nodeChanged reports a change that can decide whether a daemon pod
// belongs on the node.
func nodeChanged(old, cur *corev1.Node) bool {
	return !labels.Equals(old.Labels, cur.Labels) || old.Spec.Unschedulable != cur.Spec.Unschedulable ||
		!equality.Semantic.DeepEqual(old.Spec.Taints, cur.Spec.Taints)
}
