package engine

import (
	"context"
	"fmt"
	"log/slog"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/skiffhq/skiff/internal/bus"
	"github.com/skiffhq/skiff/internal/controllers/controller"
	"github.com/skiffhq/skiff/internal/controllers/endpoints"
	"github.com/skiffhq/skiff/internal/netpol/proxy"
	"github.com/skiffhq/skiff/internal/node/servicefeed"
)

// startServices runs what makes Services reachable: the endpoints
// controller (EndpointSlices and Endpoints from pods) and the service feed
// that carries Services and EndpointSlices to every node over the bus,
// both control-plane loops on the raft leader only; and this node's
// userspace Service proxy, unprivileged mode's load balancer, fed over the
// bus like a worker's. Node ports listen on 127.0.0.1, the node address the
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

	feedConn, err := e.bus.Connect(ctx, "servicefeed")
	if err != nil {
		return fmt.Errorf("service feed bus connection: %w", err)
	}
	e.stoppers = append(e.stoppers, feedConn.Close)
	feed := &controller.LeaderGate{Leader: e.store.IsLeader, Interval: leaderCheckInterval, Log: e.log,
		// One publisher per cluster: two would interleave their epochs
		// and keep every node listing again.
		Run: func(ctx context.Context) error {
			p, err := servicefeed.StartPublisher(ctx, servicefeed.PublisherConfig{Bus: feedConn, Client: cs, Logger: e.log})
			if err != nil {
				return err
			}
			<-ctx.Done()
			p.Stop()
			return nil
		}}
	e.stoppers = append(e.stoppers, feed.Start(controllersStopTimeout))

	if e.cfg.DisableServiceProxy {
		return nil
	}
	// The proxy is node-side, as on a worker: the node identity.
	proxyConn, err := e.bus.ConnectNode(ctx, "service-proxy-"+e.cfg.NodeName)
	if err != nil {
		return fmt.Errorf("service proxy bus connection: %w", err)
	}
	e.stoppers = append(e.stoppers, proxyConn.Close)
	stop, err := startServiceProxy(ctx, proxyConn, e.cfg.NodeName, e.log)
	if err != nil {
		return err
	}
	e.stoppers = append(e.stoppers, stop)
	return nil
}

// startServiceProxy runs a node's Service proxy, fed over conn by the
// control plane's service feed: a node needs no API access to serve
// ClusterIPs and NodePorts, so a worker runs the same proxy as a server.
func startServiceProxy(ctx context.Context, conn *bus.Conn, node string, log *slog.Logger) (stop func(), err error) {
	sub, err := servicefeed.Subscribe(ctx, conn, log)
	if err != nil {
		return nil, err
	}
	svcs, err := sub.ListerWatcher(servicefeed.Services)
	if err != nil {
		sub.Stop()
		return nil, err
	}
	slices, err := sub.ListerWatcher(servicefeed.EndpointSlices)
	if err != nil {
		sub.Stop()
		return nil, err
	}
	px, err := proxy.Start(proxy.Config{Services: svcs, EndpointSlices: slices, NodeName: node, Logger: log})
	if err != nil {
		sub.Stop()
		return nil, err
	}
	return func() {
		px.Stop()
		sub.Stop()
	}, nil
}
