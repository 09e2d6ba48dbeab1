// Package agent is the node agent, skiff's kubelet: it registers its Node
// with the control plane and keeps it alive with heartbeats, receives the
// pods bound to the node, runs them on a workload runtime, and reports their
// status and events, all over the bus.
//
// As in the kubelet, the parts with a job of their own are packages below
// this one, which wires them to the pods it runs: volumes makes a pod's
// volume directories, prober runs probes, logs writes and reads container
// logs, and downward answers the downward API for env vars and volumes.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/skiffhq/skiff/internal/node/agent/nodestats"

	"github.com/nats-io/nats.go"
	corev1 "k8s.io/api/core/v1"

	"github.com/skiffhq/skiff/internal/bus"
	"github.com/skiffhq/skiff/internal/node/protocol"
	"github.com/skiffhq/skiff/internal/streams"
	skiffrt "github.com/skiffhq/skiff/runtime"
)

// Config of an agent. Zero values take the documented defaults.
type Config struct {
	// NodeName is the Node this agent runs. Required.
	NodeName string
	// Labels are added to the Node's own (a server's node-role label).
	Labels map[string]string
	// Bus is the agent's connection to the control plane. Required.
	Bus *bus.Conn
	// Runtime runs the node's pods. Without one the node registers, offers
	// no runtime, and runs nothing.
	Runtime skiffrt.Runtime
	// DataDir holds the pods' volumes and logs (DataDir/pods/<uid>).
	// Required with Runtime.
	DataDir string
	// PodCIDR is the range pod IPs come from. Default: the range the
	// control plane allocates to the node at registration (its
	// spec.podCIDR), a part of the unprivileged mode's 127.66.0.0/16.
	PodCIDR string
	// VolumeSyncPeriod is how often ConfigMap, Secret, downward API and
	// projected volumes of running pods are refreshed. Default 1m, the
	// kubelet's sync period.
	VolumeSyncPeriod time.Duration
	// MaxPods is the node's pod capacity. Default DefaultMaxPods (110, the
	// kubelet's); an idle Wasm pod costs far less than a container, so
	// edge nodes may raise it.
	MaxPods int
	// ContainerLogMaxSize is where a container's log file is rotated.
	// Default 10 MiB, the kubelet's.
	ContainerLogMaxSize int64
	// ContainerLogMaxFiles is how many log files a container start keeps,
	// the current one included; older rotated files are deleted. Default 5,
	// the kubelet's containerLogMaxFiles: with ContainerLogMaxSize, a
	// container's logs take at most 50 MiB (and its previous start's last
	// file, for kubectl logs --previous).
	ContainerLogMaxFiles int
	// DiskPressureAvailable is the fraction of the data directory's file
	// system that must stay available: below it the node reports
	// DiskPressure and refuses new pods. Default 0.10, the kubelet's
	// nodefs.available<10%; negative turns the check off.
	DiskPressureAvailable float64
	// DiskPressureInodesFree is the same for inodes. Default 0.05, the
	// kubelet's nodefs.inodesFree<5%; negative turns the check off.
	DiskPressureInodesFree float64
	// DiskPressureTransitionPeriod is how long DiskPressure stays True
	// after pressure was last seen, so that a disk hovering at the threshold
	// does not make the condition flap. Default 5m, the kubelet's
	// evictionPressureTransitionPeriod.
	DiskPressureTransitionPeriod time.Duration
	// BackOffInitial and BackOffMax bound the delay before a crashed
	// container restarts (doubling from Initial). Default 10s and 5m, the
	// kubelet's CrashLoopBackOff.
	BackOffInitial, BackOffMax time.Duration
	// Addresses besides the host name. Default: InternalIP 127.0.0.1, the
	// unprivileged mode's node address (pods get loopback addresses).
	Addresses []corev1.NodeAddress
	// HeartbeatInterval is how often the agent says it is alive. Default
	// 500ms: a heartbeat is one small bus message, and the control plane
	// notices a silent node after a few missed ones (docs/rationale.md).
	HeartbeatInterval time.Duration
	// FenceTimeout is how long the agent may be cut off from every server
	// before it stops its StatefulSet pods, so that the control plane can
	// start their ordinals elsewhere without running one twice (fence.go).
	// Zero: never (single-node mode, where the control plane is in
	// process).
	FenceTimeout time.Duration
	// UsageInterval is how often the agent reports what its pods and the
	// node use, for the metrics APIs (usage.go). Default
	// DefaultUsageInterval (10s, metrics-server's resolution).
	UsageInterval time.Duration
	// DefaultPodMemoryLimit caps, in bytes, the memory of each Wasm
	// container that sets no resources.limits.memory (after any
	// LimitRange default the API server applied). The pod keeps what its
	// user wrote: this is the node's own cap, also counted by admission
	// (see memory.go). Default DefaultPodMemoryLimit (512 MiB); negative
	// leaves such containers without a limit, which lets one pod take the
	// whole node.
	DefaultPodMemoryLimit int64
	// EvictionMemoryAvailable is the hard eviction threshold, in bytes:
	// when the node's available memory falls below it, the agent sets
	// MemoryPressure and evicts pods, one per EvictionInterval, as the
	// kubelet's --eviction-hard=memory.available<100Mi does; it is also
	// kept out of the node's allocatable memory. Default
	// DefaultEvictionMemoryAvailable (100 MiB, the kubelet's); negative
	// turns eviction off.
	EvictionMemoryAvailable int64
	// EvictionInterval is how often the node's memory is checked. Default
	// 10s, the kubelet's housekeeping interval.
	EvictionInterval time.Duration
	// ClusterDNS are the cluster DNS servers' addresses (the kube-dns
	// Service's ClusterIP), which pods with dnsPolicy ClusterFirst get as
	// their nameservers, as the kubelet's clusterDNS. Empty: such pods get
	// the node's resolvers (with a MissingClusterDNS event), as in the
	// kubelet.
	ClusterDNS []string
	// ClusterDomain is the cluster's DNS domain, for pods' search paths and
	// host names. Default "cluster.local".
	ClusterDomain string
	// ResolvConf is the node's resolver configuration, which pods with
	// dnsPolicy Default get (the kubelet's --resolv-conf). Default
	// "/etc/resolv.conf".
	ResolvConf string
	// Services are the cluster's Services, for the Service environment
	// variables of containers (FOO_SERVICE_HOST, ...): the node's service
	// feed (servicefeed.ServiceCache), since the node side has no API
	// client. Nil: containers get no Service variables.
	Services ServiceSource
	// OnPodsChanged, when set, is called with the pods bound to this node
	// each time the set changes (on the bus subscription's goroutine: do
	// not block in it).
	OnPodsChanged func([]corev1.Pod)
	// Firewall, when set, gives the firewall of a pod (its NetworkPolicies)
	// to each of its containers (runtime.ContainerSpec.Firewall). It gets
	// the pod with the address the node gave it in status.podIPs, and may
	// keep it. Nil: no policy is enforced, and the node's
	// NetworkPolicyLabel says so.
	Firewall func(pod *corev1.Pod) skiffrt.Firewall
	// Logger. Default slog.Default().
	Logger *slog.Logger
}

