package endpoints

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// errStaleCache: the informer has not yet seen a write this controller made
// for the Service; the sync is retried shortly rather than acting on an old
// picture (which would create duplicate slices).
var errStaleCache = errors.New("endpoint slice cache behind this controller's writes")

// group is the desired endpoints that share an address type and a set of
// ports: the unit slices are cut from.
type group struct {
	addressType discoveryv1.AddressType
	ports       []discoveryv1.EndpointPort
	eps         map[string]discoveryv1.Endpoint // by endpointKey
}

// desiredGroups computes every endpoint the Service should have, grouped.
// zone gives a node's topology zone ("" when unknown).
func desiredGroups(svc *corev1.Service, pods []*corev1.Pod, zone func(node string) string) map[string]*group {
	groups := map[string]*group{}
	for _, at := range addressTypes(svc) {
		for _, p := range pods {
			if !inEndpoints(p, true) {
				continue
			}
			addr := podAddress(p, at)
			if addr == "" {
				continue
			}
			var ports []discoveryv1.EndpointPort
			for i := range svc.Spec.Ports {
				sp := &svc.Spec.Ports[i]
				n, ok := findPort(p, sp)
				if !ok {
					continue
				}
				proto := sp.Protocol
				if proto == "" {
					proto = corev1.ProtocolTCP
				}
				ports = append(ports, discoveryv1.EndpointPort{Name: ptr(sp.Name), Port: ptr(n), Protocol: ptr(proto),
					AppProtocol: sp.AppProtocol})
			}
			key := groupKey(at, ports)
			g := groups[key]
			if g == nil {
				g = &group{addressType: at, ports: ports, eps: map[string]discoveryv1.Endpoint{}}
				groups[key] = g
			}
			g.eps[p.Namespace+"/"+p.Name] = podEndpoint(p, svc, addr, zone)
		}
	}
	return groups
}

// podEndpoint is one pod's endpoint. Conditions follow Kubernetes: serving
// is the pod's readiness, terminating its deletion, and ready is serving and
// not terminating, or always true with publishNotReadyAddresses.
func podEndpoint(p *corev1.Pod, svc *corev1.Service, addr string, zone func(string) string) discoveryv1.Endpoint {
	serving := podReady(p)
	terminating := p.DeletionTimestamp != nil
	ready := svc.Spec.PublishNotReadyAddresses || serving && !terminating
	ep := discoveryv1.Endpoint{
		Addresses:  []string{addr},
		Conditions: discoveryv1.EndpointConditions{Ready: &ready, Serving: &serving, Terminating: &terminating},
		TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: p.Namespace, Name: p.Name, UID: p.UID},
	}
	if p.Spec.NodeName != "" {
		ep.NodeName = ptr(p.Spec.NodeName)
		if z := zone(p.Spec.NodeName); z != "" {
			ep.Zone = ptr(z)
		}
	}
	if h := hostnameFor(p, svc); h != "" {
		ep.Hostname = ptr(h)
	}
	return ep
}

// endpointKey identifies an endpoint across syncs: its pod, or for an
// endpoint without one (never written by this controller) its address.
func endpointKey(ep discoveryv1.Endpoint) string {
	if r := ep.TargetRef; r != nil && r.Kind == "Pod" {
		return r.Namespace + "/" + r.Name
	}
	return "addr:" + strings.Join(ep.Addresses, ",")
}

// groupKey is a canonical form of an address type and a port set.
func groupKey(at discoveryv1.AddressType, ports []discoveryv1.EndpointPort) string {
	parts := make([]string, 0, len(ports))
	for _, p := range ports {
		s := deref(p.Name) + "/" + string(deref(p.Protocol)) + "/" + strconv.Itoa(int(deref(p.Port)))
		if p.AppProtocol != nil {
			s += "/" + *p.AppProtocol
		}
		parts = append(parts, s)
	}
	sort.Strings(parts)
	return string(at) + "|" + strings.Join(parts, ",")
}

// slicePlan is what a sync writes: creates first, then updates, then
// deletes, so that a consumer never sees an endpoint missing while it
// moves between slices.
type slicePlan struct {
	create, update, delete []*discoveryv1.EndpointSlice
}

