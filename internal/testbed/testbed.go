// Package testbed is a multi-host test bed on one machine, for tests only:
// a hub network namespace holding a bridge, and per host a network namespace
// joined to that bridge by a veth pair, with its own address. Tests start
// real processes (the skiff binary) inside hosts, kill and restart them by
// PID, cut and heal a host's link or the path between two hosts, and reach
// the hosts' APIs from the test process through a dialer that enters the hub
// namespace. Everything is removed at the test's Cleanup, also when the test
// fails.
//
// Nothing is added to the root namespace: the addresses (10.251.0.0/24) live
// only inside the namespaces the bed creates, and the veth pairs are created
// with both ends already inside them. Names carry the test process's PID and
// a counter, so parallel test runs never clash; a later run removes the
// namespaces of runs that died before their Cleanup.
//
// The bed needs root and the ip command (iproute2); New skips the test with
// the reason where either is missing.
package testbed

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

const (
	// namePrefix starts every namespace name the bed creates; the PID of
	// the test process follows it, which is how a later run recognises
	// leftovers of a run that died.
	namePrefix = "skb"
	netnsDir   = "/run/netns"
	bridge     = "br0"
	hostIf     = "eth0"
	// cmdTimeout bounds every ip command.
	cmdTimeout = 30 * time.Second
	// maxHosts bounds the hosts on one bed (addresses .10 to .249).
	maxHosts = 240
)

// Subnet is the bed's network; the hub's bridge has its first address
// and hosts have .10 onwards.
var Subnet = netip.MustParsePrefix("10.251.0.0/24")

var beds atomic.Int64

// Bed is one hub namespace with a bridge, and the hosts joined to it.
type Bed struct {
	t      testing.TB
	prefix string
	hub    string // the hub namespace's name

	mu    sync.Mutex
	hosts []*Host
	cuts  map[[2]string]bool
}

// New builds an empty bed (the hub and its bridge) and registers its
// removal with t.Cleanup. It skips the test unless it runs as root with the
// ip command at hand.
func New(t testing.TB) *Bed {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the multi-host test bed creates network namespaces, which needs root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("the multi-host test bed needs the ip command (iproute2): ", err)
	}
	sweepLeftovers(t)
	b := &Bed{
		t:      t,
		prefix: fmt.Sprintf("%s%d-%d", namePrefix, os.Getpid(), beds.Add(1)),
		cuts:   map[[2]string]bool{},
	}
	b.hub = b.prefix + "-hub"
	t.Cleanup(b.cleanup)
	b.must("netns", "add", b.hub)
	b.must("-n", b.hub, "link", "set", "lo", "up")
	b.must("-n", b.hub, "link", "add", bridge, "type", "bridge")
	b.must("-n", b.hub, "addr", "add", b.HubAddr().String()+"/24", "dev", bridge)
	b.must("-n", b.hub, "link", "set", bridge, "up")
	return b
}

// HubAddr is the bridge's address in the hub namespace: where the test
// process's connections come from.
func (b *Bed) HubAddr() netip.Addr { return Subnet.Addr().Next() }

// Host is one network namespace on the bed with one interface, eth0, on
// the bridge.
type Host struct {
	Name string     // as given to AddHost
	NS   string     // the network namespace's name (ip netns)
	Addr netip.Addr // eth0's address
	bed  *Bed
	port string // the veth's end on the bridge, in the hub namespace

	mu    sync.Mutex
	procs []*Proc
}

// AddHost creates a host namespace joined to the bridge, with loopback up
// (pods' loopback addresses live there) and eth0 addressed.
func (b *Bed) AddHost(name string) *Host {
	b.t.Helper()
	b.mu.Lock()
	i := len(b.hosts)
	b.mu.Unlock()
	if i >= maxHosts {
		b.t.Fatalf("testbed: at most %d hosts", maxHosts)
	}
	addr := Subnet.Addr()
	for range 10 + i {
		addr = addr.Next()
	}
	h := &Host{Name: name, NS: fmt.Sprintf("%s-h%d", b.prefix, i), Addr: addr, bed: b, port: fmt.Sprintf("h%d", i)}
	b.mu.Lock()
	b.hosts = append(b.hosts, h) // before creating, so Cleanup removes a half-made host
	b.mu.Unlock()
	b.must("netns", "add", h.NS)
	b.must("-n", h.NS, "link", "set", "lo", "up")
	// Both ends are born inside their namespaces: the root namespace never
	// sees the pair, and the names need only be unique per namespace.
	b.must("link", "add", hostIf, "netns", h.NS, "type", "veth", "peer", "name", h.port, "netns", b.hub)
	b.must("-n", b.hub, "link", "set", h.port, "master", bridge, "up")
	b.must("-n", h.NS, "addr", "add", addr.String()+"/24", "dev", hostIf)
	b.must("-n", h.NS, "link", "set", hostIf, "up")
	return h
}

// Hosts are the bed's hosts in the order they were added.
func (b *Bed) Hosts() []*Host {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*Host(nil), b.hosts...)
}

// Dial dials a literal IP:port from the hub namespace; it fits
// http.Transport.DialContext and rest.Config.Dial.
func (b *Bed) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	return dialIn(ctx, filepath.Join(netnsDir, b.hub), network, addr)
}

// Dial dials a literal IP:port from inside the host, as its own processes
// would (a pod's loopback address, for instance).
func (h *Host) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	return dialIn(ctx, filepath.Join(netnsDir, h.NS), network, addr)
}

