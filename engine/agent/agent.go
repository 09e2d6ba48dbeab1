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
// ctx ends) and starts the heartbeats, which run until Stop.
func (a *Agent) Start(ctx context.Context) error {
	if err := a.register(ctx); err != nil {
		return err
	}
	hbCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	a.mu.Lock()
	a.cancel, a.done = cancel, done
	a.mu.Unlock()
	go a.heartbeats(hbCtx, done)
	return nil
}

// Stop ends the heartbeats. The control plane will mark the node's
// conditions Unknown once its grace period passes, as for a lost node.
func (a *Agent) Stop() {
	a.mu.Lock()
	cancel, done := a.cancel, a.done
	a.cancel, a.done = nil, nil
	a.mu.Unlock()
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