// Agent is a running node agent.
type Agent struct {
	cfg Config
	log *slog.Logger

	hostIP      string
	allocatable corev1.ResourceList
	ipam        *ipam
	disk        *diskMonitor // nil without a Runtime: no pods, no disk to watch
	reports     *reporter
	pods        *podManager
	tokens      *podTokens      // pods' ServiceAccount tokens (tokens.go)
	runCtx      context.Context // ends at Stop; every pod worker's parent

	rootsOnce sync.Once
	roots     []string // the data directory's spellings (hostpaths.go)

	// readMemory reads the node's memory (nodestats.ReadMemory; tests replace
	// it).
	readMemory func() (nodestats.Memory, error)
	// readCPU reads the machine's CPU time (nodestats.ReadCPU).
	readCPU func() (uint64, error)
	// reregistering is set while a registration after a reconnect runs
	// (guarded by mu): reconnects in a row start one.
	reregistering bool
	// heartbeatNow asks for a heartbeat at once: a condition changed.
	heartbeatNow chan struct{}

	memMu          sync.Mutex
	memoryPressure bool      // the MemoryPressure condition
	lastLowMemory  time.Time // the last check below the eviction threshold

	mu          sync.Mutex
	fence       fenceState
	cancel      context.CancelFunc
	done        chan struct{}
	sync        *podSync
	podSub      *bus.Subscription
	stopStreams func()
}

