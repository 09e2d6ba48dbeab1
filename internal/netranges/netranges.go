// Package netranges chooses and claims an unprivileged cluster's address
// ranges on this machine. Pods and Services get loopback addresses, and
// every process on a machine shares one loopback: two `skiff server`s with
// the same ranges hand out the same addresses, and the second one's pods
// cannot bind. So a server that is given no ranges takes the defaults
// (127.66.0.0/16 for pods, 127.67.0.0/16 for Services) only when no other
// skiff on the machine has them, and otherwise the next free pair of
// loopback /16s; the engine records the choice in its data directory, so
// a restart keeps its addresses.
//
// A claim is an flock on a file per /16 in a machine-wide directory, held
// for the process's life: the kernel drops it when the process ends, so a
// crash never leaves a range taken. Ranges a server chose (or recorded)
// are claimed exclusively; ranges a user gave explicitly are claimed
// shared, which never fails (explicit is always honoured, and several
// processes may be meant to share them) but keeps automatic choices away
// from them. A range in which any socket is bound (/proc/net) is not free
// either, which covers skiffs of other versions and other programs.
package netranges

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// The ranges a server takes when they are free.
const (
	DefaultPodCIDR     = "127.66.0.0/16"
	DefaultServiceCIDR = "127.67.0.0/16"
)

// Ranges are a cluster's pod range (node ranges are carved from it) and
// Service range. An empty field is one to choose.
type Ranges struct {
	PodCIDR     string `json:"clusterPodCIDR,omitempty"`
	ServiceCIDR string `json:"serviceCIDR,omitempty"`
}

// Options say what Resolve starts from.
type Options struct {
	// Explicit are the ranges the user gave: always used, claimed shared.
	Explicit Ranges
	// Recorded are the ranges this data directory was first started with:
	// used where Explicit is empty, claimed exclusively.
	Recorded Ranges
	// Dir is the machine-wide claims directory. Default DefaultDir().
	Dir string
	// Bound reports whether a socket is bound to an address in p. Default:
	// the kernel's socket tables (/proc/net/tcp, tcp6, udp, udp6).
	Bound func(p netip.Prefix) (bool, error)
	// Logger. Default slog.Default().
	Logger *slog.Logger
}

// Claim holds the claimed ranges until Release.
type Claim struct {
	files []*os.File
}

// Release gives the ranges up. Safe on nil and more than once.
func (c *Claim) Release() {
	if c == nil {
		return
	}
	for _, f := range c.files {
		unlock(f)
		f.Close()
	}
	c.files = nil
}

// loopback is where claims matter: only loopback ranges are shared by
// every process of the machine. (A privileged node's bridge addresses are
// its own network's.)
var loopback = netip.MustParsePrefix("127.0.0.0/8")

// candidates are the pairs a server chooses from, in order: the defaults,
// then (127.68, 127.69), ... up to (127.126, 127.127), then (127.64,
// 127.65): inside 127.64.0.0/10, well away from 127.0.0.0/16 where
// programs habitually listen (127.0.0.1, 127.0.0.53, 127.0.1.1).
func candidates() [][2]netip.Prefix {
	var out [][2]netip.Prefix
	for i := 0; i < 32; i++ {
		o := 66 + 2*i
		if o >= 128 {
			o -= 64
		}
		out = append(out, [2]netip.Prefix{
			netip.PrefixFrom(netip.AddrFrom4([4]byte{127, byte(o), 0, 0}), 16),
			netip.PrefixFrom(netip.AddrFrom4([4]byte{127, byte(o + 1), 0, 0}), 16),
		})
	}
	return out
}

