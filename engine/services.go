package engine

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/skiffhq/skiff/internal/apiserver/servicealloc"
	"github.com/skiffhq/skiff/internal/bus"
	"github.com/skiffhq/skiff/internal/clusterdns"
	"github.com/skiffhq/skiff/internal/netpol/policy"
	"github.com/skiffhq/skiff/internal/netpol/proxy"
	"github.com/skiffhq/skiff/internal/node/servicefeed"
	skiffrt "github.com/skiffhq/skiff/runtime"
)

// startNetwork runs this node's networking that follows the cluster over
// the bus, as a worker's does: the userspace Service proxy, unprivileged
// mode's load balancer (unless DisableServiceProxy), the cluster DNS server
// (unless DisableClusterDNS), and the network policy evaluator, whose
// firewalls the node agent hands to its Wasm containers. Node ports listen
// on 127.0.0.1, the node address the agent registers. What feeds them —
// the endpoints controller and the service feed publisher — are control
// loops of the raft leader (startControllers). It runs before the agent,
// which needs the evaluator for its first pods.
func (e *Engine) startNetwork(ctx context.Context) error {
	// Node-side, as on a worker: the node identity.
	conn, err := e.connectOwnNode(ctx, "network-"+e.cfg.NodeName)
	if err != nil {
		return fmt.Errorf("node network bus connection: %w", err)
	}
	e.stoppers = append(e.stoppers, conn.Close)
	dns := e.clusterDNS()
	if e.cfg.DisableClusterDNS {
		dns = ""
	}
	n, err := startNodeNetwork(ctx, conn, nodeServices{node: e.cfg.NodeName, proxy: !e.cfg.DisableServiceProxy,
		dns: dns, domain: e.cfg.ClusterDomain}, e.log)
	if err != nil {
		return err
	}
	e.stoppers = append(e.stoppers, n.stop)
	e.network = n
	return nil
}

// clusterDNS is the kube-dns Service's ClusterIP, where nodes' DNS servers
// listen and what pods' resolv.conf names, on every node (a node with
// DisableClusterDNS too, as a node without its proxy still names
// ClusterIPs): "" for a service CIDR too small for it.
func (e *Engine) clusterDNS() string {
	cidr, err := netip.ParsePrefix(e.cfg.ServiceCIDR)
	if err != nil {
		return ""
	}
	ip, ok := servicealloc.DNSIP(cidr)
	if !ok {
		return ""
	}
	return ip.String()
}

// nodeServices says which of a node's Service parts run.
type nodeServices struct {
	node   string
	proxy  bool   // the userspace Service proxy
	dns    string // the cluster DNS server's address (the kube-dns ClusterIP); "" for none
	domain string // the cluster domain
}

// nodeNetwork is a node's networking fed over the bus by the control
// plane's service feed: a node needs no API access to serve ClusterIPs,
// NodePorts and cluster names or to enforce NetworkPolicy, so a worker runs
// the same as a server.
type nodeNetwork struct {
	sub    *servicefeed.Subscriber
	policy *policy.Evaluator
	proxy  *proxy.Proxy       // nil without a Service proxy
	dns    *clusterdns.Server // nil without cluster DNS
	// svcs are the Services for the agent's Service environment
	// variables.
	svcs *servicefeed.ServiceCache
}

// startNodeNetwork follows the feed on conn (one subscription for all) and
// starts the policy evaluator and, as ns says, the Service proxy and the
// cluster DNS server. A DNS server that cannot bind its address (port 53
// needs privileges; another node on the same machine may hold it) logs why
// and retries, and the node runs on.
func startNodeNetwork(ctx context.Context, conn *bus.Conn, ns nodeServices, log *slog.Logger) (n *nodeNetwork, err error) {
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
	if n.svcs, err = n.sub.StartServiceCache(); err != nil {
		return nil, fmt.Errorf("service cache: %w", err)
	}
	if ns.proxy {
		if n.proxy, err = proxy.Start(proxy.Config{Services: lws[servicefeed.Services],
			EndpointSlices: lws[servicefeed.EndpointSlices], NodeName: ns.node, Logger: log,
			EndpointAllowed: n.endpointAllowed}); err != nil {
			return nil, err
		}
	}
	if ns.dns != "" {
		if n.dns, err = clusterdns.Start(ctx, clusterdns.Config{Services: lws[servicefeed.Services],
			EndpointSlices: lws[servicefeed.EndpointSlices], Listen: net.JoinHostPort(ns.dns, "53"),
			Domain: ns.domain, Logger: log}); err != nil {
			return nil, fmt.Errorf("cluster DNS: %w", err)
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
	if n.dns != nil {
		n.dns.Stop()
	}
	if n.proxy != nil {
		n.proxy.Stop()
	}
	if n.policy != nil {
		n.policy.Stop()
	}
	if n.svcs != nil {
		n.svcs.Stop()
	}
	n.sub.Stop()
}
