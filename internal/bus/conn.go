package bus

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// DefaultDialTimeout bounds one connection attempt (TCP dial and handshake)
// of Dial and Server.Connect when ctx has no earlier deadline. Long enough for
// a slow edge link, short enough that a dead address fails soon.
const DefaultDialTimeout = 5 * time.Second

// DefaultRequestTimeout bounds Request and Conn.Flush when ctx has no
// deadline, so that a lost reply cannot block a caller forever.
const DefaultRequestTimeout = 10 * time.Second

// Dial connects to a bus server over the network as a node agent: as
// NodeUser, with token (the server's Config.Token) as its password. url is a
// "tls://host:port" URL (a listening bus always uses TLS), or several
// separated by commas; name identifies the connection in the server's logs.
// tlsConf says which server certificates to trust (RootCAs, and ServerName
// when the certificate is checked against a name other than the URL's host);
// nil trusts the system's roots, which a cluster's private CA is not among.
// The connection reconnects forever after it was established once (an agent
// must come back after a control-plane restart); the first connect is one
// attempt per URL, bounded by ctx and DefaultDialTimeout. opts are extra
// nats.go options applied last. A refused password is ErrUnauthorized. Logs
// go to slog.Default().
func Dial(ctx context.Context, url, token, name string, tlsConf *tls.Config, opts ...nats.Option) (*Conn, error) {
	log := slog.Default().With("conn", name)
	all := append(connHandlers(log),
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.UserInfo(NodeUser, token),
	)
	if tlsConf != nil {
		all = append(all, nats.Secure(tlsConf))
	}
	all = append(all, opts...)
	nc, err := connect(ctx, url, DefaultDialTimeout, all)
	if err != nil {
		return nil, fmt.Errorf("bus: dial %s: %w", url, err)
	}
	return &Conn{nc: nc, log: log}, nil
}

// connHandlers logs a connection's disconnects, reconnects and asynchronous
// errors (such as a slow consumer dropping messages).
func connHandlers(log *slog.Logger) []nats.Option {
	return []nats.Option{
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("bus: disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("bus: reconnected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			log.Error("bus: connection error", "subject", subject, "err", err)
		}),
	}
}

// Conn is a client connection to the bus, made by Server.Connect or Dial.
type Conn struct {
	nc  *nats.Conn
	log *slog.Logger
}

// NATS returns the underlying nats.go connection, for what the typed helpers
// do not cover (headers, raw bytes, JetStream). Closing it closes the Conn.
func (c *Conn) NATS() *nats.Conn { return c.nc }

// Close closes the connection; its subscriptions end. Messages published but
// not yet flushed may be lost: call Flush first to be sure. Safe to call more
// than once.
func (c *Conn) Close() { c.nc.Close() }

// Flush waits until the server has processed everything published on this
// connection so far (a ping round trip), bounded by ctx or, without a
// deadline, DefaultRequestTimeout. After Flush, subscriptions made on this
// connection are known to the server it is connected to (but maybe not yet to
// the rest of a cluster).
func (c *Conn) Flush(ctx context.Context) error {
	ctx, cancel := withDefaultTimeout(ctx, DefaultRequestTimeout)
	defer cancel()
	if err := c.nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("bus: flush: %w", err)
	}
	return nil
}

func withDefaultTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, d)
}

// Publish sends v, JSON-encoded, to subject without waiting for anyone: NATS
// delivers at most once, to the subscribers present at that moment. ctx is only
// checked (publishing does not block on the network).
func Publish[T any](ctx context.Context, c *Conn, subject string, v T) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("bus: publish %s: %w", subject, err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("bus: publish %s: %w: %w", subject, ErrBadPayload, err)
	}
	if err := c.nc.Publish(subject, b); err != nil {
		return fmt.Errorf("bus: publish %s: %w", subject, err)
	}
	return nil
}

// envelope is the reply of a Serve responder: exactly one of Data and Error.
type envelope struct {
	Data  json.RawMessage `json:"data,omitempty"`
	Error string          `json:"error,omitempty"`
}

