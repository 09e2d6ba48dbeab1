package engine

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/scale"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	cmv1beta2 "k8s.io/metrics/pkg/apis/custom_metrics/v1beta2"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned"
	custommetrics "k8s.io/metrics/pkg/client/custom_metrics"
	"k8s.io/utils/clock"

	"github.com/skiffhq/skiff/internal/authz/bootstrap"
	"github.com/skiffhq/skiff/internal/bus"
	"github.com/skiffhq/skiff/internal/controllers/clusterroleaggregation"
	"github.com/skiffhq/skiff/internal/controllers/controller"
	"github.com/skiffhq/skiff/internal/controllers/cronjob"
	"github.com/skiffhq/skiff/internal/controllers/daemonset"
	"github.com/skiffhq/skiff/internal/controllers/deployment"
	"github.com/skiffhq/skiff/internal/controllers/disruption"
	"github.com/skiffhq/skiff/internal/controllers/endpoints"
	"github.com/skiffhq/skiff/internal/controllers/garbagecollector"
	"github.com/skiffhq/skiff/internal/controllers/job"
	"github.com/skiffhq/skiff/internal/controllers/namespace"
	"github.com/skiffhq/skiff/internal/controllers/podautoscaler"
	"github.com/skiffhq/skiff/internal/controllers/replicaset"
	"github.com/skiffhq/skiff/internal/controllers/resourcequota"
	"github.com/skiffhq/skiff/internal/controllers/serviceaccount"
	"github.com/skiffhq/skiff/internal/controllers/statefulset"
	"github.com/skiffhq/skiff/internal/controllers/tainteviction"
	"github.com/skiffhq/skiff/internal/controllers/volume"
	"github.com/skiffhq/skiff/internal/node/dispatch"
	"github.com/skiffhq/skiff/internal/node/lifecycle"
	"github.com/skiffhq/skiff/internal/node/servicefeed"
	"github.com/skiffhq/skiff/internal/scheduler"
)

// Tuning of the control loops. Workers per controller are few: the
// machines skiff targets have a couple of cores, and every sync is an
// in-process call.
const (
	controllerWorkers = 2
	// informerResync replays every cached object to the controllers now
	// and then, so a key dropped after its retries heals without an edit.
	informerResync = 10 * time.Minute
	// leaderCheckInterval is how often leadership is looked at, to start
	// the control loops on gaining it and stop them on losing it.
	leaderCheckInterval = time.Second
	// controllersStopTimeout bounds how long Stop waits for a sync in
	// flight; every sync's API calls end with its context anyway.
	controllersStopTimeout = 10 * time.Second
)

// startControllers runs the control loops against this member's API, on
// the raft leader only: the scheduler, the workload controllers
// (ReplicaSet, Deployment, StatefulSet, DaemonSet, Job, CronJob), the
// HorizontalPodAutoscaler controller, the
// garbage collector, the namespace controller, the endpoints controller, the local-path volume
// provisioner, the disruption controller (PodDisruptionBudget status), the
// taint-eviction controller (pods off NoExecute-tainted nodes), the quota
// controller (ResourceQuota status), the
// node lifecycle
// (registrations, pod ranges, Unknown on silence), the pod dispatcher and
// the service feed to the nodes' proxies.
// Two members doing any of these would fight (docs/rationale.md). cp is
// the control plane's bus connection.
func (e *Engine) startControllers(ctx context.Context, cp *bus.Conn) error {
	// The shared informers and the events run as
	// system:kube-controller-manager; each loop's writes as its own
	// identity (controlLoops.as).
	cfg, err := e.restConfigAsLocked(componentUser(bootstrap.ControllerManagerUser))
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("controllers clientset: %w", err)
	}
	events := e.eventBroadcasterLocked(cs)
	log := e.log.With("component", "controllers")
	e.loops = &controlLoops{client: cs, bus: cp, log: log,
		as: func(u user.Info) *rest.Config {
			c, _ := e.restConfigAsLocked(u) // e.api is set for the engine's life once started
			return c
		},
		recorder: func(component string) record.EventRecorder {
			return events.NewRecorder(scheme.Scheme, corev1.EventSource{Component: component, Host: e.cfg.NodeName})
		},
		nodes:     lifecycle.Config{GracePeriod: e.cfg.NodeGracePeriod, ClusterPodCIDR: e.cfg.ClusterPodCIDR, Logger: e.log},
		cronClock: e.cfg.cronJobClock, hpaSync: e.cfg.HPASyncPeriod, forceDeleteAfter: e.cfg.forceDeleteAfter(),
		rootCA: e.api.CAPEM()}
	e.gate = &controller.LeaderGate{
		// The seam for more than one server: today a single member is
		// always the leader; with several, only the raft leader's loops run.
		Leader:   e.store.IsLeader,
		Interval: leaderCheckInterval,
		Log:      log,
		Run:      e.loops.run,
	}
	e.stoppers = append(e.stoppers, e.gate.Start(controllersStopTimeout))
	return nil
}

