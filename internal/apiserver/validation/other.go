package validation

import (
	"fmt"
	"net/netip"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	nodev1 "k8s.io/api/node/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/validation/path"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// validateOtherGroups dispatches the kinds outside the core group.
func validateOtherGroups(obj, old runtime.Object) field.ErrorList {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return validateDeployment(o, oldAs[*appsv1.Deployment](old))
	case *appsv1.ReplicaSet:
		return validateReplicaSet(o, oldAs[*appsv1.ReplicaSet](old))
	case *appsv1.StatefulSet:
		return validateStatefulSet(o, oldAs[*appsv1.StatefulSet](old))
	case *appsv1.DaemonSet:
		return validateDaemonSet(o, oldAs[*appsv1.DaemonSet](old))
	case *appsv1.ControllerRevision:
		return validateControllerRevision(o, oldAs[*appsv1.ControllerRevision](old))
	case *batchv1.Job:
		return validateJob(o, oldAs[*batchv1.Job](old))
	case *batchv1.CronJob:
		return validateCronJob(o, oldAs[*batchv1.CronJob](old))
	case *autoscalingv2.HorizontalPodAutoscaler:
		return validateHPA(o)
	case *networkingv1.Ingress:
		return validateIngress(o)
	case *networkingv1.IngressClass:
		return validateIngressClass(o, oldAs[*networkingv1.IngressClass](old))
	case *networkingv1.NetworkPolicy:
		return validateNetworkPolicy(o)
	case *discoveryv1.EndpointSlice:
		return validateEndpointSlice(o, oldAs[*discoveryv1.EndpointSlice](old))
	case *nodev1.RuntimeClass:
		return validateRuntimeClass(o, oldAs[*nodev1.RuntimeClass](old))
	case *storagev1.StorageClass:
		return validateStorageClass(o, oldAs[*storagev1.StorageClass](old))
	case *coordinationv1.Lease:
		return validateLease(o)
	case *policyv1.PodDisruptionBudget:
		return validatePDB(o)
	case *rbacv1.Role:
		return validatePolicyRules(o.Rules, true, field.NewPath("rules"))
	case *rbacv1.ClusterRole:
		return validateClusterRole(o)
	case *rbacv1.RoleBinding:
		return validateRoleBinding(&o.RoleRef, o.Subjects, true, roleRefOf(oldAs[*rbacv1.RoleBinding](old)))
	case *rbacv1.ClusterRoleBinding:
		return validateRoleBinding(&o.RoleRef, o.Subjects, false, clusterRoleRefOf(oldAs[*rbacv1.ClusterRoleBinding](old)))
	}
	return nil
}

// Networking

var invalidPathSequences = []string{"//", "/./", "/../", "%2f", "%2F"}

func hostName(host string, p *field.Path) field.ErrorList {
	if strings.Contains(host, "*") {
		return invalidEach(nil, p, host, validation.IsWildcardDNS1123Subdomain(host))
	}
	return dnsSubdomain(host, p)
}

// validateIngress is ValidateIngressSpec.
func validateIngress(ing *networkingv1.Ingress) field.ErrorList {
	var errs field.ErrorList
	sp := field.NewPath("spec")
	spec := &ing.Spec
	if len(spec.Rules) == 0 && spec.DefaultBackend == nil {
		errs = append(errs, field.Invalid(sp, spec.Rules, "either `defaultBackend` or `rules` must be specified"))
	}
	if spec.DefaultBackend != nil {
		errs = append(errs, validateIngressBackend(spec.DefaultBackend, sp.Child("defaultBackend"))...)
	}
	for i, r := range spec.Rules {
		rp := sp.Child("rules").Index(i)
		if r.Host != "" {
			if _, err := netip.ParseAddr(r.Host); err == nil {
				errs = append(errs, field.Invalid(rp.Child("host"), r.Host, "must be a DNS name, not an IP address"))
			}
			errs = append(errs, hostName(r.Host, rp.Child("host"))...)
		}
		if r.HTTP == nil {
			continue
		}
		hp := rp.Child("http")
		if len(r.HTTP.Paths) == 0 {
			errs = append(errs, field.Required(hp.Child("paths"), ""))
		}
		for j := range r.HTTP.Paths {
			errs = append(errs, validateIngressPath(&r.HTTP.Paths[j], hp.Child("paths").Index(j))...)
		}
	}
	for i, tls := range spec.TLS {
		tp := sp.Child("tls").Index(i)
		for j, h := range tls.Hosts {
			errs = append(errs, hostName(h, tp.Child("hosts").Index(j))...)
		}
		if tls.SecretName != "" {
			errs = append(errs, dnsSubdomain(tls.SecretName, tp.Child("secretName"))...)
		}
	}
	if spec.IngressClassName != nil {
		errs = append(errs, dnsSubdomain(*spec.IngressClassName, sp.Child("ingressClassName"))...)
	}
	return errs
}

