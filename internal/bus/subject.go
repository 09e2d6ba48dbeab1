package bus

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/skiffhq/skiff/sdk/abi"
)

// Every subject the engine uses is defined here and nowhere else. All
// start with "skiff.", so the engine's traffic is easy to tell apart and
// to permission. A subject each node has its own of is built by a function
// that validates the node name; where the control plane serves every node
// at once, its wildcard form (…Any) stands next to it.
const (
	// SubjectRegistry carries the embedded image registry's HTTP API, one
	// request per message (request/reply; see imageregistry).
	SubjectRegistry = "skiff.registry.http"
	// SubjectFeedEvents carries the control plane's feed of Services,
	// EndpointSlices, NetworkPolicies, Namespaces and Pods to every node's
	// Service proxy and network policy (published, no reply; see
	// internal/node/servicefeed).
	SubjectFeedEvents = "skiff.feed.events"
	// SubjectFeedList is request/reply for the feed's full set of one
	// resource, asked by a node when it starts or has missed an event.
	SubjectFeedList = "skiff.feed.list"
)

// SubjectRegister is "skiff.nodes.register.<node>", where a node agent
// registers its Node (request/reply, protocol.Registration): the control
// plane creates or updates the Node object and answers. One subject per
// node, so that the bus lets a node register itself only.
func SubjectRegister(node string) (string, error) {
	return nodeSubject(registerPrefix, node, "")
}

// SubjectRegisterAny matches SubjectRegister of every node: the node
// lifecycle serves it.
const SubjectRegisterAny = registerPrefix + "*"

const registerPrefix = "skiff.nodes.register."

// The per-node subjects are nodePrefix + node + one of these suffixes.
const (
	nodePrefix      = "skiff.node."
	podsSuffix      = ".pods"
	syncSuffix      = ".sync"
	statusSuffix    = ".status"
	objectsSuffix   = ".objects"
	streamsSuffix   = ".streams"
	heartbeatPrefix = "skiff.heartbeat."
	usageSuffix     = ".usage"
)

// SubjectNodePods is "skiff.node.<node>.pods": the control plane pushes the
// node's desired pods there as numbered events (published, no reply).
func SubjectNodePods(node string) (string, error) {
	return nodeSubject(nodePrefix, node, podsSuffix)
}

// SubjectNodePodsAny matches SubjectNodePods of every node: what the node
// identity may subscribe to on the bus.
const SubjectNodePodsAny = nodePrefix + "*" + podsSuffix

// SubjectNodeSync is "skiff.node.<node>.sync": request/reply for a full resync
// of the node's desired pods, sent by the node agent after a gap or a reconnect.
func SubjectNodeSync(node string) (string, error) {
	return nodeSubject(nodePrefix, node, syncSuffix)
}

// SubjectNodeSyncAny matches SubjectNodeSync of every node: the pod
// dispatcher serves it.
const SubjectNodeSyncAny = nodePrefix + "*" + syncSuffix

// SubjectNodeStatus is "skiff.node.<node>.status": request/reply carrying the
// node agent's batches of pod status and events to the control plane.
func SubjectNodeStatus(node string) (string, error) {
	return nodeSubject(nodePrefix, node, statusSuffix)
}

// SubjectNodeStatusAny matches SubjectNodeStatus of every node: the node
// server serves it.
const SubjectNodeStatusAny = nodePrefix + "*" + statusSuffix

// SubjectNodeObjects is "skiff.node.<node>.objects": request/reply for the
// ConfigMaps and Secrets the node's pods reference.
func SubjectNodeObjects(node string) (string, error) {
	return nodeSubject(nodePrefix, node, objectsSuffix)
}

// SubjectNodeObjectsAny matches SubjectNodeObjects of every node: the node
// server serves it.
const SubjectNodeObjectsAny = nodePrefix + "*" + objectsSuffix

// SubjectNodeStreams is "skiff.node.<node>.streams": the API side asks the
// node's stream server to open a logs, exec or port-forward session
// (request/reply). Each node serves its own.
func SubjectNodeStreams(node string) (string, error) {
	return nodeSubject(nodePrefix, node, streamsSuffix)
}

// SubjectNodeStreamsAny matches SubjectNodeStreams of every node: what the
// node identity may subscribe to on the bus.
const SubjectNodeStreamsAny = nodePrefix + "*" + streamsSuffix

// SubjectHeartbeat is "skiff.heartbeat.<node>": the node agent's periodic
// heartbeat (published, no reply). Heartbeats are not written to raft.
func SubjectHeartbeat(node string) (string, error) {
	return nodeSubject(heartbeatPrefix, node, "")
}

