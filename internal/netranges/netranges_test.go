package netranges

import (
	"net"
	"net/netip"
	"strings"
	"testing"
)

func noSockets(netip.Prefix) (bool, error) { return false, nil }

func resolve(t *testing.T, dir string, o Options) (Ranges, *Claim) {
	t.Helper()
	o.Dir = dir
	if o.Bound == nil {
		o.Bound = noSockets
	}
	r, c, err := Resolve(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Release)
	return r, c
}

func overlaps(a, b string) bool {
	return netip.MustParsePrefix(a).Overlaps(netip.MustParsePrefix(b))
}

// The first server gets the defaults, the next ones the next free pairs,
// all disjoint; a released pair is free again.
func TestResolveChoosesDisjointRanges(t *testing.T) {
	dir := t.TempDir()
	first, c1 := resolve(t, dir, Options{})
	if first != (Ranges{PodCIDR: DefaultPodCIDR, ServiceCIDR: DefaultServiceCIDR}) {
		t.Fatalf("first = %v; want the defaults", first)
	}
	second, _ := resolve(t, dir, Options{})
	if second != (Ranges{PodCIDR: "127.68.0.0/16", ServiceCIDR: "127.69.0.0/16"}) {
		t.Fatalf("second = %v", second)
	}
	third, _ := resolve(t, dir, Options{})
	all := []string{first.PodCIDR, first.ServiceCIDR, second.PodCIDR, second.ServiceCIDR, third.PodCIDR, third.ServiceCIDR}
	for i := range all {
		for j := i + 1; j < len(all); j++ {
			if overlaps(all[i], all[j]) {
				t.Fatalf("%s and %s overlap: %v", all[i], all[j], all)
			}
		}
	}
	c1.Release()
	if again, _ := resolve(t, dir, Options{}); again != first {
		t.Fatalf("after the first released its claim: %v; want %v", again, first)
	}
}

// A recorded range is kept, even when another process holds it (with a
// warning): the cluster's objects have their addresses there.
func TestResolveKeepsRecordedRanges(t *testing.T) {
	dir := t.TempDir()
	rec := Ranges{PodCIDR: "127.80.0.0/16", ServiceCIDR: "127.81.0.0/16"}
	got, _ := resolve(t, dir, Options{Recorded: rec})
	if got != rec {
		t.Fatalf("got %v; want the recorded %v", got, rec)
	}
	again, _ := resolve(t, dir, Options{Recorded: rec})
	if again != rec {
		t.Fatalf("a second holder of the recorded ranges got %v", again)
	}
	// A fresh server does not choose them.
	if fresh, _ := resolve(t, dir, Options{}); overlaps(fresh.PodCIDR, "127.80.0.0/15") || overlaps(fresh.ServiceCIDR, "127.80.0.0/15") {
		t.Fatalf("fresh = %v overlaps the claimed recorded ranges", fresh)
	}
}

// Explicit ranges are always honoured, shared with other explicit users,
// and keep automatic choices away; an explicit half is completed.
func TestResolveExplicit(t *testing.T) {
	dir := t.TempDir()
	ex := Ranges{PodCIDR: "127.66.216.0/22", ServiceCIDR: "127.67.0.0/16"}
	a, _ := resolve(t, dir, Options{Explicit: ex})
	b, _ := resolve(t, dir, Options{Explicit: ex})
	if a != ex || b != ex {
		t.Fatalf("explicit ranges not honoured: %v, %v", a, b)
	}
	auto, _ := resolve(t, dir, Options{})
	if auto.PodCIDR != "127.68.0.0/16" || auto.ServiceCIDR != "127.69.0.0/16" {
		t.Fatalf("auto = %v; want the pair after the explicitly used defaults", auto)
	}
	half, _ := resolve(t, dir, Options{Explicit: Ranges{ServiceCIDR: "127.70.0.0/16"}})
	if half.ServiceCIDR != "127.70.0.0/16" || half.PodCIDR != "127.72.0.0/16" {
		t.Fatalf("half = %v; want the explicit service range and the next free pod range", half)
	}
	// Outside loopback nothing is claimed, and nothing fails.
	priv, c := resolve(t, dir, Options{Explicit: Ranges{PodCIDR: "10.42.0.0/16", ServiceCIDR: "10.43.0.0/16"}})
	if priv.PodCIDR != "10.42.0.0/16" || len(c.files) != 0 {
		t.Fatalf("non-loopback: %v, %d claims", priv, len(c.files))
	}
	if _, _, err := Resolve(Options{Dir: dir, Explicit: Ranges{PodCIDR: "nope"}, Bound: noSockets}); err == nil {
		t.Fatal("a bad explicit range was accepted")
	}
}

