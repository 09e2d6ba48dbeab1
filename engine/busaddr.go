package engine

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/skiffhq/skiff/internal/atomicfile"
	"github.com/skiffhq/skiff/internal/bus"
)

// busListenFile records the bus listener's address (host:port) as bound,
// so that a restart with BusListen's port 0 listens where agents last
// found it: they find a moved bus again through the API, but an agent
// whose every server is down can only retry the address it knows.
const busListenFile = "bus-listen"

// startBus starts the bus, listening (with a listener) where busListenAddr
// says, and records the bound address. A recorded port that cannot be
// bound any more (another program took it) is given up for a free one:
// agents find the new port through the API.
func (e *Engine) startBus(ctx context.Context, serving *tls.Certificate) (*bus.Server, error) {
	listen := e.busListenAddr()
	b, err := bus.Start(ctx, e.busConfig(serving, listen))
	if err != nil && listen != e.cfg.BusListen {
		e.log.Warn("bus: the recorded port is not free; listening on another", "recorded", listen, "err", err)
		b, err = bus.Start(ctx, e.busConfig(serving, e.cfg.BusListen))
	}
	if err != nil {
		return nil, fmt.Errorf("start bus: %w", err)
	}
	if e.cfg.BusListen != "" {
		if err := e.recordBusListen(b.ClientURL()); err != nil {
			b.Close()
			return nil, err
		}
	}
	return b, nil
}

// busListenAddr is where the bus listens this start: Config.BusListen,
// whose port 0 means the port recorded by an earlier start on the same
// host, if any. A BusListen with another host or a port of its own wins
// (the operator changed it).
func (e *Engine) busListenAddr() string {
	host, port, err := net.SplitHostPort(e.cfg.BusListen)
	if err != nil || port != "0" {
		return e.cfg.BusListen
	}
	b, err := os.ReadFile(filepath.Join(e.cfg.DataDir, busListenFile))
	if err != nil {
		return e.cfg.BusListen
	}
	rHost, rPort, err := net.SplitHostPort(strings.TrimSpace(string(b)))
	if err != nil || rHost != host || rPort == "0" {
		return e.cfg.BusListen
	}
	return net.JoinHostPort(host, rPort)
}

// recordBusListen writes BusListen's host with the port the bus bound
// (from its client URL) to busListenFile.
func (e *Engine) recordBusListen(clientURL string) error {
	u, err := url.Parse(clientURL)
	if err != nil {
		return fmt.Errorf("bus: bound address %q: %w", clientURL, err)
	}
	if u.Port() == "" {
		return fmt.Errorf("bus: bound address %q has no port", clientURL)
	}
	host, _, err := net.SplitHostPort(e.cfg.BusListen)
	if err != nil {
		return fmt.Errorf("bus listen address %q: %w", e.cfg.BusListen, err)
	}
	return atomicfile.Write(filepath.Join(e.cfg.DataDir, busListenFile), []byte(net.JoinHostPort(host, u.Port())+"\n"))
}