func validateIngressPath(hp *networkingv1.HTTPIngressPath, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if hp.PathType == nil {
		return field.ErrorList{field.Required(p.Child("pathType"), "pathType must be specified")}
	}
	switch *hp.PathType {
	case networkingv1.PathTypeExact, networkingv1.PathTypePrefix:
		if !strings.HasPrefix(hp.Path, "/") {
			errs = append(errs, field.Invalid(p.Child("path"), hp.Path, "must be an absolute path"))
		}
		for _, seq := range invalidPathSequences {
			if strings.Contains(hp.Path, seq) {
				errs = append(errs, field.Invalid(p.Child("path"), hp.Path, fmt.Sprintf("must not contain '%s'", seq)))
			}
		}
		for _, suffix := range []string{"/..", "/."} {
			if strings.HasSuffix(hp.Path, suffix) {
				errs = append(errs, field.Invalid(p.Child("path"), hp.Path, fmt.Sprintf("cannot end with '%s'", suffix)))
			}
		}
	case networkingv1.PathTypeImplementationSpecific:
		if hp.Path != "" && !strings.HasPrefix(hp.Path, "/") {
			errs = append(errs, field.Invalid(p.Child("path"), hp.Path, "must be an absolute path"))
		}
	default:
		errs = append(errs, field.NotSupported(p.Child("pathType"), *hp.PathType, []networkingv1.PathType{
			networkingv1.PathTypeExact, networkingv1.PathTypeImplementationSpecific, networkingv1.PathTypePrefix}))
	}
	return append(errs, validateIngressBackend(&hp.Backend, p.Child("backend"))...)
}

func validateIngressBackend(b *networkingv1.IngressBackend, p *field.Path) field.ErrorList {
	switch {
	case b.Resource != nil && b.Service != nil:
		return field.ErrorList{field.Invalid(p, "", "cannot set both resource and service backends")}
	case b.Resource != nil:
		var errs field.ErrorList
		rp := p.Child("resource")
		if b.Resource.Kind == "" {
			errs = append(errs, field.Required(rp.Child("kind"), ""))
		}
		if b.Resource.Name == "" {
			errs = append(errs, field.Required(rp.Child("name"), ""))
		}
		if b.Resource.APIGroup == nil || *b.Resource.APIGroup == "" {
			errs = append(errs, field.Invalid(rp.Child("apiGroup"), "", "must be specified"))
		}
		return errs
	case b.Service != nil:
		sp := p.Child("service")
		errs := requiredName(b.Service.Name, sp.Child("name"), dns1035Label)
		port := b.Service.Port
		switch {
		case port.Name != "" && port.Number != 0:
			errs = append(errs, field.Invalid(p, "", "cannot set both port name & port number"))
		case port.Name != "":
			errs = invalidEach(errs, sp.Child("port", "name"), port.Name, validation.IsValidPortName(port.Name))
		case port.Number != 0:
			errs = append(errs, portNum(port.Number, sp.Child("port", "number"))...)
		default:
			errs = append(errs, field.Required(p, "port name or number is required"))
		}
		return errs
	default:
		return field.ErrorList{field.Invalid(p, "", "resource or service backend is required")}
	}
}

func validateIngressClass(ic, old *networkingv1.IngressClass) field.ErrorList {
	var errs field.ErrorList
	sp := field.NewPath("spec")
	cp := sp.Child("controller")
	switch {
	case ic.Spec.Controller == "":
		errs = append(errs, field.Required(cp, ""))
	case len(ic.Spec.Controller) > 250:
		errs = append(errs, field.TooLong(cp, "", 250))
	default:
		errs = append(errs, validation.IsDomainPrefixedPath(cp, ic.Spec.Controller)...)
	}
	if pr := ic.Spec.Parameters; pr != nil {
		pp := sp.Child("parameters")
		if pr.Kind == "" {
			errs = append(errs, field.Required(pp.Child("kind"), ""))
		}
		if pr.Name == "" {
			errs = append(errs, field.Required(pp.Child("name"), ""))
		}
		scope := ""
		if pr.Scope != nil {
			scope = *pr.Scope
			errs = append(errs, enum(scope, pp.Child("scope"), networkingv1.IngressClassParametersReferenceScopeCluster,
				networkingv1.IngressClassParametersReferenceScopeNamespace)...)
		}
		if scope == networkingv1.IngressClassParametersReferenceScopeNamespace && (pr.Namespace == nil || *pr.Namespace == "") {
			errs = append(errs, field.Required(pp.Child("namespace"), "`parameters.scope` is set to 'Namespace'"))
		}
		if scope != networkingv1.IngressClassParametersReferenceScopeNamespace && pr.Namespace != nil {
			errs = append(errs, field.Forbidden(pp.Child("namespace"), "`parameters.scope` must be set to 'Namespace' when `namespace` is set"))
		}
	}
	if old != nil {
		errs = append(errs, immutable(ic.Spec.Controller, old.Spec.Controller, cp)...)
	}
	return errs
}

