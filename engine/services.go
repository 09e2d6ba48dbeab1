package engine

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"

	"k8s.io/client-go/tools/cache"

	"github.com/skiffhq/skiff/internal/apiserver/servicealloc"
	"github.com/skiffhq/skiff/internal/bus"
	"github.com/skiffhq/skiff/internal/clusterdns"
	"github.com/skiffhq/skiff/internal/netpol/proxy"
	"github.com/skiffhq/skiff/internal/node/servicefeed"
)

// startServices runs this node's userspace Service proxy, unprivileged
// mode's load balancer, and its cluster DNS server, which every node runs,
// fed over the bus like a worker's. Node ports listen on 127.0.0.1, the
// node address the agent registers. What feeds them — the endpoints
// controller and the service feed publisher — are control loops of the raft
// leader (startControllers).
func (e *Engine) startServices(ctx context.Context) error {
	if e.cfg.DisableServiceProxy && e.cfg.DisableClusterDNS {
		return nil
	}
	// The proxy and the DNS server are node-side, as on a worker: the node
	// identity.
	conn, err := e.bus.ConnectNode(ctx, "service-proxy-"+e.cfg.NodeName)
	if err != nil {
		return fmt.Errorf("service proxy bus connection: %w", err)
	}
	e.stoppers = append(e.stoppers, conn.Close)
	dns := e.clusterDNS()
	if e.cfg.DisableClusterDNS {
		dns = ""
	}
	stop, err := startNodeServices(ctx, conn, nodeServices{node: e.cfg.NodeName, proxy: !e.cfg.DisableServiceProxy,
		dns: dns, domain: e.cfg.ClusterDomain}, e.log)
	if err != nil {
		return err
	}
	e.stoppers = append(e.stoppers, stop)
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

// startNodeServices runs a node's Service proxy and cluster DNS server, fed
// over conn by the control plane's service feed: a node needs no API access
// to serve ClusterIPs, NodePorts and cluster names, so a worker runs the
// same as a server. A DNS server that cannot bind its address (port 53
// needs privileges; another node on the same machine may hold it) logs why
// and retries, and the node runs on.
func startNodeServices(ctx context.Context, conn *bus.Conn, ns nodeServices, log *slog.Logger) (stop func(), err error) {
	sub, err := servicefeed.Subscribe(ctx, conn, log)
	if err != nil {
		return nil, err
	}
	var stops []func()
	stopAll := func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	stops = append(stops, sub.Stop)
	feeds := func() (svcs, slices cache.ListerWatcher, err error) {
		if svcs, err = sub.ListerWatcher(servicefeed.Services); err != nil {
			return nil, nil, err
		}
		slices, err = sub.ListerWatcher(servicefeed.EndpointSlices)
		return svcs, slices, err
	}
	if ns.proxy {
		svcs, slices, err := feeds()
		if err != nil {
			stopAll()
			return nil, err
		}
		px, err := proxy.Start(proxy.Config{Services: svcs, EndpointSlices: slices, NodeName: ns.node, Logger: log})
		if err != nil {
			stopAll()
			return nil, err
		}
		stops = append(stops, px.Stop)
	}
	if ns.dns != "" {
		svcs, slices, err := feeds()
		if err != nil {
			stopAll()
			return nil, err
		}
		srv, err := clusterdns.Start(ctx, clusterdns.Config{Services: svcs, EndpointSlices: slices,
			Listen: net.JoinHostPort(ns.dns, "53"), Domain: ns.domain, Logger: log})
		if err != nil {
			stopAll()
			return nil, err
		}
		stops = append(stops, srv.Stop)
	}
	return stopAll, nil
}