// eventBroadcasterLocked is the broadcaster behind EventRecorder, for
// callers that hold e.mu.
func (e *Engine) eventBroadcasterLocked(cs kubernetes.Interface) record.EventBroadcaster {
	if e.events == nil {
		e.events = record.NewBroadcaster()
		e.events.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: cs.CoreV1().Events("")})
	}
	return e.events
}

// controlLoops is what each term of leadership builds its loops from.
type controlLoops struct {
	// client is system:kube-controller-manager's: the shared informers.
	client kubernetes.Interface
	// as is the in-process configuration of an identity: each loop's
	// client acts as the loop's own (controllerUser, componentUser).
	as       func(u user.Info) *rest.Config
	bus      *bus.Conn
	recorder func(component string) record.EventRecorder
	nodes    lifecycle.Config // Bus and Client are filled in
	log      *slog.Logger
	// cronClock is the CronJob controller's clock; nil is the real one.
	cronClock clock.Clock
	hpaSync   time.Duration
	// forceDeleteAfter is the taint-eviction controller's
	// ForceDeleteAfter (Config.forceDeleteAfter).
	forceDeleteAfter time.Duration
	// rootCA is the cluster CA the ServiceAccount controller publishes.
	rootCA []byte

	mu       sync.Mutex
	dispatch *dispatch.Dispatcher // the running term's, for tests; nil between terms
}

