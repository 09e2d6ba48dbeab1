package engine

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"k8s.io/client-go/tools/record"

	"k8s.io/client-go/kubernetes"

	"github.com/skiffhq/skiff/internal/apiserver"
	"github.com/skiffhq/skiff/internal/apiserver/pki"
	"github.com/skiffhq/skiff/internal/atomicfile"
	"github.com/skiffhq/skiff/internal/audit"
	"github.com/skiffhq/skiff/internal/authz/bootstrap"
	"github.com/skiffhq/skiff/internal/bus"
	"github.com/skiffhq/skiff/internal/controllers/controller"
	"github.com/skiffhq/skiff/internal/dirlock"
	"github.com/skiffhq/skiff/internal/netranges"
	"github.com/skiffhq/skiff/internal/node/agent"
	"github.com/skiffhq/skiff/internal/node/kvserver"
	"github.com/skiffhq/skiff/internal/node/server"
	"github.com/skiffhq/skiff/raft"
	"github.com/skiffhq/skiff/runtime/image"
	"github.com/skiffhq/skiff/runtime/wasm"
)

// Errors returned by the engine.
var (
	// ErrNotStarted: the call needs a started engine. Nothing was done.
	ErrNotStarted = errors.New("engine not started")
	// ErrAlreadyStarted: Start was called twice. The running engine is unchanged.
	ErrAlreadyStarted = errors.New("engine already started")
	// ErrNodeRenamed: DataDir belongs to another node name. Nothing was
	// started; use the old name or another directory.
	ErrNodeRenamed = errors.New("data directory belongs to another node")
	// ErrDataDirInUse: another process (its pid is in the message) runs an
	// engine or worker on DataDir. Nothing was started.
	ErrDataDirInUse = dirlock.ErrInUse
	// ErrTokenMismatch: Config.Token is not this data directory's cluster
	// token (another secret, or another CA's hash). Nothing was started.
	ErrTokenMismatch = errors.New("the token given is not this cluster's (see DataDir/token)")
)

// Engine is one skiff cluster member.
type Engine struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	started bool
	lock    *dirlock.Lock // DataDir, for this process only
	// given holds the ranges as the user gave them (cfg gets the resolved
	// ones at Start), so a second Start chooses as the first did.
	given      Config
	rangeClaim *netranges.Claim // this process's pod and Service ranges on the machine

	store   *raft.Store
	bus     *bus.Server
	api     *apiserver.Server
	gate    *controller.LeaderGate // runs loops on the raft leader
	loops   *controlLoops
	agent   *agent.Agent
	network *nodeNetwork // the Service proxy and network policy, fed over the bus
	nodesrv *server.Server
	wasm    *wasm.Runtime
	conns   []*bus.Conn
	events  record.EventBroadcaster // started by the first EventRecorder
	token   string
	// joinToken is the token in DataDir/token: token with the cluster
	// CA's hash, which joining nodes check the server with.
	joinToken string
	busCA     []byte         // the cluster CA's PEM, for joining nodes; nil without a bus listener
	cl        *clusterMember // listeners, peers and membership (cluster.go)
	// nodeAuth issues and checks nodes' own bus identities (nodeauth.go).
	nodeAuth *nodeAuthority
	// stoppers undo what the start* functions of the other files started,
	// run last first.
	stoppers []func()
}

// New checks cfg and returns an engine that has not started. It touches
// nothing on disk.
func New(cfg Config) (*Engine, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Engine{cfg: c, given: c, log: c.Logger.With("node", c.NodeName)}, nil
}

// Config returns the configuration with every default filled in. The
// address ranges (ClusterPodCIDR, ServiceCIDR) are settled by Start, which
// may choose them: read them after it.
func (e *Engine) Config() Config { return e.cfg }

