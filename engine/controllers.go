package engine

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"

	"github.com/skiffhq/skiff/internal/controllers/controller"
	"github.com/skiffhq/skiff/internal/controllers/deployment"
	"github.com/skiffhq/skiff/internal/controllers/endpoints"
	"github.com/skiffhq/skiff/internal/controllers/replicaset"
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

// startControllers runs the scheduler, the workload controllers
// (ReplicaSet, Deployment) and the endpoints controller against this
// member's API, on the raft leader only: two members acting on the same
// objects would fight.
func (e *Engine) startControllers(ctx context.Context) error {
	cfg, err := e.restConfigLocked()
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("controllers clientset: %w", err)
	}
	events := e.eventBroadcasterLocked(cs)
	recorder := func(component string) record.EventRecorder {
		return events.NewRecorder(scheme.Scheme, corev1.EventSource{Component: component, Host: e.cfg.NodeName})
	}
	log := e.log.With("component", "controllers")
	g := &controller.LeaderGate{
		// The seam for more than one server: today a single member is
		// always the leader; with several, only the raft leader's loops run.
		Leader:   e.store.IsLeader,
		Interval: leaderCheckInterval,
		Log:      log,
		Run: func(ctx context.Context) error {
			return runControlLoops(ctx, cs, recorder, log)
		},
	}
	e.stoppers = append(e.stoppers, g.Start(controllersStopTimeout))
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

// runControlLoops starts the informers, the scheduler and the controllers,
// and blocks until ctx ends and all of them have stopped. Each term of
// leadership gets fresh informers, from one factory that every loop
// shares: a new leader must not act on what a previous term cached.
func runControlLoops(ctx context.Context, cs kubernetes.Interface, recorder func(string) record.EventRecorder, log *slog.Logger) error {
	factory := informers.NewSharedInformerFactory(cs, informerResync)
	pods, nodes := factory.Core().V1().Pods(), factory.Core().V1().Nodes()
	rss, deploys := factory.Apps().V1().ReplicaSets(), factory.Apps().V1().Deployments()
	services, endpointsInf := factory.Core().V1().Services(), factory.Core().V1().Endpoints()
	// Only the endpoints controller reads EndpointSlices, and only its own.
	slices := endpoints.ManagedSlices(factory)

	sched, err := scheduler.New(scheduler.Config{Client: cs, Pods: pods, Nodes: nodes,
		Recorder: recorder(scheduler.Name), Logger: log})
	if err != nil {
		return err
	}
	rsc, err := replicaset.New(replicaset.Config{Client: cs, Pods: pods, ReplicaSets: rss,
		Recorder: recorder(replicaset.Name), Logger: log})
	if err != nil {
		return err
	}
	dc, err := deployment.New(deployment.Config{Client: cs, Deployments: deploys, ReplicaSets: rss, Pods: pods,
		Recorder: recorder(deployment.Name), Logger: log})
	if err != nil {
		return err
	}
	ec, err := endpoints.New(endpoints.Config{Client: cs, Services: services, Pods: pods, Nodes: nodes,
		Endpoints: endpointsInf, EndpointSlices: slices, Recorder: recorder(endpoints.Name), Logger: log})
	if err != nil {
		return err
	}
	factory.Start(ctx.Done())
	var wg sync.WaitGroup
	for _, run := range []func(){
		func() { sched.Run(ctx) },
		func() { rsc.Run(ctx, controllerWorkers) },
		func() { dc.Run(ctx, controllerWorkers) },
		func() { ec.Run(ctx, controllerWorkers) },
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			run()
		}()
	}
	log.Info("scheduler and controllers running")
	wg.Wait()
	factory.Shutdown()
	return nil
}
