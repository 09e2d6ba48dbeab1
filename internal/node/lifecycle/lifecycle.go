// Package lifecycle is the control plane's side of node agents: it turns
// registrations into Node objects, keeps heartbeats in memory (they are not
// written to the store), and marks a node's conditions Unknown when its
// heartbeats stop for longer than the grace period, as Kubernetes' node
// lifecycle controller does. Only condition changes are written. With the
// condition come the taints Kubernetes puts on such nodes
// (node.kubernetes.io/unreachable for Unknown, node.kubernetes.io/not-ready
// for False, each NoSchedule and NoExecute), and each node's heartbeats renew
// its coordination.k8s.io Lease in kube-node-lease, at most every
// LeaseRenewInterval, as a kubelet's do.
//
// It runs on the raft leader only, one per term of leadership: two members
// would each allocate pod ranges from their own view (handing two nodes the
// same range) and each mark nodes Unknown by their own clocks.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/clock"

	"github.com/skiffhq/skiff/internal/bus"
	"github.com/skiffhq/skiff/internal/node/protocol"
)

// Config of the controller. Zero values take the documented defaults.
type Config struct {
	Bus    *bus.Conn            // required
	Client kubernetes.Interface // required
	// GracePeriod is how long a node may stay silent before its
	// conditions become Unknown. Default DefaultGracePeriod.
	GracePeriod time.Duration
	// StartupGracePeriod is the silence allowed to a node this controller
	// has not heard from since it started (a control plane restart, a new
	// raft leader), counted from its start: the agents need time to
	// reconnect (the bus's reconnect wait, a rediscovery of the bus),
	// and a grace period of seconds would evict the pods of every worker
	// on each restart of a server. Default 5 times GracePeriod, at least
	// 10s. Kubernetes likewise counts a restarted controller's nodes from
	// when it first sees them.
	StartupGracePeriod time.Duration
	// CheckInterval is how often silence is checked. Default an eighth of
	// GracePeriod (Kubernetes' ratio: node-monitor-period 5s for 40s).
	CheckInterval time.Duration
	// LeaseRenewInterval is the least time between two renewals of a
	// node's Lease: heartbeats come more often, and each renewal is a raft
	// write. Default DefaultLeaseRenewInterval, the kubelet's: the Lease is
	// for tools that watch it; the Ready condition, which follows the bus
	// heartbeats, is what failover acts on.
	LeaseRenewInterval time.Duration
	// Clock is the controller's time. Default the real clock; tests step a
	// fake one.
	Clock clock.WithTicker
	// ClusterPodCIDR is the range node pod ranges are carved from, one
	// /NodeCIDRMaskSize each, for nodes whose agent asks for none. Default
	// "127.66.0.0/16", the unprivileged mode's loopback range.
	ClusterPodCIDR string
	// NodeCIDRMaskSize is the prefix length of a node's pod range. Default
	// 20: 4094 pods per node, 16 nodes in the default range.
	NodeCIDRMaskSize int
	Logger           *slog.Logger
}

// DefaultGracePeriod is the default Config.GracePeriod: four missed
// heartbeats at the agent's default half-second interval (Kubernetes waits
// four of its kubelet's 10s updates). docs/rationale.md says why seconds.
const DefaultGracePeriod = 2 * time.Second

// DefaultLeaseRenewInterval is Config.LeaseRenewInterval's default.
const DefaultLeaseRenewInterval = 10 * time.Second

// LeaseNamespace holds the nodes' Leases, as in Kubernetes.
const LeaseNamespace = corev1.NamespaceNodeLease

// Controller is the running node lifecycle.
type Controller struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	lastSeen map[string]time.Time
	// ready holds the nodes whose Ready condition this controller knows to
	// be True in the store, so a heartbeat costs no API call.
	ready map[string]bool
	// conditions holds, per node, the status of the pressure conditions its
	// heartbeats carry as this controller last wrote or registered them, so
	// that a heartbeat costs an API call only when one changes.
	conditions map[string]map[corev1.NodeConditionType]corev1.ConditionStatus
	started    time.Time
	// renewed is when each node's Lease was last renewed (or a renewal
	// started); renewing marks nodes with a renewal in flight.
	renewed  map[string]time.Time
	renewing map[string]bool
	renewals sync.WaitGroup

	// beats counts the heartbeats handled, for benchmarks and metrics.
	beats atomic.Uint64

	subs   []*bus.Subscription
	cancel context.CancelFunc
	done   chan struct{}
}

