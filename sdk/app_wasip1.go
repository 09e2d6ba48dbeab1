//go:build wasip1

package sdk

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"
	"unsafe"

	"github.com/skiffhq/skiff/sdk/abi"
)

// The host functions of package abi's "skiff" module.

//go:wasmimport skiff skiff_msg_publish
func hostMsgPublish(subject unsafe.Pointer, subjectLen uint32, reply unsafe.Pointer, replyLen uint32, data unsafe.Pointer, dataLen uint32) uint32

//go:wasmimport skiff skiff_msg_request
func hostMsgRequest(subject unsafe.Pointer, subjectLen uint32, data unsafe.Pointer, dataLen uint32, timeoutMillis uint32, resultLen *uint32) uint32

//go:wasmimport skiff skiff_msg_subscribe
func hostMsgSubscribe(subject unsafe.Pointer, subjectLen uint32, queue unsafe.Pointer, queueLen uint32, id *uint32) uint32

//go:wasmimport skiff skiff_msg_next
func hostMsgNext(id uint32, timeoutMillis uint32, resultLen *uint32) uint32

//go:wasmimport skiff skiff_msg_unsubscribe
func hostMsgUnsubscribe(id uint32) uint32

//go:wasmimport skiff skiff_kv_get
func hostKVGet(key unsafe.Pointer, keyLen uint32, resultLen *uint32) uint32

//go:wasmimport skiff skiff_kv_put
func hostKVPut(key unsafe.Pointer, keyLen uint32, value unsafe.Pointer, valueLen uint32, revision *uint64) uint32

//go:wasmimport skiff skiff_kv_create
func hostKVCreate(key unsafe.Pointer, keyLen uint32, value unsafe.Pointer, valueLen uint32, revision *uint64) uint32

//go:wasmimport skiff skiff_kv_update
func hostKVUpdate(key unsafe.Pointer, keyLen uint32, value unsafe.Pointer, valueLen uint32, last uint64, revision *uint64) uint32

//go:wasmimport skiff skiff_kv_delete
func hostKVDelete(key unsafe.Pointer, keyLen uint32) uint32

//go:wasmimport skiff skiff_kv_watch
func hostKVWatch(pattern unsafe.Pointer, patternLen uint32, id *uint32) uint32

//go:wasmimport skiff skiff_kv_next
func hostKVNext(id uint32, timeoutMillis uint32, resultLen *uint32) uint32

//go:wasmimport skiff skiff_kv_unwatch
func hostKVUnwatch(id uint32) uint32

//go:wasmimport skiff skiff_result_read
func hostResultRead(buf unsafe.Pointer, bufLen uint32) uint32

// Errors of the messaging and key-value functions, compared with errors.Is.
var (
	// ErrInvalid: a subject, key or value the host refuses (see package
	// abi's syntax and limits).
	ErrInvalid = errors.New("sdk: invalid subject, key or value")
	// ErrNotFound: the key is absent or deleted.
	ErrNotFound = errors.New("sdk: key not found")
	// ErrExists: Create found the key, or Update found another revision.
	ErrExists = errors.New("sdk: key exists or its revision changed")
	// ErrTimeout: nothing arrived before the context's deadline.
	ErrTimeout = errors.New("sdk: timed out")
	// ErrLimit: too many subscriptions and watches at once.
	ErrLimit = errors.New("sdk: too many subscriptions")
	// ErrUnavailable: the node offers no messaging or key-value, or nobody
	// answered a request.
	ErrUnavailable = errors.New("sdk: unavailable")
	// ErrClosed: the subscription or watch was stopped.
	ErrClosed = errors.New("sdk: subscription closed")
)

func statusError(op string, st uint32) error {
	var err error
	switch st {
	case abi.StatusOK:
		return nil
	case abi.StatusInvalid:
		err = ErrInvalid
	case abi.StatusNotFound:
		err = ErrNotFound
	case abi.StatusExists:
		err = ErrExists
	case abi.StatusTimeout:
		err = ErrTimeout
	case abi.StatusLimit:
		err = ErrLimit
	case abi.StatusUnavailable:
		err = ErrUnavailable
	case abi.StatusBadID:
		err = ErrClosed
	default:
		err = fmt.Errorf("sdk: host error (status %d)", st)
	}
	return fmt.Errorf("%s: %w", op, err)
}

func strPtr(s string) unsafe.Pointer   { return unsafe.Pointer(unsafe.StringData(s)) }
func bytesPtr(b []byte) unsafe.Pointer { return unsafe.Pointer(unsafe.SliceData(b)) }

