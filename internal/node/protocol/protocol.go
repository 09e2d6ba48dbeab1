// Package protocol holds the messages node agents and the control plane
// exchange over the bus. Agents reach the control plane only through the
// bus (one outbound connection, so a node behind NAT can join), never
// through the API.
package protocol

import (
	"encoding/json"

	"time"

	corev1 "k8s.io/api/core/v1"
)

// Registration describes a node as its agent sees it: labels, addresses,
// capacity, allocatable, system info and conditions. The control plane
// writes it into the Node object.
type Registration struct {
	Node corev1.Node `json:"node"`
	// PodCIDR is the pod range the agent was configured with; empty asks
	// the control plane to allocate one.
	PodCIDR string `json:"podCIDR,omitempty"`
}

// Registered is the control plane's answer.
type Registered struct {
	// UID of the Node object.
	UID string `json:"uid"`
	// PodCIDR is the node's pod range (its spec.podCIDR): the agent gives
	// pods addresses from it.
	PodCIDR string `json:"podCIDR"`
}

// Heartbeat says a node's agent is alive. Heartbeats are not written to the
// store: the control plane keeps the last one in memory and writes only when
// one of the node's conditions changes.
type Heartbeat struct {
	Node string    `json:"node"`
	Time time.Time `json:"time"`
	// Conditions are the node's pressure conditions as the agent sees them
	// now (DiskPressure, MemoryPressure); the control plane writes one only when its status
	// changes. Empty from an agent that reports none.
	Conditions []corev1.NodeCondition `json:"conditions,omitempty"`
}

// PodEvent is one change to the pods bound to a node, pushed by the control
// plane on the node's pods subject. Seq counts the events sent to that node
// by one control plane instance (Epoch): an agent that sees a gap in Seq,
// or another Epoch, has missed something and asks for a full sync.
type PodEvent struct {
	Epoch string `json:"epoch"`
	Seq   uint64 `json:"seq"`
	// Type is ADDED, MODIFIED or DELETED. ADDED and MODIFIED are both
	// "this is the pod now", so applying one twice is harmless.
	Type string     `json:"type"`
	Pod  corev1.Pod `json:"pod"`
}

// SyncRequest asks for every pod bound to Node (request/reply on the
// node's sync subject).
type SyncRequest struct {
	Node string `json:"node"`
}

// SyncResponse is the full set of pods bound to a node, and the Epoch and
// Seq it is current as of: events up to Seq are in it.
type SyncResponse struct {
	Epoch string       `json:"epoch"`
	Seq   uint64       `json:"seq"`
	Pods  []corev1.Pod `json:"pods"`
}

// StatusReport is a node agent's batch of pod status changes and events,
// sent by request/reply on the node's status subject. The control plane
// answers once every status in it is written, so an agent that gets no
// answer sends the newest statuses again.
type StatusReport struct {
	Node   string      `json:"node"`
	Pods   []PodStatus `json:"pods,omitempty"`
	Events []Event     `json:"events,omitempty"`
}

// PodStatus is the status a node observes for one pod.
type PodStatus struct {
	Namespace string           `json:"namespace"`
	Name      string           `json:"name"`
	UID       string           `json:"uid"`
	Status    corev1.PodStatus `json:"status"`
	// Terminated says the pod is being deleted and every container of it
	// has stopped: the control plane completes the deletion, as a kubelet
	// does with a zero grace period delete.
	Terminated bool `json:"terminated,omitempty"`
}

// Event is something that happened to a pod or one of its containers
// (FieldPath "spec.containers{name}"), recorded as a Kubernetes Event from
// the node's kubelet.
type Event struct {
	Namespace string    `json:"namespace"`
	Pod       string    `json:"pod"`
	UID       string    `json:"uid"`
	FieldPath string    `json:"fieldPath,omitempty"`
	Type      string    `json:"type"` // Normal or Warning
	Reason    string    `json:"reason"`
	Message   string    `json:"message"`
	Time      time.Time `json:"time"`
}

// StatusAck answers a StatusReport.
type StatusAck struct {
	// Gone lists the UIDs of pods that no longer exist (or were replaced by
	// a pod of the same name): the agent stops reporting them.
	Gone []string `json:"gone,omitempty"`
}

