// Package raft is skiff's replicated object store: an ordered key space kept
// in every server's memory, made durable and consistent by hashicorp/raft with
// a raft-wal log on disk and file snapshots.
//
// The finite state machine (FSM) assigns revisions as it applies the log: every
// successful write gets the next revision, also when many writes share one raft
// entry (group commit), so revisions are identical on every server and strictly
// increasing. A revision becomes a Kubernetes resourceVersion.
//
// Writes may be submitted on any server; followers forward them to the leader
// over the same TCP port raft uses, secured by mutual TLS when Config.TLS is
// set (the server side then accepts only peers with a certificate from the
// cluster's CA). A store with no Config.Bind opens no port at all: a single
// server runs raft over an in-process transport until it is reopened with a
// listener to grow a cluster. Reads are linearizable by default (a
// read-index obtained from the leader, then a wait until the local FSM has
// applied it) or may be served from the local FSM when the caller allows stale
// data. Watches fan out from the FSM as it applies and can start from any
// revision still inside a bounded history; older revisions are compacted and
// answer ErrCompacted, which the API server turns into 410 Gone.
//
// Threading: all Store methods are safe for concurrent use. The FSM is applied
// on raft's FSM goroutine only; reads take a read lock on the index.
package raft