// takeResult copies the host's result slot out.
func takeResult(op string, n uint32) ([]byte, error) {
	buf := make([]byte, n)
	if st := hostResultRead(bytesPtr(buf), n); st != abi.StatusOK {
		return nil, statusError(op, st)
	}
	return buf, nil
}

// DefaultRequestTimeout bounds Request when its context has no deadline.
const DefaultRequestTimeout = 10 * time.Second

// waitSlice is the longest a Next blocks the program in one host call:
// while the host waits, no goroutine of a wasip1 program runs, so a long
// wait is cut into slices with the scheduler in between.
const waitSlice = 50 * time.Millisecond

func millis(d time.Duration) uint32 {
	if d <= 0 {
		return 0
	}
	return uint32(min((d+time.Millisecond-1)/time.Millisecond, abi.MaxTimeoutMillis))
}

// Message is a message received on a subscription or the answer to a
// Request. Subject and Reply are the namespace's own subjects.
type Message struct {
	Subject string
	Reply   string
	Data    []byte
	// Dropped is how many older messages of the subscription were dropped
	// before this one because the program did not take them in time.
	Dropped int
}

// Respond publishes data to the message's reply subject: the answer to a
// Request.
func (m *Message) Respond(data []byte) error {
	if m.Reply == "" {
		return fmt.Errorf("sdk: respond to %s: %w: the message has no reply subject", m.Subject, ErrInvalid)
	}
	return PublishReply(m.Reply, "", data)
}

func decodeMessage(op string, n uint32) (*Message, error) {
	b, err := takeResult(op, n)
	if err != nil {
		return nil, err
	}
	am, err := abi.DecodeMessage(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return &Message{Subject: am.Subject, Reply: am.Reply, Data: am.Data, Dropped: int(am.Dropped)}, nil
}

// Publish sends data to subject, a subject of the pod's namespace
// ("orders.new"), on the cluster's bus: every subscriber of the namespace
// that matches gets it, at most once.
func Publish(subject string, data []byte) error { return PublishReply(subject, "", data) }

// PublishReply is Publish with a reply subject the receivers answer to.
func PublishReply(subject, reply string, data []byte) error {
	st := hostMsgPublish(strPtr(subject), uint32(len(subject)), strPtr(reply), uint32(len(reply)),
		bytesPtr(data), uint32(len(data)))
	return statusError("sdk: publish "+subject, st)
}

// Request publishes data to subject and waits for the first answer, until
// ctx's deadline (DefaultRequestTimeout without one). The program does not
// run while it waits. Nobody subscribed: ErrUnavailable.
func Request(ctx context.Context, subject string, data []byte) ([]byte, error) {
	m, err := RequestMsg(ctx, subject, data)
	if err != nil {
		return nil, err
	}
	return m.Data, nil
}

// RequestMsg is Request returning the whole answer.
func RequestMsg(ctx context.Context, subject string, data []byte) (*Message, error) {
	op := "sdk: request " + subject
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	timeout := DefaultRequestTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	var n uint32
	st := hostMsgRequest(strPtr(subject), uint32(len(subject)), bytesPtr(data), uint32(len(data)), millis(timeout), &n)
	if st != abi.StatusOK {
		return nil, statusError(op, st)
	}
	return decodeMessage(op, n)
}

// Subscription receives the messages of a subject (with wildcards: "*" for
// one token, ">" for the rest) of the pod's namespace. The host keeps what
// arrives until Next takes it, up to package abi's bounds, dropping the
// oldest past them.
type Subscription struct {
	id      uint32
	subject string
}

// Subscribe subscribes to subject.
func Subscribe(subject string) (*Subscription, error) { return QueueSubscribe(subject, "") }

// QueueSubscribe subscribes to subject in a queue group: each message goes
// to one subscriber of the queue (the replicas of a Deployment share the
// work).
func QueueSubscribe(subject, queue string) (*Subscription, error) {
	var id uint32
	st := hostMsgSubscribe(strPtr(subject), uint32(len(subject)), strPtr(queue), uint32(len(queue)), &id)
	if st != abi.StatusOK {
		return nil, statusError("sdk: subscribe "+subject, st)
	}
	return &Subscription{id: id, subject: subject}, nil
}

// Next returns the next message, waiting until one arrives or ctx ends
// (ErrTimeout at its deadline, ctx's error when cancelled). It waits in
// short slices, so the program's other goroutines still run.
func (s *Subscription) Next(ctx context.Context) (*Message, error) {
	op := "sdk: next on " + s.subject
	var n uint32
	err := wait(ctx, op, func(ms uint32) uint32 { return hostMsgNext(s.id, ms, &n) })
	if err != nil {
		return nil, err
	}
	return decodeMessage(op, n)
}

// Unsubscribe ends the subscription; messages not taken are dropped.
func (s *Subscription) Unsubscribe() error {
	return statusError("sdk: unsubscribe "+s.subject, hostMsgUnsubscribe(s.id))
}

// wait calls next with slices of ctx's time until it answers something
// other than StatusTimeout.
func wait(ctx context.Context, op string, next func(ms uint32) uint32) error {
	for {
		if err := ctx.Err(); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("%s: %w", op, ErrTimeout)
			}
			return fmt.Errorf("%s: %w", op, err)
		}
		slice := waitSlice
		if d, ok := ctx.Deadline(); ok {
			slice = min(slice, time.Until(d))
		}
		st := next(millis(slice))
		if st != abi.StatusTimeout {
			return statusError(op, st)
		}
		// Let the goroutines the wait held up run.
		runtime.Gosched()
	}
}