// Start opens the data directory, starts the store and the bus, and returns
// once the store has a leader and the bus accepts connections, or with an
// error (after undoing what it started) if that takes longer than
// Config.ReadyTimeout or ctx ends.
func (e *Engine) Start(ctx context.Context) (err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.started {
		return ErrAlreadyStarted
	}
	ctx, cancel := context.WithTimeout(ctx, e.cfg.ReadyTimeout)
	defer cancel()
	defer func() {
		if err != nil {
			e.stopLocked()
		}
	}()

	if err := os.MkdirAll(e.cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	if e.lock, err = dirlock.Acquire(e.cfg.DataDir); err != nil {
		return err
	}
	if err := e.prepareCluster(ctx); err != nil {
		return err
	}
	if err := e.resolveRanges(); err != nil {
		return err
	}
	name, err := loadOrCreate(filepath.Join(e.cfg.DataDir, nodeNameFile), e.cfg.NodeName)
	if err != nil {
		return err
	}
	if name != e.cfg.NodeName {
		return fmt.Errorf("%w: %s belongs to %q, not %q", ErrNodeRenamed, e.cfg.DataDir, name, e.cfg.NodeName)
	}
	if e.token, e.joinToken, err = e.loadToken(); err != nil {
		return err
	}

	storeCfg := raft.Config{
		ID:               e.cfg.NodeName,
		Dir:              filepath.Join(e.cfg.DataDir, raftSubdir),
		Bind:             e.cfg.RaftBind,
		Bootstrap:        !e.cl.joining, // a single server forms its own cluster; ignored when state exists
		HeartbeatTimeout: e.cfg.RaftHeartbeatTimeout,
		Logger:           e.log,
	}
	if e.cfg.RaftBind != "" {
		if storeCfg.TLS, err = e.raftTLS(); err != nil {
			return err
		}
	}
	e.store, err = raft.Open(ctx, storeCfg)
	if err != nil {
		return fmt.Errorf("start store: %w", err)
	}
	if err := e.joinRaft(ctx); err != nil {
		return err
	}
	var busServing *tls.Certificate
	if e.cfg.BusListen != "" {
		if busServing, e.busCA, err = e.busCert(); err != nil {
			return err
		}
	}
	if err := e.startNodeAuthority(); err != nil {
		return err
	}
	if e.bus, err = e.startBus(ctx, busServing); err != nil {
		return err
	}
	if err := e.startJetStreamBus(ctx); err != nil {
		return err
	}
	if err := e.recordListeners(); err != nil {
		return err
	}
	if err := e.store.WaitLeader(ctx); err != nil {
		return fmt.Errorf("store not ready: %w", err)
	}
	routes, err := e.startRegistry(ctx)
	if err != nil {
		return err
	}
	for pattern, h := range e.clusterRoutes() {
		routes[pattern] = h
	}
	streams, err := e.podStreams(ctx)
	if err != nil {
		return err
	}
	metricsGroups, err := e.metricsGroups(ctx)
	if err != nil {
		return err
	}
	e.api, err = apiserver.New(apiserver.Config{Listen: e.cfg.APIListen, PKIDir: filepath.Join(e.cfg.DataDir, pkiSubdir),
		Token: e.token, JoinToken: e.joinToken, Store: e.store, ServiceCIDR: e.cfg.ServiceCIDR, Logger: e.log, Routes: routes, PodStreams: streams,
		Groups: metricsGroups, DefaultTolerationSeconds: &apiserver.DefaultTolerationSeconds{
			NotReady: e.cfg.DefaultNotReadyTolerationSeconds, Unreachable: e.cfg.DefaultUnreachableTolerationSeconds},
		ServiceAccountAdmission: true, ClusterDomain: e.cfg.ClusterDomain,
		AuditLog:   audit.Config{Path: e.cfg.AuditLogPath, MaxSizeMB: e.cfg.AuditLogMaxSizeMB, MaxBackups: e.cfg.AuditLogMaxBackups},
		AuditLevel: audit.Level(e.cfg.AuditLevel), DisableRBAC: e.cfg.DisableRBAC})
	if err != nil {
		return err
	}
	if err := e.api.Start(ctx); err != nil {
		return err
	}
	cpConn, err := e.bus.Connect(ctx, "control-plane")
	if err != nil {
		return fmt.Errorf("control plane bus connection: %w", err)
	}
	e.conns = append(e.conns, cpConn)
	// The control loops start first: the node agent's registration waits
	// for the node lifecycle, which is one of them.
	if err := e.startControllers(ctx, cpConn); err != nil {
		return err
	}
	if err := e.startNetwork(ctx); err != nil {
		return err
	}
	if err := e.startNodes(ctx, cpConn); err != nil {
		return err
	}
	kc, err := e.api.Kubeconfig()
	if err != nil {
		return err
	}
	if err := atomicfile.Write(e.KubeconfigPath(), kc); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	e.startCluster()
	e.started = true
	st := e.store.Stats()
	raftAddr := e.store.Addr()
	if raftAddr == "" {
		raftAddr = "in-process (no listening port)"
	}
	e.log.Info("engine ready", "data_dir", e.cfg.DataDir, "api", e.api.URL(), "kubeconfig", e.KubeconfigPath(),
		"raft_addr", raftAddr, "revision", st.Rev, "keys", st.Keys, "bus", e.busDescription())
	return nil
}

// raftTLS is the mutual TLS of the store's listener: a raft peer certificate
// from the cluster CA for this node, naming the address peers dial. A
// wildcard host (":7000", "0.0.0.0:7000") names no address; peers then have
// to dial the node by name.
func (e *Engine) raftTLS() (*tls.Config, error) {
	host, _, err := net.SplitHostPort(e.cfg.RaftBind)
	if err != nil {
		return nil, fmt.Errorf("raft listen address %q: %w", e.cfg.RaftBind, err)
	}
	var hosts []string
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		hosts = append(hosts, host)
	}
	// The bus's routes use the same peer certificate: it must name their
	// host too.
	if rh, _, err := net.SplitHostPort(e.cfg.BusClusterListen); err == nil && rh != host {
		if ip := net.ParseIP(rh); rh != "" && (ip == nil || !ip.IsUnspecified()) {
			hosts = append(hosts, rh)
		}
	}
	cfg, err := pki.PeerTLS(filepath.Join(e.cfg.DataDir, pkiSubdir), e.cfg.NodeName, hosts)
	if err != nil {
		return nil, fmt.Errorf("raft TLS: %w", err)
	}
	e.cl.peerTLS = cfg
	return cfg, nil
}