// Request sends req to subject and waits for one reply from a Serve responder,
// bounded by ctx's deadline or, without one, DefaultRequestTimeout. A handler
// error comes back wrapping ErrRemote; nobody listening is ErrNoResponders; a
// timeout wraps context.DeadlineExceeded (the request may or may not have been
// handled).
func Request[Req, Resp any](ctx context.Context, c *Conn, subject string, req Req) (Resp, error) {
	var zero Resp
	b, err := json.Marshal(req)
	if err != nil {
		return zero, fmt.Errorf("bus: request %s: %w: %w", subject, ErrBadPayload, err)
	}
	ctx, cancel := withDefaultTimeout(ctx, DefaultRequestTimeout)
	defer cancel()
	msg, err := c.nc.RequestWithContext(ctx, subject, b)
	if errors.Is(err, nats.ErrNoResponders) {
		return zero, fmt.Errorf("bus: request %s: %w", subject, ErrNoResponders)
	}
	if err != nil {
		return zero, fmt.Errorf("bus: request %s: %w", subject, err)
	}
	return decodeReply[Resp](subject, msg.Data)
}

// decodeReply decodes a Serve responder's envelope.
func decodeReply[Resp any](subject string, data []byte) (Resp, error) {
	var zero Resp
	var env envelope
	if err := json.Unmarshal(data, &env); err != nil {
		return zero, fmt.Errorf("bus: request %s: reply: %w: %w", subject, ErrBadPayload, err)
	}
	if env.Error != "" {
		return zero, fmt.Errorf("bus: request %s: %w: %s", subject, ErrRemote, env.Error)
	}
	var resp Resp
	if len(env.Data) > 0 {
		if err := json.Unmarshal(env.Data, &resp); err != nil {
			return zero, fmt.Errorf("bus: request %s: reply: %w: %w", subject, ErrBadPayload, err)
		}
	}
	return resp, nil
}

// Subscription is an active subscription made by Subscribe or Serve.
type Subscription struct {
	sub       *nats.Subscription
	log       *slog.Logger
	stopCtx   func() bool // stops the context.AfterFunc that unsubscribes
	closeOnce sync.Once
}

// Stop unsubscribes. A message being handled when Stop is called is still
// handled to the end (Stop does not wait for it); no further message is. Safe
// to call more than once, and from inside the handler.
func (s *Subscription) Stop() {
	s.stopCtx()
	s.unsubscribe()
}

func (s *Subscription) unsubscribe() {
	s.closeOnce.Do(func() {
		// Fails only when the connection is already closed, which has ended
		// the subscription anyway.
		if err := s.sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			s.log.Debug("bus: unsubscribe", "subject", s.sub.Subject, "err", err)
		}
	})
}

func subscribe(ctx context.Context, c *Conn, subject, queue string, handle nats.MsgHandler) (*Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var sub *nats.Subscription
	var err error
	if queue == "" {
		sub, err = c.nc.Subscribe(subject, handle)
	} else {
		sub, err = c.nc.QueueSubscribe(subject, queue, handle)
	}
	if err != nil {
		return nil, err
	}
	s := &Subscription{sub: sub, log: c.log}
	s.stopCtx = context.AfterFunc(ctx, s.unsubscribe)
	return s, nil
}

// Subscribe calls fn with each message on subject (wildcards allowed),
// JSON-decoded into T, until ctx ends or Stop. fn gets ctx and the message's
// actual subject. Messages are handled one at a time in arrival order; a slow
// fn makes NATS drop messages once its buffer is full (logged as a slow
// consumer). A payload that does not decode is logged and dropped; a panic in
// fn is logged and the message dropped.
func Subscribe[T any](ctx context.Context, c *Conn, subject string, fn func(ctx context.Context, subject string, v T)) (*Subscription, error) {
	s, err := subscribe(ctx, c, subject, "", func(m *nats.Msg) {
		var v T
		if err := json.Unmarshal(m.Data, &v); err != nil {
			c.log.Warn("bus: dropping undecodable message", "subject", m.Subject, "err", err)
			return
		}
		defer func() {
			if p := recover(); p != nil {
				c.log.Error("bus: subscriber panicked", "subject", m.Subject, "panic", p, "stack", string(debug.Stack()))
			}
		}()
		fn(ctx, m.Subject, v)
	})
	if err != nil {
		return nil, fmt.Errorf("bus: subscribe %s: %w", subject, err)
	}
	return s, nil
}

