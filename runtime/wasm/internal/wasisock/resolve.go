package wasisock

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Resolver resolves host names for a guest as its /etc/resolv.conf says:
// these name servers, these search domains, this ndots. A nil *Resolver is
// the host's resolver.
type Resolver struct {
	// Nameservers are IP addresses; port 53 unless given ("ip:port").
	Nameservers []string
	Searches    []string
	Ndots       int
}

// candidates are the names a lookup of host tries, in order, as a stub
// resolver does with a search list: a name with a trailing dot as it is; a
// name with at least ndots dots as it is first, then with each search
// domain; a shorter one with each search domain first.
func (r *Resolver) candidates(host string) []string {
	if strings.HasSuffix(host, ".") {
		return []string{host}
	}
	var out []string
	withSearch := func() {
		for _, s := range r.Searches {
			out = append(out, host+"."+strings.TrimSuffix(s, ".")+".")
		}
	}
	if strings.Count(host, ".") >= r.Ndots {
		out = append(out, host+".")
		withSearch()
	} else {
		withSearch()
		out = append(out, host+".")
	}
	return out
}

// LookupNetIP returns the addresses of host.
func (r *Resolver) LookupNetIP(ctx context.Context, host string) ([]netip.Addr, error) {
	if r == nil || len(r.Nameservers) == 0 {
		return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	}
	res := &net.Resolver{PreferGo: true, Dial: r.dial}
	var last error
	for _, name := range r.candidates(host) {
		ips, err := res.LookupNetIP(ctx, "ip", name)
		if err == nil && len(ips) > 0 {
			return ips, nil
		}
		last = err
		var dnsErr *net.DNSError
		if err != nil && !(errors.As(err, &dnsErr) && dnsErr.IsNotFound) {
			// A server that does not answer will not answer the next
			// name either.
			break
		}
	}
	if last == nil {
		last = &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return nil, last
}

// dial reaches the pod's name servers, whichever server Go's resolver read
// from the host's own resolv.conf: the first that answers the dial.
func (r *Resolver) dial(ctx context.Context, network, _ string) (net.Conn, error) {
	var d net.Dialer
	var last error
	for _, ns := range r.Nameservers {
		addr := ns
		if _, _, err := net.SplitHostPort(ns); err != nil {
			addr = net.JoinHostPort(ns, "53")
		}
		c, err := d.DialContext(ctx, network, addr)
		if err == nil {
			return c, nil
		}
		last = err
	}
	return nil, fmt.Errorf("dial name servers %v: %w", r.Nameservers, last)
}

// lookupPort is a service's port: a number, or a name from the services
// database unless numericOnly.
func lookupPort(network, service string, numericOnly bool) (int, error) {
	if p, err := strconv.ParseUint(service, 10, 16); err == nil {
		return int(p), nil
	}
	if numericOnly {
		return 0, fmt.Errorf("service %q is not a number", service)
	}
	return net.LookupPort(network, service)
}

// filterFamily keeps the addresses of family (afInet, afInet6; afUnspec
// keeps all, IPv4 first, the order a pod on an IPv4 network tries).
func filterFamily(ips []netip.Addr, family uint8) []netip.Addr {
	var v4, v6 []netip.Addr
	for _, ip := range ips {
		ip = ip.Unmap()
		if ip.Is4() {
			v4 = append(v4, ip)
		} else {
			v6 = append(v6, ip)
		}
	}
	switch family {
	case afInet:
		return v4
	case afInet6:
		return v6
	}
	return append(v4, v6...)
}

// resolveErrno is the errno a failed lookup answers: not found, a timeout
// (try again), or an I/O error.
func resolveErrno(err error) uint64 {
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return errnoNoent
	case errors.As(err, &dnsErr) && (dnsErr.IsTimeout || dnsErr.IsTemporary):
		return errnoAgain
	case errors.Is(err, context.DeadlineExceeded):
		return errnoAgain
	}
	return errnoIO
}
