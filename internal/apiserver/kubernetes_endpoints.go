package apiserver

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
)

// kubernetesEndpointsManager marks the kubernetes Service's EndpointSlice as
// the API server's own: the endpoints controller leaves it alone (the
// Service has no selector), and the nodes' Service proxies route the
// Service's ClusterIP to it.
const kubernetesEndpointsManager = "skiff-apiserver"

// ensureKubernetesEndpoints puts this server's listening address in the
// kubernetes Service's Endpoints and EndpointSlice, as kube-apiserver's
// endpoint reconciler does, so a pod reaches the API at
// KUBERNETES_SERVICE_HOST:443 with its ServiceAccount token. Addresses of
// other servers already there are kept. A wildcard listen address names no
// address a pod could dial: it is left out (logged).
func (s *Server) ensureKubernetesEndpoints(ctx context.Context, addr net.Addr) error {
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return fmt.Errorf("kubernetes endpoints: listen address %s: %w", addr, err)
	}
	ip := ap.Addr().Unmap()
	if ip.IsUnspecified() {
		s.log.Info("the kubernetes Service gets no endpoint from this server: it listens on a wildcard address", "listen", addr)
		return nil
	}
	port := int32(ap.Port())
	name := "kubernetes"
	ns := metav1.NamespaceDefault
	addrType := discoveryv1.AddressTypeIPv4
	if ip.Is6() {
		addrType = discoveryv1.AddressTypeIPv6
	}

	sliceRes, _ := s.reg.Get(schema.GroupVersionResource{Group: "discovery.k8s.io", Version: "v1", Resource: "endpointslices"})
	cur, err := s.objs.get(ctx, sliceRes, ns, name)
	switch {
	case apierrors.IsNotFound(err):
		slice := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns,
			Labels: map[string]string{discoveryv1.LabelServiceName: name, discoveryv1.LabelManagedBy: kubernetesEndpointsManager}},
			AddressType: addrType,
			Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{ip.String()}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
			Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: &port, Protocol: ptr.To(corev1.ProtocolTCP)}}}
		slice.SetGroupVersionKind(sliceRes.GVK())
		if _, err := s.createObject(ctx, sliceRes, slice, nil, ""); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("kubernetes EndpointSlice: %w", err)
		}
	case err != nil:
		return fmt.Errorf("kubernetes EndpointSlice: %w", err)
	default:
		slice := cur.(*discoveryv1.EndpointSlice)
		has := slices.ContainsFunc(slice.Endpoints, func(e discoveryv1.Endpoint) bool { return slices.Contains(e.Addresses, ip.String()) })
		samePort := len(slice.Ports) == 1 && slice.Ports[0].Port != nil && *slice.Ports[0].Port == port
		if has && samePort || slice.AddressType != addrType {
			break
		}
		next := slice.DeepCopy()
		if !samePort {
			// The port changed (a restart on another port): the old
			// addresses were this server's or peers on the old port alike;
			// keep only this one rather than send pods to a dead port.
			next.Endpoints = nil
			next.Ports = []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: &port, Protocol: ptr.To(corev1.ProtocolTCP)}}
		}
		next.Endpoints = append(next.Endpoints, discoveryv1.Endpoint{Addresses: []string{ip.String()},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}})
		rv, _ := parseRV(slice.ResourceVersion)
		if _, err := s.objs.update(ctx, sliceRes, ns, name, next, rv); err != nil && !apierrors.IsConflict(err) {
			return fmt.Errorf("kubernetes EndpointSlice: %w", err)
		}
	}
	return s.ensureKubernetesLegacyEndpoints(ctx, ip.String(), port)
}

// ensureKubernetesLegacyEndpoints keeps core/v1 Endpoints kubernetes in
// step (kubectl get endpoints kubernetes).
func (s *Server) ensureKubernetesLegacyEndpoints(ctx context.Context, ip string, port int32) error {
	res, _ := s.reg.Get(schema.GroupVersionResource{Version: "v1", Resource: "endpoints"})
	ns, name := metav1.NamespaceDefault, "kubernetes"
	ports := []corev1.EndpointPort{{Name: "https", Port: port, Protocol: corev1.ProtocolTCP}}
	cur, err := s.objs.get(ctx, res, ns, name)
	if apierrors.IsNotFound(err) {
		ep := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns,
			Labels: map[string]string{discoveryv1.LabelSkipMirror: "true"}},
			Subsets: []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{{IP: ip}}, Ports: ports}}}
		ep.SetGroupVersionKind(res.GVK())
		if _, err := s.createObject(ctx, res, ep, nil, ""); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("kubernetes Endpoints: %w", err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("kubernetes Endpoints: %w", err)
	}
	ep := cur.(*corev1.Endpoints)
	var addrs []corev1.EndpointAddress
	if len(ep.Subsets) == 1 && len(ep.Subsets[0].Ports) == 1 && ep.Subsets[0].Ports[0].Port == port {
		addrs = ep.Subsets[0].Addresses
	}
	if slices.ContainsFunc(addrs, func(a corev1.EndpointAddress) bool { return a.IP == ip }) {
		return nil
	}
	next := ep.DeepCopy()
	next.Subsets = []corev1.EndpointSubset{{Addresses: append(slices.Clone(addrs), corev1.EndpointAddress{IP: ip}), Ports: ports}}
	rv, _ := parseRV(ep.ResourceVersion)
	if _, err := s.objs.update(ctx, res, ns, name, next, rv); err != nil && !apierrors.IsConflict(err) {
		return fmt.Errorf("kubernetes Endpoints: %w", err)
	}
	return nil
}
