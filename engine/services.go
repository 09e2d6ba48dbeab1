package engine

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/skiffhq/skiff/internal/controllers/controller"
	"github.com/skiffhq/skiff/internal/controllers/endpoints"
	"github.com/skiffhq/skiff/internal/netpol/proxy"
)

// startServices runs what makes Services reachable: the endpoints
// controller (EndpointSlices and Endpoints from pods), a control-plane loop
// that runs on the raft leader only, like the other controllers; and this
// node's userspace Service proxy, unprivileged mode's load balancer, which
// every node runs. Node ports listen on 127.0.0.1, the node address the
// agent registers.
func (e *Engine) startServices(ctx context.Context) error {
	cfg, err := e.restConfigLocked()
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("services clientset: %w", err)
	}
	recorder := e.eventBroadcasterLocked(cs).NewRecorder(scheme.Scheme,
		corev1.EventSource{Component: endpoints.Name, Host: e.cfg.NodeName})
	log := e.log.With("component", "endpoints")
	g := &controller.LeaderGate{Leader: e.store.IsLeader, Interval: leaderCheckInterval, Log: log,
		Run: func(ctx context.Context) error {
			ctrl, err := endpoints.Start(ctx, endpoints.Config{Client: cs, Recorder: recorder, Logger: e.log})
			if err != nil {
				return err
			}
			<-ctx.Done()
			ctrl.Stop()
			return nil
		}}
	e.stoppers = append(e.stoppers, g.Start(controllersStopTimeout))

	px, err := proxy.Start(ctx, proxy.Config{Client: cs, NodeName: e.cfg.NodeName, Logger: e.log})
	if err != nil {
		return err
	}
	e.stoppers = append(e.stoppers, px.Stop)
	return nil
}
