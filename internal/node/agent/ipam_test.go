package agent

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

func TestNewIPAMRejects(t *testing.T) {
	for _, cidr := range []string{"", "not-a-cidr", "10.0.0.1", "fd00::/64", "10.0.0.0/31", "10.0.0.0/32"} {
		if _, err := newIPAM(cidr); err == nil {
			t.Errorf("newIPAM(%q) succeeded", cidr)
		}
	}
}

// claimAll claims addresses for uids u0, u1, ... until the range is
// exhausted (at most limit claims), checking each is a usable host address
// and none is given twice.
func claimAll(t *testing.T, m *ipam, limit int) map[string]string {
	t.Helper()
	got := map[string]string{} // address → uid
	for i := range limit + 1 {
		uid := fmt.Sprintf("u%d", i)
		ip, err := m.claim(uid, "")
		if err != nil {
			if !strings.Contains(err.Error(), "exhausted") {
				t.Fatalf("claim %s: %v, want an exhaustion error", uid, err)
			}
			return got
		}
		if prev, dup := got[ip]; dup {
			t.Fatalf("%s given to %s and %s", ip, prev, uid)
		}
		checkHostAddr(t, m.prefix, ip)
		got[ip] = uid
	}
	t.Fatalf("more than %d addresses given out of %s", limit, m.prefix)
	return nil
}

// checkHostAddr fails unless ip is in prefix and is neither the network
// address, the first host address (the gateway) nor the broadcast address.
func checkHostAddr(t *testing.T, prefix netip.Prefix, ip string) {
	t.Helper()
	a, err := netip.ParseAddr(ip)
	if err != nil {
		t.Fatalf("claim gave %q: %v", ip, err)
	}
	last := netip.PrefixFrom(a, prefix.Bits()).Masked().Addr()
	for range (1 << (32 - prefix.Bits())) - 1 {
		last = last.Next()
	}
	switch {
	case !prefix.Contains(a):
		t.Fatalf("%s is outside %s", a, prefix)
	case a == prefix.Addr():
		t.Fatalf("gave the network address %s", a)
	case a == prefix.Addr().Next():
		t.Fatalf("gave the gateway address %s", a)
	case a == last:
		t.Fatalf("gave the broadcast address %s", a)
	}
}

func TestIPAMExhaustsSlash29(t *testing.T) {
	m, err := newIPAM("10.1.2.13/29") // masked to 10.1.2.8/29
	if err != nil {
		t.Fatal(err)
	}
	got := claimAll(t, m, 8)
	if len(got) != 5 {
		t.Fatalf("a /29 gave %d addresses, want 5 (.10-.14): %v", len(got), got)
	}
	for i := 10; i <= 14; i++ {
		if _, ok := got[fmt.Sprintf("10.1.2.%d", i)]; !ok {
			t.Errorf("10.1.2.%d was never given: %v", i, got)
		}
	}
	// Still exhausted on a second try, and a known pod keeps its address.
	if _, err := m.claim("another", ""); err == nil {
		t.Error("claim on an exhausted range succeeded")
	}
	if ip, err := m.claim("u0", ""); err != nil || got[ip] != "u0" {
		t.Errorf("claim for a pod that has an address = %q, %v; want its own address", ip, err)
	}
}

func TestIPAMSlash30HasOneAddress(t *testing.T) {
	m, err := newIPAM("192.168.7.0/30")
	if err != nil {
		t.Fatal(err)
	}
	got := claimAll(t, m, 4)
	if len(got) != 1 || got["192.168.7.2"] == "" {
		t.Errorf("a /30 gave %v, want only 192.168.7.2", got)
	}
}

func TestIPAMSlash24Unique(t *testing.T) {
	m, err := newIPAM("127.66.5.0/24")
	if err != nil {
		t.Fatal(err)
	}
	if got := claimAll(t, m, 256); len(got) != 253 {
		t.Errorf("a /24 gave %d addresses, want 253", len(got))
	}
}

func TestIPAMSameUIDSameAddress(t *testing.T) {
	m, err := newIPAM("10.0.0.0/24")
	if err != nil {
		t.Fatal(err)
	}
	a, err := m.claim("pod", "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.claim("pod", "10.0.0.99") // a restarted worker asking again
	if err != nil || b != a {
		t.Errorf("second claim = %q, %v; want %q", b, err, a)
	}
}

func TestIPAMWantedAddress(t *testing.T) {
	m, err := newIPAM("10.0.0.0/29")
	if err != nil {
		t.Fatal(err)
	}
	if ip, err := m.claim("a", "10.0.0.5"); err != nil || ip != "10.0.0.5" {
		t.Fatalf("claim(a, 10.0.0.5) = %q, %v: a free wanted address is honoured", ip, err)
	}
	// Taken, or not a host address of the range: another address instead.
	for uid, want := range map[string]string{
		"b": "10.0.0.5", // taken by a
		"c": "10.0.0.0", // network
		"d": "10.0.0.1", // gateway
		"e": "10.0.0.7", // broadcast
	} {
		ip, err := m.claim(uid, want)
		if err != nil {
			t.Fatalf("claim(%s, %s): %v", uid, want, err)
		}
		if ip == want {
			t.Errorf("claim(%s, %s) gave the wanted address", uid, want)
		}
		checkHostAddr(t, m.prefix, ip)
		if ip == "10.0.0.5" {
			t.Errorf("claim(%s) gave a's address", uid)
		}
	}
	for _, want := range []string{"10.0.1.3", "garbage", "fd00::3"} {
		m, _ := newIPAM("10.0.0.0/29")
		ip, err := m.claim("x", want)
		if err != nil || ip == want {
			t.Errorf("claim(x, %q) = %q, %v; want an address of the range", want, ip, err)
			continue
		}
		checkHostAddr(t, m.prefix, ip)
	}
}

func TestIPAMRelease(t *testing.T) {
	m, err := newIPAM("10.0.0.0/29")
	if err != nil {
		t.Fatal(err)
	}
	got := claimAll(t, m, 8)
	var freed string
	for ip, uid := range got {
		if uid == "u2" {
			freed = ip
		}
	}
	m.release("u2")
	m.release("never-claimed") // no effect
	ip, err := m.claim("new", "")
	if err != nil || ip != freed {
		t.Fatalf("claim after release = %q, %v; want the freed %s", ip, err, freed)
	}
	if _, err := m.claim("newer", ""); err == nil {
		t.Error("release of an unknown uid freed an address")
	}
	// A released pod that comes back gets an address anew (here the one it
	// wants, once free).
	m.release("new")
	if ip, err := m.claim("u2", freed); err != nil || ip != freed {
		t.Errorf("claim(u2, %s) after release = %q, %v", freed, ip, err)
	}
}