// validateNetworkPolicy is ValidateNetworkPolicySpec.
func validateNetworkPolicy(np *networkingv1.NetworkPolicy) field.ErrorList {
	sp := field.NewPath("spec")
	spec := &np.Spec
	errs := labelSelector(&spec.PodSelector, sp.Child("podSelector"))
	for i, in := range spec.Ingress {
		ip := sp.Child("ingress").Index(i)
		for j := range in.Ports {
			errs = append(errs, validateNetworkPolicyPort(&in.Ports[j], ip.Child("ports").Index(j))...)
		}
		for j := range in.From {
			errs = append(errs, validateNetworkPolicyPeer(&in.From[j], ip.Child("from").Index(j))...)
		}
	}
	for i, eg := range spec.Egress {
		ep := sp.Child("egress").Index(i)
		for j := range eg.Ports {
			errs = append(errs, validateNetworkPolicyPort(&eg.Ports[j], ep.Child("ports").Index(j))...)
		}
		for j := range eg.To {
			errs = append(errs, validateNetworkPolicyPeer(&eg.To[j], ep.Child("to").Index(j))...)
		}
	}
	if len(spec.PolicyTypes) > 2 {
		return append(errs, field.Invalid(sp.Child("policyTypes"), spec.PolicyTypes, "may not specify more than two policyTypes"))
	}
	for i, t := range spec.PolicyTypes {
		errs = append(errs, enum(t, sp.Child("policyTypes").Index(i), networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress)...)
	}
	return errs
}

func validateNetworkPolicyPort(port *networkingv1.NetworkPolicyPort, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if port.Protocol != nil {
		errs = append(errs, optionalEnum(*port.Protocol, p.Child("protocol"), corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP)...)
	}
	switch {
	case port.Port == nil:
		if port.EndPort != nil {
			errs = append(errs, field.Invalid(p.Child("endPort"), *port.EndPort, "may not be specified when `port` is not specified"))
		}
	case port.Port.Type == intstr.Int:
		errs = append(errs, portNum(port.Port.IntVal, p.Child("port"))...)
		if port.EndPort != nil {
			if *port.EndPort < port.Port.IntVal {
				errs = append(errs, field.Invalid(p.Child("endPort"), port.Port.IntVal, "must be greater than or equal to `port`"))
			}
			errs = append(errs, portNum(*port.EndPort, p.Child("endPort"))...)
		}
	default:
		if port.EndPort != nil {
			errs = append(errs, field.Invalid(p.Child("endPort"), *port.EndPort, "may not be specified when `port` is non-numeric"))
		}
		errs = invalidEach(errs, p.Child("port"), port.Port.StrVal, validation.IsValidPortName(port.Port.StrVal))
	}
	return errs
}

func validateNetworkPolicyPeer(peer *networkingv1.NetworkPolicyPeer, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	n := 0
	if peer.PodSelector != nil {
		n++
		errs = append(errs, labelSelector(peer.PodSelector, p.Child("podSelector"))...)
	}
	if peer.NamespaceSelector != nil {
		n++
		errs = append(errs, labelSelector(peer.NamespaceSelector, p.Child("namespaceSelector"))...)
	}
	if b := peer.IPBlock; b != nil {
		n++
		bp := p.Child("ipBlock")
		if b.CIDR == "" {
			errs = append(errs, field.Required(bp.Child("cidr"), ""))
		} else if outer, err := netip.ParsePrefix(b.CIDR); err != nil {
			errs = append(errs, field.Invalid(bp.Child("cidr"), b.CIDR, "not a valid CIDR"))
		} else {
			for i, ex := range b.Except {
				inner, err := netip.ParsePrefix(ex)
				switch {
				case err != nil:
					errs = append(errs, field.Invalid(bp.Child("except").Index(i), ex, "not a valid CIDR"))
				case !outer.Masked().Contains(inner.Addr()) || outer.Bits() >= inner.Bits():
					errs = append(errs, field.Invalid(bp.Child("except").Index(i), ex, "must be a strict subset of `cidr`"))
				}
			}
		}
	}
	switch {
	case n == 0:
		errs = append(errs, field.Required(p, "must specify a peer"))
	case n > 1 && peer.IPBlock != nil:
		errs = append(errs, field.Forbidden(p, "may not specify both ipBlock and another peer"))
	}
	return errs
}