// Serve answers requests on subject with fn until ctx ends or Stop. With a
// non-empty queue, the servers subscribed under the same queue name share the
// requests (each request goes to one of them); with an empty one, every
// responder gets every request and the requester takes the first reply.
// Requests are handled one at a time. An error from fn, an undecodable request
// or a panic in fn (recovered and logged) is sent back to the requester, who
// sees ErrRemote with the error's text — do not put secrets in handler errors.
func Serve[Req, Resp any](ctx context.Context, c *Conn, subject, queue string, fn func(ctx context.Context, req Req) (Resp, error)) (*Subscription, error) {
	s, err := subscribe(ctx, c, subject, queue, func(m *nats.Msg) {
		if m.Reply == "" {
			c.log.Warn("bus: dropping request without reply subject", "subject", m.Subject)
			return
		}
		b := serveOne(ctx, c.log, m, fn)
		if err := m.Respond(b); err != nil {
			c.log.Warn("bus: reply failed", "subject", m.Subject, "err", err)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("bus: serve %s: %w", subject, err)
	}
	return s, nil
}

// serveOne decodes the request, calls fn and returns the encoded envelope.
func serveOne[Req, Resp any](ctx context.Context, log *slog.Logger, m *nats.Msg, fn func(context.Context, Req) (Resp, error)) []byte {
	fail := func(msg string) []byte {
		if msg == "" {
			msg = "handler returned an error with no text"
		}
		b, _ := json.Marshal(envelope{Error: msg}) // a string always encodes
		return b
	}
	var req Req
	if err := json.Unmarshal(m.Data, &req); err != nil {
		log.Warn("bus: undecodable request", "subject", m.Subject, "err", err)
		return fail(fmt.Sprintf("%v: request: %v", ErrBadPayload, err))
	}
	resp, err := func() (resp Resp, err error) {
		defer func() {
			if p := recover(); p != nil {
				log.Error("bus: request handler panicked", "subject", m.Subject, "panic", p, "stack", string(debug.Stack()))
				err = fmt.Errorf("handler panicked: %v", p)
			}
		}()
		return fn(ctx, req)
	}()
	if err != nil {
		return fail(err.Error())
	}
	data, err := json.Marshal(resp)
	if err != nil {
		log.Error("bus: unencodable reply", "subject", m.Subject, "err", err)
		return fail(fmt.Sprintf("%v: reply: %v", ErrBadPayload, err))
	}
	b, _ := json.Marshal(envelope{Data: data}) // data is valid JSON
	return b
}

// ServeConcurrent is Serve with up to workers requests handled at once,
// for a responder whose requests wait on I/O (a store's fsync) and would
// queue behind each other. When all workers are busy the subscription
// waits, and NATS buffers what arrives meanwhile (a slow consumer beyond).
func ServeConcurrent[Req, Resp any](ctx context.Context, c *Conn, subject, queue string, workers int,
	fn func(ctx context.Context, req Req) (Resp, error)) (*Subscription, error) {
	if workers < 1 {
		workers = 1
	}
	sem := make(chan struct{}, workers)
	s, err := subscribe(ctx, c, subject, queue, func(m *nats.Msg) {
		if m.Reply == "" {
			c.log.Warn("bus: dropping request without reply subject", "subject", m.Subject)
			return
		}
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			b := serveOne(ctx, c.log, m, fn)
			if err := m.Respond(b); err != nil {
				c.log.Warn("bus: reply failed", "subject", m.Subject, "err", err)
			}
		}()
	})
	if err != nil {
		return nil, fmt.Errorf("bus: serve %s: %w", subject, err)
	}
	return s, nil
}
