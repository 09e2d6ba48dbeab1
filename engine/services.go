package engine

import (
	"context"
	"fmt"

	"k8s.io/client-go/kubernetes"

	"github.com/skiffhq/skiff/engine/endpoints"
	"github.com/skiffhq/skiff/netpol/proxy"
)

// startServices runs what makes Services reachable on this node: the
// endpoints controller (EndpointSlices and Endpoints from pods) and the
// userspace Service proxy, unprivileged mode's load balancer. The
// controller is a control-plane component and the proxy a node one; in a
// single-node engine both run here. The proxy's node port address is
// 127.0.0.1, the node address the agent registers.
func (e *Engine) startServices(ctx context.Context) error {
	cfg, err := e.restConfigLocked()
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("services clientset: %w", err)
	}
	ctrl, err := endpoints.Start(ctx, endpoints.Config{Client: cs, Logger: e.log})
	if err != nil {
		return err
	}
	e.stoppers = append(e.stoppers, ctrl.Stop)
	px, err := proxy.Start(ctx, proxy.Config{Client: cs, NodeName: e.cfg.NodeName, Logger: e.log})
	if err != nil {
		return err
	}
	e.stoppers = append(e.stoppers, px.Stop)
	return nil
}
