package join

import (
	"context"
	"errors"
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
// pods behind them carry on. When no server answers it tries every bus
// address it knows, the last that worked first, so a bus whose API is
// down but whose port is unchanged is still reached.
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
	addrs   []string // the bus addresses known, the last answer's first; at most maxBusAddrs
	dials   int
	quiet   bool // a failed discovery was logged at Warn; the next ones go to Debug until one succeeds
}

// maxBusAddrs bounds the bus addresses a dialer remembers: a cluster's
// servers, and a few old ports of restarted ones.
const maxBusAddrs = 16

// NewBusDialer dials the bus that info (the answer of server, one of
// servers) names, and finds it again through servers with token and ca as
// Discover does. timeout bounds each API request and each TCP dial.
func NewBusDialer(info BusInfo, server string, servers []string, token string, ca []byte, timeout time.Duration, log *slog.Logger) (*BusDialer, error) {
	addrs, err := busAddrs(info)
	if err != nil {
		return nil, err
	}
	d := &BusDialer{token: token, ca: ca, timeout: timeout, log: log, addrs: addrs}
	d.servers = append([]string{server}, slices.DeleteFunc(slices.Clone(servers), func(s string) bool { return s == server })...)
	d.learnServersLocked(info)
	return d, nil
}

// busAddrs are the host:port of the buses info names: its URL first, then
// any other server's (busURLs).
func busAddrs(info BusInfo) ([]string, error) {
	var out []string
	for i, u := range busURLs(info) {
		a, err := busAddr(u)
		if err != nil {
			if i == 0 {
				return nil, err
			}
			continue // another server's, badly written: the others still serve
		}
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out, nil
}

// busURLs are the bus URLs an answer names: the answering server's first,
// then every other server's, so a node that knows one API address still
// finds the others' buses when that server dies.
func busURLs(info BusInfo) []string {
	out := []string{info.URL}
	for _, u := range info.URLs {
		if u != "" && !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	return out
}

// maxServers bounds the API servers a dialer asks: the ones it was given
// and the ones the answers named.
const maxServers = 16

// learnServersLocked adds the API servers an answer names after the known ones,
// keeping at most maxServers; the caller holds d.mu.
func (d *BusDialer) learnServersLocked(info BusInfo) {
	for _, s := range info.Servers {
		if len(d.servers) >= maxServers {
			return
		}
		if s != "" && !slices.Contains(d.servers, s) {
			d.servers = append(d.servers, s)
		}
	}
}

// busAddr is a bus URL's host:port.
func busAddr(busURL string) (string, error) {
	u, err := url.Parse(busURL)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("join: bus address %q is not a URL", busURL)
	}
	return u.Host, nil
}

// Addr is the bus address the dialer tries first now.
func (d *BusDialer) Addr() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.addrs[0]
}

// Dial connects to the bus: the known address the first time; after that,
// the one the API servers give now (see BusDialer), then every other bus
// address known, in turn, until one accepts.
func (d *BusDialer) Dial(network, _ string) (net.Conn, error) {
	d.mu.Lock()
	first := d.dials == 0
	d.dials++
	servers := slices.Clone(d.servers)
	d.mu.Unlock()
	d.mu.Lock()
	addrs := slices.Clone(d.addrs)
	d.mu.Unlock()
	if first {
		addrs = addrs[:1] // the address just discovered
	} else if found := d.rediscover(servers); found != nil {
		addrs = found // a live answer is the truth: old ports are not tried
	}
	var errs []error
	for _, a := range addrs {
		c, err := net.DialTimeout(network, a, d.timeout)
		if err == nil {
			d.promote([]string{a})
			return c, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("join: dial the bus: %w", errors.Join(errs...))
}

// rediscover asks the API servers where the bus is now, puts the answer
// first among the known addresses and returns it. When none answers it
// returns nil, and the known addresses stay as they are.
func (d *BusDialer) rediscover(servers []string) []string {
	ctx, cancel := context.WithTimeout(context.Background(), d.timeout*time.Duration(len(servers)))
	info, server, err := DiscoverAny(ctx, servers, d.token, d.ca)
	cancel()
	if err != nil {
		// Once per outage at Warn: the reconnects go on every second.
		d.mu.Lock()
		quiet := d.quiet
		d.quiet = true
		d.mu.Unlock()
		log := d.log.Warn
		if quiet {
			log = d.log.Debug
		}
		log("bus: no server told where the bus is; trying every bus address known", "bus", d.Addr(), "err", err)
		return nil
	}
	d.mu.Lock()
	d.quiet = false
	d.mu.Unlock()
	addrs, err := busAddrs(info)
	if err != nil {
		d.log.Warn("bus: a server named no usable bus", "server", server, "err", err)
		return nil
	}
	if was := d.Addr(); addrs[0] != was {
		d.log.Info("bus: found the bus again", "server", server, "bus", addrs[0], "was", was)
	}
	d.promote(addrs)
	d.mu.Lock()
	d.servers = append([]string{server}, slices.DeleteFunc(d.servers, func(s string) bool { return s == server })...)
	d.learnServersLocked(info)
	d.mu.Unlock()
	return addrs
}

// promote puts addrs first among the known addresses, in their order,
// keeping at most maxBusAddrs.
func (d *BusDialer) promote(addrs []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	rest := slices.DeleteFunc(slices.Clone(d.addrs), func(a string) bool { return slices.Contains(addrs, a) })
	d.addrs = append(slices.Clone(addrs), rest...)
	if len(d.addrs) > maxBusAddrs {
		d.addrs = d.addrs[:maxBusAddrs]
	}
}