// Discovery

func validateEndpointSlice(es, old *discoveryv1.EndpointSlice) field.ErrorList {
	var errs field.ErrorList
	errs = append(errs, enum(es.AddressType, field.NewPath("addressType"),
		discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6, discoveryv1.AddressTypeFQDN)...)
	ep := field.NewPath("endpoints")
	errs = append(errs, tooManyItems(len(es.Endpoints), 1000, ep)...)
	for i, e := range es.Endpoints {
		ip := ep.Index(i)
		ap := ip.Child("addresses")
		if len(e.Addresses) == 0 {
			errs = append(errs, field.Required(ap, "must contain at least 1 address"))
		}
		errs = append(errs, tooManyItems(len(e.Addresses), 100, ap)...)
		for j, a := range e.Addresses {
			aip := ap.Index(j)
			switch es.AddressType {
			case discoveryv1.AddressTypeIPv4:
				if e := validation.IsValidIPv4Address(aip, a); len(e) > 0 {
					errs = append(errs, e...)
				} else {
					errs = append(errs, endpointIP(a, aip)...)
				}
			case discoveryv1.AddressTypeIPv6:
				if e := validation.IsValidIPv6Address(aip, a); len(e) > 0 {
					errs = append(errs, e...)
				} else {
					errs = append(errs, endpointIP(a, aip)...)
				}
			case discoveryv1.AddressTypeFQDN:
				errs = append(errs, validation.IsFullyQualifiedDomainName(aip, a)...)
			}
		}
		if e.NodeName != nil {
			errs = append(errs, dnsSubdomain(*e.NodeName, ip.Child("nodeName"))...)
		}
		if e.Hostname != nil {
			errs = append(errs, dnsLabel(*e.Hostname, ip.Child("hostname"))...)
		}
		errs = append(errs, validateLabels(e.DeprecatedTopology, ip.Child("deprecatedTopology"))...)
	}
	pp := field.NewPath("ports")
	errs = append(errs, tooManyItems(len(es.Ports), 20000, pp)...)
	names := map[string]bool{}
	for i, port := range es.Ports {
		ip := pp.Index(i)
		name := ""
		if port.Name != nil {
			name = *port.Name
		}
		if name != "" {
			errs = append(errs, dnsLabel(name, ip.Child("name"))...)
		}
		if names[name] {
			errs = append(errs, field.Duplicate(ip.Child("name"), name))
		}
		names[name] = true
		if port.Protocol == nil {
			errs = append(errs, field.Required(ip.Child("protocol"), ""))
		} else {
			errs = append(errs, enum(*port.Protocol, ip.Child("protocol"), supportedProtocols...)...)
		}
		if port.AppProtocol != nil {
			errs = append(errs, qualifiedName(*port.AppProtocol, ip.Child("appProtocol"))...)
		}
	}
	if old != nil {
		errs = append(errs, immutable(es.AddressType, old.AddressType, field.NewPath("addressType"))...)
	}
	return errs
}

// Node, storage, coordination, policy

func validateRuntimeClass(rc, old *nodev1.RuntimeClass) field.ErrorList {
	hp := field.NewPath("handler")
	errs := requiredName(rc.Handler, hp, dnsLabel)
	if rc.Overhead != nil {
		for name, q := range rc.Overhead.PodFixed {
			op := field.NewPath("overhead", "podFixed").Key(string(name))
			errs = append(errs, validateContainerResourceName(string(name), op)...)
			errs = append(errs, quantityNonNegative(string(name), q, op)...)
		}
	}
	if s := rc.Scheduling; s != nil {
		errs = append(errs, validateLabels(s.NodeSelector, field.NewPath("scheduling", "nodeSelector"))...)
		errs = append(errs, validateTolerations(s.Tolerations, field.NewPath("scheduling", "tolerations"))...)
	}
	if old != nil {
		errs = append(errs, immutable(rc.Handler, old.Handler, hp)...)
	}
	return errs
}

