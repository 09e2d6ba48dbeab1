package engine

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/skiffhq/skiff/internal/netpol/proxy"
	"github.com/skiffhq/skiff/internal/node/servicefeed"
)

// startServices runs this node's userspace Service proxy, unprivileged
// mode's load balancer, which every node runs, fed over the bus like a
// worker's. Node ports listen on 127.0.0.1, the node address the agent
// registers. What feeds it — the endpoints controller and the service feed
// publisher — are control loops of the raft leader (startControllers).
func (e *Engine) startServices(ctx context.Context) error {
	if e.cfg.DisableServiceProxy {
		return nil
	}
	// The proxy is node-side, as on a worker: the node identity.
	conn, err := e.bus.ConnectNode(ctx, "service-proxy-"+e.cfg.NodeName)
	if err != nil {
		return fmt.Errorf("service proxy bus connection: %w", err)
	}
	e.stoppers = append(e.stoppers, conn.Close)
	sub, err := servicefeed.Subscribe(ctx, conn, e.log)
	if err != nil {
		return err
	}
	stop, err := startServiceProxy(sub, e.cfg.NodeName, e.log)
	if err != nil {
		sub.Stop()
		return err
	}
	e.stoppers = append(e.stoppers, func() {
		stop()
		sub.Stop()
	})
	return nil
}

// startServiceProxy runs a node's Service proxy, fed by sub, the control
// plane's service feed: a node needs no API access to serve ClusterIPs and
// NodePorts, so a worker runs the same proxy as a server. The caller stops
// sub after stop.
func startServiceProxy(sub *servicefeed.Subscriber, node string, log *slog.Logger) (stop func(), err error) {
	svcs, err := sub.ListerWatcher(servicefeed.Services)
	if err != nil {
		return nil, err
	}
	slices, err := sub.ListerWatcher(servicefeed.EndpointSlices)
	if err != nil {
		return nil, err
	}
	px, err := proxy.Start(proxy.Config{Services: svcs, EndpointSlices: slices, NodeName: node, Logger: log})
	if err != nil {
		return nil, err
	}
	return px.Stop, nil
}
