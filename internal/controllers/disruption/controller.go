// Package disruption is skiff's disruption controller, in the shape of
// Kubernetes' (pkg/controller/disruption): for each PodDisruptionBudget it
// counts the pods its selector matches and keeps the status that the
// eviction API and the scheduler's preemption read: expectedPods,
// desiredHealthy (from minAvailable or maxUnavailable, an integer or a
// percentage of the expected pods), currentHealthy (Ready pods not being
// deleted or disrupted), disruptionsAllowed, observedGeneration, the
// DisruptionAllowed condition, and disruptedPods (the pods an eviction let
// go, until they are deleted or two minutes pass).
package disruption

import (
	"context"
	"errors"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	appsinformers "k8s.io/client-go/informers/apps/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	policyinformers "k8s.io/client-go/informers/policy/v1"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	policylisters "k8s.io/client-go/listers/policy/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiffhq/skiff/internal/controllers/controller"
	"github.com/skiffhq/skiff/internal/informer"
)

// Name is the controller's name, as its events' source.
const Name = "disruption-controller"

// DeletionTimeout is how long a pod an eviction let go stays counted as
// disrupted while it has not started terminating, as Kubernetes'
// DeletionTimeout: an eviction whose delete never happened must not keep a
// budget spent forever.
const DeletionTimeout = 2 * time.Minute

// Config of a controller.
type Config struct {
	Client       kubernetes.Interface                        // required
	Pods         coreinformers.PodInformer                   // required
	PDBs         policyinformers.PodDisruptionBudgetInformer // required
	ReplicaSets  appsinformers.ReplicaSetInformer            // required: the scale of pods' owners
	Deployments  appsinformers.DeploymentInformer            // required
	StatefulSets appsinformers.StatefulSetInformer           // required
	Recorder     record.EventRecorder                        // required
	Logger       *slog.Logger                                // default slog.Default()
}

// Controller keeps PodDisruptionBudget status. Its handlers only enqueue;
// Run's workers do the rest.
type Controller struct {
	client   kubernetes.Interface
	pods     corelisters.PodLister
	pdbs     policylisters.PodDisruptionBudgetLister
	scales   scaleFinder
	recorder record.EventRecorder
	log      *slog.Logger
	queue    workqueue.TypedRateLimitingInterface[string]
	loop     *controller.Loop
}

// New registers the controller's handlers on the informers, which the
// caller starts.
func New(cfg Config) (*Controller, error) {
	if cfg.Client == nil || cfg.Pods == nil || cfg.PDBs == nil || cfg.ReplicaSets == nil ||
		cfg.Deployments == nil || cfg.StatefulSets == nil || cfg.Recorder == nil {
		return nil, errors.New("disruption: Client, Pods, PDBs, ReplicaSets, Deployments, StatefulSets and Recorder are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Controller{
		client: cfg.Client, pods: cfg.Pods.Lister(), pdbs: cfg.PDBs.Lister(), recorder: cfg.Recorder,
		scales: scaleFinder{rss: cfg.ReplicaSets.Lister(), deploys: cfg.Deployments.Lister(), sets: cfg.StatefulSets.Lister()},
		log:    cfg.Logger.With("controller", Name), queue: controller.NewQueue("disruption"),
	}
	pdbInf, podInf := cfg.PDBs.Informer(), cfg.Pods.Informer()
	if _, err := pdbInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueue,
		UpdateFunc: func(_, cur any) { c.enqueue(cur) },
	}); err != nil {
		return nil, err
	}
	if _, err := podInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: c.podChanged,
		UpdateFunc: func(old, cur any) {
			c.podChanged(cur)
			if !labels.Equals(old.(*corev1.Pod).Labels, cur.(*corev1.Pod).Labels) {
				c.podChanged(old) // budgets that selected it before
			}
		},
		DeleteFunc: c.podChanged,
	}); err != nil {
		return nil, err
	}
	// A scale change moves expectedPods; the pods' own events do not say so.
	for _, inf := range []cache.SharedIndexInformer{cfg.ReplicaSets.Informer(), cfg.Deployments.Informer(), cfg.StatefulSets.Informer()} {
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			UpdateFunc: func(_, cur any) { c.namespaceChanged(cur) },
		}); err != nil {
			return nil, err
		}
	}
	c.loop = &controller.Loop{Name: Name, Queue: c.queue, Sync: c.sync, Log: c.log,
		Synced: []cache.InformerSynced{pdbInf.HasSynced, podInf.HasSynced, cfg.ReplicaSets.Informer().HasSynced,
			cfg.Deployments.Informer().HasSynced, cfg.StatefulSets.Informer().HasSynced}}
	return c, nil
}

// Run works until ctx ends, with workers syncing budgets in parallel.
func (c *Controller) Run(ctx context.Context, workers int) { c.loop.Run(ctx, workers) }

func (c *Controller) enqueue(obj any) {
	if key := controller.KeyOf(obj); key != "" {
		c.queue.Add(key)
	}
}

// podChanged wakes the budgets whose selector matches the pod.
func (c *Controller) podChanged(obj any) {
	pod, ok := informer.ObjectOf[*corev1.Pod](obj)
	if !ok {
		return
	}
	for _, pdb := range c.budgetsOf(pod) {
		c.enqueue(pdb)
	}
}

// namespaceChanged wakes every budget of the object's namespace.
func (c *Controller) namespaceChanged(obj any) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return
	}
	pdbs, err := c.pdbs.PodDisruptionBudgets(m.GetNamespace()).List(labels.Everything())
	if err != nil {
		return
	}
	for _, pdb := range pdbs {
		c.enqueue(pdb)
	}
}

// budgetsOf lists the budgets that cover pod.
func (c *Controller) budgetsOf(pod *corev1.Pod) []*policyv1.PodDisruptionBudget {
	pdbs, err := c.pdbs.PodDisruptionBudgets(pod.Namespace).List(labels.Everything())
	if err != nil {
		return nil
	}
	var out []*policyv1.PodDisruptionBudget
	for _, pdb := range pdbs {
		if Covers(pdb, pod) {
			out = append(out, pdb)
		}
	}
	return out
}

// Covers reports whether pdb's selector matches pod (of its namespace). In
// policy/v1 an empty selector matches every pod of the namespace and a
// missing one none.
func Covers(pdb *policyv1.PodDisruptionBudget, pod *corev1.Pod) bool {
	if pdb.Namespace != pod.Namespace || pdb.Spec.Selector == nil {
		return false
	}
	sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	return err == nil && sel.Matches(labels.Set(pod.Labels))
}

// scaleFinder reads the scale of a pod's controller, as Kubernetes'
// finders: a ReplicaSet's Deployment, a ReplicaSet, a StatefulSet.
type scaleFinder struct {
	rss     appslisters.ReplicaSetLister
	deploys appslisters.DeploymentLister
	sets    appslisters.StatefulSetLister
}
