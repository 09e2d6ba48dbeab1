// Package appservices is the node agent's implementation of
// runtime.AppServices: a pod's messaging and key-value, over the node's bus
// connection, scoped to the pod's namespace.
//
// Messaging maps the guest's subjects under the namespace
// (bus.SubjectApp), so the bus itself keeps namespaces apart: a pod can
// only name subjects of its own namespace, and a subscription, wildcards
// included, matches nothing outside it. A request's reply subject is one
// of the namespace's too ("_reply.<unique>"), so the answering pod can
// publish to it through the same mapping. Key-value operations are
// forwarded to the control plane's key-value service (internal/node/kvserver)
// as requests on bus.SubjectKV; a watch subscribes to the changes the
// store republishes (bus.SubjectKVEvents).
package appservices

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/skiffhq/skiff/internal/bus"
	"github.com/skiffhq/skiff/internal/node/protocol"
	skiffrt "github.com/skiffhq/skiff/runtime"
	"github.com/skiffhq/skiff/sdk/abi"
)

// pendingLimits bound what NATS buffers for one of a pod's subscriptions
// before the runtime takes it (the runtime bounds its own queue after).
const (
	pendingMsgs  = 1024
	pendingBytes = 16 << 20
)

// Services are one namespace's messaging and key-value. Safe for
// concurrent use; it holds no state but the connection, so the agent may
// make one per container start.
type Services struct {
	bus *bus.Conn
	ns  string
	log *slog.Logger
}

var _ skiffrt.AppServices = (*Services)(nil)

// New returns namespace's services over conn.
func New(conn *bus.Conn, namespace string, log *slog.Logger) (*Services, error) {
	if err := bus.ValidToken(namespace); err != nil {
		return nil, fmt.Errorf("appservices: namespace: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	return &Services{bus: conn, ns: namespace, log: log.With("namespace", namespace)}, nil
}

func invalid(err error) error { return fmt.Errorf("%w: %w", skiffrt.ErrAppInvalid, err) }

// message is m in the guest's terms; a reply outside the namespace is
// left out, since the guest could not publish to it.
func (s *Services) message(m *nats.Msg) skiffrt.AppMessage {
	subj, _ := bus.AppSubjectOf(s.ns, m.Subject)
	reply, _ := bus.AppSubjectOf(s.ns, m.Reply)
	return skiffrt.AppMessage{Subject: subj, Reply: reply, Data: m.Data}
}

// Publish implements runtime.AppServices.
func (s *Services) Publish(ctx context.Context, subject, reply string, data []byte) error {
	subj, err := bus.SubjectApp(s.ns, subject, false)
	if err != nil {
		return invalid(err)
	}
	msg := &nats.Msg{Subject: subj, Data: data}
	if reply != "" {
		if msg.Reply, err = bus.SubjectApp(s.ns, reply, false); err != nil {
			return invalid(err)
		}
	}
	if len(data) > abi.MaxMessageSize {
		return invalid(fmt.Errorf("message of %d bytes", len(data)))
	}
	if err := s.bus.NATS().PublishMsg(msg); err != nil {
		return fmt.Errorf("publish %s: %w", subject, err)
	}
	return nil
}

// Request implements runtime.AppServices. The reply subject is the
// namespace's own, subscribed for this one answer.
func (s *Services) Request(ctx context.Context, subject string, data []byte) (skiffrt.AppMessage, error) {
	subj, err := bus.SubjectApp(s.ns, subject, false)
	if err != nil {
		return skiffrt.AppMessage{}, invalid(err)
	}
	if len(data) > abi.MaxMessageSize {
		return skiffrt.AppMessage{}, invalid(fmt.Errorf("message of %d bytes", len(data)))
	}
	reply, err := bus.SubjectApp(s.ns, "_reply."+nuid.Next(), false)
	if err != nil {
		return skiffrt.AppMessage{}, err
	}
	nc := s.bus.NATS()
	sub, err := nc.SubscribeSync(reply)
	if err != nil {
		return skiffrt.AppMessage{}, fmt.Errorf("request %s: %w", subject, err)
	}
	defer sub.Unsubscribe()
	if err := sub.AutoUnsubscribe(1); err != nil {
		return skiffrt.AppMessage{}, fmt.Errorf("request %s: %w", subject, err)
	}
	if err := nc.PublishMsg(&nats.Msg{Subject: subj, Reply: reply, Data: data}); err != nil {
		return skiffrt.AppMessage{}, fmt.Errorf("request %s: %w", subject, err)
	}
	m, err := sub.NextMsgWithContext(ctx)
	// With no subscriber the server answers at once with status 503 (the
	// connection announces that it understands "no responders"), which
	// nats.go reports as ErrNoResponders.
	if errors.Is(err, nats.ErrNoResponders) {
		return skiffrt.AppMessage{}, fmt.Errorf("request %s: %w", subject, skiffrt.ErrNoResponders)
	}
	if err != nil {
		return skiffrt.AppMessage{}, fmt.Errorf("request %s: %w", subject, err)
	}
	if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
		return skiffrt.AppMessage{}, fmt.Errorf("request %s: %w", subject, skiffrt.ErrNoResponders)
	}
	return s.message(m), nil
}

// Subscribe implements runtime.AppServices.
func (s *Services) Subscribe(ctx context.Context, subject, queue string, deliver func(skiffrt.AppMessage)) (func(), error) {
	subj, err := bus.SubjectApp(s.ns, subject, true)
	if err != nil {
		return nil, invalid(err)
	}
	if err := abi.ValidQueue(queue); err != nil {
		return nil, invalid(err)
	}
	handle := func(m *nats.Msg) { deliver(s.message(m)) }
	var sub *nats.Subscription
	if queue == "" {
		sub, err = s.bus.NATS().Subscribe(subj, handle)
	} else {
		sub, err = s.bus.NATS().QueueSubscribe(subj, queue, handle)
	}
	if err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", subject, err)
	}
	return s.started(ctx, sub, subject)
}

