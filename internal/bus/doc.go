// Package bus is skiff's event bus: an embedded NATS server (nats-server/v2,
// running inside the engine's process) and typed JSON helpers over nats.go.
//
// The control plane publishes desired pods to nodes and ingests status and
// heartbeats over the bus; node agents reach the control plane only through it.
//
// Two shapes:
//
//   - Single-node mode (Config.Listen empty): the server opens no port at all.
//     The engine talks to it through Server.Connect, an in-process pipe.
//   - Networked mode (Config.Listen set, Config.Token and Config.TLS
//     required): agents Dial the client listener over TLS; servers of a
//     control plane join each other through cluster routes
//     (Config.ClusterListen, Config.Routes, Config.ClusterToken).
//
// Every client connection authenticates as one of two identities, never
// anonymously: the control plane (Server.Connect: in-process only, full
// permissions, a password made at Start that never leaves the process) and
// the node (NodeUser: Dial with Config.Token, or Server.ConnectNode; only
// the subjects of Config.NodePermissions, never JetStream's or the system's).
//
// Payloads are JSON. Request/reply uses a small envelope so that a responder's
// error travels back to the requester as an error wrapping ErrRemote.
//
// Threading: Server and Conn methods are safe for concurrent use. A
// subscription's handler runs on one goroutine per subscription, so messages of
// one subscription are handled in order, one at a time.
package bus
