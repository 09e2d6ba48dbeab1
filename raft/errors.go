package raft

import (
	"errors"
	"strconv"
	"strings"
)

// Errors returned by the store. Callers test them with errors.Is; each doc line
// says what the caller may conclude.
var (
	// ErrKeyExists: a create found the key present. Nothing was written.
	ErrKeyExists = errors.New("key already exists")
	// ErrNotFound: the key does not exist (at the revision asked for). Nothing was written.
	ErrNotFound = errors.New("key not found")
	// ErrConflict: a compare-and-swap saw another modify revision than the
	// caller expected. Nothing was written; re-read and retry.
	ErrConflict = errors.New("revision conflict")
	// ErrCompacted: the revision asked for is older than the kept history.
	// The caller must list again at the current revision (410 Gone in the API).
	ErrCompacted = errors.New("required revision has been compacted")
	// ErrFutureRevision: the revision asked for has not been applied here yet.
	ErrFutureRevision = errors.New("revision is in the future")
	// ErrNoLeader: no leader could be found in time. Nothing was written.
	ErrNoLeader = errors.New("no raft leader")
	// ErrIndeterminate: the write was handed to raft but its outcome is
	// unknown (leadership was lost or the leader became unreachable). It may or
	// may not have been applied; read before retrying a non-idempotent write.
	ErrIndeterminate = errors.New("write outcome unknown")
	// ErrWatchOverflow: a watcher fell too far behind and was closed. Watch
	// again from the last revision received.
	ErrWatchOverflow = errors.New("watcher too slow, closed")
	// ErrStopped: the store is closed.
	ErrStopped = errors.New("store stopped")
	// ErrInvalid: the request is malformed (empty key, bad options). Nothing was written.
	ErrInvalid = errors.New("invalid request")
	// ErrNoListener: the request needs other servers to reach this one, and it
	// runs with no network transport (Config.Bind empty): adding a server, or
	// opening a log whose raft configuration names other servers. Nothing was
	// changed; open the store with Bind (and TLS) set to cluster it.
	ErrNoListener = errors.New("store has no network listener")
)

// wireErrors are the sentinels that survive the forwarding RPC: an error
// travels as the position of the first sentinel it wraps and its full
// message, so errors.Is on a follower answers as it would on the leader. The
// order matters where an error wraps two: ErrIndeterminate comes before
// ErrStopped because "outcome unknown" is what the caller must act on.
// Append only: servers of two versions talk during a rolling upgrade.
var wireErrors = []error{ErrKeyExists, ErrNotFound, ErrConflict, ErrCompacted, ErrFutureRevision,
	ErrNoLeader, ErrIndeterminate, ErrStopped, ErrInvalid, errRemoteNotLeader}

// errRemoteNotLeader is what a server answers to a forwarded request when it is
// not (or no longer) the leader before the request reached raft: safe to retry.
var errRemoteNotLeader = errors.New("forwarded to a server that is not the leader")

// errToWire encodes err as "<sentinel position>|<message>", or "-|<message>"
// when it wraps none of wireErrors.
func errToWire(err error) string {
	for i, e := range wireErrors {
		if errors.Is(err, e) {
			return strconv.Itoa(i) + "|" + err.Error()
		}
	}
	return "-|" + err.Error()
}

// errFromWire is errToWire's inverse. A message without the encoding (from a
// server that predates it) comes back as a plain error.
func errFromWire(s string) error {
	code, msg, ok := strings.Cut(s, "|")
	if !ok {
		return errors.New(s)
	}
	if i, err := strconv.Atoi(code); err == nil && i >= 0 && i < len(wireErrors) {
		return &wireError{sentinel: wireErrors[i], msg: msg}
	}
	return errors.New(msg)
}

// wireError is an error that came over the forwarding RPC: the leader's
// message, unwrapping to the sentinel it wrapped there.
type wireError struct {
	sentinel error
	msg      string
}

func (e *wireError) Error() string { return e.msg }
func (e *wireError) Unwrap() error { return e.sentinel }
