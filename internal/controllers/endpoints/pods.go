package endpoints

import (
	"net/netip"
	"reflect"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// podReady is the pod's Ready condition, as the kubelet reports it.
func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// inEndpoints says whether a pod may appear as an endpoint at all: it has an
// address and has not finished. Terminating pods are listed only when the
// caller asks (slices always list them, with terminating=true; the legacy
// Endpoints only for publishNotReadyAddresses).
func inEndpoints(p *corev1.Pod, includeTerminating bool) bool {
	if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return false
	}
	if p.Status.PodIP == "" && len(p.Status.PodIPs) == 0 {
		return false
	}
	return includeTerminating || p.DeletionTimestamp == nil
}

// podAddress is the pod's address of the given family, or "" if it has none.
func podAddress(p *corev1.Pod, at discoveryv1.AddressType) string {
	ips := []string{p.Status.PodIP}
	for _, ip := range p.Status.PodIPs {
		ips = append(ips, ip.IP)
	}
	for _, s := range ips {
		a, err := netip.ParseAddr(s)
		if err != nil {
			continue
		}
		if (at == discoveryv1.AddressTypeIPv6) == (a.Is6() && !a.Is4In6()) {
			return a.Unmap().String()
		}
	}
	return ""
}

// addressTypes are the address families the Service's endpoints are kept
// for: its ipFamilies, else the family of its cluster IP, else IPv4.
func addressTypes(svc *corev1.Service) []discoveryv1.AddressType {
	var out []discoveryv1.AddressType
	for _, f := range svc.Spec.IPFamilies {
		switch f {
		case corev1.IPv4Protocol:
			out = append(out, discoveryv1.AddressTypeIPv4)
		case corev1.IPv6Protocol:
			out = append(out, discoveryv1.AddressTypeIPv6)
		}
	}
	if len(out) > 0 {
		return out
	}
	if a, err := netip.ParseAddr(svc.Spec.ClusterIP); err == nil && a.Is6() && !a.Is4In6() {
		return []discoveryv1.AddressType{discoveryv1.AddressTypeIPv6}
	}
	return []discoveryv1.AddressType{discoveryv1.AddressTypeIPv4}
}

// findPort resolves a Service port's targetPort on one pod: a number is
// used as it is; a name is looked up among the containers' ports of the
// same protocol (sidecar init containers included, as Kubernetes 1.29+
// does). ok is false when the pod has no such named port: the pod then has
// no endpoint for that Service port.
func findPort(p *corev1.Pod, sp *corev1.ServicePort) (port int32, ok bool) {
	proto := sp.Protocol
	if proto == "" {
		proto = corev1.ProtocolTCP
	}
	switch sp.TargetPort.Type {
	case intstr.String:
		name := sp.TargetPort.StrVal
		if name == "" {
			return sp.Port, true
		}
		containers := append([]corev1.Container(nil), p.Spec.Containers...)
		for _, c := range p.Spec.InitContainers {
			if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
				containers = append(containers, c)
			}
		}
		for _, c := range containers {
			for _, cp := range c.Ports {
				cpProto := cp.Protocol
				if cpProto == "" {
					cpProto = corev1.ProtocolTCP
				}
				if cp.Name == name && cpProto == proto {
					return cp.ContainerPort, true
				}
			}
		}
		return 0, false
	default:
		if sp.TargetPort.IntVal == 0 {
			return sp.Port, true
		}
		return sp.TargetPort.IntVal, true
	}
}

// hostnameFor is the DNS hostname a pod's endpoint carries: its
// spec.hostname, when its spec.subdomain names this Service.
func hostnameFor(p *corev1.Pod, svc *corev1.Service) string {
	if p.Spec.Hostname != "" && p.Spec.Subdomain == svc.Name && p.Namespace == svc.Namespace {
		return p.Spec.Hostname
	}
	return ""
}

// endpointRelevantChange says whether a pod update can change any endpoint
// or the Services selecting it.
func endpointRelevantChange(old, cur *corev1.Pod) bool {
	if !reflect.DeepEqual(old.Labels, cur.Labels) ||
		old.Status.PodIP != cur.Status.PodIP ||
		!reflect.DeepEqual(old.Status.PodIPs, cur.Status.PodIPs) ||
		old.Status.Phase != cur.Status.Phase ||
		podReady(old) != podReady(cur) ||
		(old.DeletionTimestamp == nil) != (cur.DeletionTimestamp == nil) ||
		old.Spec.NodeName != cur.Spec.NodeName ||
		old.Spec.Hostname != cur.Spec.Hostname || old.Spec.Subdomain != cur.Spec.Subdomain {
		return true
	}
	// Container ports are immutable in Kubernetes, but a pod recreated under
	// the same name between two events is a new pod.
	return old.UID != cur.UID
}
