package imageregistry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/skiffhq/skiff/internal/bus"
)

// HTTP over the bus. A request is one NATS message to bus.SubjectRegistry:
// the method and request URI in Skiff-Method and Skiff-URI, the HTTP
// headers as NATS headers, the body as the payload (so at most a NATS payload: enough for
// every pull, while pushes go to the HTTPS port). The reply is a stream of
// messages to the request's reply inbox, numbered by Skiff-Seq from 0; the
// first carries Skiff-Status, the response headers and Skiff-Ack, the last
// Skiff-End (and Skiff-Error if the body could not be finished). Large
// bodies are cut into chunks under the payload limit.
//
// Core NATS has no flow control and drops messages for a subscriber that
// falls behind, so the stream is credit-based: the requester acknowledges
// each message it takes by publishing its number to the Skiff-Ack subject,
// and the responder never has more than busWindow messages unacknowledged.
// The requester cancels by publishing "cancel" there.
const (
	hdrMethod = "Skiff-Method"
	hdrURI    = "Skiff-Uri"
	hdrSeq    = "Skiff-Seq"
	hdrStatus = "Skiff-Status"
	hdrAck    = "Skiff-Ack"
	hdrEnd    = "Skiff-End"
	hdrError  = "Skiff-Error"

	ackCancel = "cancel"

	// busChunk is the largest body chunk per message, further bounded by
	// half the server's maximum payload so headers always fit.
	busChunk = 256 << 10
	// busWindow messages may be in flight unacknowledged: 2 MiB, far below
	// nats.go's 64 MiB pending limit per subscription.
	busWindow = 8
	// busMaxConcurrent bounds the requests one server handles at a time;
	// more are answered 429 at once.
	busMaxConcurrent = 64
	// busQueue is the queue group of the registry servers: each request is
	// handled by one of them.
	busQueue = "skiff-registry"
)

// busIdleTimeout bounds every wait for the other side (the next message, an
// acknowledgement): a requester or responder that vanished frees its peer
// after this long. A variable only so tests can show that a cancel, not
// this timeout, ends a request.
var busIdleTimeout = 30 * time.Second

// Serve answers HTTP requests sent over the bus to bus.SubjectRegistry
// with h until ctx ends or stop is called; stop also cancels the requests
// in progress and waits for them. h is normally Registry.Handler without Authenticate: a
// bus connection is already authenticated by the bus token. Servers share
// requests as one queue group.
func Serve(ctx context.Context, conn *bus.Conn, h http.Handler, log *slog.Logger) (stop func(), err error) {
	s, err := serveBus(ctx, conn, h, log)
	if err != nil {
		return nil, err
	}
	return s.stop, nil
}

func serveBus(ctx context.Context, conn *bus.Conn, h http.Handler, log *slog.Logger) (*busServer, error) {
	if log == nil {
		log = slog.Default()
	}
	nc := conn.NATS()
	ctx, cancel := context.WithCancel(ctx)
	s := &busServer{ctx: ctx, nc: nc, h: h, log: log, sem: make(chan struct{}, busMaxConcurrent)}
	sub, err := nc.QueueSubscribe(bus.SubjectRegistry, busQueue, s.handle)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("registry: serve %s: %w", bus.SubjectRegistry, err)
	}
	// The subscription must reach the server before a requester can count
	// on it.
	if err := conn.Flush(ctx); err != nil {
		sub.Unsubscribe()
		cancel()
		return nil, fmt.Errorf("registry: serve %s: %w", bus.SubjectRegistry, err)
	}
	stopSub := context.AfterFunc(ctx, func() { sub.Unsubscribe() })
	s.stop = func() {
		s.once.Do(func() {
			stopSub()
			sub.Unsubscribe()
			s.mu.Lock()
			s.closed = true // no handler starts after this: wg.Add never races Wait
			s.mu.Unlock()
			cancel()
			s.wg.Wait()
		})
	}
	return s, nil
}

type busServer struct {
	ctx context.Context
	nc  *nats.Conn
	h   http.Handler
	log *slog.Logger
	sem chan struct{}
	wg  sync.WaitGroup

	mu     sync.Mutex
	closed bool

	stop func()
	once sync.Once
}

// inflight is the number of requests being handled.
func (s *busServer) inflight() int { return len(s.sem) }

func (s *busServer) handle(m *nats.Msg) {
	if m.Reply == "" {
		return
	}
	select {
	case s.sem <- struct{}{}:
	default:
		w := s.newWriter(m.Reply, "", false)
		writeError(w, newError(http.StatusTooManyRequests, codeTooManyRequests, "the registry is busy; retry"))
		w.finish()
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		<-s.sem
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		defer func() { <-s.sem }()
		s.serve(m)
	}()
}

func (s *busServer) serve(m *nats.Msg) {
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	method, uri := m.Header.Get(hdrMethod), m.Header.Get(hdrURI)
	req, err := busRequest(ctx, m)
	if err != nil {
		w := s.newWriter(m.Reply, "", false)
		writeError(w, newError(http.StatusBadRequest, codeUnsupported, "bad bus request: %v", err))
		w.finish()
		return
	}

	ack := nats.NewInbox() // not NewRespInbox: that subject space belongs to nats.go's request mux
	if node, ok := bus.NodeOfInbox(m.Reply); ok {
		// A node's request: its acks go to an inbox it may write to.
		if ack, err = bus.ControlPlaneInbox(node); err != nil {
			w := s.newWriter(m.Reply, "", false)
			writeError(w, newError(http.StatusBadRequest, codeUnsupported, "bad bus request: %v", err))
			w.finish()
			return
		}
	}
	acks := make(chan *nats.Msg, 4*busWindow)
	sub, err := s.nc.ChanSubscribe(ack, acks)
	if err != nil {
		s.log.Warn("registry: bus ack subscription failed", "err", err)
		return
	}
	defer sub.Unsubscribe()
	w := s.newWriter(m.Reply, ack, method == http.MethodHead)
	w.ctx, w.acks = ctx, acks
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				s.log.Error("registry: bus request handler panicked", "method", method, "uri", uri, "panic", p)
			}
			w.fail(fmt.Sprint(p))
		}
	}()
	s.h.ServeHTTP(w, req)
	w.finish()
}

