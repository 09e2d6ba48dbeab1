package proxy

import (
	"net/netip"
	"slices"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// frontend is one address the proxy listens on for a Service port, and the
// endpoints it sends that address's connections to.
type frontend struct {
	addr  netip.AddrPort
	route *route
}

// route is where one frontend's connections go. It is replaced whole when
// the Service or its endpoints change, so a connection reads one
// consistent value.
type route struct {
	service  string   // namespace/name, for logs
	port     string   // the Service port's name
	backends []string // ip:port of usable endpoints, deduplicated, sorted
	// affinity is the ClientIP session affinity timeout; 0 means none.
	affinity time.Duration
}

// skipped is a part of a Service the proxy cannot serve; it is logged once.
type skipped struct {
	what, why string
}

// desiredFrontends computes a Service's frontends from its spec and its
// EndpointSlices. A frontend is listed only when it has an endpoint to send
// to: with none, nothing listens, and a client's connect is refused by the
// kernel, which is what kube-proxy's REJECT rule gives it too.
//
//   - ClusterIP: every cluster IP in 127.0.0.0/8, on each TCP port. Other
//     addresses would need an address on a host interface, which this proxy
//     never adds: they are skipped.
//   - NodePort (and LoadBalancer with node ports): nodeAddress:nodePort.
//   - UDP and SCTP ports are skipped: this proxy splices TCP streams only.
//
// Traffic policy Local (internal for cluster IPs, external for node ports)
// keeps only endpoints on node; with node == "" the policies are ignored.
func desiredFrontends(svc *corev1.Service, eps []*discoveryv1.EndpointSlice, node string, nodeAddress netip.Addr) ([]frontend, []skipped) {
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		return nil, nil
	}
	var fronts []frontend
	var skips []skipped
	var clusterIPs []netip.Addr
	ips := svc.Spec.ClusterIPs
	if len(ips) == 0 && svc.Spec.ClusterIP != "" {
		ips = []string{svc.Spec.ClusterIP}
	}
	for _, s := range ips {
		if s == corev1.ClusterIPNone {
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			continue
		}
		if !a.Is4() || !a.IsLoopback() {
			skips = append(skips, skipped{"cluster IP " + s, "not in 127.0.0.0/8; the userspace proxy adds no addresses to host interfaces"})
			continue
		}
		clusterIPs = append(clusterIPs, a)
	}
	var affinity time.Duration
	if svc.Spec.SessionAffinity == corev1.ServiceAffinityClientIP {
		affinity = time.Duration(corev1.DefaultClientIPServiceAffinitySeconds) * time.Second
		if c := svc.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
			affinity = time.Duration(*c.ClientIP.TimeoutSeconds) * time.Second
		}
	}
	internalLocal := svc.Spec.InternalTrafficPolicy != nil && *svc.Spec.InternalTrafficPolicy == corev1.ServiceInternalTrafficPolicyLocal
	externalLocal := svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
	key := svc.Namespace + "/" + svc.Name
	for _, sp := range svc.Spec.Ports {
		if sp.Protocol != "" && sp.Protocol != corev1.ProtocolTCP {
			skips = append(skips, skipped{"port " + portLabel(sp), string(sp.Protocol) + " is not proxied (TCP only)"})
			continue
		}
		add := func(addr netip.AddrPort, local bool) {
			nodeFilter := ""
			if local {
				nodeFilter = node
			}
			if b := backends(eps, sp.Name, nodeFilter); len(b) > 0 {
				fronts = append(fronts, frontend{addr: addr, route: &route{service: key, port: sp.Name, backends: b, affinity: affinity}})
			}
		}
		for _, ip := range clusterIPs {
			add(netip.AddrPortFrom(ip, uint16(sp.Port)), internalLocal)
		}
		if sp.NodePort != 0 && nodeAddress.IsValid() {
			add(netip.AddrPortFrom(nodeAddress, uint16(sp.NodePort)), externalLocal)
		}
	}
	return fronts, skips
}

// backends are the endpoints of the named port that may take new
// connections: the ready ones (an unset ready condition counts as ready, as
// the API documents), or, when none is ready, those still serving while
// they terminate, as kube-proxy falls back to since Kubernetes 1.26. With
// node set, only endpoints on that node count.
func backends(eps []*discoveryv1.EndpointSlice, port, node string) []string {
	var ready, terminating []string
	for _, s := range eps {
		if s.AddressType != discoveryv1.AddressTypeIPv4 {
			continue
		}
		var num int32
		for _, p := range s.Ports {
			proto := corev1.ProtocolTCP
			if p.Protocol != nil {
				proto = *p.Protocol
			}
			if deref(p.Name) == port && proto == corev1.ProtocolTCP && p.Port != nil {
				num = *p.Port
				break
			}
		}
		if num <= 0 || num > 65535 {
			continue
		}
		for _, ep := range s.Endpoints {
			if len(ep.Addresses) == 0 || node != "" && deref(ep.NodeName) != node {
				continue
			}
			a, err := netip.ParseAddr(ep.Addresses[0])
			if err != nil {
				continue
			}
			hp := netip.AddrPortFrom(a, uint16(num)).String()
			c := ep.Conditions
			switch {
			case c.Ready == nil || *c.Ready:
				ready = append(ready, hp)
			case c.Serving != nil && *c.Serving && c.Terminating != nil && *c.Terminating:
				terminating = append(terminating, hp)
			}
		}
	}
	if len(ready) == 0 {
		ready = terminating
	}
	slices.Sort(ready)
	return slices.Compact(ready)
}

func portLabel(sp corev1.ServicePort) string {
	s := strconv.Itoa(int(sp.Port)) + "/" + string(sp.Protocol)
	if sp.Name != "" {
		s = sp.Name + " (" + s + ")"
	}
	return s
}

func deref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}
