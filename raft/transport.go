package raft

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	hraft "github.com/hashicorp/raft"
)

// One TCP port per server carries both raft's RPCs and skiff's forwarding RPC
// (followers handing writes and read-index requests to the leader). hashicorp's
// transport starts every connection with its RPC type, a small number; a
// forwarding connection starts with forwardMagic instead, so the first byte
// tells the two apart.
const forwardMagic byte = 0xF5

// muxLayer is a raft.StreamLayer that also accepts forwarding connections.
type muxLayer struct {
	ln        net.Listener
	advertise net.Addr
	tls       *tls.Config
	log       *slog.Logger

	raftConns chan net.Conn
	forward   func(net.Conn)

	// conns are the accepted connections still open. Close closes them all:
	// a stopped server must not keep answering peers on old connections
	// (a follower's cached forwarding client would talk to a dead store).
	connsMu sync.Mutex
	conns   map[net.Conn]struct{}

	closeOnce sync.Once
	closed    chan struct{}
}

func newMuxLayer(bind string, advertise string, tlsCfg *tls.Config, log *slog.Logger) (*muxLayer, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("listen for raft on %s: %w", bind, err)
	}
	var adv net.Addr = ln.Addr()
	if advertise != "" {
		if adv, err = net.ResolveTCPAddr("tcp", advertise); err != nil {
			ln.Close()
			return nil, fmt.Errorf("resolve advertise address %s: %w", advertise, err)
		}
	}
	return &muxLayer{ln: ln, advertise: adv, tls: tlsCfg, log: log,
		raftConns: make(chan net.Conn), closed: make(chan struct{}), conns: map[net.Conn]struct{}{}}, nil
}

// serve accepts connections and sorts them by their first byte.
func (m *muxLayer) serve() {
	for {
		c, err := m.ln.Accept()
		if err != nil {
			select {
			case <-m.closed:
				return
			default:
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			m.log.Warn("raft accept failed", "err", err)
			return
		}
		go m.sort(c)
	}
}

func (m *muxLayer) sort(c net.Conn) {
	if m.tls != nil {
		c = tls.Server(c, m.tls)
	}
	if c = m.track(c); c == nil {
		return
	}
	// A peer that says nothing for this long is not a raft peer of ours.
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	first, err := br.Peek(1)
	if err != nil {
		c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	pc := &peekedConn{Conn: c, r: br}
	if first[0] == forwardMagic {
		_, _ = br.ReadByte()
		m.forward(pc)
		return
	}
	select {
	case m.raftConns <- pc:
	case <-m.closed:
		c.Close()
	}
}

// Accept hands raft the connections that are raft's.
func (m *muxLayer) Accept() (net.Conn, error) {
	select {
	case c := <-m.raftConns:
		return c, nil
	case <-m.closed:
		return nil, errors.New("raft transport closed")
	}
}

func (m *muxLayer) Close() error {
	var err error
	m.closeOnce.Do(func() {
		close(m.closed)
		err = m.ln.Close()
		m.connsMu.Lock()
		conns := m.conns
		m.conns = nil
		m.connsMu.Unlock()
		for c := range conns {
			c.Close()
		}
	})
	return err
}

// track registers an accepted connection so Close can end it; it returns nil
// (and closes c) when the layer is already closed.
func (m *muxLayer) track(c net.Conn) net.Conn {
	m.connsMu.Lock()
	defer m.connsMu.Unlock()
	if m.conns == nil {
		c.Close()
		return nil
	}
	tc := &trackedConn{Conn: c, m: m}
	m.conns[tc] = struct{}{}
	return tc
}

// trackedConn forgets itself when whoever owns it closes it.
type trackedConn struct {
	net.Conn
	m *muxLayer
}

func (t *trackedConn) Close() error {
	t.m.connsMu.Lock()
	delete(t.m.conns, t)
	t.m.connsMu.Unlock()
	return t.Conn.Close()
}

func (m *muxLayer) Addr() net.Addr { return m.advertise }

func (m *muxLayer) Dial(addr hraft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return m.dial(string(addr), timeout)
}

func (m *muxLayer) dial(addr string, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	if m.tls == nil {
		return d.Dial("tcp", addr)
	}
	return tls.DialWithDialer(&d, "tcp", addr, m.tls)
}

type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (p *peekedConn) Read(b []byte) (int, error) { return p.r.Read(b) }
