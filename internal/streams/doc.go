// Package streams relays the streaming pod subresources (pods/log,
// pods/exec, pods/attach, pods/portforward) from the API server to the node
// that runs the pod, over the bus: agents reach the control plane only
// through NATS, so the API server cannot dial a node the way Kubernetes
// dials a kubelet.
//
//	kubectl ──HTTP/WebSocket/SPDY──► API server: Handlers ──► Client
//	                                                            │ NATS
//	node agent: Backend ◄── ServeNode ◄─────────────────────────┘
//
// The node agent implements Backend (its runtime's logs, exec and port
// connections) and Attacher (attach to a running process), and runs ServeNode on its bus connection; the API server
// serves Handlers, which check the request as Kubernetes does and call a
// Client. The HTTP side speaks what kubectl 1.32 and older speak: logs as
// flushed text/plain; exec and attach over WebSocket v5.channel.k8s.io or SPDY
// (the kubelet's server, k8s.io/kubelet/pkg/cri/streaming); port-forward
// over SPDY tunnelled in a WebSocket or plain SPDY.
//
// # Wire protocol
//
// The API side opens a session with a request on
// bus.SubjectNodeStreams ("skiff.node.<node>.streams") carrying the call (logs, exec,
// attach or port-forward and its request), its own inbox and its receive window; the
// node's stream server subscribes an inbox of its own, answers with it and
// its window, and starts the Backend call. From then on each side publishes
// frames to the other's inbox (see frameType): data on channels (0 stdin or
// client-to-pod, 1 stdout or log or pod-to-client, 2 stderr), credit, a
// channel's end, terminal resizes, pings, and finally the node's end (exit
// code and error) or the API's cancel. A probe (an open of kind "probe")
// checks that a node is served without starting anything.
//
// Flow control: a side may have at most the peer's window (256 KiB) of
// unacknowledged data per channel; the receiver grants credit back as its
// reader consumes. A slow kubectl therefore blocks the Backend's writes
// instead of growing buffers on either side or in NATS; data frames are at
// most 32 KiB, far under NATS' 1 MiB payload limit.
//
// Failure: frames are numbered, and a gap (frames lost across a bus
// reconnect) ends the session with ErrSessionLost rather than corrupting a
// stream. Both sides ping every 5 s and end a session whose peer has been
// silent for 30 s, so a vanished API server cancels its Backend calls and
// a vanished node ends its kubectl streams. An open unanswered within 5 s
// is ErrNodeTimeout (504); no stream server at all is ErrNodeUnreachable
// (503).
package streams