// startNodes runs the control plane's node server (which every server
// runs, leader or not) on cp, and this member's own node agent on its own
// in-process bus connection, as a remote agent would run on its network
// one.
func (e *Engine) startNodes(ctx context.Context, cp *bus.Conn) error {
	cfg, err := e.restConfigAsLocked(componentUser(bootstrap.NodeServerUser))
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	// Objects are read for a node as that node, so the Node authorizer
	// decides them too.
	nodeClient := func(node string) kubernetes.Interface {
		c, _ := e.restConfigAsLocked(nodeUser(node)) // e.api is set: cfg above came from it
		return kubernetes.NewForConfigOrDie(c)
	}
	if e.nodesrv, err = server.Start(ctx, server.Config{Bus: cp, Client: cs, NodeClient: nodeClient, Logger: e.log}); err != nil {
		return err
	}
	// Pods' key-value stores, in the bus's JetStream (nodes have none):
	// every server serves the nodes' requests, as the node server does.
	jsConn, err := e.jetStreamConn(ctx, "kvserver")
	if err != nil {
		return fmt.Errorf("key-value bus connection: %w", err)
	}
	e.conns = append(e.conns, jsConn)
	kv, err := kvserver.Start(ctx, kvserver.Config{Bus: cp, JetStream: jsConn, Replicas: e.registryReplicas(), Logger: e.log})
	if err != nil {
		return err
	}
	e.stoppers = append(e.stoppers, kv.Stop)
	// This node's agent is held to the node identity's rules, as a worker's
	// is: it needs nothing more.
	e.nodeAuth.setClient(cs)
	agentConn, err := e.connectOwnNode(ctx, "agent-"+e.cfg.NodeName)
	if err != nil {
		return fmt.Errorf("agent bus connection: %w", err)
	}
	e.conns = append(e.conns, agentConn)
	rt, err := e.podRuntime(ctx, agentConn)
	if err != nil {
		return err
	}
	backoff := e.cfg.CrashLoopBackOff
	if e.agent, err = agent.New(agent.Config{NodeName: e.cfg.NodeName, Bus: agentConn, Runtime: rt, Services: e.network.svcs,
		DataDir: filepath.Join(e.cfg.DataDir, agentSubdir), PodCIDR: e.cfg.PodCIDR, MaxPods: e.cfg.MaxPods,
		VolumeSyncPeriod: e.cfg.VolumeSyncPeriod,
		BackOffInitial:   backoff, BackOffMax: 30 * backoff,
		HeartbeatInterval: e.cfg.NodeHeartbeatInterval, UsageInterval: e.cfg.MetricsInterval, Logger: e.log,
		DiskPressureAvailable: e.cfg.DiskPressureAvailable, DiskPressureInodesFree: e.cfg.DiskPressureInodesFree,
		DefaultPodMemoryLimit: e.cfg.DefaultPodMemoryLimit, EvictionMemoryAvailable: e.cfg.EvictionMemoryAvailable,
		ClusterDNS: dnsList(e.clusterDNS()), ClusterDomain: e.cfg.ClusterDomain,
		Labels:   map[string]string{ControlPlaneLabel: ""}, // every server is a control-plane node
		Firewall: e.network.firewall}); err != nil {
		return err
	}
	return e.agent.Start(ctx)
}

