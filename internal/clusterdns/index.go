package clusterdns

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// entry is what one DNS name holds. Names are lower case, fully qualified
// (with the trailing dot).
type entry struct {
	a, aaaa []netip.Addr
	cname   string // an ExternalName Service's target, fully qualified
	srv     []srvRecord
	ptr     []string // for reverse names (in-addr.arpa, ip6.arpa)
}

type srvRecord struct {
	port   uint16
	weight uint16
	target string
}

func (e *entry) merge(o *entry) {
	e.a = appendUnique(e.a, o.a...)
	e.aaaa = appendUnique(e.aaaa, o.aaaa...)
	if e.cname == "" {
		e.cname = o.cname
	}
	e.srv = appendUnique(e.srv, o.srv...)
	e.ptr = appendUnique(e.ptr, o.ptr...)
}

func appendUnique[T comparable](s []T, vs ...T) []T {
	for _, v := range vs {
		if !slices.Contains(s, v) {
			s = append(s, v)
		}
	}
	return s
}

// index is the cluster's names in memory, so that answering a query is a
// map lookup under a read lock. Each Service contributes a set of names
// (its own, its SRV names, its endpoints' host names, the reverse names of
// its addresses); a name two Services contribute to (a reverse name of an
// endpoint both select) holds the union.
type index struct {
	zone string // lower case, fully qualified: "cluster.local."

	mu     sync.RWMutex
	owned  map[string]map[string]*entry // owner (ns/name) → its names
	byName map[string]map[string]*entry // name → owner → that owner's part
	merged map[string]*entry            // name → the union of the parts
	// ents counts, for each name inside the zone that is a proper ancestor
	// of a name there (an "empty non-terminal": ns.svc.cluster.local.,
	// _tcp.web.ns.svc.cluster.local.), the names below it: such a name
	// exists, so it answers NODATA, not NXDOMAIN.
	ents map[string]int
}

func newIndex(zone string) *index {
	return &index{zone: zone, owned: map[string]map[string]*entry{}, byName: map[string]map[string]*entry{},
		merged: map[string]*entry{}, ents: map[string]int{}}
}

// lookup returns name's records, and whether the name exists at all (it may
// exist with no records: an empty non-terminal).
func (x *index) lookup(name string) (*entry, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if e, ok := x.merged[name]; ok {
		return e, true
	}
	return nil, x.ents[name] > 0
}

// set replaces owner's names with names (nil or empty: owner is gone).
func (x *index) set(owner string, names map[string]*entry) {
	x.mu.Lock()
	defer x.mu.Unlock()
	affected := map[string]bool{}
	for n := range x.owned[owner] {
		affected[n] = true
		delete(x.byName[n], owner)
		if len(x.byName[n]) == 0 {
			delete(x.byName, n)
		}
	}
	for n, e := range names {
		affected[n] = true
		if x.byName[n] == nil {
			x.byName[n] = map[string]*entry{}
		}
		x.byName[n][owner] = e
	}
	if len(names) == 0 {
		delete(x.owned, owner)
	} else {
		x.owned[owner] = names
	}
	for n := range affected {
		_, had := x.merged[n]
		parts := x.byName[n]
		if len(parts) == 0 {
			delete(x.merged, n)
		} else {
			m := &entry{}
			// In owner order, so that the answer does not depend on map order.
			owners := make([]string, 0, len(parts))
			for o := range parts {
				owners = append(owners, o)
			}
			slices.Sort(owners)
			for _, o := range owners {
				m.merge(parts[o])
			}
			x.merged[n] = m
		}
		_, has := x.merged[n]
		switch {
		case has && !had:
			x.countAncestors(n, +1)
		case had && !has:
			x.countAncestors(n, -1)
		}
	}
}

// countAncestors adds d to the count of every ancestor of name strictly
// inside the zone.
func (x *index) countAncestors(name string, d int) {
	if !strings.HasSuffix(name, "."+x.zone) {
		return
	}
	for n := name; ; {
		_, rest, ok := strings.Cut(n, ".")
		if !ok || rest == x.zone || len(rest) <= len(x.zone) {
			return
		}
		n = rest
		if x.ents[n] += d; x.ents[n] <= 0 {
			delete(x.ents, n)
		}
	}
}