// Start serves registrations and heartbeats and starts the silence check.
func Start(ctx context.Context, cfg Config) (*Controller, error) {
	if cfg.Bus == nil || cfg.Client == nil {
		return nil, errors.New("nodes: Bus and Client are required")
	}
	c := newController(cfg)
	runCtx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	reg, err := bus.ServeNode(runCtx, cfg.Bus, bus.SubjectRegisterAny, "node-lifecycle", c.register)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("nodes: serve registrations: %w", err)
	}
	// Acked: an agent learns that the leader heard it, which its
	// StatefulSet fence counts on (bus.Notify).
	hb, err := bus.SubscribeAcked(runCtx, cfg.Bus, bus.SubjectHeartbeatAny, c.heartbeatAcked)
	if err != nil {
		reg.Stop()
		cancel()
		return nil, fmt.Errorf("nodes: subscribe to heartbeats: %w", err)
	}
	c.subs = []*bus.Subscription{reg, hb}
	go c.monitor(runCtx)
	return c, nil
}

// newController fills cfg's defaults and builds a controller that serves
// nothing yet.
func newController(cfg Config) *Controller {
	if cfg.GracePeriod <= 0 {
		cfg.GracePeriod = DefaultGracePeriod
	}
	if cfg.StartupGracePeriod <= 0 {
		cfg.StartupGracePeriod = max(5*cfg.GracePeriod, 10*time.Second)
	}
	if cfg.CheckInterval <= 0 {
		cfg.CheckInterval = cfg.GracePeriod / 8
	}
	if cfg.LeaseRenewInterval <= 0 {
		cfg.LeaseRenewInterval = DefaultLeaseRenewInterval
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Controller{cfg: cfg, log: cfg.Logger.With("component", "node-lifecycle"), lastSeen: map[string]time.Time{},
		ready: map[string]bool{}, conditions: map[string]map[corev1.NodeConditionType]corev1.ConditionStatus{},
		renewed: map[string]time.Time{}, renewing: map[string]bool{},
		started: cfg.Clock.Now(), done: make(chan struct{})}
}

// Heartbeats is how many heartbeats the controller has handled.
func (c *Controller) Heartbeats() uint64 { return c.beats.Load() }

// Stop ends the controller.
func (c *Controller) Stop() {
	c.cancel()
	for _, s := range c.subs {
		s.Stop()
	}
	<-c.done
	c.renewals.Wait()
}

// register creates or updates the Node from what its agent reports. The
// spec (taints, unschedulable, podCIDR) belongs to the cluster and is kept.
// node is the one the subject names, which the bus lets only that node's
// identity publish to: a node registers itself, never another.
func (c *Controller) register(ctx context.Context, node string, r protocol.Registration) (protocol.Registered, error) {
	want := r.Node
	if want.Name != node {
		return protocol.Registered{}, fmt.Errorf("node %s may not register node %q", node, want.Name)
	}
	nodes := c.cfg.Client.CoreV1().Nodes()
	var uid, podCIDR string
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := nodes.Get(ctx, want.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			created, err := nodes.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: want.Name, Labels: want.Labels}}, metav1.CreateOptions{})
			if err != nil {
				return err
			}
			cur = created
		} else if err != nil {
			return err
		}
		if cur.Labels == nil {
			cur.Labels = map[string]string{}
		}
		for k, v := range want.Labels {
			cur.Labels[k] = v
		}
		if len(want.Annotations) > 0 && cur.Annotations == nil {
			cur.Annotations = map[string]string{}
		}
		for k, v := range want.Annotations {
			cur.Annotations[k] = v
		}
		if r.PodCIDR != "" && cur.Spec.PodCIDR != r.PodCIDR {
			cur.Spec.PodCIDR, cur.Spec.PodCIDRs = r.PodCIDR, []string{r.PodCIDR} // the agent's own configuration wins
		}
		if cur.Spec.PodCIDR == "" {
			cidr, err := c.allocatePodCIDR(ctx, want.Name)
			if err != nil {
				return err
			}
			cur.Spec.PodCIDR, cur.Spec.PodCIDRs = cidr, []string{cidr}
		}
		if cur, err = nodes.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
			return err
		}
		podCIDR = cur.Spec.PodCIDR
		cur.Status = want.Status
		cur, err = nodes.UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		if err == nil {
			uid = string(cur.UID)
		}
		return err
	})
	if err == nil {
		err = c.syncTaints(ctx, want.Name)
	}
	if err != nil {
		return protocol.Registered{}, fmt.Errorf("register node %s: %w", want.Name, err)
	}
	c.mu.Lock()
	c.lastSeen[want.Name] = c.cfg.Clock.Now()
	c.ready[want.Name] = isReady(want.Status)
	known := map[corev1.NodeConditionType]corev1.ConditionStatus{}
	for _, cond := range want.Status.Conditions {
		known[cond.Type] = cond.Status
	}
	c.conditions[want.Name] = known
	c.mu.Unlock()
	c.log.Info("node registered", "node", want.Name)
	return protocol.Registered{UID: uid, PodCIDR: podCIDR}, nil
}

