package validation

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// nodePortMin and nodePortMax bound the default --service-node-port-range of
// kube-apiserver.
const nodePortMin, nodePortMax = 30000, 32767

// maxClientIPAffinitySeconds is a day, Kubernetes' cap on ClientIP session
// affinity.
const maxClientIPAffinitySeconds = 86400

var serviceTypes = []corev1.ServiceType{corev1.ServiceTypeClusterIP, corev1.ServiceTypeExternalName,
	corev1.ServiceTypeLoadBalancer, corev1.ServiceTypeNodePort}

func isHeadless(svc *corev1.Service) bool {
	return svc.Spec.ClusterIP == corev1.ClusterIPNone ||
		len(svc.Spec.ClusterIPs) > 0 && svc.Spec.ClusterIPs[0] == corev1.ClusterIPNone
}

// validateService is ValidateService, plus the node port range check the
// allocator makes, and ValidateServiceUpdate.
func validateService(svc, old *corev1.Service) field.ErrorList {
	var errs field.ErrorList
	spec := &svc.Spec
	sp := field.NewPath("spec")
	headless := isHeadless(svc)

	if len(spec.Ports) == 0 && !headless && spec.Type != corev1.ServiceTypeExternalName {
		errs = append(errs, field.Required(sp.Child("ports"), ""))
	}
	switch spec.Type {
	case corev1.ServiceTypeLoadBalancer, corev1.ServiceTypeNodePort:
		if headless {
			errs = append(errs, field.Invalid(sp.Child("clusterIPs").Index(0), corev1.ClusterIPNone,
				fmt.Sprintf("may not be set to 'None' for %s services", spec.Type)))
		}
	case corev1.ServiceTypeExternalName:
		if spec.ClusterIP != "" || len(spec.ClusterIPs) > 0 {
			errs = append(errs, field.Forbidden(sp.Child("clusterIPs"), "may not be set for ExternalName services"))
		}
		if len(spec.IPFamilies) > 0 {
			errs = append(errs, field.Forbidden(sp.Child("ipFamilies"), "may not be set for ExternalName services"))
		}
		if spec.IPFamilyPolicy != nil {
			errs = append(errs, field.Forbidden(sp.Child("ipFamilyPolicy"), "may not be set for ExternalName services"))
		}
		// A CNAME may end with a dot to mark it fully qualified.
		if cname := strings.TrimSuffix(spec.ExternalName, "."); cname != "" {
			errs = append(errs, dnsSubdomain(cname, sp.Child("externalName"))...)
		} else {
			errs = append(errs, field.Required(sp.Child("externalName"), ""))
		}
	}

	portNames := map[string]bool{}
	nodePorts := map[string]bool{}
	ports := map[string]bool{}
	for i := range spec.Ports {
		port := &spec.Ports[i]
		pp := sp.Child("ports").Index(i)
		if len(spec.Ports) > 1 && port.Name == "" {
			errs = append(errs, field.Required(pp.Child("name"), ""))
		} else if port.Name != "" {
			errs = append(errs, dnsLabel(port.Name, pp.Child("name"))...)
			if portNames[port.Name] {
				errs = append(errs, field.Duplicate(pp.Child("name"), port.Name))
			}
			portNames[port.Name] = true
		}
		errs = append(errs, portNum(port.Port, pp.Child("port"))...)
		errs = append(errs, enum(port.Protocol, pp.Child("protocol"), supportedProtocols...)...)
		errs = append(errs, portNumOrName(port.TargetPort, pp.Child("targetPort"))...)
		if port.AppProtocol != nil {
			errs = append(errs, qualifiedName(*port.AppProtocol, pp.Child("appProtocol"))...)
		}
		if port.NodePort != 0 {
			switch spec.Type {
			case corev1.ServiceTypeClusterIP:
				errs = append(errs, field.Forbidden(pp.Child("nodePort"), "may not be used when `type` is 'ClusterIP'"))
			case corev1.ServiceTypeNodePort, corev1.ServiceTypeLoadBalancer:
				if port.NodePort < nodePortMin || port.NodePort > nodePortMax {
					errs = append(errs, field.Invalid(pp.Child("nodePort"), port.NodePort,
						fmt.Sprintf("provided port is not in the valid range. The range of valid ports is %d-%d", nodePortMin, nodePortMax)))
				}
			}
			key := fmt.Sprintf("%s/%d", port.Protocol, port.NodePort)
			if nodePorts[key] {
				errs = append(errs, field.Duplicate(pp.Child("nodePort"), port.NodePort))
			}
			nodePorts[key] = true
		}
		key := fmt.Sprintf("%s/%d", port.Protocol, port.Port)
		if ports[key] {
			errs = append(errs, field.Duplicate(pp, key))
		}
		ports[key] = true
	}

	errs = append(errs, validateLabels(spec.Selector, sp.Child("selector"))...)
	errs = append(errs, enum(spec.SessionAffinity, sp.Child("sessionAffinity"),
		corev1.ServiceAffinityClientIP, corev1.ServiceAffinityNone)...)
	switch spec.SessionAffinity {
	case corev1.ServiceAffinityClientIP:
		c := spec.SessionAffinityConfig
		cp := sp.Child("sessionAffinityConfig", "clientIP", "timeoutSeconds")
		if c == nil || c.ClientIP == nil || c.ClientIP.TimeoutSeconds == nil {
			errs = append(errs, field.Required(cp, ""))
		} else if t := *c.ClientIP.TimeoutSeconds; t <= 0 || t > maxClientIPAffinitySeconds {
			errs = append(errs, field.Invalid(cp, t, fmt.Sprintf("must be greater than 0 and less than %d", maxClientIPAffinitySeconds)))
		}
	case corev1.ServiceAffinityNone:
		if spec.SessionAffinityConfig != nil {
			errs = append(errs, field.Forbidden(sp.Child("sessionAffinityConfig"), "must not be set when session affinity is None"))
		}
	}
	if spec.Type != corev1.ServiceTypeExternalName {
		errs = append(errs, validateClusterIPs(svc, sp)...)
	}
	for i, v := range spec.ExternalIPs {
		if e := ip(v, sp.Child("externalIPs").Index(i)); len(e) > 0 {
			errs = append(errs, e...)
		} else {
			errs = append(errs, nonSpecialIP(v, sp.Child("externalIPs").Index(i))...)
		}
	}
	errs = append(errs, enum(spec.Type, sp.Child("type"), serviceTypes...)...)

	isLB := spec.Type == corev1.ServiceTypeLoadBalancer
	if len(spec.LoadBalancerSourceRanges) > 0 {
		// Kubernetes spells this path with a capital L.
		rp := sp.Child("LoadBalancerSourceRanges")
		if !isLB {
			errs = append(errs, field.Forbidden(rp, "may only be used when `type` is 'LoadBalancer'"))
		}
		for i, r := range spec.LoadBalancerSourceRanges {
			errs = append(errs, cidr(strings.TrimSpace(r), rp.Index(i))...)
		}
	}
	if spec.AllocateLoadBalancerNodePorts != nil && !isLB {
		errs = append(errs, field.Forbidden(sp.Child("allocateLoadBalancerNodePorts"), "may only be used when `type` is 'LoadBalancer'"))
	}
	if isLB && spec.AllocateLoadBalancerNodePorts == nil {
		errs = append(errs, field.Required(sp.Child("allocateLoadBalancerNodePorts"), ""))
	}
	if spec.LoadBalancerClass != nil {
		if !isLB {
			errs = append(errs, field.Forbidden(sp.Child("loadBalancerClass"), "may only be used when `type` is 'LoadBalancer'"))
		} else {
			errs = append(errs, qualifiedName(*spec.LoadBalancerClass, sp.Child("loadBalancerClass"))...)
		}
	}
	if !externallyAccessible(svc) {
		if spec.ExternalTrafficPolicy != "" {
			errs = append(errs, field.Invalid(sp.Child("externalTrafficPolicy"), spec.ExternalTrafficPolicy,
				"may only be set for externally-accessible services"))
		}
	} else {
		errs = append(errs, enum(spec.ExternalTrafficPolicy, sp.Child("externalTrafficPolicy"),
			corev1.ServiceExternalTrafficPolicyCluster, corev1.ServiceExternalTrafficPolicyLocal)...)
	}
	if spec.HealthCheckNodePort != 0 {
		hp := sp.Child("healthCheckNodePort")
		if !isLB || spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal {
			errs = append(errs, field.Invalid(hp, spec.HealthCheckNodePort,
				"may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"))
		} else {
			errs = append(errs, portNum(spec.HealthCheckNodePort, hp)...)
		}
	}
	if spec.InternalTrafficPolicy == nil {
		switch spec.Type {
		case corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort, corev1.ServiceTypeLoadBalancer:
			errs = append(errs, field.Required(sp.Child("internalTrafficPolicy"), ""))
		}
	} else {
		errs = append(errs, enum(*spec.InternalTrafficPolicy, sp.Child("internalTrafficPolicy"),
			corev1.ServiceInternalTrafficPolicyCluster, corev1.ServiceInternalTrafficPolicyLocal)...)
	}
	if td := spec.TrafficDistribution; td != nil && *td != corev1.ServiceTrafficDistributionPreferClose {
		errs = append(errs, field.NotSupported(sp.Child("trafficDistribution"), *td, []string{corev1.ServiceTrafficDistributionPreferClose}))
	}
	if old != nil {
		errs = append(errs, validateServiceUpdate(svc, old, sp)...)
	}
	return errs
}

