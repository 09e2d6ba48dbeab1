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
// connect as their own node, with the credential they got at join
// (nodeauth.go).
func (e *Engine) busConfig(serving *tls.Certificate, listen string) bus.Config {
	cfg := bus.Config{Name: e.cfg.NodeName, Logger: e.log, JetStreamDir: filepath.Join(e.cfg.DataDir, busSubdir),
		Nodes: e.nodeAuth.authenticate}
	if e.cfg.BusListen != "" {
		cfg.Listen = listen
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

// nodePermissions are the subjects node's own identity may use, in the
// direction it uses them; the bus refuses it everything else. A node asks
// the control plane about itself (sync, status, objects, register) and
// for shared things (the Service feed's list, the registry over HTTP,
// pods' key-value operations), and publishes its heartbeats and usage
// reports; it receives its own pod events and stream opens, the Service
// feed and its own replies. So a node can neither speak for another node
// (the node server, dispatcher and lifecycle trust the node a subject
// names), nor read another node's pods, streams or replies, nor answer
// requests meant for the control plane, nor touch JetStream or $SYS.
// Replies: a node writes answers, stream frames and registry acks only to
// the control plane's inboxes for it (bus.ControlPlaneInboxSubjects), and
// reads only its own inbox (bus.NodeInboxSubjects).
func nodePermissions(node string) (*bus.Permissions, error) {
	var own []string
	for _, f := range []func(string) (string, error){
		bus.SubjectHeartbeat, bus.SubjectNodeUsage, bus.SubjectNodeSync, bus.SubjectNodeStatus,
		bus.SubjectNodeObjects, bus.SubjectRegister,
	} {
		s, err := f(node)
		if err != nil {
			return nil, err
		}
		own = append(own, s)
	}
	pods, err := bus.SubjectNodePods(node)
	if err != nil {
		return nil, err
	}
	streams, err := bus.SubjectNodeStreams(node)
	if err != nil {
		return nil, err
	}
	inbox, err := bus.NodeInboxSubjects(node)
	if err != nil {
		return nil, err
	}
	cpInbox, err := bus.ControlPlaneInboxSubjects(node)
	if err != nil {
		return nil, err
	}
	return &bus.Permissions{
		Publish: append(own,
			bus.SubjectFeedList, // the Service feed's full lists
			bus.SubjectRegistry, // pulls from the embedded registry (read-only over the bus)
			cpInbox,             // the control plane's inboxes for it: stream frames, registry acks
			bus.SubjectAppsAny,  // pods' messaging, each under its namespace
			bus.SubjectKV,       // pods' key-value operations
		),
		Subscribe: []string{
			pods,                   // its pod events
			streams,                // its logs, exec, port-forward opens
			bus.SubjectFeedEvents,  // the Service feed
			inbox,                  // its own replies only
			bus.SubjectAppsAny,     // pods' messaging, each under its namespace
			bus.SubjectKVEventsAny, // changes of pods' key-value stores (watches)
		},
		// No "allow responses": a node could send itself a message on
		// skiff.apps.> naming any subject as its reply, and then publish
		// there once. The control plane's requests to a node take their
		// answers on cpInbox instead (bus.RequestNode).
	}, nil
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
		return u + " (nodes authenticate with their own credentials)"
	}
	return "in-process (no listening port)"
}
