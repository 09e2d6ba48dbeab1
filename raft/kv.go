package raft

// KeyValue is one key's state at a revision.
type KeyValue struct {
	Key   string
	Value []byte
	// CreateRev is the revision that created the key (in its current life:
	// a delete and re-create starts a new one).
	CreateRev int64
	// ModRev is the revision of the last change; for a deleted key returned by
	// Delete or carried by a Deleted event it is the deletion's revision.
	ModRev int64
}

// EventType says what happened to a key.
type EventType uint8

const (
	// Put creates or updates a key. Created tells which.
	Put EventType = iota + 1
	// Deleted removes a key; the event carries its last value.
	Deleted
)

// Event is one change, in revision order.
type Event struct {
	Type EventType
	// KV is the key's new state; for Deleted, its last value with ModRev set to
	// the deletion's revision.
	KV KeyValue
	// Created is true for a Put that created the key.
	Created bool
	// PrevKV is the state before the change (empty Key when created).
	PrevKV KeyValue
}

// Rev is the revision at which the event happened.
func (e Event) Rev() int64 { return e.KV.ModRev }

// OpType is the kind of a write.
type OpType uint8

const (
	opCreate OpType = iota + 1
	opUpdate
	opDelete
)

// op is one write inside a raft entry.
type op struct {
	typ   OpType
	key   string
	value []byte
	// expectRev, when non-zero, must equal the key's ModRev (compare-and-swap).
	expectRev int64
}

// result is the outcome of one op: the key's new state (or, for a delete, its
// last state with the deletion's revision), or an error. On ErrConflict kv is
// the current state so the caller can report it.
type result struct {
	kv  KeyValue
	err error
}