// validateClusterIPs checks clusterIP(s), ipFamilies and ipFamilyPolicy
// against each other.
func validateClusterIPs(svc *corev1.Service, sp *field.Path) field.ErrorList {
	var errs field.ErrorList
	spec := &svc.Spec
	ipsPath := sp.Child("clusterIPs")
	if spec.ClusterIP != "" && len(spec.ClusterIPs) > 0 && spec.ClusterIP != spec.ClusterIPs[0] {
		errs = append(errs, field.Invalid(ipsPath, spec.ClusterIPs, "first value must match `clusterIP`"))
	}
	if len(spec.ClusterIPs) > 2 {
		errs = append(errs, field.Invalid(ipsPath, spec.ClusterIPs, "may only hold up to 2 values"))
	}
	for i, v := range spec.ClusterIPs {
		if v == corev1.ClusterIPNone {
			if i > 0 || len(spec.ClusterIPs) > 1 {
				errs = append(errs, field.Invalid(ipsPath.Index(i), v, "'None' must be the first and only value"))
			}
			continue
		}
		errs = append(errs, ip(v, ipsPath.Index(i))...)
	}
	if len(spec.ClusterIPs) == 2 && spec.ClusterIPs[0] != corev1.ClusterIPNone &&
		isIPv6(spec.ClusterIPs[0]) == isIPv6(spec.ClusterIPs[1]) {
		errs = append(errs, field.Invalid(ipsPath, spec.ClusterIPs, "may specify no more than one IP for each IP family"))
	}
	if spec.IPFamilyPolicy != nil {
		errs = append(errs, enum(*spec.IPFamilyPolicy, sp.Child("ipFamilyPolicy"), corev1.IPFamilyPolicySingleStack,
			corev1.IPFamilyPolicyPreferDualStack, corev1.IPFamilyPolicyRequireDualStack)...)
		if *spec.IPFamilyPolicy == corev1.IPFamilyPolicySingleStack {
			if len(spec.ClusterIPs) > 1 {
				errs = append(errs, field.Invalid(ipsPath, spec.ClusterIPs, "must be at most one IP when `ipFamilyPolicy` is 'SingleStack'"))
			}
			if len(spec.IPFamilies) > 1 {
				errs = append(errs, field.Invalid(sp.Child("ipFamilies"), spec.IPFamilies, "must be at most one IP family when `ipFamilyPolicy` is 'SingleStack'"))
			}
		}
	}
	seen := map[corev1.IPFamily]bool{}
	for i, f := range spec.IPFamilies {
		fp := sp.Child("ipFamilies").Index(i)
		errs = append(errs, enum(f, fp, corev1.IPv4Protocol, corev1.IPv6Protocol)...)
		if seen[f] {
			errs = append(errs, field.Duplicate(fp, f))
		}
		seen[f] = true
	}
	if len(spec.IPFamilies) > 2 {
		errs = append(errs, field.Invalid(sp.Child("ipFamilies"), spec.IPFamilies, "may specify no more than one IP for each IP family"))
	}
	if !isHeadless(svc) {
		for i, v := range spec.ClusterIPs {
			if i >= len(spec.IPFamilies) {
				break
			}
			if spec.IPFamilies[i] == corev1.IPv4Protocol && isIPv6(v) {
				errs = append(errs, field.Invalid(ipsPath.Index(i), v, fmt.Sprintf("expected an IPv4 value as indicated by `ipFamilies[%d]`", i)))
			}
			if spec.IPFamilies[i] == corev1.IPv6Protocol && !isIPv6(v) {
				errs = append(errs, field.Invalid(ipsPath.Index(i), v, fmt.Sprintf("expected an IPv6 value as indicated by `ipFamilies[%d]`", i)))
			}
		}
	}
	return errs
}