func validateStorageClass(sc, old *storagev1.StorageClass) field.ErrorList {
	var errs field.ErrorList
	pp := field.NewPath("provisioner")
	if sc.Provisioner == "" {
		errs = append(errs, field.Required(pp, ""))
	} else {
		errs = append(errs, qualifiedName(strings.ToLower(sc.Provisioner), pp)...)
	}
	params := field.NewPath("parameters")
	if len(sc.Parameters) > 512 {
		errs = append(errs, field.TooLong(params, "", 512))
	}
	size := 0
	for k, v := range sc.Parameters {
		if k == "" {
			errs = append(errs, field.Invalid(params, k, "field can not be empty."))
		}
		size += len(k) + len(v)
	}
	if size > 256*1024 {
		errs = append(errs, field.TooLong(params, "", 256*1024))
	}
	if sc.ReclaimPolicy != nil {
		errs = append(errs, optionalEnum(*sc.ReclaimPolicy, field.NewPath("reclaimPolicy"),
			corev1.PersistentVolumeReclaimDelete, corev1.PersistentVolumeReclaimRetain)...)
	}
	if sc.VolumeBindingMode == nil {
		errs = append(errs, field.Required(field.NewPath("volumeBindingMode"), ""))
	} else {
		errs = append(errs, enum(*sc.VolumeBindingMode, field.NewPath("volumeBindingMode"),
			storagev1.VolumeBindingImmediate, storagev1.VolumeBindingWaitForFirstConsumer)...)
	}
	if old == nil {
		return errs
	}
	if !semanticEqual(sc.Parameters, old.Parameters) {
		errs = append(errs, field.Forbidden(params, "updates to parameters are forbidden."))
	}
	if sc.Provisioner != old.Provisioner {
		errs = append(errs, field.Forbidden(pp, "updates to provisioner are forbidden."))
	}
	if !semanticEqual(sc.ReclaimPolicy, old.ReclaimPolicy) {
		errs = append(errs, field.Forbidden(field.NewPath("reclaimPolicy"), "updates to reclaimPolicy are forbidden."))
	}
	return append(errs, immutable(sc.VolumeBindingMode, old.VolumeBindingMode, field.NewPath("volumeBindingMode"))...)
}

func validateLease(l *coordinationv1.Lease) field.ErrorList {
	var errs field.ErrorList
	sp := field.NewPath("spec")
	if d := l.Spec.LeaseDurationSeconds; d != nil && *d <= 0 {
		errs = append(errs, field.Invalid(sp.Child("leaseDurationSeconds"), *d, "must be greater than 0"))
	}
	if t := l.Spec.LeaseTransitions; t != nil && *t < 0 {
		errs = append(errs, field.Invalid(sp.Child("leaseTransitions"), *t, "must be greater than or equal to 0"))
	}
	if s := l.Spec.Strategy; s != nil {
		errs = append(errs, enum(*s, sp.Child("strategy"), coordinationv1.OldestEmulationVersion)...)
	}
	if ph := l.Spec.PreferredHolder; ph != nil && *ph != "" && (l.Spec.Strategy == nil || *l.Spec.Strategy == "") {
		errs = append(errs, field.Forbidden(sp.Child("preferredHolder"), "may only be specified if `strategy` is defined"))
	}
	return errs
}

// validatePDB is ValidatePodDisruptionBudgetSpec: at most one of
// minAvailable and maxUnavailable, each an int or a percentage.
func validatePDB(pdb *policyv1.PodDisruptionBudget) field.ErrorList {
	var errs field.ErrorList
	sp := field.NewPath("spec")
	spec := &pdb.Spec
	if spec.MinAvailable != nil && spec.MaxUnavailable != nil {
		errs = append(errs, field.Invalid(sp, spec.MinAvailable.String()+" / "+spec.MaxUnavailable.String(),
			"minAvailable and maxUnavailable cannot be both set"))
	}
	for _, f := range []struct {
		name string
		v    *intstr.IntOrString
	}{{"minAvailable", spec.MinAvailable}, {"maxUnavailable", spec.MaxUnavailable}} {
		if f.v != nil {
			errs = append(errs, intOrPercent(*f.v, sp.Child(f.name))...)
			errs = append(errs, notMoreThan100Percent(*f.v, sp.Child(f.name))...)
		}
	}
	errs = append(errs, labelSelector(spec.Selector, sp.Child("selector"))...)
	if spec.UnhealthyPodEvictionPolicy != nil {
		errs = append(errs, enum(*spec.UnhealthyPodEvictionPolicy, sp.Child("unhealthyPodEvictionPolicy"),
			policyv1.AlwaysAllow, policyv1.IfHealthyBudget)...)
	}
	return errs
}

// Autoscaling

var metricSourceTypes = []autoscalingv2.MetricSourceType{autoscalingv2.ContainerResourceMetricSourceType,
	autoscalingv2.ExternalMetricSourceType, autoscalingv2.ObjectMetricSourceType,
	autoscalingv2.PodsMetricSourceType, autoscalingv2.ResourceMetricSourceType}