// busRequest rebuilds the HTTP request a bus message carries.
func busRequest(ctx context.Context, m *nats.Msg) (*http.Request, error) {
	uri := m.Header.Get(hdrURI)
	if !strings.HasPrefix(uri, "/") {
		return nil, fmt.Errorf("request URI %q is not a path", uri)
	}
	if _, err := url.ParseRequestURI(uri); err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, m.Header.Get(hdrMethod), "http://"+Host+uri, bytes.NewReader(m.Data))
	if err != nil {
		return nil, err
	}
	for k, v := range m.Header {
		if !strings.HasPrefix(k, "Skiff-") {
			req.Header[k] = v
		}
	}
	req.ContentLength = int64(len(m.Data))
	req.RemoteAddr = "bus"
	return req, nil
}

func (s *busServer) newWriter(reply, ack string, head bool) *busWriter {
	chunk := busChunk
	if mp := int(s.nc.MaxPayload()) / 2; mp > 0 && mp < chunk {
		chunk = mp
	}
	return &busWriter{ctx: s.ctx, nc: s.nc, reply: reply, ack: ack, head: head, header: http.Header{}, chunk: chunk}
}

// errBusCanceled: the requester cancelled or vanished.
var errBusCanceled = errors.New("registry: bus requester went away")

// busWriter is the http.ResponseWriter of a request that came over the bus.
// It holds the headers until the first chunk is full or the handler
// returns, so small responses are one message.
type busWriter struct {
	ctx    context.Context
	nc     *nats.Conn
	reply  string
	ack    string
	acks   <-chan *nats.Msg
	head   bool
	header http.Header
	status int
	chunk  int
	buf    []byte
	seq    int // next message number
	acked  int // messages the requester has taken
	err    error
	ended  bool
}

func (w *busWriter) Header() http.Header { return w.header }

func (w *busWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
}

func (w *busWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.head {
		return len(p), nil
	}
	n := len(p)
	for len(p) > 0 {
		k := min(len(p), w.chunk-len(w.buf))
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		if len(w.buf) == w.chunk {
			if err := w.send(w.buf, false, ""); err != nil {
				return n - len(p), err
			}
			w.buf = w.buf[:0]
		}
	}
	return n, nil
}

// finish sends what is buffered as the last message.
func (w *busWriter) finish() {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.err == nil && !w.ended {
		w.send(w.buf, true, "")
	}
}

// fail ends the response after a handler panic: a 500 if nothing was sent
// yet, else a last message carrying the error.
func (w *busWriter) fail(msg string) {
	if w.err != nil || w.ended {
		return
	}
	if w.seq == 0 {
		w.header = http.Header{}
		w.status, w.buf = 0, nil
		writeError(w, errors.New(msg))
		w.finish()
		return
	}
	w.send(nil, true, msg)
}

func (w *busWriter) send(data []byte, end bool, errText string) error {
	if err := w.waitCredit(); err != nil {
		w.err = err
		return err
	}
	m := nats.NewMsg(w.reply)
	m.Header.Set(hdrSeq, strconv.Itoa(w.seq))
	if w.seq == 0 {
		for k, v := range w.header {
			m.Header[k] = v
		}
		m.Header.Set(hdrStatus, strconv.Itoa(w.status))
		if w.ack != "" {
			m.Header.Set(hdrAck, w.ack)
		}
	}
	if end {
		m.Header.Set(hdrEnd, "1")
		w.ended = true
	}
	if errText != "" {
		m.Header.Set(hdrError, errText)
	}
	m.Data = data
	if err := w.nc.PublishMsg(m); err != nil {
		w.err = fmt.Errorf("registry: bus reply: %w", err)
		return w.err
	}
	w.seq++
	return nil
}

// waitCredit blocks until the requester has taken enough messages for one
// more to be in flight.
func (w *busWriter) waitCredit() error {
	if w.acks == nil {
		return nil // answers sent before any ack subject exists are single messages
	}
	timer := time.NewTimer(busIdleTimeout)
	defer timer.Stop()
	for w.seq-w.acked >= busWindow {
		select {
		case m := <-w.acks:
			if string(m.Data) == ackCancel {
				return errBusCanceled
			}
			if n, err := strconv.Atoi(string(m.Data)); err == nil && n+1 > w.acked {
				w.acked = n + 1
			}
		case <-w.ctx.Done():
			return w.ctx.Err()
		case <-timer.C:
			return fmt.Errorf("%w: no acknowledgement for %v", errBusCanceled, busIdleTimeout)
		}
	}
	// Take a cancel that arrived while there was credit.
	for {
		select {
		case m := <-w.acks:
			if string(m.Data) == ackCancel {
				return errBusCanceled
			}
			if n, err := strconv.Atoi(string(m.Data)); err == nil && n+1 > w.acked {
				w.acked = n + 1
			}
		default:
			return nil
		}
	}
}
