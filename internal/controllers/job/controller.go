// Package job is skiff's Job controller (batch/v1), in the shape of
// Kubernetes' job controller: it runs a Job's pods to completion, up to
// spec.parallelism at once, until spec.completions succeeded (NonIndexed),
// or one pod per completion index succeeded (Indexed), and fails the Job
// when its pods failed more than spec.backoffLimit times, when it ran
// longer than spec.activeDeadlineSeconds, or when spec.podFailurePolicy
// says so. A suspended Job's pods are deleted; a finished Job is deleted
// spec.ttlSecondsAfterFinished after it finished.
//
// Failed and succeeded pods are counted from the pods that still exist,
// as Kubernetes did before the batch.kubernetes.io/job-tracking finalizer
// (status.uncountedTerminatedPods stays empty): a finished pod deleted by
// hand before its Job finished is forgotten.
package job

import (
	"context"
	"errors"
	"log/slog"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	batchinformers "k8s.io/client-go/informers/batch/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"

	"github.com/skiffhq/skiff/internal/controllers/controller"
)

// Name is the controller's name, as its events' source.
const Name = "job-controller"

// The labels and annotation Kubernetes puts on a Job's pods.
const (
	// CompletionIndexAnnotation holds an Indexed Job pod's index; the
	// JOB_COMPLETION_INDEX variable reads it through the downward API.
	CompletionIndexAnnotation = "batch.kubernetes.io/job-completion-index"
	// CompletionIndexLabel holds the index too, to select by.
	CompletionIndexLabel = "batch.kubernetes.io/job-completion-index"
	// CompletionIndexEnv is the variable every container of an Indexed
	// Job's pod gets.
	CompletionIndexEnv = "JOB_COMPLETION_INDEX"
)

var kind = batchv1.SchemeGroupVersion.WithKind("Job")

// Config of a controller.
type Config struct {
	Client   kubernetes.Interface       // required
	Pods     coreinformers.PodInformer  // required
	Jobs     batchinformers.JobInformer // required
	Recorder record.EventRecorder       // required
	Logger   *slog.Logger               // default slog.Default()
	// Clock is read for startTime, deadlines and time-to-live; default
	// the real one.
	Clock clock.Clock
}

// Controller is a Job controller.
type Controller struct {
	client   kubernetes.Interface
	jobs     batchlisters.JobLister
	pods     corelisters.PodLister
	recorder record.EventRecorder
	log      *slog.Logger
	clock    clock.Clock
	queue    workqueue.TypedRateLimitingInterface[string]
	expect   *controller.Expectations
	// podEvents turns pod events into Job keys.
	podEvents cache.ResourceEventHandlerFuncs
	loop      *controller.Loop
}

// New registers the controller's handlers on the informers, which the
// caller starts.
func New(cfg Config) (*Controller, error) {
	if cfg.Client == nil || cfg.Pods == nil || cfg.Jobs == nil || cfg.Recorder == nil {
		return nil, errors.New("job: Client, Pods, Jobs and Recorder are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	c := &Controller{
		client: cfg.Client, jobs: cfg.Jobs.Lister(), pods: cfg.Pods.Lister(), recorder: cfg.Recorder,
		log: cfg.Logger.With("controller", Name), clock: cfg.Clock, queue: controller.NewQueue("job"),
		expect: controller.NewExpectations(),
	}
	jobInf, podInf := cfg.Jobs.Informer(), cfg.Pods.Informer()
	if _, err := jobInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueue,
		UpdateFunc: func(_, cur any) { c.enqueue(cur) },
		DeleteFunc: func(obj any) {
			if key := controller.KeyOf(obj); key != "" {
				c.expect.Delete(key)
			}
		},
	}); err != nil {
		return nil, err
	}
	pods := &controller.PodOwnerHandler[*batchv1.Job]{Kind: kind, Queue: c.queue, Expectations: c.expect,
		Get:      func(ns, name string) (*batchv1.Job, error) { return c.jobs.Jobs(ns).Get(name) },
		List:     func(ns string) ([]*batchv1.Job, error) { return c.jobs.Jobs(ns).List(labels.Everything()) },
		Selector: func(j *batchv1.Job) *metav1.LabelSelector { return j.Spec.Selector }}
	c.podEvents = pods.Funcs()
	if _, err := podInf.AddEventHandler(c.podEvents); err != nil {
		return nil, err
	}
	c.loop = &controller.Loop{Name: Name, Queue: c.queue, Sync: c.sync, Log: c.log,
		Synced: []cache.InformerSynced{jobInf.HasSynced, podInf.HasSynced}}
	return c, nil
}

// Run works until ctx ends, with workers syncing Jobs in parallel.
func (c *Controller) Run(ctx context.Context, workers int) { c.loop.Run(ctx, workers) }

func (c *Controller) enqueue(obj any) {
	if key := controller.KeyOf(obj); key != "" {
		c.queue.Add(key)
	}
}