// validateHPA is validateHorizontalPodAutoscalerSpec (without scale to zero,
// which is alpha in 1.32).
func validateHPA(h *autoscalingv2.HorizontalPodAutoscaler) field.ErrorList {
	var errs field.ErrorList
	sp := field.NewPath("spec")
	spec := &h.Spec
	if spec.MinReplicas != nil && *spec.MinReplicas < 1 {
		errs = append(errs, field.Invalid(sp.Child("minReplicas"), *spec.MinReplicas, "must be greater than or equal to 1"))
	}
	if spec.MaxReplicas < 1 {
		errs = append(errs, field.Invalid(sp.Child("maxReplicas"), spec.MaxReplicas, "must be greater than 0"))
	}
	if spec.MinReplicas != nil && spec.MaxReplicas < *spec.MinReplicas {
		errs = append(errs, field.Invalid(sp.Child("maxReplicas"), spec.MaxReplicas, "must be greater than or equal to `minReplicas`"))
	}
	rp := sp.Child("scaleTargetRef")
	ref := spec.ScaleTargetRef
	errs = append(errs, requiredName(ref.Kind, rp.Child("kind"), pathSegment)...)
	errs = append(errs, requiredName(ref.Name, rp.Child("name"), pathSegment)...)
	for i := range spec.Metrics {
		errs = append(errs, validateMetricSpec(&spec.Metrics[i], sp.Child("metrics").Index(i))...)
	}
	if b := spec.Behavior; b != nil {
		errs = append(errs, validateScalingRules(b.ScaleUp, sp.Child("behavior", "scaleUp"))...)
		errs = append(errs, validateScalingRules(b.ScaleDown, sp.Child("behavior", "scaleDown"))...)
	}
	return errs
}

func pathSegment(v string, p *field.Path) field.ErrorList {
	return invalidEach(nil, p, v, path.IsValidPathSegmentName(v))
}

func validateMetricSpec(m *autoscalingv2.MetricSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if m.Type == "" {
		errs = append(errs, field.Required(p.Child("type"), "must specify a metric source type"))
	} else {
		errs = append(errs, optionalEnum(m.Type, p.Child("type"), metricSourceTypes...)...)
	}
	expected := map[autoscalingv2.MetricSourceType]string{
		autoscalingv2.ObjectMetricSourceType: "object", autoscalingv2.PodsMetricSourceType: "pods",
		autoscalingv2.ResourceMetricSourceType: "resource", autoscalingv2.ContainerResourceMetricSourceType: "containerResource",
		autoscalingv2.ExternalMetricSourceType: "external",
	}[m.Type]
	set := setFields(m)
	if expected != "" {
		found := false
		for _, s := range set {
			found = found || s == expected
		}
		if !found {
			errs = append(errs, field.Required(p.Child(expected), "must populate information for the given metric source"))
		}
	}
	if len(set) > 1 {
		for _, s := range set {
			if s != expected {
				errs = append(errs, field.Forbidden(p.Child(s), "must populate the given metric source only"))
			}
		}
	}
	if r := m.Resource; r != nil && expected == "resource" {
		rp := p.Child("resource")
		if r.Name == "" {
			errs = append(errs, field.Required(rp.Child("name"), "must specify a resource name"))
		}
		errs = append(errs, validateResourceTarget(&r.Target, rp.Child("target"))...)
	}
	if r := m.ContainerResource; r != nil && expected == "containerResource" {
		rp := p.Child("containerResource")
		if r.Name == "" {
			errs = append(errs, field.Required(rp.Child("name"), "must specify a resource name"))
		}
		if r.Container == "" {
			errs = append(errs, field.Required(rp.Child("container"), "must specify a container"))
		}
		errs = append(errs, validateResourceTarget(&r.Target, rp.Child("target"))...)
	}
	if o := m.Pods; o != nil && expected == "pods" {
		errs = append(errs, validateMetricIdentifier(o.Metric.Name, p.Child("pods", "metric", "name"))...)
		if o.Target.AverageValue == nil {
			errs = append(errs, field.Required(p.Child("pods", "target", "averageValue"), "must specify a positive target averageValue"))
		}
		errs = append(errs, validateMetricTarget(&o.Target, p.Child("pods", "target"))...)
	}
	if o := m.Object; o != nil && expected == "object" {
		errs = append(errs, requiredName(o.DescribedObject.Kind, p.Child("object", "describedObject", "kind"), pathSegment)...)
		errs = append(errs, requiredName(o.DescribedObject.Name, p.Child("object", "describedObject", "name"), pathSegment)...)
		errs = append(errs, validateMetricIdentifier(o.Metric.Name, p.Child("object", "metric", "name"))...)
		if o.Target.Value == nil && o.Target.AverageValue == nil {
			errs = append(errs, field.Required(p.Child("object", "target", "averageValue"), "must set either a target value or averageValue"))
		}
		errs = append(errs, validateMetricTarget(&o.Target, p.Child("object", "target"))...)
	}
	if o := m.External; o != nil && expected == "external" {
		errs = append(errs, validateMetricIdentifier(o.Metric.Name, p.Child("external", "metric", "name"))...)
		if o.Target.Value == nil && o.Target.AverageValue == nil {
			errs = append(errs, field.Required(p.Child("external", "target", "averageValue"), "must set either a target value for metric or a per-pod target"))
		}
		errs = append(errs, validateMetricTarget(&o.Target, p.Child("external", "target"))...)
	}
	return errs
}

