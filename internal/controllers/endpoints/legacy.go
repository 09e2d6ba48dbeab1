package endpoints

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Labels and annotations of the legacy Endpoints object, as Kubernetes'
// endpoints controller sets them.
const (
	// labelSkipMirror tells an EndpointSlice mirroring controller that this
	// Endpoints object has slices of its own already.
	labelSkipMirror = "endpointslice.kubernetes.io/skip-mirror"
	// annotationOverCapacity marks an Endpoints object cut to maxAddresses.
	annotationOverCapacity = "endpoints.kubernetes.io/over-capacity"
	// maxAddresses bounds an Endpoints object, as in Kubernetes since 1.22:
	// larger Services are served by their slices.
	maxAddresses = 1000
)

// desiredSubsets is the Endpoints' subsets: one per port set, ready
// addresses in addresses and the rest in notReadyAddresses. Terminating
// pods are left out unless the Service publishes not-ready addresses (then
// every address is ready). Only the Service's primary address family is
// listed, as Kubernetes does. truncated says whether addresses were dropped
// to stay within maxAddresses.
func desiredSubsets(svc *corev1.Service, pods []*corev1.Pod) (subsets []corev1.EndpointSubset, truncated bool) {
	at := addressTypes(svc)[0]
	byPorts := map[string]*corev1.EndpointSubset{}
	for _, p := range pods {
		if !inEndpoints(p, svc.Spec.PublishNotReadyAddresses) {
			continue
		}
		ip := podAddress(p, at)
		if ip == "" {
			continue
		}
		addr := corev1.EndpointAddress{IP: ip, Hostname: hostnameFor(p, svc),
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: p.Namespace, Name: p.Name, UID: p.UID}}
		if p.Spec.NodeName != "" {
			addr.NodeName = ptr(p.Spec.NodeName)
		}
		var ports []corev1.EndpointPort
		for i := range svc.Spec.Ports {
			sp := &svc.Spec.Ports[i]
			if n, ok := findPort(p, sp); ok {
				proto := sp.Protocol
				if proto == "" {
					proto = corev1.ProtocolTCP
				}
				ports = append(ports, corev1.EndpointPort{Name: sp.Name, Port: n, Protocol: proto, AppProtocol: sp.AppProtocol})
			}
		}
		// A pod none of whose ports resolve serves nothing, except for a
		// headless Service without ports (DNS names only).
		if len(ports) == 0 && !(len(svc.Spec.Ports) == 0 && svc.Spec.ClusterIP == corev1.ClusterIPNone) {
			continue
		}
		sort.Slice(ports, func(i, j int) bool { return ports[i].Name < ports[j].Name })
		key := portsKey(ports)
		ss := byPorts[key]
		if ss == nil {
			ss = &corev1.EndpointSubset{Ports: ports}
			byPorts[key] = ss
		}
		if svc.Spec.PublishNotReadyAddresses || podReady(p) {
			ss.Addresses = append(ss.Addresses, addr)
		} else {
			ss.NotReadyAddresses = append(ss.NotReadyAddresses, addr)
		}
	}
	var out []corev1.EndpointSubset
	for _, k := range slices.Sorted(maps.Keys(byPorts)) {
		ss := byPorts[k]
		sortAddresses(ss.Addresses)
		sortAddresses(ss.NotReadyAddresses)
		out = append(out, *ss)
	}
	return truncate(out)
}

// truncate keeps at most maxAddresses addresses, dropping not-ready ones
// first, from the last subsets.
func truncate(subsets []corev1.EndpointSubset) ([]corev1.EndpointSubset, bool) {
	total := 0
	for _, ss := range subsets {
		total += len(ss.Addresses) + len(ss.NotReadyAddresses)
	}
	over := total - maxAddresses
	if over <= 0 {
		return subsets, false
	}
	for i := len(subsets) - 1; i >= 0 && over > 0; i-- {
		n := min(over, len(subsets[i].NotReadyAddresses))
		subsets[i].NotReadyAddresses = subsets[i].NotReadyAddresses[:len(subsets[i].NotReadyAddresses)-n]
		over -= n
	}
	for i := len(subsets) - 1; i >= 0 && over > 0; i-- {
		n := min(over, len(subsets[i].Addresses))
		subsets[i].Addresses = subsets[i].Addresses[:len(subsets[i].Addresses)-n]
		over -= n
	}
	return slices.DeleteFunc(subsets, func(ss corev1.EndpointSubset) bool {
		return len(ss.Addresses) == 0 && len(ss.NotReadyAddresses) == 0
	}), true
}

func portsKey(ports []corev1.EndpointPort) string {
	parts := make([]string, 0, len(ports))
	for _, p := range ports {
		parts = append(parts, p.Name+"/"+string(p.Protocol)+"/"+strconv.Itoa(int(p.Port)))
	}
	return strings.Join(parts, ",")
}

func sortAddresses(a []corev1.EndpointAddress) {
	sort.Slice(a, func(i, j int) bool {
		if a[i].IP != a[j].IP {
			return a[i].IP < a[j].IP
		}
		return a[i].TargetRef.Name < a[j].TargetRef.Name
	})
}

// endpointsLabels are the Service's labels, the headless marker, and the
// skip-mirror label.
func endpointsLabels(svc *corev1.Service) map[string]string {
	l := map[string]string{}
	for k, v := range svc.Labels {
		l[k] = v
	}
	if svc.Spec.ClusterIP == corev1.ClusterIPNone {
		l[corev1.IsHeadlessService] = ""
	} else {
		delete(l, corev1.IsHeadlessService)
	}
	l[labelSkipMirror] = "true"
	return l
}

// syncEndpoints brings the Service's Endpoints object to what its pods say.
func (c *Controller) syncEndpoints(ctx context.Context, svc *corev1.Service, pods []*corev1.Pod) error {
	subsets, truncated := desiredSubsets(svc, pods)
	cur, err := c.endpoints.Endpoints(svc.Namespace).Get(svc.Name)
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("get endpoints %s/%s: %w", svc.Namespace, svc.Name, err)
	}
	next := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: svc.Name, Namespace: svc.Namespace}}
	if cur != nil {
		next = cur.DeepCopy()
	}
	next.Subsets = subsets
	next.Labels = endpointsLabels(svc)
	next.OwnerReferences = []metav1.OwnerReference{ownerRef(svc)}
	if truncated {
		if next.Annotations == nil {
			next.Annotations = map[string]string{}
		}
		next.Annotations[annotationOverCapacity] = "truncated"
	} else {
		delete(next.Annotations, annotationOverCapacity)
	}
	api := c.client.CoreV1().Endpoints(svc.Namespace)
	var got *corev1.Endpoints
	switch {
	case cur == nil:
		got, err = api.Create(ctx, next, metav1.CreateOptions{})
	case apiequality.Semantic.DeepEqual(cur.Subsets, next.Subsets) &&
		apiequality.Semantic.DeepEqual(cur.Labels, next.Labels) &&
		apiequality.Semantic.DeepEqual(cur.OwnerReferences, next.OwnerReferences) &&
		apiequality.Semantic.DeepEqual(cur.Annotations, next.Annotations):
		return nil
	default:
		got, err = api.Update(ctx, next, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("write endpoints %s/%s: %w", svc.Namespace, svc.Name, err)
	}
	c.written.wrote(endpointsKey(got.Namespace, got.Name), got.ResourceVersion)
	return nil
}