// validateServiceUpdate: a service keeps its cluster IPs and primary IP
// family unless it moves to or from ExternalName, and its load balancer
// class once set.
func validateServiceUpdate(svc, old *corev1.Service, sp *field.Path) field.ErrorList {
	var errs field.ErrorList
	ext := corev1.ServiceTypeExternalName
	if svc.Spec.Type != ext && old.Spec.Type != ext && !(isHeadless(svc) && isHeadless(old)) {
		newIPs, oldIPs := clusterIPs(svc), clusterIPs(old)
		for i := 0; i < len(oldIPs) && i < len(newIPs); i++ {
			if oldIPs[i] != newIPs[i] {
				errs = append(errs, field.Invalid(sp.Child("clusterIPs").Index(i), newIPs, "may not change once set"))
			}
		}
		if len(newIPs) < len(oldIPs) {
			switch {
			case len(newIPs) == 0:
				errs = append(errs, field.Invalid(sp.Child("clusterIPs").Index(0), newIPs, "primary clusterIP can not be unset"))
			case svc.Spec.IPFamilyPolicy == nil || *svc.Spec.IPFamilyPolicy != corev1.IPFamilyPolicySingleStack:
				errs = append(errs, field.Invalid(sp.Child("ipFamilyPolicy"), svc.Spec.IPFamilyPolicy,
					"must be 'SingleStack' to release the secondary cluster IP"))
			}
		}
		if len(old.Spec.IPFamilies) > 0 && len(svc.Spec.IPFamilies) > 0 && old.Spec.IPFamilies[0] != svc.Spec.IPFamilies[0] {
			errs = append(errs, field.Invalid(sp.Child("ipFamilies").Index(0), svc.Spec.IPFamilies[0], "may not change once set"))
		}
	}
	if svc.Spec.Type == corev1.ServiceTypeLoadBalancer && old.Spec.Type == corev1.ServiceTypeLoadBalancer &&
		!semanticEqual(svc.Spec.LoadBalancerClass, old.Spec.LoadBalancerClass) {
		errs = append(errs, field.Invalid(sp.Child("loadBalancerClass"), svc.Spec.LoadBalancerClass, "may not change once set"))
	}
	return errs
}