// allocatePodCIDR carves the first range no other node holds out of
// ClusterPodCIDR. Registrations are served one at a time (one bus
// subscription, on the leader only), so two nodes cannot be given the same
// range.
func (c *Controller) allocatePodCIDR(ctx context.Context, node string) (string, error) {
	cluster, err := netip.ParsePrefix(orDefault(c.cfg.ClusterPodCIDR, "127.66.0.0/16"))
	if err != nil || !cluster.Addr().Is4() {
		return "", fmt.Errorf("cluster pod CIDR %q: want an IPv4 prefix", c.cfg.ClusterPodCIDR)
	}
	bits := orDefault(c.cfg.NodeCIDRMaskSize, 20)
	if bits < cluster.Bits() || bits > 30 {
		return "", fmt.Errorf("node pod CIDR size /%d does not fit in %s", bits, cluster)
	}
	list, err := c.cfg.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", err
	}
	var used []netip.Prefix
	for _, n := range list.Items {
		if n.Name == node {
			continue
		}
		if p, err := netip.ParsePrefix(n.Spec.PodCIDR); err == nil {
			used = append(used, p)
		}
	}
	step := uint32(1) << (32 - bits)
	base := cluster.Masked().Addr().As4()
	start := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
	for i := uint32(0); i < 1<<(bits-cluster.Bits()); i++ {
		v := start + i*step
		cand := netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), bits)
		free := true
		for _, u := range used {
			if u.Overlaps(cand) {
				free = false
				break
			}
		}
		if free {
			return cand.String(), nil
		}
	}
	return "", fmt.Errorf("no free /%d pod range left in %s for node %s", bits, cluster, node)
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func isReady(st corev1.NodeStatus) bool {
	for _, c := range st.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// heartbeat records a node as alive. The first heartbeat of a node not
// known to be Ready (marked Unknown, or not heard of since this controller
// started, as after a control plane restart) makes sure the store says
// Ready: a condition change, written only if it is one.
func (c *Controller) heartbeat(ctx context.Context, subject string, hb protocol.Heartbeat) {
	c.heartbeatAcked(ctx, subject, hb, func() {})
}

// heartbeatAcked is heartbeat, acknowledging the message as soon as the
// node is recorded as seen: before any API call, so that the agent's wait
// does not include them.
func (c *Controller) heartbeatAcked(ctx context.Context, subject string, hb protocol.Heartbeat, ack func()) {
	name, ok := bus.HeartbeatNode(subject)
	if !ok {
		return
	}
	defer c.beats.Add(1)
	c.mu.Lock()
	c.lastSeen[name] = c.cfg.Clock.Now()
	ready := c.ready[name]
	c.mu.Unlock()
	ack()
	c.renewLease(ctx, name)
	if ready {
		c.syncConditions(ctx, name, hb.Conditions)
		return
	}
	err := c.setReady(ctx, name, corev1.ConditionTrue, "KubeletReady", "skiff agent is posting ready status")
	switch {
	case err == nil:
		c.mu.Lock()
		c.ready[name] = true
		delete(c.conditions, name) // setReady rewrote them: the heartbeat's say
		c.mu.Unlock()
		c.syncConditions(ctx, name, hb.Conditions)
	case apierrors.IsNotFound(err):
		// Not registered (or deleted): the agent registers when it starts.
	default:
		c.log.Warn("mark node ready", "node", name, "err", err)
	}
}

// monitor marks silent nodes Unknown, every CheckInterval.
func (c *Controller) monitor(ctx context.Context) {
	defer close(c.done)
	t := c.cfg.Clock.NewTicker(c.cfg.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		c.checkSilence(ctx)
	}
}

// checkSilence marks Unknown (with the unreachable taints) every node
// silent for longer than GracePeriod. A node in the store that this
// controller has not heard from since it started gets StartupGracePeriod
// from the start, as after a control plane restart.
func (c *Controller) checkSilence(ctx context.Context) {
	list, err := c.cfg.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	now := c.cfg.Clock.Now()
	for _, n := range list.Items {
		c.mu.Lock()
		last, ok := c.lastSeen[n.Name]
		c.mu.Unlock()
		grace := c.cfg.GracePeriod
		if !ok {
			last, grace = c.started, max(grace, c.cfg.StartupGracePeriod)
		}
		if now.Sub(last) <= grace {
			continue
		}
		if readyStatus(n.Status) == corev1.ConditionUnknown && hasTaints(n.Spec.Taints, wantTaints(corev1.ConditionUnknown)) {
			continue // marked already: a silent node costs no API call per check
		}
		c.mu.Lock()
		c.ready[n.Name] = false
		delete(c.conditions, n.Name)
		c.mu.Unlock()
		if err := c.setReady(ctx, n.Name, corev1.ConditionUnknown, "NodeStatusUnknown", "Kubelet stopped posting node status."); err != nil && ctx.Err() == nil {
			c.log.Warn("mark node unknown", "node", n.Name, "err", err)
		}
	}
}

// setReady writes the node's conditions when (and only when) Ready changes:
// to Unknown, every condition becomes Unknown, as Kubernetes does.
func (c *Controller) setReady(ctx context.Context, name string, status corev1.ConditionStatus, reason, msg string) error {
	nodes := c.cfg.Client.CoreV1().Nodes()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := nodes.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		changed := false
		now := metav1.NewTime(c.cfg.Clock.Now())
		for i := range n.Status.Conditions {
			cond := &n.Status.Conditions[i]
			st, r, m := status, reason, msg
			if cond.Type != corev1.NodeReady {
				if status == corev1.ConditionTrue {
					if cond.Status != corev1.ConditionUnknown {
						continue // pressure conditions come back with the next heartbeat
					}
					st, r, m = corev1.ConditionFalse, "KubeletReady", "skiff agent is posting status"
				}
			}
			if cond.Status != st {
				cond.Status, cond.Reason, cond.Message, cond.LastTransitionTime = st, r, m, now
				changed = true
			}
		}
		if !changed {
			return nil
		}
		_, err = nodes.UpdateStatus(ctx, n, metav1.UpdateOptions{})
		if err == nil {
			c.log.Info("node condition changed", "node", name, "ready", status)
		}
		return err
	})
	if err != nil {
		return err
	}
	// The taints follow the condition in a second write (spec and status
	// are separate subresources), as Kubernetes' controller does.
	return c.syncTaints(ctx, name)
}

