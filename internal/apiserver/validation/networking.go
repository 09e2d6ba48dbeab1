package validation

import (
	"fmt"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

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