// ObjectRequest asks for a ConfigMap or Secret a pod bound to Node uses
// (env, envFrom, volumes, imagePullSecrets), or for the PersistentVolume
// bound to a PersistentVolumeClaim one of its volumes names.
type ObjectRequest struct {
	Node string `json:"node"`
	// Kind is ConfigMap, Secret or PersistentVolumeClaim; or LocalVolumes
	// (no Namespace, no Name): the local paths of every PersistentVolume
	// on Node, so the node can remove the directories of deleted ones.
	//
	// Kind ServiceAccountToken asks for a token of the ServiceAccount of
	// the pod Namespace/Name (whose UID must be UID) bound to that pod,
	// for Audience (the API's when empty) and ExpirationSeconds: what a
	// projected serviceAccountToken volume holds. The control plane mints
	// it only for a pod bound to the asking node.
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`

	UID               string `json:"uid,omitempty"`
	Audience          string `json:"audience,omitempty"`
	ExpirationSeconds int64  `json:"expirationSeconds,omitempty"`
}

// ObjectResponse holds the object asked for, or NotFound.
type ObjectResponse struct {
	ConfigMap *corev1.ConfigMap `json:"configMap,omitempty"`
	Secret    *corev1.Secret    `json:"secret,omitempty"`
	// PersistentVolume answers a PersistentVolumeClaim: the volume the
	// claim is bound to, on the asking node.
	PersistentVolume *corev1.PersistentVolume `json:"persistentVolume,omitempty"`
	// LocalVolumePaths answers LocalVolumes.
	LocalVolumePaths []string `json:"localVolumePaths,omitempty"`
	// Token and TokenExpiration answer ServiceAccountToken.
	Token           string    `json:"token,omitempty"`
	TokenExpiration time.Time `json:"tokenExpiration,omitzero"`
	NotFound        bool      `json:"notFound,omitempty"`
}

// FeedEvent is one change to the cluster-wide objects every node's
// networking follows (Services and EndpointSlices for the Service proxy;
// NetworkPolicies, Namespaces and stripped Pods for network policy),
// published by the control plane on the feed's events subject for all
// nodes at once. Seq counts the events of one control plane instance
// (Epoch) across all resources, so a node that sees a gap in Seq, or
// another Epoch, has missed something and lists again. A tick (Type "") carries no object: it
// repeats the last Seq sent, so a node that missed the last events notices
// within a tick even when nothing else changes.
type FeedEvent struct {
	Epoch    string          `json:"epoch"`
	Seq      uint64          `json:"seq"`
	Type     string          `json:"type,omitempty"` // ADDED, MODIFIED, DELETED, or "" for a tick
	Resource string          `json:"resource,omitempty"`
	Object   json.RawMessage `json:"object,omitempty"`
}

// FeedListRequest asks for every object of Resource in the feed
// ("services", "endpointslices", "networkpolicies", "namespaces" or
// "pods").
type FeedListRequest struct {
	Resource string `json:"resource"`
}

// FeedList answers a FeedListRequest: the objects as of event Seq of Epoch
// (events up to Seq are in it).
type FeedList struct {
	Epoch string            `json:"epoch"`
	Seq   uint64            `json:"seq"`
	Items []json.RawMessage `json:"items"`
}

// Key-value operations of pods (bus.SubjectKV), forwarded by the node
// agent to the control plane's key-value service: nodes have no
// JetStream.
const (
	KVGet    = "get"
	KVPut    = "put"
	KVCreate = "create"
	KVUpdate = "update"
	KVDelete = "delete"
)

// KVRequest is one key-value operation on a namespace's store.
type KVRequest struct {
	Namespace string `json:"namespace"`
	Op        string `json:"op"`
	Key       string `json:"key"`
	Value     []byte `json:"value,omitempty"`
	// Revision is the revision an update expects the key to have.
	Revision uint64 `json:"revision,omitempty"`
}

// Outcomes of a KVRequest other than success, in KVResponse.Code.
const (
	KVNotFound = "NotFound" // get: absent or deleted
	KVExists   = "Exists"   // create: present; update: another revision
	KVInvalid  = "Invalid"  // a key, value or namespace the service refuses
)

// KVResponse answers a KVRequest: the key's value and revision (get), or
// the new revision (writes), or Code.
type KVResponse struct {
	Code     string `json:"code,omitempty"`
	Message  string `json:"message,omitempty"`
	Value    []byte `json:"value,omitempty"`
	Revision uint64 `json:"revision,omitempty"`
}

// UsageReport is what a node's agent measured of its pods and of itself,
// published every usage interval on the node's usage subject for the
// metrics APIs (metrics.k8s.io, custom.metrics.k8s.io) that every API server
// serves. Counters are cumulative, so a lost report costs resolution, not
// correctness: the control plane derives rates from two samples.
type UsageReport struct {
	Node string `json:"node"`
	// Time is when the node read the numbers, by the node's clock: rates
	// are over the node's own time between two reports.
	Time time.Time `json:"time"`
	// CPUNanos is the machine's CPU time (user, nice, system, irq, softirq,
	// steal; /proc/stat) in nanoseconds since boot; 0 when unknown.
	CPUNanos uint64 `json:"cpuNanos,omitempty"`
	// MemoryBytes is the node's memory in use (total - available).
	MemoryBytes int64      `json:"memoryBytes,omitempty"`
	Pods        []PodUsage `json:"pods,omitempty"`
}

// PodUsage is one pod's containers' usage.
type PodUsage struct {
	Namespace  string           `json:"namespace"`
	Name       string           `json:"name"`
	UID        string           `json:"uid"`
	Containers []ContainerUsage `json:"containers"`
}

// ContainerUsage is one container's usage, across its restarts.
type ContainerUsage struct {
	Name string `json:"name"`
	// CPUNanos is the CPU time used since the pod started on the node.
	CPUNanos uint64 `json:"cpuNanos"`
	// MemoryBytes is the working set now (a Wasm guest's linear memory).
	MemoryBytes int64 `json:"memoryBytes"`
	// HTTPRequests counts the HTTP requests served since the pod started on
	// the node; nil when the runtime does not count them (a command module
	// serving its own sockets), which is not the same as none.
	HTTPRequests *uint64 `json:"httpRequests,omitempty"`
}