// planSlices compares the desired groups with the Service's existing
// managed slices. Endpoints stay in the slice they are in where they can, so
// one pod's change rewrites one slice; new endpoints fill the free room of
// existing slices before new slices are made; slices left empty are
// deleted. A Service with no endpoints keeps one empty placeholder slice, as
// in Kubernetes, so that consumers can tell "no endpoints" from "not synced".
func planSlices(svc *corev1.Service, groups map[string]*group, existing []*discoveryv1.EndpointSlice, max int) slicePlan {
	var plan slicePlan
	lbls := sliceLabels(svc)
	owner := ownerRef(svc)
	byGroup := map[string][]*discoveryv1.EndpointSlice{}
	for _, s := range existing {
		if !ownedBy(s.OwnerReferences, svc) {
			plan.delete = append(plan.delete, s) // a former Service of the same name
			continue
		}
		k := groupKey(s.AddressType, s.Ports)
		byGroup[k] = append(byGroup[k], s)
	}
	// finish decides, for a slice that was edited in place, whether it is
	// written, left as it is, or deleted.
	finish := func(orig, next *discoveryv1.EndpointSlice) {
		next.Labels = lbls
		next.OwnerReferences = []metav1.OwnerReference{owner}
		switch {
		case len(next.Endpoints) == 0:
			plan.delete = append(plan.delete, orig)
		case !sliceEqual(orig, next):
			plan.update = append(plan.update, next)
		}
	}

	if len(groups) == 0 {
		at := addressTypes(svc)[0]
		var keep *discoveryv1.EndpointSlice
		for _, k := range slices.Sorted(maps.Keys(byGroup)) {
			for _, s := range byGroup[k] {
				if keep == nil && s.AddressType == at {
					keep = s // reused: addressType is immutable, the rest is not
					continue
				}
				plan.delete = append(plan.delete, s)
			}
		}
		if keep == nil {
			plan.create = append(plan.create, newSlice(svc, at, nil, lbls, owner))
			return plan
		}
		next := keep.DeepCopy()
		next.Ports, next.Endpoints = nil, []discoveryv1.Endpoint{}
		next.Labels, next.OwnerReferences = lbls, []metav1.OwnerReference{owner}
		if !sliceEqual(keep, next) {
			plan.update = append(plan.update, next)
		}
		return plan
	}

	for _, k := range slices.Sorted(maps.Keys(groups)) {
		g := groups[k]
		have := byGroup[k]
		delete(byGroup, k)
		sort.Slice(have, func(i, j int) bool { return have[i].Name < have[j].Name })
		placed := map[string]bool{}
		nexts := make([]*discoveryv1.EndpointSlice, len(have))
		for i, s := range have {
			next := s.DeepCopy()
			next.Endpoints = nil
			for _, ep := range s.Endpoints {
				key := endpointKey(ep)
				if want, ok := g.eps[key]; ok && !placed[key] {
					next.Endpoints = append(next.Endpoints, want)
					placed[key] = true
				}
			}
			nexts[i] = next
		}
		var rest []string
		for _, key := range slices.Sorted(maps.Keys(g.eps)) {
			if !placed[key] {
				rest = append(rest, key)
			}
		}
		for _, next := range nexts {
			for len(rest) > 0 && len(next.Endpoints) < max {
				next.Endpoints = append(next.Endpoints, g.eps[rest[0]])
				rest = rest[1:]
			}
		}
		for i, next := range nexts {
			finish(have[i], next)
		}
		for len(rest) > 0 {
			n := min(len(rest), max)
			s := newSlice(svc, g.addressType, g.ports, lbls, owner)
			for _, key := range rest[:n] {
				s.Endpoints = append(s.Endpoints, g.eps[key])
			}
			rest = rest[n:]
			plan.create = append(plan.create, s)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(byGroup)) {
		plan.delete = append(plan.delete, byGroup[k]...)
	}
	return plan
}

func newSlice(svc *corev1.Service, at discoveryv1.AddressType, ports []discoveryv1.EndpointPort,
	lbls map[string]string, owner metav1.OwnerReference) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName:    slicePrefixName(svc.Name),
			Namespace:       svc.Namespace,
			Labels:          lbls,
			OwnerReferences: []metav1.OwnerReference{owner},
		},
		AddressType: at,
		Ports:       ports,
		Endpoints:   []discoveryv1.Endpoint{},
	}
}

// slicePrefixName is the generateName of a Service's slices: its name and a
// dash, shortened so that the generated suffix still fits a DNS label.
func slicePrefixName(svc string) string {
	const maxPrefix = 63 - 5 // the API appends five characters
	p := svc + "-"
	if len(p) > maxPrefix {
		p = p[:maxPrefix]
	}
	return p
}

