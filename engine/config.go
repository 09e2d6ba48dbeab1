package engine

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/utils/clock"

	"github.com/skiffhq/skiff/internal/atomicfile"
	"github.com/skiffhq/skiff/internal/audit"
	"github.com/skiffhq/skiff/internal/controllers/podautoscaler"
	"github.com/skiffhq/skiff/internal/node/lifecycle"
)

// Config is everything an Engine needs. The engine reads no flags, no
// environment and no global state: a program that embeds it says here what it
// wants. Zero values take the defaults documented on each field.
type Config struct {
	// DataDir holds all the engine's state (see the layout in doc.go).
	// Required: an engine without a home would silently lose its cluster.
	DataDir string

	// NodeName names this member in raft and on the bus, and later as its
	// Kubernetes Node. Default: the host name, lower-cased. It must stay the
	// same across restarts; the engine remembers the first one in
	// DataDir/node-name and refuses a different one, since raft would treat
	// the renamed server as a stranger.
	NodeName string

	// RaftBind is the TCP address ("host:port", port 0 for any) raft and
	// write forwarding listen on, with mutual TLS: both ends show a
	// certificate the cluster CA (DataDir/pki) issued to a raft peer, so
	// nothing else even completes a handshake. Default "": no raft port at
	// all; a single server's store talks to itself in process, and a port
	// nobody needs is attack surface (loopback is reachable by every local
	// user). Set it on a server that is to be clustered later: a restart
	// with it keeps the data and puts the new address in the raft
	// configuration. Port 0 reuses the port recorded in DataDir
	// (cluster.json) when there is one, so peers find a restarted server
	// where they left it. A server that joined a cluster (Join) records
	// its listener there and needs no RaftBind on restarts.
	RaftBind string

	// RaftHeartbeatTimeout is how long a follower waits for the leader
	// before it stands for election (raft's heartbeat and election
	// timeout; the leader's lease is half): the time a cluster takes to
	// notice a dead leader, so most of its failover time. Default 1s,
	// raft's own, safe on slow links; `skiff server` uses 300ms (see
	// docs/rationale.md).
	RaftHeartbeatTimeout time.Duration

	// Join is the API address ("host:port") of a running server of the
	// cluster this one is to join as a voter. Only the first start uses
	// it: the joining server fetches the cluster's bootstrap data (CA,
	// token, Secrets' encryption keys, address ranges, cluster domain)
	// with JoinToken, records it in DataDir, opens its raft listener
	// (RaftBind, default the API host with a free port) and its bus route
	// listener (BusClusterListen), and asks to be made a voter. A restart
	// finds all of that in DataDir; Join is then ignored. Default "": a
	// new cluster of its own, or the one DataDir belongs to.
	Join string
	// JoinToken is the cluster token of the server at Join (its
	// DataDir/token). Required with Join; it becomes this server's token.
	JoinToken string
	// JoinCA is the cluster CA (PEM) to check the server at Join with,
	// needed only when JoinToken is a bare secret (it pins no CA). Default
	// nil: the token's pin.
	JoinCA []byte

	// BusClusterListen is where this server's bus accepts routes from the
	// other servers' buses ("host:port", port 0 for any, reused from
	// DataDir on restarts as RaftBind's), with mutual TLS from the cluster
	// CA. Used only by a server with a raft listener: default the raft
	// listener's host with a free port. Routes join the servers' buses into
	// one NATS cluster, so an agent on any server reaches the control plane
	// on the leader.
	BusClusterListen string

	// APIListen is where the Kubernetes API is served (HTTPS). Default
	// "127.0.0.1:6443" (loopback, the port kubectl users expect); port 0
	// picks a free one.
	APIListen string

	// ServiceCIDR is the range Service ClusterIPs are allocated from.
	// Default: "127.67.0.0/16" if no other skiff on this machine uses it,
	// else the next free loopback /16 (see ClusterPodCIDR); inside
	// loopback, so it works with no privileges and sends nothing off the
	// machine. Config() shows the range chosen once Start has run.
	ServiceCIDR string

	// NodeHeartbeatInterval is how often this member's node agent tells the
	// control plane it is alive. Default 500ms: a heartbeat is a bus message,
	// not a raft write, so a silent node can be noticed within seconds
	// (docs/rationale.md); Kubernetes' kubelet posts every 10s.
	NodeHeartbeatInterval time.Duration

	// MetricsInterval is how often this member's node reports what its pods
	// and the node use, for the metrics APIs (`kubectl top`,
	// metrics.k8s.io, custom.metrics.k8s.io): rates are over one interval,
	// and a pod shows in them one interval after it starts. The API server
	// forgets a pod or node not reported for three intervals of its own.
	// Default 10s, metrics-server's resolution.
	MetricsInterval time.Duration

	// NodeGracePeriod is how long a node may stay silent before its
	// conditions become Unknown and it gets the node.kubernetes.io/unreachable
	// taints (Kubernetes' node-monitor-grace-period). Default 2s: four missed
	// heartbeats, where Kubernetes waits 40s (docs/rationale.md).
	NodeGracePeriod time.Duration

	// DefaultNotReadyTolerationSeconds and DefaultUnreachableTolerationSeconds
	// are the tolerationSeconds the API gives every new pod for the
	// node.kubernetes.io/not-ready and unreachable NoExecute taints, unless it
	// tolerates them itself (Kubernetes' DefaultTolerationSeconds admission,
	// --default-not-ready-toleration-seconds): how long a pod stays bound to a
	// failed node before it is evicted and replaced elsewhere. Default 1 each,
	// where Kubernetes gives 300 (docs/rationale.md); negative means 0, evict
	// at once.
	DefaultNotReadyTolerationSeconds    int64
	DefaultUnreachableTolerationSeconds int64

	// StatefulSetFenceTimeout is how long a worker may be cut off from
	// every server before its agent stops its StatefulSet pods
	// (WorkerConfig.FenceTimeout, which must not be longer). The control
	// plane deletes a lost node's Terminating pods for good, letting their
	// StatefulSet start those ordinals elsewhere, only after this plus
	// FenceMargin since the node's last heartbeat, so one ordinal never runs
	// twice. Default DefaultStatefulSetFenceTimeout (15 s), or NodeGracePeriod
	// plus DefaultUnreachableTolerationSeconds when that is longer, so a
	// server restart does not stop every worker's StatefulSet pods.
	// Negative: never delete them for good (Kubernetes' behaviour: they wait
	// for the node or an operator).
	StatefulSetFenceTimeout time.Duration

	// PodCIDR is the range this node's pod IPs come from. Default: a /20 of
	// "127.66.0.0/16" that the control plane allocates to each node (the
	// first for the first node): loopback addresses, which any process can
	// listen on without privileges (DESIGN.md's unprivileged mode).
	PodCIDR string

	// ClusterPodCIDR is the range the control plane carves nodes' pod
	// ranges from (a /20 each) when they ask for none. Default: the /16
	// around PodCIDR when that is set; else "127.66.0.0/16" (with
	// ServiceCIDR "127.67.0.0/16") when no other skiff on this machine
	// uses it, else the next free pair of loopback /16s in 127.64.0.0/10.
	// Loopback is shared by every process of a machine, so two servers
	// with the same ranges would hand out the same addresses. The ranges
	// chosen at the first Start are recorded in DataDir
	// (network-ranges.json) and kept at every restart; ranges set here
	// are always used as given. Config() shows them once Start has run.
	ClusterPodCIDR string

	// AddressClaimDir is the machine-wide directory where running skiffs
	// claim their loopback ranges (a locked file per /16, held while the
	// engine runs). Default /run/skiff/ranges when writable, else
	// skiff-ranges in the temporary directory. Every skiff on a machine
	// must use the same one.
	AddressClaimDir string

	// BusListen is where the bus accepts agents of other nodes
	// ("host:port", port 0 for any). The listener uses TLS with a
	// certificate from the cluster CA (DataDir/pki/bus.crt); agents connect
	// as the bus's node identity with the cluster token, and find the
	// address and the CA at the API's /skiff/v1/bus. Port 0 picks a free
	// port the first time and the same one at every restart after (it is
	// recorded in DataDir/bus-listen), so agents whose servers are all down
	// still find it; a port given wins. Default "" listens nowhere: a
	// single node talks to itself in process.
	BusListen string

	// Token is the cluster token an operator chose, in either form: the
	// bare secret or the full "K10<sha256 of the CA>::server:<secret>"
	// (join.Token). At the first start its secret becomes the cluster's;
	// later it must match the one in DataDir/token, and a CA hash must be
	// this cluster's CA, or Start fails (ErrTokenMismatch). Default "": a
	// fresh random secret the first time, the recorded one after. Either
	// way DataDir/token holds the full form, which agents join with.
	Token string

	// VolumeSyncPeriod is how often running pods' ConfigMap and Secret
	// volumes are refreshed. Default 1m, the kubelet's sync period.
	VolumeSyncPeriod time.Duration

	// HPASyncPeriod is how often the HorizontalPodAutoscaler controller
	// evaluates every HPA against its metrics. Default 15s, Kubernetes'
	// --horizontal-pod-autoscaler-sync-period; tests shorten it.
	HPASyncPeriod time.Duration

	// MaxPods is this node's pod capacity. Default 110, the kubelet's.
	MaxPods int

	// DiskPressureAvailable is the fraction of the file system holding
	// DataDir that must stay available: below it the node reports the
	// DiskPressure condition and refuses new pods (the scheduler then
	// places none there), as a kubelet does. Default 0.10, the kubelet's
	// nodefs.available<10%; negative turns the check off.
	DiskPressureAvailable float64
	// DiskPressureInodesFree is the same for free inodes. Default 0.05, the
	// kubelet's nodefs.inodesFree<5%; negative turns the check off.
	DiskPressureInodesFree float64

	// DefaultPodMemoryLimit caps, in bytes, each Wasm container of this
	// node that sets no resources.limits.memory and gets none from a
	// LimitRange. The pod's spec keeps what its user wrote; the node applies
	// the cap and counts it in admission. Default 512 MiB: far above what a
	// Wasm service usually holds, far below Wasm's 4 GiB, so a runaway pod
	// cannot take the node (the engine's own process). Negative: no cap.
	DefaultPodMemoryLimit int64

	// EvictionMemoryAvailable is the node's hard eviction threshold, in
	// bytes: below this much available memory (the host's MemAvailable, or
	// what the engine's memory cgroup leaves) the node reports
	// MemoryPressure and evicts pods, the largest use over request first,
	// and the threshold is kept out of the node's allocatable memory.
	// Default 100 MiB, the kubelet's memory.available<100Mi. Negative: no
	// eviction.
	EvictionMemoryAvailable int64

	// CrashLoopBackOff is the first delay before a crashed container
	// restarts; it doubles up to 30 times itself (5 minutes for the default
	// 10s, the kubelet's). Tests shorten it.
	CrashLoopBackOff time.Duration

	// ImageHosts limits the registries this node pulls images from:
	// host names or host:port, or "loopback" for any registry on a loopback
	// address. The embedded registry is always allowed. Empty allows every
	// registry. Tests set "loopback", so that a pod's made-up image name
	// never sends traffic off the machine.
	ImageHosts []string

	// DisableServiceProxy leaves this node without a Service proxy: its
	// ClusterIPs and NodePorts are served by other nodes' proxies (on one
	// machine, any node's proxy serves them all) or not at all. Default
	// false: every node serves Services, as every Kubernetes node runs
	// kube-proxy.
	DisableServiceProxy bool

	// DisableClusterDNS leaves this node without its cluster DNS server;
	// its pods still name the kube-dns address, answered by another node's
	// server on the same machine or not at all (as DisableServiceProxy).
	// Default false: every node answers cluster names on the kube-dns
	// Service's ClusterIP (the service CIDR's tenth address), port 53, UDP
	// and TCP, which needs root or CAP_NET_BIND_SERVICE; without them the
	// node logs why and runs on, and pods' cluster names do not resolve.
	DisableClusterDNS bool

	// ClusterDomain is the cluster's DNS domain: Services are
	// NAME.NAMESPACE.svc.ClusterDomain. Default "cluster.local".
	ClusterDomain string

	// AuditLogPath, when set, turns on the API's audit log: one JSON line
	// per request in Kubernetes' audit.k8s.io/v1 Event format
	// (kube-apiserver's --audit-log-path). Default "": no audit log.
	AuditLogPath string
	// AuditLogMaxSizeMB is the size in megabytes at which the audit log is
	// rotated, and AuditLogMaxBackups how many rotated files are kept, so
	// the log never holds more than (backups+1) × size on disk. Defaults
	// 100 (kube-apiserver's) and 1.
	AuditLogMaxSizeMB  int
	AuditLogMaxBackups int
	// AuditLevel is how much each event records: None, Metadata (who did
	// what to which object, and the outcome), Request (and the request's
	// body) or RequestResponse (and the response's). Secrets and tokens are
	// recorded at Metadata whatever the level. Default Metadata.
	AuditLevel string

	// ReadyTimeout bounds Start: how long to wait for the store to elect a
	// leader and the bus to accept connections. Default 30s.
	ReadyTimeout time.Duration

	// Logger receives every component's logs. Default slog.Default().
	Logger *slog.Logger

	// DisableRBAC turns authorization off: every authenticated caller
	// may do anything, as before RBAC. Default false: RBAC, the Node
	// authorizer and the engine's components under their own identities.
	// For benchmark baselines, and embedders that authorize elsewhere.
	DisableRBAC bool

	// cronJobClock is the CronJob controller's clock, for the engine's
	// tests, which cannot wait for a real minute; nil is the real clock.
	cronJobClock clock.Clock
}

