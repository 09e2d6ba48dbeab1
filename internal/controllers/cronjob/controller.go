// Package cronjob is skiff's CronJob controller (batch/v1), in the shape of
// Kubernetes' cronjob controller (v2): at each time spec.schedule names,
// in spec.timeZone, it creates a Job from spec.jobTemplate named
// <cronjob>-<scheduled minutes since the epoch>, unless the time is more
// than spec.startingDeadlineSeconds past or spec.concurrencyPolicy forbids
// it (Forbid skips while a Job runs, Replace deletes the running ones
// first); it keeps status.active, lastScheduleTime and lastSuccessfulTime,
// and deletes finished Jobs beyond successfulJobsHistoryLimit and
// failedJobsHistoryLimit, oldest first.
//
// Schedules are read with github.com/robfig/cron/v3's ParseStandard, as
// the API server validates them and as Kubernetes schedules them.
package cronjob

import (
	"context"
	"errors"
	"log/slog"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	batchinformers "k8s.io/client-go/informers/batch/v1"
	"k8s.io/client-go/kubernetes"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"

	"github.com/skiffhq/skiff/internal/controllers/controller"
	"github.com/skiffhq/skiff/internal/informer"
)

// Name is the controller's name, as its events' source.
const Name = "cronjob-controller"

var kind = batchv1.SchemeGroupVersion.WithKind("CronJob")

// Config of a controller.
type Config struct {
	Client   kubernetes.Interface           // required
	CronJobs batchinformers.CronJobInformer // required
	Jobs     batchinformers.JobInformer     // required
	Recorder record.EventRecorder           // required
	Logger   *slog.Logger                   // default slog.Default()
	// Clock says what time it is, against the schedules; default the real
	// one. The delays until the next schedule are waited in real time, so
	// a clock other than the real one should run at its pace.
	Clock clock.Clock
}

// Controller is a CronJob controller.
type Controller struct {
	client   kubernetes.Interface
	cronJobs batchlisters.CronJobLister
	jobs     batchlisters.JobLister
	recorder record.EventRecorder
	log      *slog.Logger
	clock    clock.Clock
	queue    workqueue.TypedRateLimitingInterface[string]
	loop     *controller.Loop
}

// New registers the controller's handlers on the informers, which the
// caller starts.
func New(cfg Config) (*Controller, error) {
	if cfg.Client == nil || cfg.CronJobs == nil || cfg.Jobs == nil || cfg.Recorder == nil {
		return nil, errors.New("cronjob: Client, CronJobs, Jobs and Recorder are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	c := &Controller{
		client: cfg.Client, cronJobs: cfg.CronJobs.Lister(), jobs: cfg.Jobs.Lister(), recorder: cfg.Recorder,
		log: cfg.Logger.With("controller", Name), clock: cfg.Clock, queue: controller.NewQueue("cronjob"),
	}
	cjInf, jobInf := cfg.CronJobs.Informer(), cfg.Jobs.Informer()
	if _, err := cjInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueue,
		UpdateFunc: func(_, cur any) { c.enqueue(cur) },
	}); err != nil {
		return nil, err
	}
	if _, err := jobInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: c.jobChanged,
		UpdateFunc: func(old, cur any) {
			c.jobChanged(cur)
			if o, n := metav1.GetControllerOf(old.(*batchv1.Job)), metav1.GetControllerOf(cur.(*batchv1.Job)); o != nil && (n == nil || o.UID != n.UID) {
				c.jobChanged(old)
			}
		},
		DeleteFunc: c.jobChanged,
	}); err != nil {
		return nil, err
	}
	c.loop = &controller.Loop{Name: Name, Queue: c.queue, Sync: c.sync, Log: c.log,
		Synced: []cache.InformerSynced{cjInf.HasSynced, jobInf.HasSynced}}
	return c, nil
}

// Run works until ctx ends, with workers syncing CronJobs in parallel.
func (c *Controller) Run(ctx context.Context, workers int) { c.loop.Run(ctx, workers) }

func (c *Controller) enqueue(obj any) {
	if key := controller.KeyOf(obj); key != "" {
		c.queue.Add(key)
	}
}

// jobChanged wakes the CronJob that controls a Job.
func (c *Controller) jobChanged(obj any) {
	j, ok := informer.ObjectOf[*batchv1.Job](obj)
	if !ok {
		return
	}
	if cj, ok := controller.Resolve(metav1.GetControllerOf(j), kind, c.cronJobs.CronJobs(j.Namespace).Get); ok {
		c.enqueue(cj)
	}
}
