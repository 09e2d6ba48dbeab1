package engine

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/skiffhq/skiff/internal/apiserver/pki"
	"github.com/skiffhq/skiff/internal/bus"
	"github.com/skiffhq/skiff/internal/node/join"
)

const (
	// busSubdir holds the bus's JetStream files (DataDir/bus/jetstream):
	// the embedded registry's blobs, manifests and tags.
	busSubdir = "bus"
	// busCertName is the bus's serving certificate in DataDir/pki
	// (bus.crt, bus.key), issued by the cluster CA.
	busCertName = "bus"
)

// busConfig is the embedded NATS server's configuration. JetStream is on,
// with file storage in the data directory, for the embedded registry. With
// a listener, clients must use TLS (serving is the bus certificate) and
// connect as the node identity with the cluster token.
func (e *Engine) busConfig(serving *tls.Certificate) bus.Config {
	cfg := bus.Config{Name: e.cfg.NodeName, Logger: e.log, JetStreamDir: filepath.Join(e.cfg.DataDir, busSubdir),
		NodePermissions: nodePermissions()}
	if e.cfg.BusListen != "" {
		cfg.Listen, cfg.Token = e.cfg.BusListen, e.token
		cfg.TLS = &tls.Config{Certificates: []tls.Certificate{*serving}, MinVersion: tls.VersionTLS12}
		if e.cfg.BusClusterListen != "" && e.cl.peerTLS != nil {
			// One NATS cluster of every server's bus, routes with the
			// raft peers' mutual TLS (cluster.go).
			cfg.ClusterListen, cfg.ClusterToken, cfg.ClusterTLS = e.cfg.BusClusterListen, e.token, e.cl.peerTLS
			cfg.Routes = e.busRoutes()
			// nats-server's JetStream in a cluster needs two servers
			// before it elects a leader, so a first server alone would
			// have none: JetStream moves to a bus of its own
			// (startJetStreamBus).
			cfg.JetStreamDir = ""
		}
	}
	return cfg
}

// busCert loads or issues the bus's serving certificate (see busCertHosts)
// and returns it with the cluster CA's PEM, which joining nodes get from the
// API port to check it with.
func (e *Engine) busCert() (*tls.Certificate, []byte, error) {
	host, _, err := net.SplitHostPort(e.cfg.BusListen)
	if err != nil {
		return nil, nil, fmt.Errorf("bus listen address %q: %w", e.cfg.BusListen, err)
	}
	cert, ca, err := pki.LoadOrCreateServingCert(filepath.Join(e.cfg.DataDir, pkiSubdir), busCertName, busCertHosts(host))
	if err != nil {
		return nil, nil, fmt.Errorf("bus certificate: %w", err)
	}
	return &cert, ca, nil
}

// busCertHosts are the names the bus certificate covers: join.BusServerName,
// which nodes check whatever address they dial, and for other NATS clients
// loopback, the host name and the listen host when it is specific.
func busCertHosts(listenHost string) []string {
	hosts := []string{join.BusServerName, "127.0.0.1", "::1", "localhost"}
	if h, err := os.Hostname(); err == nil && h != "" {
		hosts = append(hosts, strings.ToLower(h))
	}
	if ip := net.ParseIP(listenHost); listenHost != "" && (ip == nil || !ip.IsUnspecified()) {
		hosts = append(hosts, listenHost)
	}
	return hosts
}

// nodePermissions are the subjects a node agent uses, in the direction it
// uses them; the bus refuses the node identity everything else. A node asks
// the control plane (sync, status, objects, register, the Service feed's
// list, the registry over HTTP) and publishes heartbeats and usage reports; it receives its
// pod events, stream opens and the Service feed. So a node can neither
// answer requests meant for the control plane (and hand another node pods
// or Secrets) nor push pod events to another node, nor touch JetStream.
// Until each node has its own identity, a node could still speak for
// another node; see docs/rationale.md.
func nodePermissions() *bus.Permissions {
	return &bus.Permissions{
		Publish: []string{
			bus.SubjectHeartbeatAny,   // heartbeats
			bus.SubjectNodeUsageAny,   // usage reports for the metrics APIs
			bus.SubjectNodeSyncAny,    // full pod sync
			bus.SubjectNodeStatusAny,  // pod status and events
			bus.SubjectNodeObjectsAny, // ConfigMaps and Secrets
			bus.SubjectRegister,       // the Node object
			bus.SubjectFeedList,       // the Service feed's full lists
			bus.SubjectRegistry,       // pulls from the embedded registry
			bus.InboxSubjects,         // replies: stream frames, registry acks
			bus.SubjectAppsAny,        // pods' messaging, each under its namespace
			bus.SubjectKV,             // pods' key-value operations
		},
		Subscribe: []string{
			bus.SubjectNodePodsAny,    // pod events
			bus.SubjectNodeStreamsAny, // logs, exec, port-forward opens
			bus.SubjectFeedEvents,     // the Service feed
			bus.InboxSubjects,         // replies
			bus.SubjectAppsAny,        // pods' messaging, each under its namespace
			bus.SubjectKVEventsAny,    // changes of pods' key-value stores (watches)
		},
	}
}

// busURL is the bus's client address, or "" when it listens nowhere.
// Called during Start, once the bus runs.
func (e *Engine) busURL() string {
	if e.cfg.BusListen == "" {
		return ""
	}
	return e.bus.ClientURL()
}

// busDescription is how the "engine ready" log line names the bus.
func (e *Engine) busDescription() string {
	if u := e.busURL(); u != "" {
		return u + " (nodes authenticate with the cluster token)"
	}
	return "in-process (no listening port)"
}