// withDefaults validates c and fills the defaults. It touches nothing on disk.
func (c Config) withDefaults() (Config, error) {
	if c.DataDir == "" {
		return c, errors.New("engine config: DataDir is required")
	}
	abs, err := filepath.Abs(c.DataDir)
	if err != nil {
		return c, fmt.Errorf("engine config: data dir %q: %w", c.DataDir, err)
	}
	c.DataDir = abs
	if c.NodeName == "" {
		h, err := os.Hostname()
		if err != nil {
			return c, fmt.Errorf("engine config: no NodeName and no host name: %w", err)
		}
		c.NodeName = strings.ToLower(h)
	}
	if err := validNodeName(c.NodeName); err != nil {
		return c, fmt.Errorf("engine config: %w", err)
	}
	if c.APIListen == "" {
		c.APIListen = "127.0.0.1:6443"
	}
	if c.Join != "" && c.JoinToken == "" {
		return c, errors.New("engine config: Join needs JoinToken (the cluster token)")
	}
	for name, addr := range map[string]string{"RaftBind": c.RaftBind, "APIListen": c.APIListen, "Join": c.Join,
		"BusClusterListen": c.BusClusterListen} {
		if addr == "" {
			continue // RaftBind: no listener
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return c, fmt.Errorf("engine config: %s %q: %w", name, addr, err)
		}
	}
	// Empty ranges are chosen at Start (ranges.go): the choice depends on
	// the data directory and on the other skiffs running then.
	for name, cidr := range map[string]string{"ServiceCIDR": c.ServiceCIDR, "ClusterPodCIDR": c.ClusterPodCIDR, "PodCIDR": c.PodCIDR} {
		if cidr == "" {
			continue
		}
		if _, err := netip.ParsePrefix(cidr); err != nil {
			return c, fmt.Errorf("engine config: %s: %w", name, err)
		}
	}
	if c.ClusterDomain == "" {
		c.ClusterDomain = "cluster.local"
	}
	if validNodeName(c.ClusterDomain) != nil {
		return c, fmt.Errorf("engine config: ClusterDomain %q: must be a DNS subdomain (lower-case letters, digits, '-' and '.')", c.ClusterDomain)
	}
	if c.NodeHeartbeatInterval <= 0 {
		c.NodeHeartbeatInterval = DefaultNodeHeartbeatInterval
	}
	if c.NodeGracePeriod <= 0 {
		c.NodeGracePeriod = lifecycle.DefaultGracePeriod
	}
	c.DefaultNotReadyTolerationSeconds = tolerationSeconds(c.DefaultNotReadyTolerationSeconds)
	c.DefaultUnreachableTolerationSeconds = tolerationSeconds(c.DefaultUnreachableTolerationSeconds)
	if c.StatefulSetFenceTimeout == 0 {
		c.StatefulSetFenceTimeout = max(DefaultStatefulSetFenceTimeout,
			c.NodeGracePeriod+time.Duration(c.DefaultUnreachableTolerationSeconds)*time.Second)
	}
	if c.HPASyncPeriod <= 0 {
		c.HPASyncPeriod = podautoscaler.DefaultSyncPeriod
	}
	if c.ReadyTimeout <= 0 {
		c.ReadyTimeout = 30 * time.Second
	}
	if c.AuditLogPath != "" {
		if c.AuditLevel == "" {
			c.AuditLevel = string(audit.LevelMetadata)
		}
		lvl, err := audit.ParseLevel(c.AuditLevel)
		if err != nil {
			return c, fmt.Errorf("engine config: %w", err)
		}
		c.AuditLevel = string(lvl)
		if c.AuditLogPath, err = filepath.Abs(c.AuditLogPath); err != nil {
			return c, fmt.Errorf("engine config: audit log path: %w", err)
		}
		if c.AuditLogMaxSizeMB < 0 || c.AuditLogMaxBackups < 0 {
			return c, errors.New("engine config: AuditLogMaxSizeMB and AuditLogMaxBackups must not be negative")
		}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

// DefaultNodeHeartbeatInterval is Config.NodeHeartbeatInterval's default.
const DefaultNodeHeartbeatInterval = 500 * time.Millisecond

// DefaultStatefulSetFenceTimeout is WorkerConfig.FenceTimeout's default,
// and Config.StatefulSetFenceTimeout's unless the grace period and the
// unreachable toleration add up to more. Longer than a server's restart
// (2–3 s here) and a leader election, so neither stops a worker's
// databases; a lost node's StatefulSet pods start elsewhere about this
// plus FenceMargin after its last heartbeat (docs/rationale.md).
const DefaultStatefulSetFenceTimeout = 15 * time.Second

// FenceMargin is what the control plane waits beyond
// StatefulSetFenceTimeout: an agent notices it is cut off within a
// heartbeat interval and a round-trip timeout of the moment, and stops its
// StatefulSet pods with no grace.
const FenceMargin = 2 * time.Second

// forceDeleteAfter is how long after a node's unreachable taint is added
// its Terminating pods are deleted for good: the taint comes a grace
// period after the last heartbeat, so the fence timeout less that, plus
// the margin; 0 (never) when the fence is off.
func (c Config) forceDeleteAfter() time.Duration {
	if c.StatefulSetFenceTimeout < 0 {
		return 0
	}
	return max(c.StatefulSetFenceTimeout-c.NodeGracePeriod, 0) + FenceMargin
}

// DefaultTolerationSeconds is the default of Config's
// DefaultNotReadyTolerationSeconds and DefaultUnreachableTolerationSeconds.
const DefaultTolerationSeconds = 1

// tolerationSeconds reads a Config toleration: 0 the default, negative 0.
func tolerationSeconds(v int64) int64 {
	switch {
	case v == 0:
		return DefaultTolerationSeconds
	case v < 0:
		return 0
	}
	return v
}

// validNodeName accepts a DNS-1123 subdomain, as Kubernetes does for Node
// names.
func validNodeName(n string) error {
	if len(n) == 0 || len(n) > 253 {
		return fmt.Errorf("node name %q: must be 1 to 253 characters", n)
	}
	for _, label := range strings.Split(n, ".") {
		if label == "" || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("node name %q: labels must start and end with a letter or digit", n)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return fmt.Errorf("node name %q: only lower-case letters, digits, '-' and '.' are allowed", n)
			}
		}
	}
	return nil
}

// The data directory's layout. Everything lives under DataDir so that
// removing it resets the member, and backing it up saves it.
const (
	raftSubdir     = "raft"            // the store's log (wal/) and snapshots
	nodeNameFile   = "node-name"       // the NodeName this directory belongs to
	tokenFile      = "token"           // the cluster token: the CA's hash and the secret (the admin's API bearer token, the bus's node password)
	pkiSubdir      = "pki"             // cluster CA, the API's and the bus's serving certificates, the raft peer certificate, Secrets' keys
	kubeconfigFile = "kubeconfig.yaml" // the admin kubeconfig
	agentSubdir    = "node"            // the node agent's: module store, compile cache, pod volumes and logs
	clusterFile    = "cluster.json"    // a clustered server's listeners and peers (cluster.go)
)

// loadOrCreate reads a small secret or identity file, or writes value (or, if
// value is empty, a fresh random token) the first time.
func loadOrCreate(path, value string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	if value == "" {
		buf := make([]byte, 24)
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("generate token: %w", err)
		}
		value = hex.EncodeToString(buf)
	}
	if err := atomicfile.Write(path, []byte(value+"\n")); err != nil {
		return "", err
	}
	return value, nil
}