// Resolve returns the ranges to use, claimed for this process: explicit
// ones as given, recorded ones as recorded, and the missing ones chosen
// from the free candidate /16s (both of a pair together when both are
// missing, so a second server's pods and Services stay neighbours).
func Resolve(o Options) (Ranges, *Claim, error) {
	if o.Dir == "" {
		o.Dir = DefaultDir()
	}
	if o.Bound == nil {
		o.Bound = boundInProc
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if err := makeShared(o.Dir); err != nil {
		return Ranges{}, nil, fmt.Errorf("address range claims: %w", err)
	}
	claim := &Claim{}
	out := Ranges{}
	var taken []netip.Prefix // decided ranges a choice must not overlap
	fixed := func(field *string, explicit, recorded, what string) error {
		v, exclusive := explicit, false
		if v == "" {
			v, exclusive = recorded, true
		}
		if v == "" {
			return nil
		}
		p, err := netip.ParsePrefix(v)
		if err != nil {
			return fmt.Errorf("%s %q: %w", what, v, err)
		}
		*field = p.Masked().String()
		taken = append(taken, p.Masked())
		for _, name := range claimNames(p) {
			f, ok, err := lockName(o.Dir, name, exclusive)
			if err != nil {
				return err
			}
			if !ok {
				// Used all the same: a recorded range is where this
				// cluster's objects already have their addresses. The
				// user hears why binds may fail.
				o.Logger.Warn("address range also in use by another skiff on this machine; pods or Services may fail to bind",
					"range", p.String(), "kind", what, "claims", o.Dir)
				continue
			}
			claim.files = append(claim.files, f)
		}
		return nil
	}
	if err := fixed(&out.PodCIDR, o.Explicit.PodCIDR, o.Recorded.PodCIDR, "pod range"); err != nil {
		claim.Release()
		return Ranges{}, nil, err
	}
	if err := fixed(&out.ServiceCIDR, o.Explicit.ServiceCIDR, o.Recorded.ServiceCIDR, "service range"); err != nil {
		claim.Release()
		return Ranges{}, nil, err
	}
	if out.PodCIDR != "" && out.ServiceCIDR != "" {
		return out, claim, nil
	}
	for _, pair := range candidates() {
		var want []netip.Prefix
		if out.PodCIDR == "" {
			want = append(want, pair[0])
		}
		if out.ServiceCIDR == "" {
			want = append(want, pair[1])
		}
		files, ok, err := tryClaim(o, want, taken)
		if err != nil {
			claim.Release()
			return Ranges{}, nil, err
		}
		if !ok {
			continue
		}
		claim.files = append(claim.files, files...)
		if out.PodCIDR == "" {
			out.PodCIDR = pair[0].String()
		}
		if out.ServiceCIDR == "" {
			out.ServiceCIDR = pair[1].String()
		}
		return out, claim, nil
	}
	claim.Release()
	return Ranges{}, nil, errors.New("no free loopback /16 left in 127.64.0.0/10 for pods and Services: every one is claimed by another skiff or has sockets bound; give --cluster-pod-cidr and --service-cidr")
}

// tryClaim claims every one of want exclusively, or none: a range that
// overlaps a decided one, has a socket bound in it, or is claimed by
// another process is not free.
func tryClaim(o Options, want, taken []netip.Prefix) ([]*os.File, bool, error) {
	var files []*os.File
	fail := func() {
		for _, f := range files {
			unlock(f)
			f.Close()
		}
	}
	for _, p := range want {
		for _, t := range taken {
			if t.Overlaps(p) {
				fail()
				return nil, false, nil
			}
		}
		f, ok, err := lockName(o.Dir, claimNames(p)[0], true)
		if err != nil || !ok {
			fail()
			return nil, false, err
		}
		files = append(files, f)
		// Checked after the claim: a skiff that claimed and bound before
		// us is seen by the claim, one that stopped a moment ago by neither.
		bound, err := o.Bound(p)
		if err != nil {
			o.Logger.Debug("socket tables not read; relying on claims alone", "err", err)
		}
		if bound {
			o.Logger.Info("address range has sockets bound by another program; trying the next", "range", p.String())
			fail()
			return nil, false, nil
		}
	}
	return files, true, nil
}

// claimNames are the claim files of p: one per /16 it covers (all of
// 127.0.0.0/8 at most), none outside loopback.
func claimNames(p netip.Prefix) []string {
	p = p.Masked()
	if !p.Addr().Is4() || !loopback.Overlaps(p) {
		return nil
	}
	if p.Bits() < loopback.Bits() {
		p = loopback
	}
	if p.Bits() >= 16 {
		a := p.Addr().As4()
		return []string{fmt.Sprintf("%d.%d.0.0_16", a[0], a[1])}
	}
	a := p.Addr().As4()
	var out []string
	for i := 0; i < 1<<(16-p.Bits()); i++ {
		out = append(out, fmt.Sprintf("%d.%d.0.0_16", a[0], int(a[1])+i))
	}
	return out
}

// lockName opens (or creates) dir/name and takes its lock, exclusive or
// shared, without waiting: ok is false when another process holds it in
// a conflicting mode.
func lockName(dir, name string, exclusive bool) (*os.File, bool, error) {
	path := filepath.Join(dir, name)
	// Read-only is enough for flock, and lets every user's skiff lock a
	// file another user created in the shared (sticky) directory.
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o644)
	if errors.Is(err, os.ErrPermission) {
		f, err = os.Open(path)
	}
	if err != nil {
		return nil, false, fmt.Errorf("address range claim %s: %w", path, err)
	}
	ok, err := lock(f, exclusive)
	if err != nil {
		f.Close()
		return nil, false, fmt.Errorf("address range claim %s: %w", path, err)
	}
	if !ok {
		f.Close()
		return nil, false, nil
	}
	return f, true, nil
}

// DefaultDir is the machine-wide claims directory: /run/skiff/ranges where
// this process may write there (root, or a directory root made shared),
// else skiff-ranges in the temporary directory, made shared (sticky,
// world-writable) so every user's skiff claims in the same place.
func DefaultDir() string {
	const run = "/run/skiff/ranges"
	if err := makeShared(run); err == nil && writable(run) {
		return run
	}
	return filepath.Join(os.TempDir(), "skiff-ranges")
}

// makeShared creates dir as a directory every user may add files to and
// none may remove another's from (sticky, as /tmp), past the umask.
func makeShared(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if fi, err := os.Stat(dir); err == nil && fi.Mode()&(os.ModeSticky|os.ModePerm) != os.ModeSticky|0o777 {
		_ = os.Chmod(dir, 0o777|os.ModeSticky) // not ours to change: used as it is
	}
	return nil
}

// String names the ranges for logs.
func (r Ranges) String() string {
	return strings.Join([]string{"pods " + r.PodCIDR, "services " + r.ServiceCIDR}, ", ")
}
