package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/skiffhq/skiff/internal/bus"
	"github.com/skiffhq/skiff/internal/dirlock"
	"github.com/skiffhq/skiff/internal/node/agent"
	"github.com/skiffhq/skiff/internal/node/join"
	"github.com/skiffhq/skiff/runtime/wasm"
)

// WorkerConfig configures a worker node: a node agent with its runtime and
// no control plane, joined to a server over its bus (`skiff agent`).
type WorkerConfig struct {
	// Server is a server's API address ("host:port"). Server or Servers
	// is required.
	Server string
	// Servers are more servers' API addresses, asked in turn after Server
	// whenever the node looks for the bus: at start, and each time its bus
	// connection breaks (a server restarted with another bus port, or died
	// and another serves).
	Servers []string
	// Token is the cluster token (the server's DataDir/token), which pins
	// the cluster CA (see join.Token); a bare secret needs CA. Required.
	Token string
	// DataDir holds the node's module store, compile cache, and pods'
	// volumes and logs. Required.
	DataDir string
	// NodeName is the Node's name. Default: the host name, lower-cased.
	NodeName string
	// CA, when set, is the cluster CA (PEM) that the server's API and bus
	// certificates must chain to; it must be the one Token pins, if it
	// pins one. Without it they must chain to the CA Token pins: nothing
	// is trusted on first use.
	CA []byte
	// ImageHosts, PodCIDR, MaxPods, CrashLoopBackOff and VolumeSyncPeriod
	// are as in Config.
	ImageHosts       []string
	PodCIDR          string
	MaxPods          int
	CrashLoopBackOff time.Duration
	VolumeSyncPeriod time.Duration
	// DiskPressureAvailable and DiskPressureInodesFree are as in Config.
	DiskPressureAvailable, DiskPressureInodesFree float64
	// HeartbeatInterval is as Config.NodeHeartbeatInterval.
	HeartbeatInterval time.Duration
	// FenceTimeout is how long the worker may be cut off from every
	// server before it stops its StatefulSet pods; it must not be longer
	// than the servers' Config.StatefulSetFenceTimeout. Default
	// DefaultStatefulSetFenceTimeout; negative: never.
	FenceTimeout time.Duration
	// MetricsInterval is as Config.MetricsInterval.
	MetricsInterval time.Duration
	// DefaultPodMemoryLimit and EvictionMemoryAvailable are as in Config:
	// 512 MiB and 100 MiB by default.
	DefaultPodMemoryLimit   int64
	EvictionMemoryAvailable int64
	// DisableClusterDNS is as in Config. The DNS server's address and the
	// cluster domain come from the server, with the bus's address.
	DisableClusterDNS bool
	Logger            *slog.Logger
}

// Worker is a running worker node.
type Worker struct {
	conn    *bus.Conn
	agent   *agent.Agent
	wasm    *wasm.Runtime
	network *nodeNetwork
	lock    *dirlock.Lock
}

// ErrNoBus: the server's bus listens nowhere (a single-node server), so no
// node can join it.
var ErrNoBus = join.ErrNoBus