// New checks cfg.
func New(cfg Config) (*Agent, error) {
	if cfg.NodeName == "" || cfg.Bus == nil {
		return nil, errors.New("agent: NodeName and Bus are required")
	}
	if _, err := bus.SubjectHeartbeat(cfg.NodeName); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = 500 * time.Millisecond
	}
	if cfg.UsageInterval <= 0 {
		cfg.UsageInterval = DefaultUsageInterval
	}
	if cfg.Addresses == nil {
		cfg.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.VolumeSyncPeriod <= 0 {
		cfg.VolumeSyncPeriod = time.Minute
	}
	if cfg.MaxPods <= 0 {
		cfg.MaxPods = DefaultMaxPods
	}
	if cfg.ContainerLogMaxSize <= 0 {
		cfg.ContainerLogMaxSize = 10 << 20
	}
	if cfg.ContainerLogMaxFiles <= 0 {
		cfg.ContainerLogMaxFiles = 5
	}
	if cfg.DiskPressureAvailable == 0 {
		cfg.DiskPressureAvailable = 0.10
	}
	if cfg.DiskPressureInodesFree == 0 {
		cfg.DiskPressureInodesFree = 0.05
	}
	if cfg.DiskPressureTransitionPeriod <= 0 {
		cfg.DiskPressureTransitionPeriod = 5 * time.Minute
	}
	if cfg.BackOffInitial <= 0 {
		cfg.BackOffInitial = 10 * time.Second
	}
	if cfg.BackOffMax <= 0 {
		cfg.BackOffMax = 5 * time.Minute
	}
	if cfg.DefaultPodMemoryLimit == 0 {
		cfg.DefaultPodMemoryLimit = DefaultPodMemoryLimit
	}
	if cfg.EvictionMemoryAvailable == 0 {
		cfg.EvictionMemoryAvailable = DefaultEvictionMemoryAvailable
	}
	if cfg.ClusterDomain == "" {
		cfg.ClusterDomain = "cluster.local"
	}
	if cfg.ResolvConf == "" {
		cfg.ResolvConf = "/etc/resolv.conf"
	}
	if cfg.EvictionInterval <= 0 {
		cfg.EvictionInterval = 10 * time.Second
	}
	if cfg.Runtime != nil && cfg.DataDir == "" {
		return nil, errors.New("agent: DataDir is required with a Runtime")
	}
	a := &Agent{cfg: cfg, log: cfg.Logger.With("component", "agent", "node", cfg.NodeName),
		readMemory: nodestats.ReadMemory, readCPU: nodestats.ReadCPU, heartbeatNow: make(chan struct{}, 1)}
	a.tokens = &podTokens{a: a, now: time.Now, cache: map[tokenKey]cachedToken{}}
	for _, addr := range cfg.Addresses {
		if addr.Type == corev1.NodeInternalIP && a.hostIP == "" {
			a.hostIP = addr.Address
		}
	}
	if cfg.PodCIDR != "" {
		if _, err := newIPAM(cfg.PodCIDR); err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
	}
	a.reports = newReporter(a)
	a.pods = newPodManager(a)
	if cfg.Runtime != nil {
		a.disk = newDiskMonitor(cfg)
		a.disk.onError = func(msg string) { a.log.Debug("disk pressure not checked", "err", msg) }
		a.disk.onPressured = func(detail string) { a.log.Warn("node under disk pressure: refusing new pods", "detail", detail) }
	}
	return a, nil
}

// backoff is the delay before the n-th restart: none for the first, then
// BackOffInitial doubling up to BackOffMax, as the kubelet's
// CrashLoopBackOff.
func (a *Agent) backoff(n int) time.Duration {
	if n <= 0 {
		return 0
	}
	d := a.cfg.BackOffInitial
	for i := 1; i < n && d < a.cfg.BackOffMax; i++ {
		d *= 2
	}
	return min(d, a.cfg.BackOffMax)
}