// sliceLabels are the Service's labels (bar the ones the controller sets),
// the headless marker, and the two labels that tie a slice to its Service
// and to this controller.
func sliceLabels(svc *corev1.Service) map[string]string {
	l := map[string]string{}
	for k, v := range svc.Labels {
		if k == discoveryv1.LabelServiceName || k == discoveryv1.LabelManagedBy {
			continue
		}
		l[k] = v
	}
	if svc.Spec.ClusterIP == corev1.ClusterIPNone {
		l[corev1.IsHeadlessService] = ""
	} else {
		delete(l, corev1.IsHeadlessService)
	}
	l[discoveryv1.LabelServiceName] = svc.Name
	l[discoveryv1.LabelManagedBy] = ManagedBy
	return l
}

func ownerRef(svc *corev1.Service) metav1.OwnerReference {
	return *metav1.NewControllerRef(svc, corev1.SchemeGroupVersion.WithKind("Service"))
}

func ownedBy(refs []metav1.OwnerReference, svc *corev1.Service) bool {
	for _, r := range refs {
		if r.UID == svc.UID && r.Kind == "Service" {
			return true
		}
	}
	return false
}

// sliceEqual compares what the controller sets. Semantic equality treats
// nil and empty lists alike, as a round trip through JSON does.
func sliceEqual(a, b *discoveryv1.EndpointSlice) bool {
	return a.AddressType == b.AddressType &&
		apiequality.Semantic.DeepEqual(a.Endpoints, b.Endpoints) &&
		apiequality.Semantic.DeepEqual(a.Ports, b.Ports) &&
		apiequality.Semantic.DeepEqual(a.Labels, b.Labels) &&
		apiequality.Semantic.DeepEqual(a.OwnerReferences, b.OwnerReferences)
}

// syncSlices brings the Service's managed slices to what its pods say.
func (c *Controller) syncSlices(ctx context.Context, svc *corev1.Service, pods []*corev1.Pod) error {
	existing, err := c.managedSlices(svc.Namespace, svc.Name)
	if err != nil {
		return err
	}
	if c.written.stale(slicePrefix(svc.Namespace, svc.Name), versions(existing)) {
		return errStaleCache
	}
	groups := desiredGroups(svc, pods, c.zone)
	return c.applySlices(ctx, svc.Name, planSlices(svc, groups, existing, c.cfg.MaxEndpointsPerSlice))
}

// versions maps slice names to their resource versions.
func versions(list []*discoveryv1.EndpointSlice) map[string]string {
	m := make(map[string]string, len(list))
	for _, s := range list {
		m[s.Name] = s.ResourceVersion
	}
	return m
}

func (c *Controller) managedSlices(ns, svc string) ([]*discoveryv1.EndpointSlice, error) {
	list, err := c.slices.EndpointSlices(ns).List(labels.SelectorFromSet(labels.Set{
		discoveryv1.LabelServiceName: svc, discoveryv1.LabelManagedBy: ManagedBy}))
	if err != nil {
		return nil, fmt.Errorf("list endpoint slices of %s/%s: %w", ns, svc, err)
	}
	return list, nil
}

// applySlices writes a plan, in order, and reports every failure.
func (c *Controller) applySlices(ctx context.Context, svc string, plan slicePlan) error {
	var errs []error
	for _, s := range plan.create {
		api := c.client.DiscoveryV1().EndpointSlices(s.Namespace)
		got, err := api.Create(ctx, s, metav1.CreateOptions{})
		if err != nil {
			errs = append(errs, fmt.Errorf("create endpoint slice for %s/%s: %w", s.Namespace, svc, err))
			continue
		}
		c.written.wrote(sliceKey(got.Namespace, svc, got.Name), got.ResourceVersion)
	}
	for _, s := range plan.update {
		api := c.client.DiscoveryV1().EndpointSlices(s.Namespace)
		got, err := api.Update(ctx, s, metav1.UpdateOptions{})
		if err != nil {
			errs = append(errs, fmt.Errorf("update endpoint slice %s/%s: %w", s.Namespace, s.Name, err))
			continue
		}
		c.written.wrote(sliceKey(got.Namespace, svc, got.Name), got.ResourceVersion)
	}
	for _, s := range plan.delete {
		api := c.client.DiscoveryV1().EndpointSlices(s.Namespace)
		err := api.Delete(ctx, s.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &s.UID}})
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete endpoint slice %s/%s: %w", s.Namespace, s.Name, err))
			continue
		}
		c.written.deleted(sliceKey(s.Namespace, svc, s.Name))
	}
	return errors.Join(errs...)
}

// zone is a node's topology.kubernetes.io/zone label.
func (c *Controller) zone(node string) string {
	n, err := c.nodes.Get(node)
	if err != nil {
		return ""
	}
	return n.Labels[corev1.LabelTopologyZone]
}

func ptr[T any](v T) *T { return &v }

func deref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}