// KeyValue is the pod's namespace's key-value store, shared by its pods.
type KeyValue struct{}

// KV returns the namespace's key-value store.
func KV() KeyValue { return KeyValue{} }

// Entry is a key's value at a revision.
type Entry struct {
	Key      string
	Value    []byte
	Revision uint64
	// Deleted marks a deletion a Watcher saw.
	Deleted bool
	// Dropped is how many older changes a Watcher dropped before this one.
	Dropped int
}

func decodeEntry(op string, n uint32) (Entry, error) {
	b, err := takeResult(op, n)
	if err != nil {
		return Entry{}, err
	}
	e, err := abi.DecodeEntry(b)
	if err != nil {
		return Entry{}, fmt.Errorf("%s: %w", op, err)
	}
	return Entry{Key: e.Key, Value: e.Value, Revision: e.Revision, Deleted: e.Deleted, Dropped: int(e.Dropped)}, nil
}

// Get reads key: ErrNotFound when it is absent or deleted.
func (KeyValue) Get(key string) (Entry, error) {
	op := "sdk: kv get " + key
	var n uint32
	if st := hostKVGet(strPtr(key), uint32(len(key)), &n); st != abi.StatusOK {
		return Entry{}, statusError(op, st)
	}
	return decodeEntry(op, n)
}

// Put writes key and returns its new revision.
func (KeyValue) Put(key string, value []byte) (uint64, error) {
	var rev uint64
	st := hostKVPut(strPtr(key), uint32(len(key)), bytesPtr(value), uint32(len(value)), &rev)
	return rev, statusError("sdk: kv put "+key, st)
}

// Create writes key only if it is absent or deleted: ErrExists otherwise.
func (KeyValue) Create(key string, value []byte) (uint64, error) {
	var rev uint64
	st := hostKVCreate(strPtr(key), uint32(len(key)), bytesPtr(value), uint32(len(value)), &rev)
	return rev, statusError("sdk: kv create "+key, st)
}

// Update writes key only if its revision is still last (compare-and-set):
// ErrExists when another write came first; read again and retry.
func (KeyValue) Update(key string, value []byte, last uint64) (uint64, error) {
	var rev uint64
	st := hostKVUpdate(strPtr(key), uint32(len(key)), bytesPtr(value), uint32(len(value)), last, &rev)
	return rev, statusError("sdk: kv update "+key, st)
}

// Delete deletes key; deleting an absent key is not an error.
func (KeyValue) Delete(key string) error {
	return statusError("sdk: kv delete "+key, hostKVDelete(strPtr(key), uint32(len(key))))
}

// Watcher receives the changes of the keys a pattern matches.
type Watcher struct {
	id      uint32
	pattern string
}

// Watch watches the keys pattern matches (a key, or with "*" and ">" over
// its dot-separated parts) from now on: it does not replay current values,
// so Watch first and Get second.
func (KeyValue) Watch(pattern string) (*Watcher, error) {
	var id uint32
	if st := hostKVWatch(strPtr(pattern), uint32(len(pattern)), &id); st != abi.StatusOK {
		return nil, statusError("sdk: kv watch "+pattern, st)
	}
	return &Watcher{id: id, pattern: pattern}, nil
}

// Next returns the next change, waiting as Subscription.Next does.
func (w *Watcher) Next(ctx context.Context) (Entry, error) {
	op := "sdk: kv watch " + w.pattern
	var n uint32
	if err := wait(ctx, op, func(ms uint32) uint32 { return hostKVNext(w.id, ms, &n) }); err != nil {
		return Entry{}, err
	}
	return decodeEntry(op, n)
}

// Stop ends the watch.
func (w *Watcher) Stop() error {
	return statusError("sdk: kv unwatch "+w.pattern, hostKVUnwatch(w.id))
}
