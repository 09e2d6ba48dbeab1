package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/skiffhq/skiff/internal/bus"
	"github.com/skiffhq/skiff/internal/dirlock"
	"github.com/skiffhq/skiff/internal/node/agent"
	"github.com/skiffhq/skiff/internal/node/join"
	"github.com/skiffhq/skiff/runtime/wasm"
)

// WorkerConfig configures a worker node: a node agent with its runtime and
// no control plane, joined to a server over its bus (`skiff agent`).
type WorkerConfig struct {
	// Server is a server's API address ("host:port"). Required.
	Server string
	// Token is the cluster token (the server's DataDir/token). Required.
	Token string
	// DataDir holds the node's module store, compile cache, and pods'
	// volumes and logs. Required.
	DataDir string
	// NodeName is the Node's name. Default: the host name, lower-cased.
	NodeName string
	// CA, when set, is the cluster CA (PEM) that the server's API and bus
	// certificates must chain to. Without it the first contact trusts the
	// API's certificate as presented, as a kubeadm join without a CA hash
	// does, and the bus's must chain to the CA that contact sent.
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
	if cfg.Server == "" || cfg.Token == "" || cfg.DataDir == "" {
		return nil, errors.New("worker: Server, Token and DataDir are required")
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
	info, err := join.Discover(ctx, cfg.Server, cfg.Token, cfg.CA)
	if err != nil {
		lock.Release()
		return nil, err
	}
	// The bus's certificate must chain to the CA given, or else to the one
	// the first contact received: pinned from here on.
	tlsConf, err := info.TLSConfig(cfg.CA)
	if err != nil {
		lock.Release()
		return nil, fmt.Errorf("worker: %w", err)
	}
	url := info.URL
	// The bus's password is the token's secret (DataDir/token pins the CA
	// before it: join.Token).
	tok, err := join.ParseToken(cfg.Token)
	if err != nil {
		lock.Release()
		return nil, fmt.Errorf("worker: %w", err)
	}
	conn, err := bus.Dial(ctx, url, tok.Secret, "agent-"+cfg.NodeName, tlsConf)
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
		BackOffInitial: backoff, BackOffMax: 30 * backoff, HeartbeatInterval: cfg.HeartbeatInterval, UsageInterval: cfg.MetricsInterval, Logger: cfg.Logger,
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
	log.Info("worker ready", "server", cfg.Server, "bus", url)
	return w, nil
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