// run starts the informers and every loop, and blocks until ctx ends and
// all of them have stopped. Each term of leadership gets fresh informers,
// from one factory that every loop shares: a new leader must not act on
// what a previous term cached. A loop that fails ends the term with its
// error, and the gate starts a fresh one.
func (l *controlLoops) run(ctx context.Context) error {
	nodesCfg := l.nodes
	nodesCfg.Bus, nodesCfg.Client = l.bus, l.controller(bootstrap.NodeController)
	// First, and needing no cache: an agent's registration waits for it.
	nodes, err := lifecycle.Start(ctx, nodesCfg)
	if err != nil {
		return err
	}
	defer nodes.Stop()

	factory := informers.NewSharedInformerFactory(l.client, informerResync)
	pods, nodeInf := factory.Core().V1().Pods(), factory.Core().V1().Nodes()
	rss, deploys := factory.Apps().V1().ReplicaSets(), factory.Apps().V1().Deployments()
	jobs, cronJobs := factory.Batch().V1().Jobs(), factory.Batch().V1().CronJobs()
	services, endpointsInf := factory.Core().V1().Services(), factory.Core().V1().Endpoints()
	// Only the endpoints controller reads EndpointSlices, and only its own.
	slices := endpoints.ManagedSlices(factory)
	log := l.log

	claims, volumes := factory.Core().V1().PersistentVolumeClaims(), factory.Core().V1().PersistentVolumes()
	classes := factory.Storage().V1().StorageClasses()
	pdbs := factory.Policy().V1().PodDisruptionBudgets()
	sched, err := scheduler.New(scheduler.Config{Client: l.component(bootstrap.SchedulerUser), Pods: pods, Nodes: nodeInf,
		Claims: claims, Volumes: volumes, StorageClasses: classes, PodDisruptionBudgets: pdbs,
		Recorder: l.recorder(scheduler.Name), Logger: log})
	if err != nil {
		return err
	}
	rsc, err := replicaset.New(replicaset.Config{Client: l.controller(bootstrap.ReplicaSetController), Pods: pods, ReplicaSets: rss,
		Recorder: l.recorder(replicaset.Name), Logger: log})
	if err != nil {
		return err
	}
	dsc, err := daemonset.New(daemonset.Config{Client: l.controller(bootstrap.DaemonSetController), Pods: pods, Nodes: nodeInf,
		DaemonSets: factory.Apps().V1().DaemonSets(), Revisions: factory.Apps().V1().ControllerRevisions(),
		Recorder: l.recorder(daemonset.Name), Logger: log})
	if err != nil {
		return err
	}
	dc, err := deployment.New(deployment.Config{Client: l.controller(bootstrap.DeploymentController), Deployments: deploys, ReplicaSets: rss, Pods: pods,
		Recorder: l.recorder(deployment.Name), Logger: log})
	if err != nil {
		return err
	}
	jc, err := job.New(job.Config{Client: l.controller(bootstrap.JobController), Pods: pods, Jobs: jobs, Recorder: l.recorder(job.Name), Logger: log})
	if err != nil {
		return err
	}
	cjc, err := cronjob.New(cronjob.Config{Client: l.controller(bootstrap.CronJobController), CronJobs: cronJobs, Jobs: jobs,
		Recorder: l.recorder(cronjob.Name), Logger: log, Clock: l.cronClock})
	if err != nil {
		return err
	}
	ec, err := endpoints.New(endpoints.Config{Client: l.controller(bootstrap.EndpointController), Services: services, Pods: pods, Nodes: nodeInf,
		Endpoints: endpointsInf, EndpointSlices: slices, Recorder: l.recorder(endpoints.Name), Logger: log})
	if err != nil {
		return err
	}
	sc, err := statefulset.New(statefulset.Config{Client: l.controller(bootstrap.StatefulSetController), Pods: pods, StatefulSets: factory.Apps().V1().StatefulSets(),
		Revisions: factory.Apps().V1().ControllerRevisions(), Claims: claims,
		Recorder: l.recorder(statefulset.Name), Logger: log})
	if err != nil {
		return err
	}
	vc, err := volume.New(volume.Config{Client: l.controller(bootstrap.PersistentVolumeBinder), Claims: claims, Volumes: volumes, Nodes: nodeInf,
		StorageClasses: classes, Recorder: l.recorder(volume.Name), Logger: log})
	if err != nil {
		return err
	}
	pdbc, err := disruption.New(disruption.Config{Client: l.controller(bootstrap.DisruptionController), Pods: pods, PDBs: pdbs, ReplicaSets: rss,
		Deployments: deploys, StatefulSets: factory.Apps().V1().StatefulSets(),
		Recorder: l.recorder(disruption.Name), Logger: log})
	if err != nil {
		return err
	}
	tec, err := tainteviction.New(tainteviction.Config{Client: l.controller(bootstrap.TaintEvictionController), Pods: pods, Nodes: nodeInf,
		Recorder: l.recorder(tainteviction.Name), ForceDeleteAfter: l.forceDeleteAfter, Logger: log})
	if err != nil {
		return err
	}
	hpac, err := l.podAutoscaler(factory)
	if err != nil {
		return err
	}
	nsc, err := namespace.New(namespace.Config{Client: l.controller(bootstrap.NamespaceController),
		Dynamic:    dynamic.NewForConfigOrDie(l.as(controllerUser(bootstrap.NamespaceController))),
		Namespaces: factory.Core().V1().Namespaces(), Pods: pods, Logger: log})
	if err != nil {
		return err
	}
	sac, err := serviceaccount.New(serviceaccount.Config{Client: l.controller(bootstrap.ServiceAccountController), Namespaces: factory.Core().V1().Namespaces(),
		RootCA: l.rootCA, Resync: informerResync, Logger: log})
	if err != nil {
		return err
	}
	gc, err := l.garbageCollector()
	if err != nil {
		return err
	}
	rqc, err := resourcequota.New(resourcequota.Config{Client: l.controller(bootstrap.ResourceQuotaController),
		Dynamic:        dynamic.NewForConfigOrDie(l.as(controllerUser(bootstrap.ResourceQuotaController))),
		Mapper:         restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(l.client.Discovery())),
		ResourceQuotas: factory.Core().V1().ResourceQuotas(), Pods: pods, Services: services, Claims: claims,
		// Informers the other loops keep anyway: no extra cache.
		Counted: []cache.SharedIndexInformer{deploys.Informer(), rss.Informer(), jobs.Informer(), cronJobs.Informer(),
			factory.Apps().V1().StatefulSets().Informer(), factory.Apps().V1().DaemonSets().Informer()},
		Logger: log})
	crac, err := clusterroleaggregation.New(clusterroleaggregation.Config{
		Client: l.controller(bootstrap.ClusterRoleAggregator), ClusterRoles: factory.Rbac().V1().ClusterRoles(), Logger: log})
	if err != nil {
		return err
	}
	disp, err := dispatch.New(dispatch.Config{Bus: l.bus, Pods: pods, Logger: log})
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.dispatch = disp
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.dispatch = nil
		l.mu.Unlock()
	}()

	runCtx, fail := context.WithCancelCause(ctx)
	defer fail(nil)
	factory.Start(runCtx.Done())
	var wg sync.WaitGroup
	for _, run := range []func(context.Context) error{
		func(ctx context.Context) error { sched.Run(ctx); return nil },
		func(ctx context.Context) error { rsc.Run(ctx, controllerWorkers); return nil },
		func(ctx context.Context) error { dc.Run(ctx, controllerWorkers); return nil },
		func(ctx context.Context) error { jc.Run(ctx, controllerWorkers); return nil },
		func(ctx context.Context) error { cjc.Run(ctx, controllerWorkers); return nil },
		func(ctx context.Context) error { dsc.Run(ctx, controllerWorkers); return nil },
		func(ctx context.Context) error { gc.Run(ctx, controllerWorkers); return nil },
		func(ctx context.Context) error { nsc.Run(ctx, controllerWorkers); return nil },
		func(ctx context.Context) error { sac.Run(ctx, controllerWorkers); return nil },
		func(ctx context.Context) error { ec.Run(ctx, controllerWorkers); return nil },
		func(ctx context.Context) error { sc.Run(ctx, controllerWorkers); return nil },
		func(ctx context.Context) error { vc.Run(ctx, 1); return nil },
		func(ctx context.Context) error { pdbc.Run(ctx, controllerWorkers); return nil },
		func(ctx context.Context) error { tec.Run(ctx, controllerWorkers); return nil },
		func(ctx context.Context) error { hpac.Run(ctx, controllerWorkers); return nil },
		func(ctx context.Context) error { rqc.Run(ctx, controllerWorkers); return nil },
		func(ctx context.Context) error { crac.Run(ctx, 1); return nil },
		disp.Run,
		// Every node's Service proxy follows this feed. It keeps
		// informers of its own: it needs every EndpointSlice, where the
		// term's factory holds only the endpoints controller's own.
		func(ctx context.Context) error {
			p, err := servicefeed.StartPublisher(ctx, servicefeed.PublisherConfig{Bus: l.bus, Client: l.component(bootstrap.KubeProxyUser), Logger: log})
			if err != nil {
				return err
			}
			<-ctx.Done()
			p.Stop()
			return nil
		},
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(runCtx); err != nil {
				fail(err)
			}
		}()
	}
	log.Info("control loops running")
	wg.Wait()
	factory.Shutdown()
	if ctx.Err() == nil {
		return context.Cause(runCtx) // a loop failed
	}
	return nil
}