// RestConfig reads a kubeconfig (a skiff server's DATA-DIR/kubeconfig.yaml)
// and makes its connections from the hub namespace, where the servers'
// addresses are reachable.
func (b *Bed) RestConfig(kubeconfig string) (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
	}
	cfg.Dial = b.Dial
	return cfg, nil
}

// Command is a command that runs inside the hub namespace (for a
// command-line client of the hosts' APIs, such as `skiff image import`).
func (b *Bed) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", b.hub, name}, args...)...)
}

// Command is a command that runs inside the host's namespace.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
}

// Isolate cuts the host off the bridge: its end of the link on the bridge
// goes down, so packets to and from every other host are dropped (connected
// peers see timeouts, as on a real cable cut; the host's own interface stays
// up with its address).
func (h *Host) Isolate() error {
	return h.bed.ip("-n", h.bed.hub, "link", "set", h.port, "down")
}

// Heal undoes Isolate.
func (h *Host) Heal() error {
	return h.bed.ip("-n", h.bed.hub, "link", "set", h.port, "up")
}

// Cut drops the traffic between two hosts only, both ways, with a
// blackhole route to the other's address in each host: established
// connections between them time out and new ones fail, while each still
// reaches every other host and the hub.
func (b *Bed) Cut(x, y *Host) error {
	for _, p := range [][2]*Host{{x, y}, {y, x}} {
		if err := b.ip("-n", p[0].NS, "route", "add", "blackhole", p[1].Addr.String()+"/32"); err != nil {
			return err
		}
		b.mu.Lock()
		b.cuts[[2]string{p[0].NS, p[1].Addr.String()}] = true
		b.mu.Unlock()
	}
	return nil
}

// HealCut undoes Cut.
func (b *Bed) HealCut(x, y *Host) error {
	for _, p := range [][2]*Host{{x, y}, {y, x}} {
		k := [2]string{p[0].NS, p[1].Addr.String()}
		b.mu.Lock()
		cut := b.cuts[k]
		delete(b.cuts, k)
		b.mu.Unlock()
		if !cut {
			continue
		}
		if err := b.ip("-n", p[0].NS, "route", "del", "blackhole", p[1].Addr.String()+"/32"); err != nil {
			return err
		}
	}
	return nil
}

// Partition cuts every path between the hosts of side and the others
// (the hub still reaches everyone, so clients can talk to both sides).
func (b *Bed) Partition(side ...*Host) error {
	for _, x := range side {
		for _, y := range b.Hosts() {
			if !containsHost(side, y) {
				if err := b.Cut(x, y); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// HealAll heals every Cut and every Isolate.
func (b *Bed) HealAll() error {
	b.mu.Lock()
	var cuts [][2]string
	for k := range b.cuts {
		cuts = append(cuts, k)
	}
	b.cuts = map[[2]string]bool{}
	b.mu.Unlock()
	for _, k := range cuts {
		if err := b.ip("-n", k[0], "route", "del", "blackhole", k[1]+"/32"); err != nil {
			return err
		}
	}
	for _, h := range b.Hosts() {
		if err := h.Heal(); err != nil {
			return err
		}
	}
	return nil
}

func containsHost(hs []*Host, h *Host) bool {
	for _, x := range hs {
		if x == h {
			return true
		}
	}
	return false
}

// ip runs the ip command with a bounded time.
func (b *Bed) ip(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func (b *Bed) must(args ...string) {
	b.t.Helper()
	if err := b.ip(args...); err != nil {
		b.t.Fatalf("testbed: %v", err)
	}
}

// cleanup stops every process (SIGTERM, then SIGKILL), then removes the
// namespaces, which removes their links, addresses and routes with them.
// On a failed test it first prints the end of every process's log.
func (b *Bed) cleanup() {
	hosts := b.Hosts()
	for _, h := range hosts {
		for _, p := range h.Procs() {
			if b.t.Failed() {
				b.t.Logf("--- %s on %s (%s), the last lines of its log (%s):\n%s", p.Name, h.Name, h.Addr, p.LogPath(), p.Tail())
			}
		}
	}
	var wg sync.WaitGroup
	for _, h := range hosts {
		for _, p := range h.Procs() {
			wg.Add(1)
			go func() { defer wg.Done(); p.Stop(10 * time.Second) }()
		}
	}
	wg.Wait()
	for _, h := range hosts {
		if err := b.ip("netns", "del", h.NS); err != nil && !os.IsNotExist(statErr(h.NS)) {
			b.t.Errorf("testbed cleanup: %v", err)
		}
	}
	if err := b.ip("netns", "del", b.hub); err != nil && !os.IsNotExist(statErr(b.hub)) {
		b.t.Errorf("testbed cleanup: %v", err)
	}
}

func statErr(ns string) error {
	_, err := os.Stat(filepath.Join(netnsDir, ns))
	return err
}

// sweepLeftovers removes the namespaces of earlier beds whose test process
// is gone (killed by a timeout before its Cleanup ran). Only names this
// package makes are touched: skb<pid>-<n>-..., with no process <pid>.
func sweepLeftovers(t testing.TB) {
	entries, err := os.ReadDir(netnsDir)
	if err != nil {
		return // none yet
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), namePrefix)
		if !ok {
			continue
		}
		pidStr, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if !ok || err != nil || pid <= 0 {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			continue // its run is alive
		}
		ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
		if out, err := exec.CommandContext(ctx, "ip", "netns", "del", e.Name()).CombinedOutput(); err != nil {
			t.Logf("testbed: removing leftover namespace %s: %v: %s", e.Name(), err, out)
		} else {
			t.Logf("testbed: removed leftover namespace %s of a run that died", e.Name())
		}
		cancel()
	}
}
