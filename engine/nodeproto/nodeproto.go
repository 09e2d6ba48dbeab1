// Package nodeproto holds the messages node agents and the control plane
// exchange over the bus. Agents reach the control plane only through the
// bus (one outbound connection, so a node behind NAT can join), never
// through the API.
package nodeproto

import (
	"time"

	corev1 "k8s.io/api/core/v1"
)

// SubjectRegister is where an agent registers its Node (request/reply): the
// control plane creates or updates the Node object and answers.
const SubjectRegister = "skiff.nodes.register"

// Registration describes a node as its agent sees it: labels, addresses,
// capacity, allocatable, system info and conditions. The control plane
// writes it into the Node object.
type Registration struct {
	Node corev1.Node `json:"node"`
}

// Registered is the control plane's answer.
type Registered struct {
	// UID of the Node object.
	UID string `json:"uid"`
}

// Heartbeat says a node's agent is alive. Heartbeats are not written to the
// store: the control plane keeps the last one in memory and writes only when
// the node's Ready condition changes.
type Heartbeat struct {
	Node string    `json:"node"`
	Time time.Time `json:"time"`
}