func validateMetricIdentifier(name string, p *field.Path) field.ErrorList {
	if name == "" {
		return field.ErrorList{field.Required(p, "must specify a metric name")}
	}
	return invalidEach(nil, p, name, path.IsValidPathSegmentName(name))
}

func validateResourceTarget(t *autoscalingv2.MetricTarget, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if t.AverageValue == nil && t.AverageUtilization == nil {
		errs = append(errs, field.Required(p.Child("averageUtilization"), "must set either a target raw value or a target utilization"))
	}
	if t.AverageValue != nil && t.AverageUtilization != nil {
		errs = append(errs, field.Forbidden(p.Child("averageValue"), "may not set both a target raw value and a target utilization"))
	}
	return append(errs, validateMetricTarget(t, p)...)
}

func validateMetricTarget(t *autoscalingv2.MetricTarget, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if t.Type == "" {
		errs = append(errs, field.Required(p.Child("type"), "must specify a metric target type"))
	} else {
		errs = append(errs, optionalEnum(t.Type, p.Child("type"), autoscalingv2.AverageValueMetricType,
			autoscalingv2.UtilizationMetricType, autoscalingv2.ValueMetricType)...)
	}
	if t.Value != nil && t.Value.Sign() <= 0 {
		errs = append(errs, field.Invalid(p.Child("value"), t.Value.String(), "must be positive"))
	}
	if t.AverageValue != nil && t.AverageValue.Sign() <= 0 {
		errs = append(errs, field.Invalid(p.Child("averageValue"), t.AverageValue.String(), "must be positive"))
	}
	if t.AverageUtilization != nil && *t.AverageUtilization < 1 {
		errs = append(errs, field.Invalid(p.Child("averageUtilization"), *t.AverageUtilization, "must be greater than 0"))
	}
	return errs
}

func validateScalingRules(r *autoscalingv2.HPAScalingRules, p *field.Path) field.ErrorList {
	if r == nil {
		return nil
	}
	var errs field.ErrorList
	if w := r.StabilizationWindowSeconds; w != nil {
		if *w < 0 {
			errs = append(errs, field.Invalid(p.Child("stabilizationWindowSeconds"), *w, "must be greater than or equal to zero"))
		} else if *w > 3600 {
			errs = append(errs, field.Invalid(p.Child("stabilizationWindowSeconds"), *w, "must be less than or equal to 3600"))
		}
	}
	if r.SelectPolicy != nil {
		errs = append(errs, enum(*r.SelectPolicy, p.Child("selectPolicy"), autoscalingv2.DisabledPolicySelect,
			autoscalingv2.MaxChangePolicySelect, autoscalingv2.MinChangePolicySelect)...)
	}
	if len(r.Policies) == 0 {
		errs = append(errs, field.Required(p.Child("policies"), "must specify at least one Policy"))
	}
	for i, pol := range r.Policies {
		pp := p.Child("policies").Index(i)
		errs = append(errs, enum(pol.Type, pp.Child("type"), autoscalingv2.PercentScalingPolicy, autoscalingv2.PodsScalingPolicy)...)
		if pol.Value <= 0 {
			errs = append(errs, field.Invalid(pp.Child("value"), pol.Value, "must be greater than zero"))
		}
		if pol.PeriodSeconds <= 0 {
			errs = append(errs, field.Invalid(pp.Child("periodSeconds"), pol.PeriodSeconds, "must be greater than zero"))
		} else if pol.PeriodSeconds > 1800 {
			errs = append(errs, field.Invalid(pp.Child("periodSeconds"), pol.PeriodSeconds, "must be less than or equal to 1800"))
		}
	}
	return errs
}

// RBAC

