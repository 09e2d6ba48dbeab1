package engine

import (
	"context"
	"fmt"

	"k8s.io/client-go/kubernetes"

	"github.com/skiffhq/skiff/internal/netpol/proxy"
)

// startServices runs this node's userspace Service proxy, unprivileged
// mode's load balancer, which every node runs. Node ports listen on
// 127.0.0.1, the node address the agent registers. The endpoints
// controller the proxy reads from is a control loop of the raft leader
// (startControllers).
func (e *Engine) startServices(ctx context.Context) error {
	cfg, err := e.restConfigLocked()
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("services clientset: %w", err)
	}
	px, err := proxy.Start(ctx, proxy.Config{Client: cs, NodeName: e.cfg.NodeName, Logger: e.log})
	if err != nil {
		return err
	}
	e.stoppers = append(e.stoppers, px.Stop)
	return nil
}