// Start registers the node (retrying until the control plane answers or
// ctx ends), then starts the heartbeats and the pod sync, which run until
// Stop.
func (a *Agent) Start(ctx context.Context) error {
	podCIDR, err := a.register(ctx)
	if err != nil {
		return err
	}
	if podCIDR == "" {
		podCIDR = "127.66.0.0/16" // a control plane that allocates none
	}
	if a.ipam, err = newIPAM(podCIDR); err != nil {
		return fmt.Errorf("agent: node pod range: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	a.runCtx = runCtx
	go a.reports.run(runCtx)
	if a.cfg.Runtime != nil {
		stop, err := streams.ServeNode(runCtx, a.cfg.Bus, a.cfg.NodeName, streamBackend{a})
		if err != nil {
			cancel()
			return fmt.Errorf("agent: serve pod streams: %w", err)
		}
		a.mu.Lock()
		a.stopStreams = stop
		a.mu.Unlock()
	}
	if err := a.startPodSync(runCtx); err != nil {
		cancel()
		return err
	}
	done := make(chan struct{})
	a.mu.Lock()
	a.cancel, a.done = cancel, done
	a.mu.Unlock()
	// A reconnect may have lost events: sync again. It may also be to a
	// restarted or another server: say at once that the node lives, and
	// register again (the Node may have been deleted meanwhile).
	a.cfg.Bus.NATS().SetReconnectHandler(func(*nats.Conn) { a.reconnected(runCtx) })
	hbDone, usageDone := make(chan struct{}), make(chan struct{})
	go a.heartbeats(runCtx, hbDone)
	go a.reportUsage(runCtx, usageDone)
	go func() {
		<-hbDone
		<-usageDone
		close(done)
	}()
	if a.cfg.Runtime != nil && a.cfg.DataDir != "" {
		go a.collectLocalVolumes(runCtx)
	}
	if a.cfg.Runtime != nil && a.cfg.EvictionMemoryAvailable > 0 {
		go a.watchMemory(runCtx)
	}
	return nil
}

// reconnected is what the agent does when its bus connection comes back
// (nats.go's reconnect goroutine calls it: nothing here blocks): a full pod
// sync, which leaves running pods whose spec did not change alone; a
// heartbeat now rather than at the next tick; and a registration, which
// changes nothing for a Node that exists and recreates a deleted one, as
// a kubelet does.
func (a *Agent) reconnected(ctx context.Context) {
	a.log.Info("bus connection back: re-registering and re-syncing")
	a.requestResync()
	select {
	case a.heartbeatNow <- struct{}{}:
	default:
	}
	a.mu.Lock()
	busy := a.reregistering
	a.reregistering = true
	a.mu.Unlock()
	if busy {
		return
	}
	go func() {
		defer func() {
			a.mu.Lock()
			a.reregistering = false
			a.mu.Unlock()
		}()
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		cidr, err := a.register(rctx)
		switch {
		case err != nil && ctx.Err() == nil:
			a.log.Warn("re-registration after a reconnect failed; heartbeats go on", "err", err)
		case err == nil && a.ipam != nil && cidr != "" && cidr != a.ipam.prefix.String():
			// Pods keep their addresses until they are replaced; the
			// agent takes the new range at its next start.
			a.log.Warn("the control plane gave this node another pod range; running pods keep theirs", "was", a.ipam.prefix, "now", cidr)
		}
	}()
}

// requestResync makes the pod sync fetch the full set, on its own goroutine.
func (a *Agent) requestResync() {
	a.mu.Lock()
	ps := a.sync
	a.mu.Unlock()
	if ps != nil {
		ps.requestResync()
	}
}

// Stop ends the heartbeats. The control plane will mark the node's
// conditions Unknown once its grace period passes, as for a lost node.
func (a *Agent) Stop() {
	a.mu.Lock()
	cancel, done, sub, stopStreams := a.cancel, a.done, a.podSub, a.stopStreams
	a.cancel, a.done, a.podSub, a.stopStreams = nil, nil, nil, nil
	a.mu.Unlock()
	if stopStreams != nil {
		stopStreams()
	}
	if sub != nil {
		sub.Stop()
	}
	if cancel != nil {
		cancel()
		<-done
	}
	a.pods.stopAll()
}

// register returns the node's pod range.
func (a *Agent) register(ctx context.Context) (string, error) {
	node, err := a.describeNode()
	if err != nil {
		return "", err
	}
	subject, err := bus.SubjectRegister(a.cfg.NodeName)
	if err != nil {
		return "", fmt.Errorf("agent: %w", err)
	}
	for attempt := 0; ; attempt++ {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		res, err := bus.Request[protocol.Registration, protocol.Registered](rctx, a.cfg.Bus, subject,
			protocol.Registration{Node: *node, PodCIDR: a.cfg.PodCIDR})
		cancel()
		if err == nil {
			a.log.Info("node registered", "uid", res.UID, "pod_cidr", res.PodCIDR)
			return res.PodCIDR, nil
		}
		// No control plane yet (it may start after us, or be failing over):
		// try again with back-off, bounded by ctx.
		wait := min(time.Duration(1<<min(attempt, 5))*100*time.Millisecond, 3*time.Second)
		a.log.Debug("register failed, retrying", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("agent: register node %s: %w (last error: %v)", a.cfg.NodeName, ctx.Err(), err)
		case <-time.After(wait):
		}
	}
}

func (a *Agent) heartbeats(ctx context.Context, done chan struct{}) {
	defer close(done)
	subject, _ := bus.SubjectHeartbeat(a.cfg.NodeName) // checked in New
	t := time.NewTicker(a.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		a.sendHeartbeat(ctx, subject)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-a.heartbeatNow:
		}
	}
}
