package agent

import (
	"fmt"
	"net/netip"
	"sync"
)

// ipam hands out pod IPs from the node's pod range. In unprivileged mode
// that is a loopback range (DESIGN.md: 127.66.0.0/16), which Linux routes
// to lo with no setup, so a pod can listen on its own address.
type ipam struct {
	prefix netip.Prefix

	mu    sync.Mutex
	used  map[netip.Addr]string // address → pod UID
	owned map[string]netip.Addr // pod UID → address
	next  netip.Addr
}

func newIPAM(cidr string) (*ipam, error) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil || !p.Addr().Is4() || p.Bits() > 30 {
		return nil, fmt.Errorf("pod CIDR %q: want an IPv4 prefix of /30 or wider", cidr)
	}
	p = p.Masked()
	return &ipam{prefix: p, used: map[netip.Addr]string{}, owned: map[string]netip.Addr{},
		next: p.Addr().Next().Next()}, nil
}

// claim gives uid the address it had (want, from the pod's status, after a
// restart) when that is free, else the next free one. The network address
// and the first host address (the node's gateway in bridge mode) are never
// given out.
func (m *ipam) claim(uid, want string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if a, ok := m.owned[uid]; ok {
		return a.String(), nil
	}
	if a, err := netip.ParseAddr(want); err == nil && m.usable(a) {
		if _, taken := m.used[a]; !taken {
			m.take(uid, a)
			return a.String(), nil
		}
	}
	size := 1 << (32 - m.prefix.Bits())
	for range size {
		a := m.next
		m.next = a.Next()
		if !m.usable(m.next) {
			m.next = m.prefix.Addr().Next().Next()
		}
		if _, taken := m.used[a]; !taken && m.usable(a) {
			m.take(uid, a)
			return a.String(), nil
		}
	}
	return "", fmt.Errorf("pod CIDR %s is exhausted", m.prefix)
}

func (m *ipam) usable(a netip.Addr) bool {
	first := m.prefix.Addr().Next()
	return m.prefix.Contains(a) && a != m.prefix.Addr() && a != first && a.Next().IsValid() &&
		m.prefix.Contains(a.Next()) // not the broadcast address
}

func (m *ipam) take(uid string, a netip.Addr) {
	m.used[a] = uid
	m.owned[uid] = a
}

func (m *ipam) release(uid string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if a, ok := m.owned[uid]; ok {
		delete(m.owned, uid)
		delete(m.used, a)
	}
}