// A range with a socket bound in it is skipped, and a real listener is
// seen in the kernel's tables.
func TestResolveSkipsBoundRanges(t *testing.T) {
	busy := netip.MustParsePrefix("127.67.0.0/16")
	got, _ := resolve(t, t.TempDir(), Options{Bound: func(p netip.Prefix) (bool, error) { return p == busy, nil }})
	if got.PodCIDR != "127.68.0.0/16" || got.ServiceCIDR != "127.69.0.0/16" {
		t.Fatalf("got %v; want the pair after the one with a bound socket", got)
	}

	ln, err := net.Listen("tcp", "127.93.0.7:0")
	if err != nil {
		t.Skipf("cannot listen on 127.93.0.7: %v", err)
	}
	defer ln.Close()
	if bound, err := boundInProc(netip.MustParsePrefix("127.93.0.0/16")); err != nil || !bound {
		t.Fatalf("listener on %s not seen: %t, %v", ln.Addr(), bound, err)
	}
	if bound, err := boundInProc(netip.MustParsePrefix("127.94.0.0/16")); err != nil || bound {
		t.Fatalf("a socket seen in 127.94.0.0/16: %t, %v", bound, err)
	}
}

func TestBoundInParsesProcNet(t *testing.T) {
	tcp := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 3500007F:0035 00000000:0000 0A 00000000:00000000 00:00000000 00000000   101        0 1 1 0 100 0 0 10 0
   1: 0A00437F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0
`
	tcp6 := `  sl  local_address                         remote_address                        st
   0: 0000000000000000FFFF00000A00447F:1F90 00000000000000000000000000000000:0000 0A
`
	for _, tc := range []struct {
		table, prefix string
		want          bool
	}{
		{tcp, "127.67.0.0/16", true}, // 127.67.0.10:8080
		{tcp, "127.0.0.0/16", true},  // 127.0.0.53:53
		{tcp, "127.66.0.0/16", false},
		{tcp6, "127.68.0.0/16", true}, // ::ffff:127.68.0.10
		{tcp6, "127.67.0.0/16", false},
	} {
		got, err := boundIn(strings.NewReader(tc.table), netip.MustParsePrefix(tc.prefix))
		if err != nil || got != tc.want {
			t.Errorf("%s: %t, %v; want %t", tc.prefix, got, err, tc.want)
		}
	}
}

func TestClaimNames(t *testing.T) {
	for p, want := range map[string]string{
		"127.66.216.0/22": "127.66.0.0_16",
		"127.66.0.0/16":   "127.66.0.0_16",
		"127.64.0.0/15":   "127.64.0.0_16 127.65.0.0_16",
		"10.0.0.0/8":      "",
	} {
		if got := strings.Join(claimNames(netip.MustParsePrefix(p)), " "); got != want {
			t.Errorf("claimNames(%s) = %q; want %q", p, got, want)
		}
	}
	if n := len(claimNames(netip.MustParsePrefix("127.0.0.0/8"))); n != 256 {
		t.Errorf("127.0.0.0/8: %d claims; want 256", n)
	}
}