// syncConditions writes the conditions a heartbeat carries (DiskPressure)
// whose status differs from what this controller knows the Node says:
// status, reason and message, with the transition time of a change. An
// unchanged heartbeat costs nothing.
func (c *Controller) syncConditions(ctx context.Context, name string, conds []corev1.NodeCondition) {
	if len(conds) == 0 {
		return
	}
	c.mu.Lock()
	known := c.conditions[name]
	var changed []corev1.NodeCondition
	for _, cond := range conds {
		if st, ok := known[cond.Type]; !ok || st != cond.Status {
			changed = append(changed, cond)
		}
	}
	c.mu.Unlock()
	if len(changed) == 0 {
		return
	}
	nodes := c.cfg.Client.CoreV1().Nodes()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := nodes.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		now := metav1.NewTime(c.cfg.Clock.Now())
		for _, want := range changed {
			i := 0
			for i < len(n.Status.Conditions) && n.Status.Conditions[i].Type != want.Type {
				i++
			}
			if i == len(n.Status.Conditions) {
				n.Status.Conditions = append(n.Status.Conditions, corev1.NodeCondition{Type: want.Type})
			}
			cur := &n.Status.Conditions[i]
			if cur.Status != want.Status {
				cur.LastTransitionTime = now
			}
			cur.Status, cur.Reason, cur.Message, cur.LastHeartbeatTime = want.Status, want.Reason, want.Message, now
		}
		_, err = nodes.UpdateStatus(ctx, n, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		if ctx.Err() == nil && !apierrors.IsNotFound(err) {
			c.log.Warn("write node conditions", "node", name, "err", err)
		}
		return
	}
	c.mu.Lock()
	if c.conditions[name] == nil {
		c.conditions[name] = map[corev1.NodeConditionType]corev1.ConditionStatus{}
	}
	for _, cond := range changed {
		c.conditions[name][cond.Type] = cond.Status
		c.log.Info("node condition changed", "node", name, "condition", cond.Type, "status", cond.Status, "message", cond.Message)
	}
	c.mu.Unlock()
}