// StartWorker finds the server's bus through its API port, connects with
// the token, registers the node, starts running the pods bound to it and
// serves the cluster's Services on the node and holds its Wasm pods to
// their NetworkPolicies (both fed over the bus, as a server node's are).
func StartWorker(ctx context.Context, cfg WorkerConfig) (*Worker, error) {
	servers := workerServers(cfg)
	if len(servers) == 0 || cfg.Token == "" || cfg.DataDir == "" {
		return nil, errors.New("worker: Server, Token and DataDir are required")
	}
	tok, err := join.ParseToken(cfg.Token)
	if err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	for _, s := range servers {
		if _, port, err := net.SplitHostPort(s); err != nil || port == "" {
			return nil, fmt.Errorf("worker: server address %q: want HOST:PORT, a server's API address", s)
		}
	}
	if tok.CAHash == nil && len(cfg.CA) == 0 {
		// Checked before anything else: a bare secret must not reach a
		// server that nothing vouches for.
		return nil, fmt.Errorf("worker: %w", join.ErrNoCAPin)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.NodeName == "" {
		c, err := Config{DataDir: cfg.DataDir}.withDefaults()
		if err != nil {
			return nil, err
		}
		cfg.NodeName = c.NodeName
	}
	if err := validNodeName(cfg.NodeName); err != nil {
		return nil, err
	}
	log := cfg.Logger.With("node", cfg.NodeName)
	dir := filepath.Join(cfg.DataDir, agentSubdir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	lock, err := dirlock.Acquire(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	info, server, err := join.DiscoverAny(ctx, servers, cfg.Token, cfg.CA)
	if err != nil {
		lock.Release()
		return nil, fmt.Errorf("worker: %w", err)
	}
	// The bus's certificate must chain to the CA given, or else to the one
	// the (checked) answer carried.
	tlsConf, err := info.TLSConfig(cfg.CA)
	if err != nil {
		lock.Release()
		return nil, fmt.Errorf("worker: %w", err)
	}
	// Every reconnect asks the servers again where the bus is, on the same
	// connection: the agent's subscriptions and pods carry on, and it
	// re-syncs once connected (agent.Start's reconnect handler).
	dialer, err := join.NewBusDialer(info, server, servers, cfg.Token, cfg.CA, busDialTimeout, log)
	if err != nil {
		lock.Release()
		return nil, fmt.Errorf("worker: %w", err)
	}
	// The node's own bus identity: kept in its data directory, or asked
	// of the server that answered (checked against the CA, which the token
	// pins).
	ca := cfg.CA
	if len(ca) == 0 {
		ca = []byte(info.CA)
	}
	id, err := workerIdentity(ctx, cfg, server, ca, dir)
	if err != nil {
		lock.Release()
		return nil, err
	}
	url := info.URL
	conn, err := bus.DialNode(ctx, url, cfg.NodeName, id.Credential, "agent-"+cfg.NodeName, tlsConf,
		nats.SetCustomDialer(dialer), nats.IgnoreDiscoveredServers())
	if err != nil {
		lock.Release()
		return nil, fmt.Errorf("worker: connect to the bus at %s: %w", url, err)
	}
	w := &Worker{conn: conn, lock: lock}
	pr, rt, err := nodeRuntime(ctx, dir, conn, cfg.ImageHosts, log)
	if err != nil {
		w.Stop(ctx)
		return nil, err
	}
	w.wasm = rt
	dnsIP := info.ClusterDNS
	serveDNS := dnsIP
	if cfg.DisableClusterDNS {
		serveDNS = "" // the pods still name info.ClusterDNS
	}
	// The Service proxy, the cluster DNS and network policy start before
	// the agent, which hands its containers the policy's firewalls.
	if w.network, err = startNodeNetwork(ctx, conn, nodeServices{node: cfg.NodeName, proxy: true, dns: serveDNS,
		domain: info.ClusterDomain}, cfg.Logger); err != nil {
		w.Stop(ctx)
		return nil, err
	}
	backoff := cfg.CrashLoopBackOff
	if w.agent, err = agent.New(agent.Config{NodeName: cfg.NodeName, Bus: conn, Runtime: pr, DataDir: dir, Services: w.network.svcs,
		PodCIDR: cfg.PodCIDR, MaxPods: cfg.MaxPods, VolumeSyncPeriod: cfg.VolumeSyncPeriod,
		BackOffInitial: backoff, BackOffMax: 30 * backoff, HeartbeatInterval: cfg.HeartbeatInterval, FenceTimeout: fenceTimeout(cfg.FenceTimeout), UsageInterval: cfg.MetricsInterval, Logger: cfg.Logger,
		DiskPressureAvailable: cfg.DiskPressureAvailable, DiskPressureInodesFree: cfg.DiskPressureInodesFree,
		DefaultPodMemoryLimit: cfg.DefaultPodMemoryLimit, EvictionMemoryAvailable: cfg.EvictionMemoryAvailable,
		ClusterDNS: dnsList(dnsIP), ClusterDomain: info.ClusterDomain,
		Firewall: w.network.firewall}); err != nil {
		w.Stop(ctx)
		return nil, err
	}
	if err := w.agent.Start(ctx); err != nil {
		w.agent = nil
		w.Stop(ctx)
		return nil, err
	}
	log.Info("worker ready", "server", server, "bus", url)
	return w, nil
}

// busDialTimeout bounds each API request and TCP dial of a worker looking
// for its bus: short, since a reconnect tries every server in turn.
const busDialTimeout = 3 * time.Second

// workerServers are Server and Servers, without blanks or repeats.
func workerServers(cfg WorkerConfig) []string {
	var out []string
	for _, s := range append([]string{cfg.Server}, cfg.Servers...) {
		if s = strings.TrimSpace(s); s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// fenceTimeout reads WorkerConfig.FenceTimeout: 0 the default, negative
// off.
func fenceTimeout(d time.Duration) time.Duration {
	switch {
	case d == 0:
		return DefaultStatefulSetFenceTimeout
	case d < 0:
		return 0
	}
	return d
}

// dnsList is the agent's ClusterDNS: the one address, or none.
func dnsList(ip string) []string {
	if ip == "" {
		return nil
	}
	return []string{ip}
}

// Stop ends the node agent (its pods stop; the control plane marks the
// node Unknown after its grace period), the Service proxy, the cluster DNS
// server, network policy and the runtime.
func (w *Worker) Stop(ctx context.Context) error {
	if w.network != nil {
		w.network.stop()
	}
	if w.agent != nil {
		w.agent.Stop()
	}
	var err error
	if w.wasm != nil {
		err = w.wasm.Close(ctx)
	}
	w.conn.Close()
	w.lock.Release()
	return err
}