// podRuntime is this node's Wasm runtime: wazero with its compilation cache
// in the data directory (a restart compiles nothing twice) and the node's
// module store.
func (e *Engine) podRuntime(ctx context.Context, conn *bus.Conn) (*wasm.PodRuntime, error) {
	pr, rt, err := nodeRuntime(ctx, filepath.Join(e.cfg.DataDir, agentSubdir), conn, e.cfg.ImageHosts, e.log)
	e.wasm = rt
	return pr, err
}

// nodeRuntime builds a node's Wasm runtime in dir (the node agent's
// directory): the module store, pulling from the embedded registry over
// conn and from the registries imageHosts allows, and wazero with its
// compilation cache on disk.
func nodeRuntime(ctx context.Context, dir string, conn *bus.Conn, imageHosts []string, log *slog.Logger) (*wasm.PodRuntime, *wasm.Runtime, error) {
	images, err := image.New(image.Config{Dir: filepath.Join(dir, "images"), Logger: log, Transport: imageTransport(conn, imageHosts)})
	if err != nil {
		return nil, nil, fmt.Errorf("module store: %w", err)
	}
	rt, err := wasm.New(ctx, wasm.Config{CacheDir: filepath.Join(dir, "wasm-cache"), Logger: log})
	if err != nil {
		return nil, nil, fmt.Errorf("wasm runtime: %w", err)
	}
	pr, err := wasm.NewPodRuntime(rt, wasm.PodConfig{Images: images, Resolve: imageResolver(conn, log)})
	if err != nil {
		rt.Close(ctx)
		return nil, nil, err
	}
	return pr, rt, nil
}

// KubeconfigPath is where Start writes the admin kubeconfig:
// DataDir/kubeconfig.yaml.
func (e *Engine) KubeconfigPath() string { return filepath.Join(e.cfg.DataDir, kubeconfigFile) }

// Stop shuts the engine down. Acknowledged writes are already on disk, so
// Stop has nothing to flush; it is safe to call more than once.
func (e *Engine) Stop(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	err := e.stopLocked()
	if e.started {
		e.log.Info("engine stopped")
	}
	e.started = false
	return err
}

func (e *Engine) stopLocked() error {
	var errs []error
	for i := len(e.stoppers) - 1; i >= 0; i-- {
		e.stoppers[i]()
	}
	e.stoppers = nil
	e.network = nil // stopped with the stoppers
	if e.agent != nil {
		e.agent.Stop()
		e.agent = nil
	}
	if e.wasm != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := e.wasm.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("close wasm runtime: %w", err))
		}
		cancel()
		e.wasm = nil
	}
	if e.nodesrv != nil {
		e.nodesrv.Stop()
		e.nodesrv = nil
	}
	e.gate, e.loops = nil, nil // stopped with the stoppers
	for _, c := range e.conns {
		c.Close()
	}
	e.conns = nil
	if e.events != nil {
		e.events.Shutdown() // before the API goes: it flushes what is queued
		e.events = nil
	}
	if e.api != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := e.api.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("close API server: %w", err))
		}
		cancel()
		e.api = nil
	}
	if e.bus != nil {
		e.bus.Close()
		e.bus = nil
	}
	if e.store != nil {
		if err := e.store.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close store: %w", err))
		}
		e.store = nil
	}
	e.rangeClaim.Release() // the proxy and the pods have unbound
	e.rangeClaim = nil
	e.lock.Release() // last: nothing of this engine touches DataDir any more
	e.lock = nil
	return errors.Join(errs...)
}
