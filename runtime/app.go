package runtime

import (
	"context"
	"errors"
)

// AppServices are the services the engine offers a container's guest
// beyond WASI: messaging on the cluster's bus and a key-value store. The
// node agent makes one per container, already scoped to the pod's
// namespace: the subjects and keys a runtime passes are the guest's own
// ("orders.new"), and the implementation places them where only the pods of
// that namespace reach, so a runtime needs no notion of namespaces and a
// guest cannot leave its own. A runtime exposes it to guests (the Wasm
// runtime's host module "skiff", documented in package sdk/abi) and checks
// the guest's arguments against sdk/abi's syntax before calling; the
// implementation checks again.
//
// Every method is safe for concurrent use. ctx bounds each call; the
// deliver functions of Subscribe and Watch must not block (a runtime
// queues, bounded, and drops what its guest does not take).
type AppServices interface {
	// Publish sends data to subject, with reply ("" for none) as the
	// subject the receiver answers to.
	Publish(ctx context.Context, subject, reply string, data []byte) error
	// Request publishes data to subject with a reply subject of its own
	// and waits, bounded by ctx, for the first answer. Nobody subscribed:
	// ErrNoResponders.
	Request(ctx context.Context, subject string, data []byte) (AppMessage, error)
	// Subscribe calls deliver with each message on subject (wildcards
	// allowed) until the returned stop is called; with a queue, the
	// subscribers of one queue share the messages. ctx bounds only the
	// subscribing.
	Subscribe(ctx context.Context, subject, queue string, deliver func(AppMessage)) (stop func(), err error)

	// KVGet reads a key: ErrKVNotFound when it is absent or deleted.
	KVGet(ctx context.Context, key string) (KVEntry, error)
	// KVPut writes a key and returns its new revision.
	KVPut(ctx context.Context, key string, value []byte) (uint64, error)
	// KVCreate writes a key that is absent (or deleted), else ErrKVExists.
	KVCreate(ctx context.Context, key string, value []byte) (uint64, error)
	// KVUpdate writes a key whose revision is rev, else ErrKVExists.
	KVUpdate(ctx context.Context, key string, value []byte, rev uint64) (uint64, error)
	// KVDelete deletes a key (absent keys included).
	KVDelete(ctx context.Context, key string) error
	// KVWatch calls deliver with each later change of the keys pattern
	// matches (subject wildcards over the key's dot-separated parts)
	// until stop is called.
	KVWatch(ctx context.Context, pattern string, deliver func(KVEntry)) (stop func(), err error)
}

// AppMessage is a message as AppServices delivers it, in the guest's
// terms: Subject and Reply are relative to the namespace.
type AppMessage struct {
	Subject, Reply string
	Data           []byte
}

// KVEntry is a key's value at a revision; Deleted marks a deletion seen by
// a watch.
type KVEntry struct {
	Key      string
	Value    []byte
	Revision uint64
	Deleted  bool
}

// Errors of AppServices, compared with errors.Is.
var (
	// ErrNoResponders: a request found nobody subscribed to its subject.
	ErrNoResponders = errors.New("no responders")
	// ErrKVNotFound: the key is absent or deleted.
	ErrKVNotFound = errors.New("key not found")
	// ErrKVExists: a create found the key, or an update found another
	// revision.
	ErrKVExists = errors.New("key exists or revision differs")
	// ErrAppInvalid: a subject, key or value the services refuse (syntax,
	// size); nothing was done.
	ErrAppInvalid = errors.New("invalid subject, key or value")
)