// clusterIPs is clusterIPs, or clusterIP when the list was not filled in.
func clusterIPs(svc *corev1.Service) []string {
	if len(svc.Spec.ClusterIPs) > 0 || svc.Spec.ClusterIP == "" {
		return svc.Spec.ClusterIPs
	}
	return []string{svc.Spec.ClusterIP}
}

// Endpoints

func validateEndpoints(ep *corev1.Endpoints) field.ErrorList {
	var errs field.ErrorList
	for i, ss := range ep.Subsets {
		sp := field.NewPath("subsets").Index(i)
		if len(ss.Addresses) == 0 && len(ss.NotReadyAddresses) == 0 {
			errs = append(errs, field.Required(sp, "must specify `addresses` or `notReadyAddresses`"))
		}
		for _, list := range []struct {
			name  string
			addrs []corev1.EndpointAddress
		}{{"addresses", ss.Addresses}, {"notReadyAddresses", ss.NotReadyAddresses}} {
			for j, a := range list.addrs {
				ap := sp.Child(list.name).Index(j)
				if e := ip(a.IP, ap.Child("ip")); len(e) > 0 {
					errs = append(errs, e...)
				} else {
					errs = append(errs, endpointIP(a.IP, ap.Child("ip"))...)
				}
				if a.Hostname != "" {
					errs = append(errs, dnsLabel(a.Hostname, ap.Child("hostname"))...)
				}
				if a.NodeName != nil {
					errs = append(errs, dnsSubdomain(*a.NodeName, ap.Child("nodeName"))...)
				}
			}
		}
		for j, port := range ss.Ports {
			pp := sp.Child("ports").Index(j)
			if len(ss.Ports) > 1 && port.Name == "" {
				errs = append(errs, field.Required(pp.Child("name"), ""))
			} else if port.Name != "" {
				errs = append(errs, dnsLabel(port.Name, pp.Child("name"))...)
			}
			errs = append(errs, portNum(port.Port, pp.Child("port"))...)
			errs = append(errs, enum(port.Protocol, pp.Child("protocol"), supportedProtocols...)...)
			if port.AppProtocol != nil {
				errs = append(errs, qualifiedName(*port.AppProtocol, pp.Child("appProtocol"))...)
			}
		}
	}
	return errs
}
