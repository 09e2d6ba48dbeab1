package bus

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// DialNode is Dial as node's own identity (Config.Nodes): user node,
// password credential, and reply subjects under NodeInboxPrefix(node), the
// only inboxes the node may subscribe to. Everything else is as Dial.
func DialNode(ctx context.Context, url, node, credential, name string, tlsConf *tls.Config, opts ...nats.Option) (*Conn, error) {
	if err := validNodeUser(node); err != nil {
		return nil, fmt.Errorf("bus: dial %s: %w", url, err)
	}
	inbox, _ := NodeInboxPrefix(node) // checked by validNodeUser
	log := slog.Default().With("conn", name)
	all := append(connHandlers(log),
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.UserInfo(node, credential),
		nats.CustomInboxPrefix(inbox),
	)
	if tlsConf != nil {
		all = append(all, nats.Secure(tlsConf))
	}
	all = append(all, opts...)
	nc, err := connect(ctx, url, DefaultDialTimeout, all)
	if err != nil {
		return nil, fmt.Errorf("bus: dial %s as node %s: %w", url, node, err)
	}
	return &Conn{nc: nc, log: log}, nil
}

// ConnectNodeAs is Connect as node's own identity (Config.Nodes), over an
// in-process pipe: a server's own node agent runs under the same rules as
// a worker that dialled in with DialNode. name identifies the connection.
func (s *Server) ConnectNodeAs(ctx context.Context, name, node, credential string) (*Conn, error) {
	if err := validNodeUser(node); err != nil {
		return nil, fmt.Errorf("bus: connect %q: %w", name, err)
	}
	// Checked here first: over a net.Pipe nats.go does not see the server's
	// refusal (both ends block writing) and would wait out ctx.
	if s.nodes == nil {
		return nil, fmt.Errorf("bus: connect %q: %w (the bus has no per-node identities)", name, ErrUnauthorized)
	}
	if _, err := s.nodes(node, credential); err != nil {
		return nil, fmt.Errorf("bus: connect %q as node %s: %w", name, node, ErrUnauthorized)
	}
	inbox, _ := NodeInboxPrefix(node)
	return s.connectAs(ctx, name, node, credential, nats.CustomInboxPrefix(inbox))
}

// NodeOfSubject is the node a per-node subject ("skiff.node.<node>.…",
// "skiff.heartbeat.<node>", "skiff.nodes.register.<node>") is for, or
// false. With Config.Nodes the bus lets only that node publish there, so a
// responder may trust it as the sender's identity, unlike a name in the
// payload.
func NodeOfSubject(subject string) (string, bool) {
	var tok string
	switch {
	case strings.HasPrefix(subject, nodePrefix):
		rest := strings.TrimPrefix(subject, nodePrefix)
		i := strings.IndexByte(rest, '.')
		if i < 0 {
			return "", false
		}
		tok = rest[:i]
	case strings.HasPrefix(subject, heartbeatPrefix):
		tok = strings.TrimPrefix(subject, heartbeatPrefix)
	case strings.HasPrefix(subject, registerPrefix):
		tok = strings.TrimPrefix(subject, registerPrefix)
	default:
		return "", false
	}
	if ValidToken(tok) != nil {
		return "", false
	}
	return NodeFromToken(tok), true
}

// ServeNode is Serve for a per-node subject pattern (SubjectNodeStatusAny
// and the like): fn gets the node the request's subject names (see
// NodeOfSubject), which is the requester's identity when the bus has
// per-node identities. A request on a subject that names no node is
// answered with an error.
func ServeNode[Req, Resp any](ctx context.Context, c *Conn, subject, queue string,
	fn func(ctx context.Context, node string, req Req) (Resp, error)) (*Subscription, error) {
	s, err := subscribe(ctx, c, subject, queue, func(m *nats.Msg) {
		if m.Reply == "" {
			c.log.Warn("bus: dropping request without reply subject", "subject", m.Subject)
			return
		}
		b := serveOne(ctx, c.log, m, func(ctx context.Context, req Req) (Resp, error) {
			node, ok := NodeOfSubject(m.Subject)
			if !ok {
				var zero Resp
				return zero, fmt.Errorf("subject %s names no node", m.Subject)
			}
			return fn(ctx, node, req)
		})
		if err := m.Respond(b); err != nil {
			c.log.Warn("bus: reply failed", "subject", m.Subject, "err", err)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("bus: serve %s: %w", subject, err)
	}
	return s, nil
}

// RequestNode is Request to node's subject with the reply to inbox, which
// the caller makes with ControlPlaneInbox(node): the one kind of subject,
// besides its own, that node's identity may publish to. A node therefore
// answers the control plane without "allow responses", which would let it
// publish once to any subject it names as the reply of a message it sends
// itself on a shared subject (skiff.apps.>). Errors are as Request's.
func RequestNode[Req, Resp any](ctx context.Context, c *Conn, subject, inbox string, req Req) (Resp, error) {
	var zero Resp
	b, err := json.Marshal(req)
	if err != nil {
		return zero, fmt.Errorf("bus: request %s: %w: %w", subject, ErrBadPayload, err)
	}
	ctx, cancel := withDefaultTimeout(ctx, DefaultRequestTimeout)
	defer cancel()
	sub, err := c.nc.SubscribeSync(inbox)
	if err != nil {
		return zero, fmt.Errorf("bus: request %s: %w", subject, err)
	}
	defer sub.Unsubscribe()
	if err := sub.AutoUnsubscribe(1); err != nil {
		return zero, fmt.Errorf("bus: request %s: %w", subject, err)
	}
	m := nats.NewMsg(subject)
	m.Reply, m.Data = inbox, b
	if err := c.nc.PublishMsg(m); err != nil {
		return zero, fmt.Errorf("bus: request %s: %w", subject, err)
	}
	msg, err := sub.NextMsgWithContext(ctx)
	// nats-server answers a request nobody is subscribed to with an empty
	// "503" status message, which nats.go turns into ErrNoResponders.
	if errors.Is(err, nats.ErrNoResponders) {
		return zero, fmt.Errorf("bus: request %s: %w", subject, ErrNoResponders)
	}
	if err != nil {
		return zero, fmt.Errorf("bus: request %s: %w", subject, err)
	}
	return decodeReply[Resp](subject, msg.Data)
}
