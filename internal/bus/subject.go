package bus

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Subjects the engine uses. Node-specific subjects are built by the functions
// below, which validate the node name; every subject starts with "skiff." so
// the engine's traffic is easy to tell apart and to permission.
const (
	// SubjectPodStatus carries pod status reports from node agents to the
	// control plane (published, no reply).
	SubjectPodStatus = "skiff.status.pods"
	// SubjectHeartbeats matches every node's heartbeat subject; the control
	// plane's heartbeat ingest subscribes to it.
	SubjectHeartbeats = "skiff.heartbeat.*"
	// SubjectFeedEvents carries the control plane's feed of Services and
	// EndpointSlices to every node's Service proxy (published, no reply).
	SubjectFeedEvents = "skiff.feed.events"
	// SubjectFeedList is request/reply for the feed's full set of one
	// resource, asked by a node when it starts or has missed an event.
	SubjectFeedList = "skiff.feed.list"
)

// SubjectNodePods is "skiff.node.<node>.pods": the control plane pushes the
// node's desired pods there as events carrying the store revision.
func SubjectNodePods(node string) (string, error) {
	return nodeSubject("skiff.node.", node, ".pods")
}

// SubjectNodeSync is "skiff.node.<node>.sync": request/reply for a full resync
// of the node's desired pods, sent by the node agent after a gap or a reconnect.
func SubjectNodeSync(node string) (string, error) {
	return nodeSubject("skiff.node.", node, ".sync")
}

// SubjectNodeStatus is "skiff.node.<node>.status": request/reply carrying the
// node agent's batches of pod status and events to the control plane.
func SubjectNodeStatus(node string) (string, error) {
	return nodeSubject("skiff.node.", node, ".status")
}

// SubjectNodeObjects is "skiff.node.<node>.objects": request/reply for the
// ConfigMaps and Secrets the node's pods reference.
func SubjectNodeObjects(node string) (string, error) {
	return nodeSubject("skiff.node.", node, ".objects")
}

// SubjectHeartbeat is "skiff.heartbeat.<node>": the node agent's periodic
// heartbeat. Heartbeats are not written to raft.
func SubjectHeartbeat(node string) (string, error) {
	return nodeSubject("skiff.heartbeat.", node, "")
}

func nodeSubject(prefix, node, suffix string) (string, error) {
	tok := NodeToken(node)
	if err := ValidToken(tok); err != nil {
		return "", fmt.Errorf("node name: %w", err)
	}
	return prefix + tok + suffix, nil
}

// NodeToken is a node name as one subject token. Node names are DNS
// subdomains, so they may hold dots, which would split a subject; '.' is
// written as '_', which a DNS-1123 name never contains, so NodeFromToken
// can undo it.
func NodeToken(node string) string { return strings.ReplaceAll(node, ".", "_") }

// NodeFromToken is the node name a subject token stands for.
func NodeFromToken(tok string) string { return strings.ReplaceAll(tok, "_", ".") }

// ValidToken reports whether s can be used as one token of a NATS subject: it
// must be non-empty and contain no '.', '*', '>', whitespace or control
// characters and be valid UTF-8, so that a name can neither split a subject nor act as a
// wildcard. The error wraps ErrInvalidToken.
func ValidToken(s string) error {
	if s == "" {
		return fmt.Errorf("%w: empty", ErrInvalidToken)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %q is not valid UTF-8", ErrInvalidToken, s)
	}
	for i, r := range s {
		if r == '.' || r == '*' || r == '>' || unicode.IsSpace(r) || unicode.IsControl(r) {
			return fmt.Errorf("%w: %q has %q at byte %d", ErrInvalidToken, s, r, i)
		}
	}
	return nil
}
