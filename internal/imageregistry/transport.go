package imageregistry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/skiffhq/skiff/internal/bus"
)

// ErrBodyTooLarge: a request over the bus had a body larger than one NATS
// message. Pulls never do; push to the API server's HTTPS port instead.
var ErrBodyTooLarge = errors.New("registry: request body too large for the bus; push over HTTPS")

// Transport returns an http.RoundTripper that carries requests for Host
// (any scheme or port) to the embedded registry over the bus connection
// conn, and every other request to base (http.DefaultTransport when nil).
// The bus connection is the credential: no Authorization header is needed
// or sent. Responses stream: a blob is read from the store as the caller
// reads the body, in chunks below the NATS payload limit.
func Transport(conn *bus.Conn, base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &busTransport{conn: conn, base: base}
}

type busTransport struct {
	conn *bus.Conn
	base http.RoundTripper
}

func (t *busTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL == nil || !isRegistryHost(req.URL.Host) {
		return t.base.RoundTrip(req)
	}
	resp, err := t.roundTrip(req)
	if err != nil {
		return nil, fmt.Errorf("registry: %s %s over the bus: %w", req.Method, req.URL.Path, err)
	}
	return resp, nil
}

func isRegistryHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	return strings.EqualFold(host, Host)
}

// hopHeaders are not forwarded: they describe the hop, not the request, and
// the bus connection replaces Authorization.
var hopHeaders = map[string]bool{
	"Authorization": true, "Connection": true, "Keep-Alive": true, "Proxy-Authorization": true,
	"Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
}

func (t *busTransport) roundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	nc := t.conn.NATS()
	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		limit := nc.MaxPayload() - 64<<10 // room for headers
		b, err := io.ReadAll(io.LimitReader(req.Body, limit+1))
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		if int64(len(b)) > limit {
			return nil, ErrBodyTooLarge
		}
		body = b
	}

	// The connection's own inbox prefix: a node may subscribe to its own
	// replies only (bus.NodeInboxPrefix), never to "_INBOX.>".
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	m := nats.NewMsg(bus.SubjectRegistry)
	m.Reply = inbox
	for k, v := range req.Header {
		if !hopHeaders[k] && !strings.HasPrefix(k, "Skiff-") {
			m.Header[k] = v
		}
	}
	m.Header.Set(hdrMethod, req.Method)
	m.Header.Set(hdrURI, req.URL.RequestURI())
	m.Data = body
	if err := nc.PublishMsg(m); err != nil {
		sub.Unsubscribe()
		return nil, err
	}
	b := &busBody{ctx: ctx, nc: nc, sub: sub}
	first, err := b.next()
	if err != nil {
		sub.Unsubscribe()
		return nil, err
	}
	status, err := strconv.Atoi(first.Header.Get(hdrStatus))
	if err != nil || status < 100 || status > 999 {
		b.Close()
		return nil, fmt.Errorf("bad reply: status %q", first.Header.Get(hdrStatus))
	}
	b.ack = first.Header.Get(hdrAck)
	header := http.Header{}
	for k, v := range first.Header {
		if !strings.HasPrefix(k, "Skiff-") {
			header[k] = v
		}
	}
	resp := &http.Response{
		Status:        fmt.Sprintf("%d %s", status, http.StatusText(status)),
		StatusCode:    status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        header,
		ContentLength: -1,
		Request:       req,
	}
	if cl, err := strconv.ParseInt(header.Get("Content-Length"), 10, 64); err == nil && cl >= 0 {
		resp.ContentLength = cl
	}
	b.take(first)
	if req.Method == http.MethodHead {
		b.Close()
		resp.Body = http.NoBody
		return resp, nil
	}
	resp.Body = b
	return resp, nil
}

// busBody reads a response's chunks as they arrive, acknowledging each.
type busBody struct {
	ctx  context.Context
	nc   *nats.Conn
	sub  *nats.Subscription
	ack  string
	seq  int // next expected message number
	data []byte
	end  bool
	err  error

	closeOnce sync.Once
}

// next waits for the next message of the reply stream, bounded by the
// request's context and busIdleTimeout.
func (b *busBody) next() (*nats.Msg, error) {
	ctx, cancel := context.WithTimeout(b.ctx, busIdleTimeout)
	defer cancel()
	m, err := b.sub.NextMsgWithContext(ctx)
	if errors.Is(err, nats.ErrNoResponders) {
		return nil, fmt.Errorf("%w (is the registry running?)", bus.ErrNoResponders)
	}
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && b.ctx.Err() == nil {
			return nil, fmt.Errorf("no reply for %v", busIdleTimeout)
		}
		return nil, err
	}
	if len(m.Data) == 0 && m.Header.Get("Status") == "503" { // older nats.go hands the status message over
		return nil, fmt.Errorf("%w (is the registry running?)", bus.ErrNoResponders)
	}
	if got := m.Header.Get(hdrSeq); got != strconv.Itoa(b.seq) {
		return nil, fmt.Errorf("reply message %s arrived where %d was due (messages were lost)", got, b.seq)
	}
	return m, nil
}

// take makes m's chunk the one to read and acknowledges it.
func (b *busBody) take(m *nats.Msg) {
	b.data = m.Data
	b.end = m.Header.Get(hdrEnd) != ""
	if e := m.Header.Get(hdrError); e != "" {
		b.err = fmt.Errorf("registry: response failed mid-body: %s", e)
	}
	if b.ack != "" && !b.end {
		b.nc.Publish(b.ack, []byte(strconv.Itoa(b.seq)))
	}
	b.seq++
}

func (b *busBody) Read(p []byte) (int, error) {
	for len(b.data) == 0 {
		if b.end {
			if b.err != nil {
				return 0, b.err
			}
			return 0, io.EOF
		}
		if b.err != nil {
			return 0, b.err
		}
		m, err := b.next()
		if err != nil {
			b.err = fmt.Errorf("registry: reading the response over the bus: %w", err)
			b.Close()
			return 0, b.err
		}
		b.take(m)
	}
	n := copy(p, b.data)
	b.data = b.data[n:]
	return n, nil
}

// Close stops the stream; a responder still sending is told to stop.
func (b *busBody) Close() error {
	b.closeOnce.Do(func() {
		if !b.end && b.ack != "" {
			b.nc.Publish(b.ack, []byte(ackCancel))
		}
		b.sub.Unsubscribe()
		b.data, b.end = nil, false
		if b.err == nil {
			b.err = errors.New("registry: response body closed")
		}
	})
	return nil
}
