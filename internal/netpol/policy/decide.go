package policy

import (
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// AllowIngress reports whether peer may connect to pod on port over proto.
// pod is the pod as policy sees it: namespace, labels, containers' ports
// and its addresses (status.podIPs).
func (e *Evaluator) AllowIngress(pod *corev1.Pod, peer netip.Addr, proto corev1.Protocol, port uint16) bool {
	peer = peer.Unmap()
	if isOwn(pod, peer) || e.isNode(peer) {
		return true
	}
	pols := e.selecting(pod, networkingv1.PolicyTypeIngress)
	if len(pols) == 0 {
		return true // not isolated for ingress
	}
	peers := e.podsAt(peer)
	for _, np := range pols {
		for i := range np.Spec.Ingress {
			r := &np.Spec.Ingress[i]
			// Named ports name the selected pod's own ports.
			if !portsMatch(r.Ports, proto, port, pod) {
				continue
			}
			for _, p := range peers {
				if e.peersMatch(np.Namespace, r.From, peer, p) {
					return true
				}
			}
		}
	}
	return false
}

// AllowEgress reports whether pod may connect to dst over proto. A dst
// that is a Service's ClusterIP and port is decided for the Service's ready
// backends: allowed when one of them is (see the package documentation).
func (e *Evaluator) AllowEgress(pod *corev1.Pod, dst netip.AddrPort, proto corev1.Protocol) bool {
	dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	if isOwn(pod, dst.Addr()) || e.isNode(dst.Addr()) {
		return true
	}
	pols := e.selecting(pod, networkingv1.PolicyTypeEgress)
	if len(pols) == 0 {
		return true // not isolated for egress
	}
	if backends := e.backends(dst, proto); len(backends) > 0 {
		for _, b := range backends {
			if isOwn(pod, b.Addr()) || e.isNode(b.Addr()) || e.egressTo(pols, b, proto) {
				return true
			}
		}
		return false
	}
	return e.egressTo(pols, dst, proto)
}

// egressTo decides a connection to one address for a pod isolated for
// egress by pols.
func (e *Evaluator) egressTo(pols []*networkingv1.NetworkPolicy, dst netip.AddrPort, proto corev1.Protocol) bool {
	peers := e.podsAt(dst.Addr())
	for _, np := range pols {
		for i := range np.Spec.Egress {
			r := &np.Spec.Egress[i]
			for _, p := range peers {
				// Named ports name the peer's ports.
				if portsMatch(r.Ports, proto, dst.Port(), p) && e.peersMatch(np.Namespace, r.To, dst.Addr(), p) {
					return true
				}
			}
		}
	}
	return false
}

// selecting are the policies that select pod and isolate it for typ.
func (e *Evaluator) selecting(pod *corev1.Pod, typ networkingv1.PolicyType) []*networkingv1.NetworkPolicy {
	objs, _ := e.policies.ByIndex(namespaceIndex, pod.Namespace)
	var out []*networkingv1.NetworkPolicy
	set := labels.Set(pod.Labels)
	for _, o := range objs {
		np := o.(*networkingv1.NetworkPolicy)
		if hasType(np, typ) && selectorMatches(&np.Spec.PodSelector, set) {
			out = append(out, np)
		}
	}
	return out
}

// hasType is whether np's policyTypes, defaulted as the API does, include
// typ: Ingress always, Egress when the policy has egress rules.
func hasType(np *networkingv1.NetworkPolicy, typ networkingv1.PolicyType) bool {
	if len(np.Spec.PolicyTypes) == 0 {
		return typ == networkingv1.PolicyTypeIngress || (typ == networkingv1.PolicyTypeEgress && len(np.Spec.Egress) > 0)
	}
	for _, t := range np.Spec.PolicyTypes {
		if t == typ {
			return true
		}
	}
	return false
}

// podsAt are the pods that have addr, or one nil entry when none has: the
// peer is then known by its address alone, which ipBlock peers match. Two
// pods hold one address only for a moment (one ended, its successor
// started); either may match.
func (e *Evaluator) podsAt(addr netip.Addr) []*corev1.Pod {
	objs, _ := e.pods.ByIndex(ipIndex, addr.String())
	if len(objs) == 0 {
		return []*corev1.Pod{nil}
	}
	out := make([]*corev1.Pod, len(objs))
	for i, o := range objs {
		out[i] = o.(*corev1.Pod)
	}
	return out
}

// peersMatch is whether a rule's peers (from or to) include the peer at
// addr, which is pod (nil: no pod). No peers means every peer.
func (e *Evaluator) peersMatch(policyNS string, peers []networkingv1.NetworkPolicyPeer, addr netip.Addr, pod *corev1.Pod) bool {
	if len(peers) == 0 {
		return true
	}
	for i := range peers {
		p := &peers[i]
		if p.IPBlock != nil {
			if inBlock(p.IPBlock, addr) {
				return true
			}
			continue
		}
		if pod == nil || (p.PodSelector == nil && p.NamespaceSelector == nil) {
			continue
		}
		if p.NamespaceSelector == nil {
			if pod.Namespace != policyNS {
				continue // a podSelector alone selects in the policy's namespace
			}
		} else if !selectorMatches(p.NamespaceSelector, e.namespaceLabels(pod.Namespace)) {
			continue
		}
		if p.PodSelector == nil || selectorMatches(p.PodSelector, labels.Set(pod.Labels)) {
			return true
		}
	}
	return false
}

// namespaceLabels are a namespace's labels, with kubernetes.io/metadata.name
// set as the API server sets it on every namespace: selectors may name it,
// and it holds even for a namespace the feed has not brought yet.
func (e *Evaluator) namespaceLabels(name string) labels.Set {
	set := labels.Set{corev1.LabelMetadataName: name}
	if o, ok, _ := e.namespaces.GetByKey(name); ok {
		for k, v := range o.(*corev1.Namespace).Labels {
			set[k] = v
		}
		set[corev1.LabelMetadataName] = name
	}
	return set
}

// selectorMatches is whether set matches sel, as
// metav1.LabelSelectorAsSelector(sel).Matches(set) would answer, without
// converting the selector: a decision matches every selector of the
// namespace's policies, and the conversion (which validates every key and
// value again) would cost most of a decision. An operator the API does not
// know makes the selector match nothing; the API server validates
// selectors, so only a corrupt object has one.
func selectorMatches(sel *metav1.LabelSelector, set labels.Set) bool {
	for k, v := range sel.MatchLabels {
		if got, ok := set[k]; !ok || got != v {
			return false
		}
	}
	for _, req := range sel.MatchExpressions {
		got, ok := set[req.Key]
		switch req.Operator {
		case metav1.LabelSelectorOpIn:
			if !ok || !slices.Contains(req.Values, got) {
				return false
			}
		case metav1.LabelSelectorOpNotIn:
			if ok && slices.Contains(req.Values, got) {
				return false
			}
		case metav1.LabelSelectorOpExists:
			if !ok {
				return false
			}
		case metav1.LabelSelectorOpDoesNotExist:
			if ok {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// inBlock is whether addr is in b's CIDR and in none of its exceptions. A
// CIDR that does not parse matches nothing.
func inBlock(b *networkingv1.IPBlock, addr netip.Addr) bool {
	cidr, err := netip.ParsePrefix(b.CIDR)
	if err != nil || !cidr.Contains(addr) {
		return false
	}
	for _, ex := range b.Except {
		if p, err := netip.ParsePrefix(ex); err == nil && p.Contains(addr) {
			return false
		}
	}
	return true
}

// portsMatch is whether a rule's ports include port over proto. Named
// ports are looked up in named's containers (nil: no pod, so a name
// matches nothing). No ports means every port.
func portsMatch(ports []networkingv1.NetworkPolicyPort, proto corev1.Protocol, port uint16, named *corev1.Pod) bool {
	if len(ports) == 0 {
		return true
	}
	for i := range ports {
		p := &ports[i]
		pp := corev1.ProtocolTCP
		if p.Protocol != nil {
			pp = *p.Protocol
		}
		if pp != proto {
			continue
		}
		switch {
		case p.Port == nil: // every port of the protocol
			return true
		case p.Port.Type == intstr.Int:
			lo, hi := p.Port.IntVal, p.Port.IntVal
			if p.EndPort != nil && *p.EndPort >= lo {
				hi = *p.EndPort
			}
			if int32(port) >= lo && int32(port) <= hi {
				return true
			}
		case named != nil && hasNamedPort(named, p.Port.StrVal, proto, port):
			return true
		}
	}
	return false
}

// hasNamedPort is whether one of pod's containers declares a port called
// name that is port over proto.
func hasNamedPort(pod *corev1.Pod, name string, proto corev1.Protocol, port uint16) bool {
	for _, cs := range [][]corev1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for _, c := range cs {
			for _, cp := range c.Ports {
				cpp := cp.Protocol
				if cpp == "" {
					cpp = corev1.ProtocolTCP
				}
				if cp.Name == name && cpp == proto && cp.ContainerPort == int32(port) {
					return true
				}
			}
		}
	}
	return false
}

// isOwn is whether addr is one of pod's addresses: a pod's traffic to
// itself is not filtered.
func isOwn(pod *corev1.Pod, addr netip.Addr) bool {
	for _, a := range podIPs(pod) {
		if a == addr {
			return true
		}
	}
	return false
}

// isNode is whether addr is the node's: Kubernetes always allows traffic
// between a pod and its node.
func (e *Evaluator) isNode(addr netip.Addr) bool {
	for _, a := range e.nodeAddrs {
		if a == addr {
			return true
		}
	}
	return false
}

// backends are the ready endpoints behind dst when dst is a Service's
// ClusterIP and port over proto; none otherwise (and without Services).
func (e *Evaluator) backends(dst netip.AddrPort, proto corev1.Protocol) []netip.AddrPort {
	if e.services == nil {
		return nil
	}
	svcs, _ := e.services.ByIndex(ipIndex, dst.Addr().String())
	var out []netip.AddrPort
	for _, o := range svcs {
		svc := o.(*corev1.Service)
		for _, sp := range svc.Spec.Ports {
			spp := sp.Protocol
			if spp == "" {
				spp = corev1.ProtocolTCP
			}
			if sp.Port != int32(dst.Port()) || spp != proto {
				continue
			}
			slices, _ := e.slices.ByIndex(serviceIndex, svc.Namespace+"/"+svc.Name)
			for _, so := range slices {
				out = append(out, sliceBackends(so.(*discoveryv1.EndpointSlice), sp.Name, proto)...)
			}
		}
	}
	return out
}

// sliceBackends are the ready addresses of slice on its port called name.
func sliceBackends(slice *discoveryv1.EndpointSlice, name string, proto corev1.Protocol) []netip.AddrPort {
	var port int32
	for _, p := range slice.Ports {
		pp := corev1.ProtocolTCP
		if p.Protocol != nil {
			pp = *p.Protocol
		}
		if p.Port != nil && pp == proto && (p.Name == nil && name == "" || p.Name != nil && *p.Name == name) {
			port = *p.Port
		}
	}
	if port <= 0 || port > 65535 {
		return nil
	}
	var out []netip.AddrPort
	for _, ep := range slice.Endpoints {
		if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
			continue
		}
		for _, a := range ep.Addresses {
			if addr, err := netip.ParseAddr(a); err == nil {
				out = append(out, netip.AddrPortFrom(addr.Unmap(), uint16(port)))
			}
		}
	}
	return out
}

// AllowEgressFrom reports whether the pod at src may connect to dst over
// proto, for a node's Service proxy choosing an endpoint (dst) for a client
// (src): the translation of a ClusterIP happens there, and Kubernetes
// applies egress policy after it. A src that is no pod's address (a process
// of the node) is not held to any policy. It waits for the informers' first
// lists as a Firewall does.
func (e *Evaluator) AllowEgressFrom(src netip.Addr, dst netip.AddrPort, proto corev1.Protocol) bool {
	if !e.ready() {
		return false
	}
	pods := e.podsAt(src.Unmap())
	if pods[0] == nil {
		return true
	}
	for _, p := range pods {
		if e.AllowEgress(p, dst, proto) {
			return true
		}
	}
	return false
}
