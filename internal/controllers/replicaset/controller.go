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

	appsv1 "k8s.io/api/apps/v1"
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
	pods := &controller.PodOwnerHandler[*appsv1.ReplicaSet]{Kind: kind, Queue: c.queue, Expectations: c.expect,
		Get: func(ns, name string) (*appsv1.ReplicaSet, error) { return c.rsLister.ReplicaSets(ns).Get(name) },
		List: func(ns string) ([]*appsv1.ReplicaSet, error) {
			return c.rsLister.ReplicaSets(ns).List(labels.Everything())
		},
		Selector: func(rs *appsv1.ReplicaSet) *metav1.LabelSelector { return rs.Spec.Selector },
		// A pod that just became ready turns available minReadySeconds
		// later, with no event to say so: look again then.
		MinReadySeconds: func(rs *appsv1.ReplicaSet) int32 { return rs.Spec.MinReadySeconds }}
	if _, err := podInf.AddEventHandler(pods.Funcs()); err != nil {
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
