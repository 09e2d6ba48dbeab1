// Package agent is the node agent: it registers its Node with the control
// plane and keeps it alive with heartbeats, all over the bus. Running pods
// comes next (issue 4); this is the part every node needs first.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	corev1 "k8s.io/api/core/v1"

	"github.com/skiffhq/skiff/engine/bus"
	"github.com/skiffhq/skiff/engine/nodeproto"
)

// Config of an agent. Zero values take the documented defaults.
type Config struct {
	// NodeName is the Node this agent runs. Required.
	NodeName string
	// Bus is the agent's connection to the control plane. Required.
	Bus *bus.Conn
	// Runtimes the node offers ("wasm"); each becomes a node label.
	Runtimes []string
	// RuntimeVersions are reported as the node's container runtime version
	// ("wazero://1.12.0").
	RuntimeVersions []string
	// Addresses besides the host name. Default: InternalIP 127.0.0.1, the
	// unprivileged mode's node address (pods get loopback addresses).
	Addresses []corev1.NodeAddress
	// HeartbeatInterval is how often the agent says it is alive. Default
	// 10s, Kubernetes' node status update frequency.
	HeartbeatInterval time.Duration
	// OnPodsChanged, when set, is called with the pods bound to this node
	// each time the set changes (on the bus subscription's goroutine: do
	// not block in it).
	OnPodsChanged func([]corev1.Pod)
	// Logger. Default slog.Default().
	Logger *slog.Logger
}

// Agent is a running node agent.
type Agent struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
	pods   *podSync
	podSub *bus.Subscription
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
		cfg.HeartbeatInterval = 10 * time.Second
	}
	if cfg.Addresses == nil {
		cfg.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Agent{cfg: cfg, log: cfg.Logger.With("component", "agent", "node", cfg.NodeName)}, nil
}

// Start registers the node (retrying until the control plane answers or
// ctx ends), then starts the heartbeats and the pod sync, which run until
// Stop.
func (a *Agent) Start(ctx context.Context) error {
	if err := a.register(ctx); err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	if err := a.startPodSync(runCtx); err != nil {
		cancel()
		return err
	}
	done := make(chan struct{})
	a.mu.Lock()
	a.cancel, a.done = cancel, done
	a.mu.Unlock()
	// A reconnect may have lost events: sync again.
	a.cfg.Bus.NATS().SetReconnectHandler(func(*nats.Conn) { a.requestResync(runCtx) })
	go a.heartbeats(runCtx, done)
	return nil
}

// requestResync makes the pod sync fetch the full set, on its own goroutine.
func (a *Agent) requestResync(ctx context.Context) {
	subject, _ := bus.SubjectNodePods(a.cfg.NodeName)
	if err := bus.Publish(ctx, a.cfg.Bus, subject, nodeproto.PodEvent{Epoch: "agent-resync"}); err != nil {
		a.log.Warn("resync request not sent", "err", err)
	}
}

// Stop ends the heartbeats. The control plane will mark the node's
// conditions Unknown once its grace period passes, as for a lost node.
func (a *Agent) Stop() {
	a.mu.Lock()
	cancel, done, sub := a.cancel, a.done, a.podSub
	a.cancel, a.done, a.podSub = nil, nil, nil
	a.mu.Unlock()
	if sub != nil {
		sub.Stop()
	}
	if cancel != nil {
		cancel()
		<-done
	}
}

func (a *Agent) register(ctx context.Context) error {
	node, err := a.describeNode()
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		res, err := bus.Request[nodeproto.Registration, nodeproto.Registered](rctx, a.cfg.Bus, nodeproto.SubjectRegister,
			nodeproto.Registration{Node: *node})
		cancel()
		if err == nil {
			a.log.Info("node registered", "uid", res.UID)
			return nil
		}
		// No control plane yet (it may start after us, or be failing over):
		// try again with back-off, bounded by ctx.
		wait := min(time.Duration(1<<min(attempt, 5))*100*time.Millisecond, 3*time.Second)
		a.log.Debug("register failed, retrying", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return fmt.Errorf("agent: register node %s: %w (last error: %v)", a.cfg.NodeName, ctx.Err(), err)
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
		if err := bus.Publish(ctx, a.cfg.Bus, subject, nodeproto.Heartbeat{Node: a.cfg.NodeName, Time: time.Now()}); err != nil && ctx.Err() == nil {
			a.log.Warn("heartbeat not sent", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
