package engine

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/skiffhq/skiff/internal/bus"
	"github.com/skiffhq/skiff/internal/netpol/policy"
	"github.com/skiffhq/skiff/internal/netpol/proxy"
	"github.com/skiffhq/skiff/internal/node/servicefeed"
	skiffrt "github.com/skiffhq/skiff/runtime"
)

// startNetwork runs this node's networking that follows the cluster over
// the bus, as a worker's does: the userspace Service proxy, unprivileged
// mode's load balancer (unless DisableServiceProxy), and the network policy
// evaluator, whose firewalls the node agent hands to its Wasm containers.
// Node ports listen on 127.0.0.1, the node address the agent registers.
// What feeds them — the endpoints controller and the service feed
// publisher — are control loops of the raft leader (startControllers). It
// runs before the agent, which needs the evaluator for its first pods.
func (e *Engine) startNetwork(ctx context.Context) error {
	// Node-side, as on a worker: the node identity.
	conn, err := e.bus.ConnectNode(ctx, "network-"+e.cfg.NodeName)
	if err != nil {
		return fmt.Errorf("node network bus connection: %w", err)
	}
	e.stoppers = append(e.stoppers, conn.Close)
	n, err := startNodeNetwork(ctx, conn, e.cfg.NodeName, !e.cfg.DisableServiceProxy, e.log)
	if err != nil {
		return err
	}
	e.stoppers = append(e.stoppers, n.stop)
	e.network = n
	return nil
}

// nodeNetwork is a node's networking fed over the bus by the control
// plane's service feed: a node needs no API access to serve ClusterIPs and
// NodePorts or to enforce NetworkPolicy, so a worker runs the same as a
// server.
type nodeNetwork struct {
	sub    *servicefeed.Subscriber
	policy *policy.Evaluator
	proxy  *proxy.Proxy // nil without a Service proxy
}

// startNodeNetwork follows the feed on conn (one subscription for all) and
// starts the policy evaluator and, when withProxy, the Service proxy.
func startNodeNetwork(ctx context.Context, conn *bus.Conn, node string, withProxy bool, log *slog.Logger) (n *nodeNetwork, err error) {
	n = &nodeNetwork{}
	if n.sub, err = servicefeed.Subscribe(ctx, conn, log); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			n.stop()
		}
	}()
	lws := map[string]cache.ListerWatcher{}
	for _, res := range []string{servicefeed.Services, servicefeed.EndpointSlices, servicefeed.NetworkPolicies,
		servicefeed.Namespaces, servicefeed.Pods} {
		if lws[res], err = n.sub.ListerWatcher(res); err != nil {
			return nil, err
		}
	}
	if n.policy, err = policy.Start(policy.Config{NetworkPolicies: lws[servicefeed.NetworkPolicies],
		Pods: lws[servicefeed.Pods], Namespaces: lws[servicefeed.Namespaces],
		Services: lws[servicefeed.Services], EndpointSlices: lws[servicefeed.EndpointSlices], Logger: log}); err != nil {
		return nil, fmt.Errorf("network policy: %w", err)
	}
	if withProxy {
		if n.proxy, err = proxy.Start(proxy.Config{Services: lws[servicefeed.Services],
			EndpointSlices: lws[servicefeed.EndpointSlices], NodeName: node, Logger: log,
			EndpointAllowed: n.endpointAllowed}); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// firewall is the agent's Config.Firewall: a pod's firewall from the
// node's evaluator.
func (n *nodeNetwork) firewall(pod *corev1.Pod) skiffrt.Firewall { return n.policy.Firewall(pod) }

// endpointAllowed is the proxy's Config.EndpointAllowed: the client pod's
// egress policy, applied to the endpoint the proxy translates its
// connection to (the proxy serves TCP only).
func (n *nodeNetwork) endpointAllowed(client netip.Addr, endpoint netip.AddrPort) bool {
	return n.policy.AllowEgressFrom(client, endpoint, corev1.ProtocolTCP)
}

func (n *nodeNetwork) stop() {
	if n.proxy != nil {
		n.proxy.Stop()
	}
	if n.policy != nil {
		n.policy.Stop()
	}
	n.sub.Stop()
}