// serviceNames is what a Service contributes to the index (its spec and,
// for a headless one, the ready endpoints of its EndpointSlices), following
// the Kubernetes DNS specification
// (github.com/kubernetes/dns/blob/master/docs/specification.md).
func serviceNames(zone string, svc *corev1.Service, slices []*discoveryv1.EndpointSlice) map[string]*entry {
	base := strings.ToLower(svc.Name + "." + svc.Namespace + ".svc." + zone)
	names := map[string]*entry{base: {}} // the name exists even with no address: NODATA
	get := func(n string) *entry {
		e := names[n]
		if e == nil {
			e = &entry{}
			names[n] = e
		}
		return e
	}
	addAddr := func(n string, ip netip.Addr) {
		e := get(n)
		if ip.Is4() {
			e.a = appendUnique(e.a, ip)
		} else {
			e.aaaa = appendUnique(e.aaaa, ip)
		}
	}
	addPTR := func(ip netip.Addr, target string) {
		if rev, err := dns.ReverseAddr(ip.String()); err == nil {
			e := get(rev)
			e.ptr = appendUnique(e.ptr, target)
		}
	}
	switch {
	case svc.Spec.Type == corev1.ServiceTypeExternalName:
		if svc.Spec.ExternalName != "" {
			names[base].cname = dns.Fqdn(strings.ToLower(svc.Spec.ExternalName))
		}
	case svc.Spec.ClusterIP == corev1.ClusterIPNone:
		headlessNames(base, slices, get, addAddr, addPTR)
	default:
		ips := svc.Spec.ClusterIPs
		if len(ips) == 0 && svc.Spec.ClusterIP != "" {
			ips = []string{svc.Spec.ClusterIP}
		}
		for _, s := range ips {
			if ip, err := netip.ParseAddr(s); err == nil {
				ip = ip.Unmap()
				addAddr(base, ip)
				addPTR(ip, base)
			}
		}
		for _, p := range svc.Spec.Ports {
			if p.Name == "" {
				continue // SRV records are for named ports only
			}
			n := srvName(p.Name, p.Protocol, base)
			get(n).srv = appendUnique(get(n).srv, srvRecord{port: uint16(p.Port), weight: 100, target: base})
		}
	}
	return names
}

func srvName(port string, proto corev1.Protocol, base string) string {
	if proto == "" {
		proto = corev1.ProtocolTCP
	}
	return strings.ToLower("_" + port + "._" + string(proto) + "." + base)
}

// headlessNames adds a headless Service's records: its name answers with
// every ready endpoint's address, each endpoint has a name of its own
// (its hostname, or its address with dashes), and SRV records point at
// those names.
func headlessNames(base string, slices []*discoveryv1.EndpointSlice, get func(string) *entry,
	addAddr func(string, netip.Addr), addPTR func(netip.Addr, string)) {
	type srvKey struct{ name, target string }
	srvs := map[string][]srvRecord{} // SRV name → records
	seen := map[srvKey]bool{}
	for _, sl := range slices {
		if sl.AddressType == discoveryv1.AddressTypeFQDN {
			continue
		}
		for _, ep := range sl.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue // nil means ready, as the API documents
			}
			for _, s := range ep.Addresses {
				ip, err := netip.ParseAddr(s)
				if err != nil {
					continue
				}
				ip = ip.Unmap()
				label := endpointLabel(ep.Hostname, ip)
				host := label + "." + base
				addAddr(base, ip)
				addAddr(host, ip)
				addPTR(ip, host)
				for _, p := range sl.Ports {
					if p.Name == nil || *p.Name == "" || p.Port == nil {
						continue
					}
					proto := corev1.ProtocolTCP
					if p.Protocol != nil {
						proto = *p.Protocol
					}
					n := srvName(*p.Name, proto, base)
					k := srvKey{n, host + "/" + strconv.Itoa(int(*p.Port))}
					if seen[k] {
						continue
					}
					seen[k] = true
					srvs[n] = append(srvs[n], srvRecord{port: uint16(*p.Port), target: host})
				}
			}
		}
	}
	for n, recs := range srvs {
		w := uint16(max(100/len(recs), 1))
		for i := range recs {
			recs[i].weight = w
		}
		get(n).srv = recs
	}
}

// endpointLabel is an endpoint's DNS label: its hostname when it has a
// valid one (a StatefulSet pod's, or a pod's spec.hostname with a
// subdomain), else its address with dashes ("10-0-0-1"), as CoreDNS names
// them.
func endpointLabel(hostname *string, ip netip.Addr) string {
	if hostname != nil && validLabel(*hostname) {
		return strings.ToLower(*hostname)
	}
	return strings.NewReplacer(".", "-", ":", "-").Replace(ip.String())
}

func validLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i, r := range s {
		alnum := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if !alnum && (r != '-' || i == 0 || i == len(s)-1) {
			return false
		}
	}
	return true
}
