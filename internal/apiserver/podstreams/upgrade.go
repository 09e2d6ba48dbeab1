package podstreams

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"

	gwebsocket "github.com/gorilla/websocket"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/apimachinery/pkg/util/httpstream/spdy"
	pfconst "k8s.io/apimachinery/pkg/util/portforward"
	"k8s.io/client-go/tools/portforward"
)

// upgradable returns w with its connection's Hijack reachable, which the
// WebSocket and SPDY servers need; false if there is none (HTTP/2).
//
// The API server wraps the ResponseWriter (to count response codes); the
// wrapper is looked through with Unwrap, the convention of
// http.ResponseController. Codes still go through w, so the wrapper keeps
// counting.
func upgradable(w http.ResponseWriter) (http.ResponseWriter, bool) {
	inner := w
	for range 8 { // wrappers do not nest deeper than this
		switch x := inner.(type) {
		case http.Hijacker:
			if inner == w {
				return w, true
			}
			return hijackable{ResponseWriter: w, h: x}, true
		case interface{ Unwrap() http.ResponseWriter }:
			inner = x.Unwrap()
		default:
			return w, false
		}
	}
	return w, false
}

type hijackable struct {
	http.ResponseWriter
	h http.Hijacker
}

func (w hijackable) Hijack() (net.Conn, *bufio.ReadWriter, error) { return w.h.Hijack() }

func (w hijackable) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// serveTunneled serves an SPDY handler to a client that tunnels SPDY
// through a WebSocket (subprotocol "SPDY/3.1+portforward.k8s.io": kubectl
// port-forward's first choice since 1.31), as the Kubernetes API server's
// tunneling handler does: the handler sees an SPDY upgrade request, and
// its 101 answer becomes the WebSocket upgrade, whose binary messages then
// carry the SPDY connection.
func serveTunneled(w http.ResponseWriter, r *http.Request, spdyHandler func(http.ResponseWriter, *http.Request)) {
	sreq := r.Clone(r.Context())
	for _, k := range []string{"Sec-Websocket-Protocol", "Sec-Websocket-Key", "Sec-Websocket-Version",
		"Sec-Websocket-Extensions", httpstream.HeaderUpgrade, httpstream.HeaderProtocolVersion} {
		sreq.Header.Del(k)
	}
	sreq.Method, sreq.Body = http.MethodPost, http.NoBody
	sreq.Header.Set(httpstream.HeaderConnection, httpstream.HeaderUpgrade)
	sreq.Header.Set(httpstream.HeaderUpgrade, spdy.HeaderSpdy31)
	for _, p := range gwebsocket.Subprotocols(r) {
		if strings.HasPrefix(p, pfconst.WebsocketsSPDYTunnelingPrefix) && strings.HasSuffix(p, pfconst.KubernetesSuffix) {
			sreq.Header.Add(httpstream.HeaderProtocolVersion, strings.TrimPrefix(p, pfconst.WebsocketsSPDYTunnelingPrefix))
		}
	}
	spdyHandler(&tunnelWriter{w: w, r: r}, sreq)
}

// tunnelWriter is the ResponseWriter the SPDY handler answers: a non-101
// answer passes through (the client sees a failed upgrade and falls back to
// SPDY); a 101 upgrades the WebSocket instead, and Hijack hands out the
// tunnel.
type tunnelWriter struct {
	w http.ResponseWriter // hijackable
	r *http.Request       // the WebSocket request

	mu       sync.Mutex
	upgraded bool
	conn     net.Conn
	err      error
}

func (t *tunnelWriter) Header() http.Header { return t.w.Header() }

func (t *tunnelWriter) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.upgraded {
		return 0, http.ErrHijacked
	}
	return t.w.Write(b)
}

func (t *tunnelWriter) WriteHeader(code int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.upgraded {
		return
	}
	if code != http.StatusSwitchingProtocols {
		t.w.WriteHeader(code)
		return
	}
	t.upgraded = true
	// The SPDY answer's protocol becomes the WebSocket subprotocol; its
	// other upgrade headers have no place in the WebSocket answer (which
	// the WebSocket library writes itself).
	proto := t.w.Header().Get(httpstream.HeaderProtocolVersion)
	for _, k := range []string{httpstream.HeaderConnection, httpstream.HeaderUpgrade, httpstream.HeaderProtocolVersion} {
		t.w.Header().Del(k)
	}
	up := gwebsocket.Upgrader{
		// Clients authenticate with a bearer token, not a cookie, so a
		// cross-origin page cannot ride on them: any origin is fine.
		CheckOrigin:  func(*http.Request) bool { return true },
		Subprotocols: []string{pfconst.WebsocketsSPDYTunnelingPrefix + proto},
	}
	ws, err := up.Upgrade(t.w, t.r, nil)
	if err != nil {
		t.err = err // the library answered the client
		return
	}
	t.conn = portforward.NewTunnelingConnection("server", ws)
}

func (t *tunnelWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conn == nil {
		if t.err != nil {
			return nil, nil, t.err
		}
		return nil, nil, errors.New("hijack before the upgrade")
	}
	c := t.conn
	t.conn = nil // once
	return c, bufio.NewReadWriter(bufio.NewReader(c), bufio.NewWriter(c)), nil
}
