package join

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"sync"
	"time"
)

// BusDialer dials a cluster's bus wherever it is now. It implements
// nats.go's CustomDialer: nats calls Dial for the first connection and for
// every reconnect, with the address it knows, and BusDialer ignores that
// address. On each reconnect it asks the API servers again, each in turn
// starting with the last that answered, where the bus listens: a restarted
// server with another bus port, or another server when this one died,
// gets the node back on the same connection, so its subscriptions and the
// pods behind them carry on. When no server answers it tries the last
// address known, so a bus whose API is down but whose port is unchanged
// is still reached.
//
// Dial may be called from nats.go's reconnect goroutine while Servers is
// read elsewhere: the state is guarded by mu.
type BusDialer struct {
	token   string
	ca      []byte
	timeout time.Duration
	log     *slog.Logger

	mu      sync.Mutex
	servers []string // the API servers, the last that answered first
	addr    string   // the bus's host:port, from the last answer
	dials   int
}

// NewBusDialer dials the bus that info (the answer of server, one of
// servers) names, and finds it again through servers with token and ca as
// Discover does. timeout bounds each API request and each TCP dial.
func NewBusDialer(info BusInfo, server string, servers []string, token string, ca []byte, timeout time.Duration, log *slog.Logger) (*BusDialer, error) {
	addr, err := busAddr(info.URL)
	if err != nil {
		return nil, err
	}
	d := &BusDialer{token: token, ca: ca, timeout: timeout, log: log, addr: addr}
	d.servers = append([]string{server}, slices.DeleteFunc(slices.Clone(servers), func(s string) bool { return s == server })...)
	return d, nil
}

// busAddr is a bus URL's host:port.
func busAddr(busURL string) (string, error) {
	u, err := url.Parse(busURL)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("join: bus address %q is not a URL", busURL)
	}
	return u.Host, nil
}

// Addr is the bus address the dialer dials now.
func (d *BusDialer) Addr() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.addr
}

// Dial connects to the bus: the known address the first time, then the one
// the API servers give now (see BusDialer).
func (d *BusDialer) Dial(network, _ string) (net.Conn, error) {
	d.mu.Lock()
	first := d.dials == 0
	d.dials++
	servers, addr := slices.Clone(d.servers), d.addr
	d.mu.Unlock()
	if !first {
		ctx, cancel := context.WithTimeout(context.Background(), d.timeout*time.Duration(len(servers)))
		info, server, err := DiscoverAny(ctx, servers, d.token, d.ca)
		cancel()
		if err != nil {
			d.log.Warn("bus: no server told where the bus is; trying its last address", "bus", addr, "err", err)
		} else if a, err := busAddr(info.URL); err == nil {
			d.mu.Lock()
			if a != d.addr {
				d.log.Info("bus: found the bus again", "server", server, "bus", a, "was", d.addr)
			}
			d.addr, addr = a, a
			d.servers = append([]string{server}, slices.DeleteFunc(d.servers, func(s string) bool { return s == server })...)
			d.mu.Unlock()
		}
	}
	c, err := net.DialTimeout(network, addr, d.timeout)
	if err != nil {
		return nil, fmt.Errorf("join: dial the bus at %s: %w", addr, err)
	}
	return c, nil
}
