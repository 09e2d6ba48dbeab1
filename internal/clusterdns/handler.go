package clusterdns

import (
	"context"
	"net"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// ServeDNS answers one query: from the index for the cluster domain and the
// reverse names of cluster addresses, from the upstreams for the rest.
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	if r.Opcode != dns.OpcodeQuery || len(r.Question) != 1 {
		m := new(dns.Msg).SetRcode(r, dns.RcodeNotImplemented)
		if len(r.Question) != 1 {
			m.Rcode = dns.RcodeFormatError
		}
		s.write(w, r, m)
		return
	}
	q := r.Question[0]
	name := strings.ToLower(q.Name)
	switch {
	case s.inZone(name) && (q.Qclass == dns.ClassINET || q.Qclass == dns.ClassANY):
		s.write(w, r, s.answerZone(w, r, q, name))
	case (q.Qtype == dns.TypePTR || q.Qtype == dns.TypeANY) && isReverse(name) && s.Synced():
		if e, _ := s.idx.lookup(name); e != nil && len(e.ptr) > 0 {
			m := s.reply(r)
			for _, t := range e.ptr {
				m.Answer = append(m.Answer, &dns.PTR{Hdr: s.hdr(q.Name, dns.TypePTR), Ptr: t})
			}
			s.write(w, r, m)
			return
		}
		s.write(w, r, s.forward(network(w), r))
	default:
		s.write(w, r, s.forward(network(w), r))
	}
}

func isReverse(name string) bool {
	return strings.HasSuffix(name, ".in-addr.arpa.") || strings.HasSuffix(name, ".ip6.arpa.")
}

func network(w dns.ResponseWriter) string {
	if _, ok := w.LocalAddr().(*net.TCPAddr); ok {
		return "tcp"
	}
	return "udp"
}

// reply is an authoritative answer's skeleton.
func (s *Server) reply(r *dns.Msg) *dns.Msg {
	m := new(dns.Msg).SetReply(r)
	m.Authoritative = true
	m.RecursionAvailable = true
	return m
}

func (s *Server) hdr(name string, t uint16) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: s.cfg.TTL}
}

func (s *Server) soa() dns.RR {
	return &dns.SOA{Hdr: s.hdr(s.zone, dns.TypeSOA), Ns: "ns.dns." + s.zone, Mbox: "hostmaster." + s.zone,
		Serial: 1, Refresh: 7200, Retry: 1800, Expire: 86400, Minttl: s.cfg.TTL}
}

// answerZone answers a question inside the cluster domain.
func (s *Server) answerZone(w dns.ResponseWriter, r *dns.Msg, q dns.Question, name string) *dns.Msg {
	if !s.Synced() {
		return new(dns.Msg).SetRcode(r, dns.RcodeServerFailure)
	}
	m := s.reply(r)
	if name == s.zone {
		switch q.Qtype {
		case dns.TypeSOA:
			m.Answer = append(m.Answer, s.soa())
		case dns.TypeNS:
			m.Answer = append(m.Answer, &dns.NS{Hdr: s.hdr(q.Name, dns.TypeNS), Ns: "ns.dns." + s.zone})
		}
		return s.negative(m)
	}
	if name == "dns-version."+s.zone {
		// The version of the Kubernetes DNS specification answered.
		if q.Qtype == dns.TypeTXT || q.Qtype == dns.TypeANY {
			m.Answer = append(m.Answer, &dns.TXT{Hdr: s.hdr(q.Name, dns.TypeTXT), Txt: []string{schemaVersion}})
		}
		return s.negative(m)
	}
	e, exists := s.idx.lookup(name)
	if !exists {
		e, exists = s.special(name)
	}
	if !exists {
		m.Rcode = dns.RcodeNameError
		return s.negative(m)
	}
	if e == nil {
		return s.negative(m) // an empty non-terminal
	}
	if e.cname != "" {
		m.Answer = append(m.Answer, &dns.CNAME{Hdr: s.hdr(q.Name, dns.TypeCNAME), Target: e.cname})
		if q.Qtype != dns.TypeCNAME {
			m.Answer = append(m.Answer, s.chase(network(w), r, e.cname, q.Qtype)...)
		}
		return m
	}
	s.appendRecords(m, q.Name, q.Qtype, e)
	return s.negative(m)
}

// special answers the names the index does not hold: pod names
// (1-2-3-4.ns.pod.cluster.local, for any address, as CoreDNS's "pods
// insecure" mode does), pod.cluster.local itself, and the server's own
// name in the SOA.
func (s *Server) special(name string) (*entry, bool) {
	rest, ok := strings.CutSuffix(name, ".pod."+s.zone)
	if !ok {
		return nil, name == "pod."+s.zone
	}
	label, ns, ok := strings.Cut(rest, ".")
	if !ok || ns == "" || strings.Contains(ns, ".") {
		return nil, false
	}
	var ip netip.Addr
	var err error
	if strings.Count(label, "-") == 3 {
		ip, err = netip.ParseAddr(strings.ReplaceAll(label, "-", "."))
	} else {
		ip, err = netip.ParseAddr(strings.ReplaceAll(label, "-", ":"))
	}
	if err != nil {
		return nil, false
	}
	if ip.Is4() {
		return &entry{a: []netip.Addr{ip}}, true
	}
	return &entry{aaaa: []netip.Addr{ip}}, true
}

