package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"

	"github.com/nats-io/nats.go"
)

// Acked messages: a publish that learns that a subscriber took it. A node's
// heartbeat is one: the agent must know whether the control plane (the raft
// leader's lifecycle controller, the only subscriber) heard it, not merely
// whether the bus server it is connected to did; that server may be cut off
// from the leader (the StatefulSet fence, internal/node/agent/fence.go).

// Notify publishes v, JSON-encoded, to subject and waits until a
// SubscribeAcked subscriber acknowledges it, bounded by ctx's deadline or,
// without one, DefaultRequestTimeout. Nobody subscribed is ErrNoResponders
// (at once); no acknowledgement in time wraps context.DeadlineExceeded.
func Notify[T any](ctx context.Context, c *Conn, subject string, v T) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("bus: notify %s: %w: %w", subject, ErrBadPayload, err)
	}
	ctx, cancel := withDefaultTimeout(ctx, DefaultRequestTimeout)
	defer cancel()
	_, err = c.nc.RequestWithContext(ctx, subject, b)
	if errors.Is(err, nats.ErrNoResponders) {
		return fmt.Errorf("bus: notify %s: %w", subject, ErrNoResponders)
	}
	if err != nil {
		return fmt.Errorf("bus: notify %s: %w", subject, err)
	}
	return nil
}

// SubscribeAcked is Subscribe for messages that may want an
// acknowledgement (Notify): fn gets an ack function to call once it has
// taken the message (before slow work, so the sender's wait stays short);
// a message fn did not ack is acked when fn returns. A plain Publish to the
// subject is handled the same and acked to nobody.
func SubscribeAcked[T any](ctx context.Context, c *Conn, subject string, fn func(ctx context.Context, subject string, v T, ack func())) (*Subscription, error) {
	s, err := subscribe(ctx, c, subject, "", func(m *nats.Msg) {
		var once sync.Once
		ack := func() {
			once.Do(func() {
				if m.Reply == "" {
					return
				}
				if err := m.Respond(nil); err != nil {
					c.log.Debug("bus: ack failed", "subject", m.Subject, "err", err)
				}
			})
		}
		var v T
		if err := json.Unmarshal(m.Data, &v); err != nil {
			c.log.Warn("bus: dropping undecodable message", "subject", m.Subject, "err", err)
			return // not acked: the sender learns nothing was taken
		}
		defer func() {
			if p := recover(); p != nil {
				c.log.Error("bus: subscriber panicked", "subject", m.Subject, "panic", p, "stack", string(debug.Stack()))
			}
		}()
		defer ack()
		fn(ctx, m.Subject, v, ack)
	})
	if err != nil {
		return nil, fmt.Errorf("bus: subscribe %s: %w", subject, err)
	}
	return s, nil
}
