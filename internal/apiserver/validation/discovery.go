package validation

import (
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

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