// started bounds what NATS buffers for sub and waits until the server
// knows it, so that what the guest publishes after subscribing is not
// missed for a race. It returns sub's stop, or unsubscribes on error.
func (s *Services) started(ctx context.Context, sub *nats.Subscription, what string) (func(), error) {
	stop := s.stopper(sub, what)
	if err := sub.SetPendingLimits(pendingMsgs, pendingBytes); err != nil {
		stop()
		return nil, fmt.Errorf("subscribe %s: %w", what, err)
	}
	if err := s.bus.Flush(ctx); err != nil {
		stop()
		return nil, fmt.Errorf("subscribe %s: %w", what, err)
	}
	return stop, nil
}

func (s *Services) stopper(sub *nats.Subscription, what string) func() {
	return func() {
		if err := sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, nats.ErrBadSubscription) {
			s.log.Debug("appservices: unsubscribe", "subject", what, "err", err)
		}
	}
}

// kv sends one operation to the control plane.
func (s *Services) kv(ctx context.Context, req protocol.KVRequest) (protocol.KVResponse, error) {
	if err := abi.ValidKey(req.Key); err != nil {
		return protocol.KVResponse{}, invalid(err)
	}
	if len(req.Value) > abi.MaxValueSize {
		return protocol.KVResponse{}, invalid(fmt.Errorf("value of %d bytes (at most %d)", len(req.Value), abi.MaxValueSize))
	}
	req.Namespace = s.ns
	resp, err := bus.Request[protocol.KVRequest, protocol.KVResponse](ctx, s.bus, bus.SubjectKV, req)
	if err != nil {
		// The guest sees only a status: the node's log says what failed.
		s.log.Warn("appservices: key-value request failed", "op", req.Op, "key", req.Key, "err", err)
		return resp, fmt.Errorf("kv %s %s: %w", req.Op, req.Key, err)
	}
	switch resp.Code {
	case "":
		return resp, nil
	case protocol.KVNotFound:
		return resp, fmt.Errorf("kv %s %s: %w", req.Op, req.Key, skiffrt.ErrKVNotFound)
	case protocol.KVExists:
		return resp, fmt.Errorf("kv %s %s: %w", req.Op, req.Key, skiffrt.ErrKVExists)
	case protocol.KVInvalid:
		return resp, invalid(errors.New(resp.Message))
	}
	return resp, fmt.Errorf("kv %s %s: unknown answer %q: %s", req.Op, req.Key, resp.Code, resp.Message)
}

// KVGet implements runtime.AppServices.
func (s *Services) KVGet(ctx context.Context, key string) (skiffrt.KVEntry, error) {
	resp, err := s.kv(ctx, protocol.KVRequest{Op: protocol.KVGet, Key: key})
	if err != nil {
		return skiffrt.KVEntry{}, err
	}
	return skiffrt.KVEntry{Key: key, Value: resp.Value, Revision: resp.Revision}, nil
}

// KVPut implements runtime.AppServices.
func (s *Services) KVPut(ctx context.Context, key string, value []byte) (uint64, error) {
	resp, err := s.kv(ctx, protocol.KVRequest{Op: protocol.KVPut, Key: key, Value: value})
	return resp.Revision, err
}

// KVCreate implements runtime.AppServices.
func (s *Services) KVCreate(ctx context.Context, key string, value []byte) (uint64, error) {
	resp, err := s.kv(ctx, protocol.KVRequest{Op: protocol.KVCreate, Key: key, Value: value})
	return resp.Revision, err
}

// KVUpdate implements runtime.AppServices.
func (s *Services) KVUpdate(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	resp, err := s.kv(ctx, protocol.KVRequest{Op: protocol.KVUpdate, Key: key, Value: value, Revision: rev})
	return resp.Revision, err
}

// KVDelete implements runtime.AppServices.
func (s *Services) KVDelete(ctx context.Context, key string) error {
	_, err := s.kv(ctx, protocol.KVRequest{Op: protocol.KVDelete, Key: key})
	return err
}

// KVWatch implements runtime.AppServices over the changes the store
// republishes: each carries the key's revision (Nats-Sequence) and, for a
// deletion, JetStream KV's operation header.
func (s *Services) KVWatch(ctx context.Context, pattern string, deliver func(skiffrt.KVEntry)) (func(), error) {
	subj, err := bus.SubjectKVEvents(s.ns, pattern)
	if err != nil {
		return nil, invalid(err)
	}
	prefix := bus.KVEventsPrefix(s.ns)
	sub, err := s.bus.NATS().Subscribe(subj, func(m *nats.Msg) {
		key := m.Subject[len(prefix):]
		rev, _ := strconv.ParseUint(m.Header.Get(nats.JSSequence), 10, 64)
		e := skiffrt.KVEntry{Key: key, Value: m.Data, Revision: rev}
		if op := m.Header.Get("KV-Operation"); op == "DEL" || op == "PURGE" {
			e.Deleted, e.Value = true, nil
		}
		deliver(e)
	})
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", pattern, err)
	}
	return s.started(ctx, sub, pattern)
}