// validatePolicyRules is ValidatePolicyRule for each rule: verbs always,
// and either resources with API groups or (cluster-wide only) non-resource
// URLs.
func validatePolicyRules(rules []rbacv1.PolicyRule, namespaced bool, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, r := range rules {
		rp := p.Index(i)
		if len(r.Verbs) == 0 {
			errs = append(errs, field.Required(rp.Child("verbs"), "verbs must contain at least one value"))
		}
		if len(r.NonResourceURLs) > 0 {
			if namespaced {
				errs = append(errs, field.Invalid(rp.Child("nonResourceURLs"), r.NonResourceURLs, "namespaced rules cannot apply to non-resource URLs"))
			}
			if len(r.APIGroups) > 0 || len(r.Resources) > 0 || len(r.ResourceNames) > 0 {
				errs = append(errs, field.Invalid(rp.Child("nonResourceURLs"), r.NonResourceURLs, "rules cannot apply to both regular resources and non-resource URLs"))
			}
			continue
		}
		if len(r.APIGroups) == 0 {
			errs = append(errs, field.Required(rp.Child("apiGroups"), "resource rules must supply at least one api group"))
		}
		if len(r.Resources) == 0 {
			errs = append(errs, field.Required(rp.Child("resources"), "resource rules must supply at least one resource"))
		}
	}
	return errs
}

func validateClusterRole(cr *rbacv1.ClusterRole) field.ErrorList {
	errs := validatePolicyRules(cr.Rules, false, field.NewPath("rules"))
	if ar := cr.AggregationRule; ar != nil {
		ap := field.NewPath("aggregationRule", "clusterRoleSelectors")
		if len(ar.ClusterRoleSelectors) == 0 {
			errs = append(errs, field.Required(ap, "at least one clusterRoleSelector required if aggregationRule is non-nil"))
		}
		for i := range ar.ClusterRoleSelectors {
			errs = append(errs, labelSelector(&ar.ClusterRoleSelectors[i], ap.Index(i))...)
		}
	}
	return errs
}

func roleRefOf(b *rbacv1.RoleBinding) *rbacv1.RoleRef {
	if b == nil {
		return nil
	}
	return &b.RoleRef
}

func clusterRoleRefOf(b *rbacv1.ClusterRoleBinding) *rbacv1.RoleRef {
	if b == nil {
		return nil
	}
	return &b.RoleRef
}

// validateRoleBinding checks a (Cluster)RoleBinding: a roleRef to a Role (for
// RoleBindings) or ClusterRole in the RBAC group, subjects of known kinds, and
// a roleRef that never changes.
func validateRoleBinding(ref *rbacv1.RoleRef, subjects []rbacv1.Subject, namespaced bool, oldRef *rbacv1.RoleRef) field.ErrorList {
	var errs field.ErrorList
	rp := field.NewPath("roleRef")
	if ref.APIGroup != rbacv1.GroupName {
		errs = append(errs, field.NotSupported(rp.Child("apiGroup"), ref.APIGroup, []string{rbacv1.GroupName}))
	}
	kinds := []string{"ClusterRole"}
	if namespaced {
		kinds = []string{"Role", "ClusterRole"}
	}
	errs = append(errs, optionalEnum(ref.Kind, rp.Child("kind"), kinds...)...)
	if ref.Kind == "" {
		errs = append(errs, field.NotSupported(rp.Child("kind"), ref.Kind, kinds))
	}
	errs = append(errs, requiredName(ref.Name, rp.Child("name"), pathSegment)...)
	for i, s := range subjects {
		sp := field.NewPath("subjects").Index(i)
		if s.Name == "" {
			errs = append(errs, field.Required(sp.Child("name"), ""))
		}
		switch s.Kind {
		case rbacv1.ServiceAccountKind:
			if s.Name != "" {
				errs = append(errs, dnsSubdomain(s.Name, sp.Child("name"))...)
			}
			if s.APIGroup != "" {
				errs = append(errs, field.NotSupported(sp.Child("apiGroup"), s.APIGroup, []string{""}))
			}
			if !namespaced && s.Namespace == "" {
				errs = append(errs, field.Required(sp.Child("namespace"), ""))
			}
		case rbacv1.UserKind, rbacv1.GroupKind:
			if s.APIGroup != rbacv1.GroupName {
				errs = append(errs, field.NotSupported(sp.Child("apiGroup"), s.APIGroup, []string{rbacv1.GroupName}))
			}
		default:
			errs = append(errs, field.NotSupported(sp.Child("kind"), s.Kind,
				[]string{rbacv1.ServiceAccountKind, rbacv1.UserKind, rbacv1.GroupKind}))
		}
	}
	if oldRef != nil && *oldRef != *ref {
		errs = append(errs, field.Invalid(rp, *ref, "cannot change roleRef"))
	}
	return errs
}