// appendRecords adds e's records of type t (all of them for ANY) to m, and
// for SRV the targets' addresses in the additional section.
func (s *Server) appendRecords(m *dns.Msg, owner string, t uint16, e *entry) {
	if t == dns.TypeA || t == dns.TypeANY {
		for _, ip := range e.a {
			m.Answer = append(m.Answer, &dns.A{Hdr: s.hdr(owner, dns.TypeA), A: ip.AsSlice()})
		}
	}
	if t == dns.TypeAAAA || t == dns.TypeANY {
		for _, ip := range e.aaaa {
			m.Answer = append(m.Answer, &dns.AAAA{Hdr: s.hdr(owner, dns.TypeAAAA), AAAA: ip.AsSlice()})
		}
	}
	if t == dns.TypeSRV || t == dns.TypeANY {
		added := map[string]bool{}
		for _, r := range e.srv {
			m.Answer = append(m.Answer, &dns.SRV{Hdr: s.hdr(owner, dns.TypeSRV), Priority: 0, Weight: r.weight,
				Port: r.port, Target: r.target})
			if added[r.target] {
				continue
			}
			added[r.target] = true
			if te, _ := s.idx.lookup(r.target); te != nil {
				for _, ip := range te.a {
					m.Extra = append(m.Extra, &dns.A{Hdr: s.hdr(r.target, dns.TypeA), A: ip.AsSlice()})
				}
				for _, ip := range te.aaaa {
					m.Extra = append(m.Extra, &dns.AAAA{Hdr: s.hdr(r.target, dns.TypeAAAA), AAAA: ip.AsSlice()})
				}
			}
		}
	}
}

// negative adds the SOA to an answer without records (NXDOMAIN or
// NODATA), for negative caching (RFC 2308).
func (s *Server) negative(m *dns.Msg) *dns.Msg {
	if len(m.Answer) == 0 {
		m.Ns = append(m.Ns, s.soa())
	}
	return m
}

// chase resolves an ExternalName Service's target for the client, as
// CoreDNS does: from the index inside the cluster domain, from the
// upstreams outside it. A failure leaves the CNAME alone in the answer.
func (s *Server) chase(netw string, r *dns.Msg, target string, t uint16) []dns.RR {
	if s.inZone(target) {
		e, _ := s.idx.lookup(target)
		if e == nil || e.cname != "" {
			return nil // one step only: no CNAME chains inside the cluster
		}
		m := new(dns.Msg)
		s.appendRecords(m, target, t, e)
		return m.Answer
	}
	q := new(dns.Msg)
	q.SetQuestion(target, t)
	q.RecursionDesired = true
	if opt := r.IsEdns0(); opt != nil {
		q.SetEdns0(opt.UDPSize(), false)
	}
	resp := s.forward(netw, q)
	if resp.Rcode != dns.RcodeSuccess {
		return nil
	}
	return resp.Answer
}

// forward asks the upstreams, in order, over the client's transport (so a
// truncated UDP answer comes back truncated, and the client's retry over
// TCP is forwarded over TCP). SERVFAIL when none answers.
func (s *Server) forward(netw string, r *dns.Msg) *dns.Msg {
	c := &dns.Client{Net: netw, Timeout: s.cfg.ForwardTimeout}
	if opt := r.IsEdns0(); opt != nil && netw == "udp" {
		c.UDPSize = opt.UDPSize()
	}
	for _, u := range s.upstreams {
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.ForwardTimeout)
		resp, _, err := c.ExchangeContext(ctx, r, u)
		cancel()
		if err == nil && resp != nil {
			resp.Id = r.Id
			return resp
		}
		s.log.Debug("cluster DNS: upstream did not answer", "upstream", u, "name", r.Question[0].Name, "err", err)
	}
	m := new(dns.Msg).SetRcode(r, dns.RcodeServerFailure)
	m.RecursionAvailable = true
	return m
}

// schemaVersion is the Kubernetes DNS specification's version these
// answers follow, which dns-version.<zone> TXT names (the specification's
// section 2.2).
const schemaVersion = "1.1.0"

// ednsSize is the UDP payload this server offers in its answers to EDNS0
// clients, the size DNS Flag Day 2020 settled on.
const ednsSize = 1232

// write sends m, truncated to what the client can take over UDP (512
// bytes, or its EDNS0 buffer size) with the TC bit set when records had to
// go, so that the client asks again over TCP.
func (s *Server) write(w dns.ResponseWriter, r *dns.Msg, m *dns.Msg) {
	size := dns.MaxMsgSize
	if network(w) == "udp" {
		size = dns.MinMsgSize
		if opt := r.IsEdns0(); opt != nil {
			size = max(int(opt.UDPSize()), dns.MinMsgSize)
		}
	}
	if r.IsEdns0() != nil && m.IsEdns0() == nil {
		m.SetEdns0(ednsSize, false) // what this server takes
	}
	m.Truncate(size)
	if err := w.WriteMsg(m); err != nil {
		s.log.Debug("cluster DNS: answer not sent", "client", w.RemoteAddr(), "err", err)
	}
}
