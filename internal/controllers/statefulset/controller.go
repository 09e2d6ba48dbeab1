// Package statefulset is skiff's StatefulSet controller, after Kubernetes':
// each replica is a pod with a stable name <set>-<ordinal>, hostname and
// subdomain (spec.serviceName), and its own PersistentVolumeClaims made
// from volumeClaimTemplates (<template>-<set>-<ordinal>), created before
// the pod and kept when it goes. OrderedReady creates ordinal i+1 only once
// i is Running and Ready and removes from the highest ordinal, one at a
// time; Parallel does both at once. Template changes are recorded as
// ControllerRevisions (the pods' controller-revision-hash label) and rolled
// out from the highest ordinal down to the partition (RollingUpdate) or as
// pods are deleted (OnDelete). Pod names are the API's unique keys, so two
// pods of one ordinal never exist at once: a replacement is created only
// after its predecessor is gone.
package statefulset

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
const Name = "statefulset-controller"

var kind = appsv1.SchemeGroupVersion.WithKind("StatefulSet")

// Config of a controller.
type Config struct {
	Client       kubernetes.Interface                        // required
	Pods         coreinformers.PodInformer                   // required
	StatefulSets appsinformers.StatefulSetInformer           // required
	Revisions    appsinformers.ControllerRevisionInformer    // required
	Claims       coreinformers.PersistentVolumeClaimInformer // required
	Recorder     record.EventRecorder                        // required
	Logger       *slog.Logger                                // default slog.Default()
}

// Controller is a StatefulSet controller. Its event handlers only enqueue;
// Run's workers sync one StatefulSet at a time each.
type Controller struct {
	client    kubernetes.Interface
	sets      appslisters.StatefulSetLister
	pods      corelisters.PodLister
	revisions appslisters.ControllerRevisionLister
	claims    corelisters.PersistentVolumeClaimLister
	recorder  record.EventRecorder
	log       *slog.Logger
	queue     workqueue.TypedRateLimitingInterface[string]
	loop      *controller.Loop
}

// New registers the controller's handlers on the informers, which the
// caller starts.
func New(cfg Config) (*Controller, error) {
	if cfg.Client == nil || cfg.Pods == nil || cfg.StatefulSets == nil || cfg.Revisions == nil || cfg.Claims == nil || cfg.Recorder == nil {
		return nil, errors.New("statefulset: Client, Pods, StatefulSets, Revisions, Claims and Recorder are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Controller{client: cfg.Client, sets: cfg.StatefulSets.Lister(), pods: cfg.Pods.Lister(),
		revisions: cfg.Revisions.Lister(), claims: cfg.Claims.Lister(), recorder: cfg.Recorder,
		log: cfg.Logger.With("controller", Name), queue: controller.NewQueue("statefulset")}
	setInf, podInf := cfg.StatefulSets.Informer(), cfg.Pods.Informer()
	if _, err := setInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: c.enqueue, UpdateFunc: func(_, cur any) { c.enqueue(cur) }, DeleteFunc: c.enqueue,
	}); err != nil {
		return nil, err
	}
	// No expectations (docs/rationale.md says why).
	pods := &controller.PodOwnerHandler[*appsv1.StatefulSet]{Kind: kind, Queue: c.queue,
		Get: func(ns, name string) (*appsv1.StatefulSet, error) { return c.sets.StatefulSets(ns).Get(name) },
		List: func(ns string) ([]*appsv1.StatefulSet, error) {
			return c.sets.StatefulSets(ns).List(labels.Everything())
		},
		Selector:        func(set *appsv1.StatefulSet) *metav1.LabelSelector { return set.Spec.Selector },
		MinReadySeconds: func(set *appsv1.StatefulSet) int32 { return set.Spec.MinReadySeconds }}
	if _, err := podInf.AddEventHandler(pods.Funcs()); err != nil {
		return nil, err
	}
	c.loop = &controller.Loop{Name: Name, Queue: c.queue, Sync: c.sync, Log: c.log,
		Synced: []cache.InformerSynced{setInf.HasSynced, podInf.HasSynced,
			cfg.Revisions.Informer().HasSynced, cfg.Claims.Informer().HasSynced}}
	return c, nil
}

// Run works until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) { c.loop.Run(ctx, workers) }

func (c *Controller) enqueue(obj any) {
	if key := controller.KeyOf(obj); key != "" {
		c.queue.Add(key)
	}
}
