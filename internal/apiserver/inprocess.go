package apiserver

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"

	"k8s.io/apiserver/pkg/authentication/user"
)

// InProcessTransport is an http.RoundTripper that hands requests straight to
// the API handler, with no socket: an embedding program's client-go talks to
// the engine in memory. Responses stream (watches, followed logs): the body
// is a pipe the handler writes into as it goes, and closing the body cancels
// the handler's request context.
type InProcessTransport struct {
	handler http.Handler
	token   string
	user    user.Info
}

// InProcessTransport returns a transport to this server that authenticates
// as the admin.
func (s *Server) InProcessTransport() *InProcessTransport {
	return &InProcessTransport{handler: s.Handler(), token: s.cfg.Token}
}

// InProcessTransportAs returns a transport to this server whose requests
// are made as u, with no credential: the engine's own components (each
// controller, the scheduler) run under their own identities this way, and
// authorization limits them to what their roles grant.
func (s *Server) InProcessTransportAs(u user.Info) *InProcessTransport {
	return &InProcessTransport{handler: s.Handler(), user: u}
}

// RoundTrip runs the request through the handler on a goroutine and returns
// once the handler has written its status line.
func (t *InProcessTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancel(req.Context())
	if t.user != nil {
		ctx = WithUser(ctx, t.user)
	}
	r := req.Clone(ctx)
	if r.Body == nil {
		r.Body = http.NoBody
	}
	r.RequestURI = req.URL.RequestURI()
	r.RemoteAddr = "in-process"
	if t.token != "" {
		r.Header.Set("Authorization", "Bearer "+t.token)
	}
	pr, pw := io.Pipe()
	rw := &pipeResponse{header: http.Header{}, body: pw, ready: make(chan struct{})}
	go func() {
		defer func() {
			// The handler chain recovers its own panics; this guards the
			// embedding program against anything that escapes it.
			if v := recover(); v != nil {
				pw.CloseWithError(fmt.Errorf("apiserver handler panic: %v", v))
			}
			rw.WriteHeader(http.StatusOK) // no-op when already written
			pw.Close()
		}()
		t.handler.ServeHTTP(rw, r)
	}()
	select {
	case <-rw.ready:
	case <-ctx.Done():
		cancel()
		pr.Close()
		return nil, ctx.Err()
	}
	// A handler that set Content-Length (the registry does, and OCI clients
	// require it on HEAD) has it reported as an HTTP server would.
	length := int64(-1)
	if v, err := strconv.ParseInt(rw.sent.Get("Content-Length"), 10, 64); err == nil && v >= 0 {
		length = v
	}
	return &http.Response{
		Status: fmt.Sprintf("%d %s", rw.code, http.StatusText(rw.code)), StatusCode: rw.code,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: rw.sent, Body: &cancelOnClose{ReadCloser: pr, cancel: cancel}, ContentLength: length, Request: req,
	}, nil
}

// pipeResponse is the handler's side: headers are sent (and RoundTrip
// returns) at the first WriteHeader, Write or Flush.
type pipeResponse struct {
	header http.Header
	body   *io.PipeWriter
	once   sync.Once
	ready  chan struct{}
	code   int
	sent   http.Header
}

func (p *pipeResponse) Header() http.Header { return p.header }

func (p *pipeResponse) WriteHeader(code int) {
	p.once.Do(func() {
		p.code, p.sent = code, p.header.Clone()
		close(p.ready)
	})
}

func (p *pipeResponse) Write(b []byte) (int, error) {
	p.WriteHeader(http.StatusOK)
	return p.body.Write(b)
}

// Flush has nothing to do: every Write already reached the reader.
func (p *pipeResponse) Flush() { p.WriteHeader(http.StatusOK) }

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	c.cancel()
	return c.ReadCloser.Close()
}