// SubjectHeartbeatAny matches SubjectHeartbeat of every node: the node
// lifecycle subscribes to it.
const SubjectHeartbeatAny = heartbeatPrefix + "*"

// HeartbeatNode is the node whose SubjectHeartbeat subject is, or false if
// it is not a heartbeat subject.
func HeartbeatNode(subject string) (string, bool) {
	tok, ok := strings.CutPrefix(subject, heartbeatPrefix)
	if !ok || ValidToken(tok) != nil {
		return "", false
	}
	return NodeFromToken(tok), true
}

// SubjectNodeUsage is "skiff.node.<node>.usage": the node agent's usage
// reports (protocol.UsageReport; published, no reply), which every API
// server's metrics store follows.
func SubjectNodeUsage(node string) (string, error) {
	return nodeSubject(nodePrefix, node, usageSuffix)
}

// SubjectNodeUsageAny matches SubjectNodeUsage of every node.
const SubjectNodeUsageAny = nodePrefix + "*" + usageSuffix

// UsageNode is the node whose SubjectNodeUsage subject is, or false.
func UsageNode(subject string) (string, bool) {
	rest, ok := strings.CutPrefix(subject, nodePrefix)
	if !ok {
		return "", false
	}
	tok, ok := strings.CutSuffix(rest, usageSuffix)
	if !ok || ValidToken(tok) != nil {
		return "", false
	}
	return NodeFromToken(tok), true
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

// Subjects of the applications' messaging and key-value (the host module
// "skiff" of Wasm pods, package sdk/abi). A guest names its own subjects
// ("orders.new"); the node agent places them under its pod's namespace,
// SubjectApp, so a pod reaches only its namespace's subjects, never another
// namespace's nor the engine's (which are outside "skiff.apps.").
const (
	appsPrefix = "skiff.apps."
	// SubjectAppsAny matches every namespace's application subjects: what
	// node agents publish and subscribe to on behalf of their pods.
	SubjectAppsAny = appsPrefix + ">"
	// SubjectKV is request/reply for a key-value operation of a pod,
	// served by every server's key-value service as one queue group
	// (protocol.KVRequest → protocol.KVResponse): nodes have no JetStream.
	SubjectKV = "skiff.kv.ops"
	// kvEventsPrefix + namespace + "." + key carries each change of a
	// namespace's key-value store, republished by JetStream as it stores
	// it (see internal/node/kvserver): what a watch subscribes to.
	kvEventsPrefix = "skiff.kvevents."
	// SubjectKVEventsAny matches SubjectKVEvents of every namespace.
	SubjectKVEventsAny = kvEventsPrefix + ">"
)

// SubjectApp is the bus subject of a guest's subject in namespace:
// "skiff.apps.<namespace>.<subject>". subject must pass abi.ValidSubject
// (with wildcards when the caller subscribes), so it can neither leave the
// namespace's subtree nor match outside it.
func SubjectApp(namespace, subject string, wildcards bool) (string, error) {
	if err := ValidToken(namespace); err != nil {
		return "", fmt.Errorf("namespace: %w", err)
	}
	if err := abi.ValidSubject(subject, wildcards); err != nil {
		return "", err
	}
	return appsPrefix + namespace + "." + subject, nil
}

// AppSubjectOf is the guest's subject of a bus subject of namespace, or
// false when the bus subject is not one of the namespace's.
func AppSubjectOf(namespace, subject string) (string, bool) {
	s, ok := strings.CutPrefix(subject, appsPrefix+namespace+".")
	if !ok || abi.ValidSubject(s, false) != nil {
		return "", false
	}
	return s, true
}

// SubjectKVEvents is where the changes of the keys pattern matches in
// namespace's store arrive: "skiff.kvevents.<namespace>.<pattern>".
// pattern is a key or a subject pattern over the key's parts.
func SubjectKVEvents(namespace, pattern string) (string, error) {
	if err := ValidToken(namespace); err != nil {
		return "", fmt.Errorf("namespace: %w", err)
	}
	if err := abi.ValidSubject(pattern, true); err != nil {
		return "", err
	}
	return kvEventsPrefix + namespace + "." + pattern, nil
}

// KVEventsPrefix is the prefix of namespace's SubjectKVEvents, for the
// JetStream republish that feeds them.
func KVEventsPrefix(namespace string) string { return kvEventsPrefix + namespace + "." }