// garbageCollector builds the term's garbage collector over every resource
// the API serves (its own informers, cut down to metadata), or over the
// built-in workload and configuration resources if discovery fails.
func (l *controlLoops) garbageCollector() (*garbagecollector.Collector, error) {
	cfg := l.as(controllerUser(bootstrap.GarbageCollector))
	res, err := garbagecollector.DiscoverResources(l.client.Discovery())
	if err != nil {
		l.log.Warn("garbage collector: discovery failed, watching the built-in resources only", "err", err)
		res = garbagecollector.DefaultResources
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(l.client.Discovery()))
	return garbagecollector.New(garbagecollector.Config{Client: dynamic.NewForConfigOrDie(cfg), Resources: res, Mapper: mapper,
		Resync: informerResync, Logger: l.log,
		// Custom resources defined later are watched too.
		Discover: func() ([]garbagecollector.Resource, error) {
			return garbagecollector.DiscoverResources(l.client.Discovery())
		}})
}

// podAutoscaler builds the term's HorizontalPodAutoscaler controller. It
// reads metrics only through the metrics APIs' client-go clients, so it
// works with whatever serves metrics.k8s.io and custom.metrics.k8s.io
// (v1beta2, fixed: discovery would pin the version at a moment the API
// may not be served yet); until they are served, HPAs report
// ScalingActive False and scale nothing.
func (l *controlLoops) podAutoscaler(factory informers.SharedInformerFactory) (*podautoscaler.Controller, error) {
	cfg := l.as(controllerUser(bootstrap.HPAController))
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(l.client.Discovery()))
	scales, err := scale.NewForConfig(cfg, mapper, dynamic.LegacyAPIPathResolverFunc,
		scale.NewDiscoveryScaleKindResolver(l.client.Discovery()))
	if err != nil {
		return nil, fmt.Errorf("autoscaler scale client: %w", err)
	}
	resourceMetrics, err := metricsclient.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("autoscaler resource metrics client: %w", err)
	}
	customMetrics, err := custommetrics.NewForVersionForConfig(rest.CopyConfig(cfg), mapper, cmv1beta2.SchemeGroupVersion)
	if err != nil {
		return nil, fmt.Errorf("autoscaler custom metrics client: %w", err)
	}
	return podautoscaler.New(podautoscaler.Config{Client: kubernetes.NewForConfigOrDie(cfg),
		HPAs: factory.Autoscaling().V2().HorizontalPodAutoscalers(), Pods: factory.Core().V1().Pods(),
		Scales: scales, Mapper: mapper, ResourceMetrics: resourceMetrics.MetricsV1beta1(), CustomMetrics: customMetrics,
		Recorder: l.recorder(podautoscaler.Name), Logger: l.log, SyncPeriod: l.hpaSync})
}

// controller is a clientset acting as the controller's service account.
func (l *controlLoops) controller(name string) kubernetes.Interface {
	return kubernetes.NewForConfigOrDie(l.as(controllerUser(name)))
}

// component is a clientset acting as a control-plane component's user.
func (l *controlLoops) component(name string) kubernetes.Interface {
	return kubernetes.NewForConfigOrDie(l.as(componentUser(name)))
}

// dispatcher is the running term's pod dispatcher, or nil between terms.
func (l *controlLoops) dispatcher() *dispatch.Dispatcher {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dispatch
}
