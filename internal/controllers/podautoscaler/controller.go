// Package podautoscaler is skiff's HorizontalPodAutoscaler controller
// (autoscaling/v2), in the shape of Kubernetes' podautoscaler controller:
// every sync period it reads each HPA's target through the scale
// subresource, asks the metrics APIs (metrics.k8s.io for Resource and
// ContainerResource metrics, custom.metrics.k8s.io for Pods metrics)
// through their client-go clients, proposes a replica count per metric
// with Kubernetes' replica calculator and takes the largest, stabilizes
// and rate-limits it by spec.behavior, writes it to the scale subresource,
// and reports status and conditions with Kubernetes' reasons.
//
// Object and External metrics are not computed: such a metric reports
// ScalingActive False (docs/rationale.md).
package podautoscaler

import (
	"context"
	"errors"
	"log/slog"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/api/meta"
	autoscalinginformers "k8s.io/client-go/informers/autoscaling/v2"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	autoscalinglisters "k8s.io/client-go/listers/autoscaling/v2"
	"k8s.io/client-go/scale"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	resourceclient "k8s.io/metrics/pkg/client/clientset/versioned/typed/metrics/v1beta1"
	customclient "k8s.io/metrics/pkg/client/custom_metrics"
	"k8s.io/utils/clock"

	"github.com/skiffhq/skiff/internal/controllers/controller"
	"github.com/skiffhq/skiff/internal/informer"
)

// Name is the controller's name, as its events' source.
const Name = "horizontal-pod-autoscaler"

// DefaultSyncPeriod is how often every HPA is evaluated: Kubernetes'
// --horizontal-pod-autoscaler-sync-period.
const DefaultSyncPeriod = 15 * time.Second

// Config of a controller.
type Config struct {
	Client kubernetes.Interface                                 // required: HPA status
	HPAs   autoscalinginformers.HorizontalPodAutoscalerInformer // required
	Pods   coreinformers.PodInformer                            // required
	// Scales reads and writes targets' scale subresource; Mapper finds the
	// resource of a scaleTargetRef's kind. Both required.
	Scales scale.ScalesGetter
	Mapper meta.RESTMapper
	// ResourceMetrics serves metrics.k8s.io PodMetrics; CustomMetrics
	// custom.metrics.k8s.io. Either may be nil: metrics of that API then
	// fail as an unreachable API would.
	ResourceMetrics resourceclient.PodMetricsesGetter
	CustomMetrics   customclient.CustomMetricsClient
	Recorder        record.EventRecorder // required
	Logger          *slog.Logger         // default slog.Default()

	// SyncPeriod is how often each HPA is evaluated; default
	// DefaultSyncPeriod.
	SyncPeriod time.Duration
	// Tolerance, CPUInitializationPeriod and InitialReadinessDelay tune
	// the calculator; defaults DefaultTolerance,
	// DefaultCPUInitializationPeriod, DefaultInitialReadinessDelay.
	Tolerance               float64
	CPUInitializationPeriod time.Duration
	InitialReadinessDelay   time.Duration
	// Clock dates recommendations, scale events and lastScaleTime; default
	// the real one.
	Clock clock.PassiveClock
}

// Controller is a HorizontalPodAutoscaler controller.
type Controller struct {
	client   kubernetes.Interface
	hpas     autoscalinglisters.HorizontalPodAutoscalerLister
	scales   scale.ScalesGetter
	mapper   meta.RESTMapper
	calc     *calculator
	history  *history
	recorder record.EventRecorder
	log      *slog.Logger
	clock    clock.PassiveClock
	period   time.Duration
	queue    workqueue.TypedRateLimitingInterface[string]
	loop     *controller.Loop
}

// New registers the controller's handlers on the informers, which the
// caller starts.
func New(cfg Config) (*Controller, error) {
	if cfg.Client == nil || cfg.HPAs == nil || cfg.Pods == nil || cfg.Scales == nil || cfg.Mapper == nil || cfg.Recorder == nil {
		return nil, errors.New("podautoscaler: Client, HPAs, Pods, Scales, Mapper and Recorder are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.SyncPeriod <= 0 {
		cfg.SyncPeriod = DefaultSyncPeriod
	}
	if cfg.Tolerance <= 0 {
		cfg.Tolerance = DefaultTolerance
	}
	if cfg.CPUInitializationPeriod <= 0 {
		cfg.CPUInitializationPeriod = DefaultCPUInitializationPeriod
	}
	if cfg.InitialReadinessDelay <= 0 {
		cfg.InitialReadinessDelay = DefaultInitialReadinessDelay
	}
	c := &Controller{
		client: cfg.Client, hpas: cfg.HPAs.Lister(), scales: cfg.Scales, mapper: cfg.Mapper,
		calc: &calculator{metrics: &metricsSource{resource: cfg.ResourceMetrics, custom: cfg.CustomMetrics},
			pods: cfg.Pods.Lister(), clock: cfg.Clock, tolerance: cfg.Tolerance,
			cpuInitialization: cfg.CPUInitializationPeriod, initialReadinessDly: cfg.InitialReadinessDelay},
		history: newHistory(cfg.Clock), recorder: cfg.Recorder, log: cfg.Logger.With("controller", Name),
		clock: cfg.Clock, period: cfg.SyncPeriod, queue: controller.NewQueue("horizontalpodautoscaler"),
	}
	hpaInf, podInf := cfg.HPAs.Informer(), cfg.Pods.Informer()
	if _, err := hpaInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: c.enqueue,
		// Only a spec change is worth a sync before the period: the
		// controller's own status writes would otherwise sync it again.
		UpdateFunc: func(old, cur any) {
			o, n := old.(*autoscalingv2.HorizontalPodAutoscaler), cur.(*autoscalingv2.HorizontalPodAutoscaler)
			if o.Generation != n.Generation {
				c.enqueue(cur)
			}
		},
		DeleteFunc: c.deleted,
	}); err != nil {
		return nil, err
	}
	c.loop = &controller.Loop{Name: Name, Queue: c.queue, Sync: c.sync, Log: c.log,
		Synced: []cache.InformerSynced{hpaInf.HasSynced, podInf.HasSynced}}
	return c, nil
}

// Run works until ctx ends, with workers syncing HPAs in parallel.
func (c *Controller) Run(ctx context.Context, workers int) { c.loop.Run(ctx, workers) }

func (c *Controller) enqueue(obj any) {
	if key := controller.KeyOf(obj); key != "" {
		c.queue.Add(key)
	}
}

func (c *Controller) deleted(obj any) {
	if _, ok := informer.ObjectOf[*autoscalingv2.HorizontalPodAutoscaler](obj); !ok {
		return
	}
	if key := controller.KeyOf(obj); key != "" {
		c.history.forget(key)
	}
}
