package wasm

// The host module "skiff": messaging and key-value for guests, over the
// runtime.AppServices the node agent gives each container. The ABI is
// documented in package sdk/abi; this file checks every guest argument
// against it, keeps each instance's subscriptions, watches and result slot
// (appState), and bounds all of it, so that a guest can neither crash the
// host nor make it hold more than abi's limits allow.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	skiffrt "github.com/skiffhq/skiff/runtime"
	"github.com/skiffhq/skiff/sdk/abi"
)

// appCallTimeout bounds a call that does not take the guest's timeout (a
// publish, a key-value operation): they are round trips to the control
// plane, which answers in milliseconds when it is up.
const appCallTimeout = 10 * time.Second

type appKey struct{}

// withApp gives the calls under ctx an instance's state over svc (nil: the
// functions answer StatusUnavailable). close ends its subscriptions and
// watches.
func withApp(ctx context.Context, svc skiffrt.AppServices) (context.Context, *appState) {
	st := newAppState(svc)
	return context.WithValue(ctx, appKey{}, st), st
}

// attachApp puts an existing state under ctx (a handler instance's, for
// each request).
func attachApp(ctx context.Context, st *appState) context.Context {
	if st == nil {
		return ctx
	}
	return context.WithValue(ctx, appKey{}, st)
}

// appState is one instance's view of the services. Host calls of one
// instance are serial (an instance runs one call at a time); deliveries
// come from the services' goroutines.
type appState struct {
	svc skiffrt.AppServices

	// queued counts the bytes all the instance's streams hold, bounded by
	// abi.MaxQueuedBytes together.
	queued atomic.Int64

	mu      sync.Mutex
	closed  bool
	streams map[uint32]*appStream
	nextID  uint32
	result  []byte // the result slot; nil when empty
}

func newAppState(svc skiffrt.AppServices) *appState {
	return &appState{svc: svc, streams: map[uint32]*appStream{}}
}

// close stops every subscription and watch; later calls answer
// StatusUnavailable. Safe to call more than once and on nil.
func (st *appState) close() {
	if st == nil {
		return
	}
	st.mu.Lock()
	streams := st.streams
	st.streams = nil
	st.closed = true
	st.result = nil
	st.mu.Unlock()
	for _, s := range streams {
		s.close()
	}
}

// appStream is a subscription or a watch: a bounded queue of what arrived
// and the guest has not taken yet, oldest dropped first.
type appStream struct {
	watch  bool
	total  *atomic.Int64 // the instance's queued bytes
	notify chan struct{} // signalled (not closed) when an item is queued
	stop   func()

	mu      sync.Mutex
	closed  bool
	queue   []appItem
	bytes   int
	dropped uint32
}

type appItem struct {
	msg  skiffrt.AppMessage
	ent  skiffrt.KVEntry
	size int
}

func newAppStream(watch bool, total *atomic.Int64) *appStream {
	return &appStream{watch: watch, total: total, notify: make(chan struct{}, 1)}
}

func (s *appStream) close() {
	s.mu.Lock()
	s.closed = true
	s.total.Add(-int64(s.bytes))
	s.queue, s.bytes = nil, 0
	stop := s.stop
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// push queues an item, dropping this stream's oldest past abi.MaxQueued
// items or while the instance holds more than abi.MaxQueuedBytes. It never
// blocks.
func (s *appStream) push(it appItem) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if it.size > abi.MaxQueuedBytes {
		s.dropped++
		return
	}
	s.queue = append(s.queue, it)
	s.bytes += it.size
	s.total.Add(int64(it.size))
	for len(s.queue) > 0 && (len(s.queue) > abi.MaxQueued || s.total.Load() > abi.MaxQueuedBytes) {
		s.bytes -= s.queue[0].size
		s.total.Add(-int64(s.queue[0].size))
		s.queue[0] = appItem{}
		s.queue = s.queue[1:]
		s.dropped++
	}
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// pop takes the oldest item and the drop count since the last pop.
func (s *appStream) pop() (appItem, uint32, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) == 0 {
		return appItem{}, 0, false
	}
	it := s.queue[0]
	s.queue[0] = appItem{}
	s.queue = s.queue[1:]
	if len(s.queue) == 0 {
		s.queue = nil // let the backing array go
	}
	s.bytes -= it.size
	s.total.Add(-int64(it.size))
	d := s.dropped
	s.dropped = 0
	return it, d, true
}

// next waits for an item up to timeout and the end of ctx.
func (s *appStream) next(ctx context.Context, timeout time.Duration) (appItem, uint32, bool) {
	if it, d, ok := s.pop(); ok || timeout <= 0 {
		return it, d, ok
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case <-s.notify:
			if it, d, ok := s.pop(); ok {
				return it, d, true
			}
		case <-t.C:
			return s.pop()
		case <-ctx.Done():
			return appItem{}, 0, false
		}
	}
}

// instantiateApp registers the host module on wr. Its functions find the
// calling instance's state in the call's context (withApp).
func instantiateApp(ctx context.Context, wr wazero.Runtime) error {
	i32, i64 := api.ValueTypeI32, api.ValueTypeI64
	b := wr.NewHostModuleBuilder(abi.HostModule)
	fn := func(name string, f appFunc, params []api.ValueType, names ...string) {
		b.NewFunctionBuilder().WithGoModuleFunction(appCall(f, params), params, []api.ValueType{i32}).
			WithParameterNames(names...).Export(name)
	}
	fn(abi.FuncMsgPublish, msgPublish, []api.ValueType{i32, i32, i32, i32, i32, i32},
		"subject", "subject_len", "reply", "reply_len", "data", "data_len")
	fn(abi.FuncMsgRequest, msgRequest, []api.ValueType{i32, i32, i32, i32, i32, i32},
		"subject", "subject_len", "data", "data_len", "timeout_ms", "result_len")
	fn(abi.FuncMsgSubscribe, msgSubscribe, []api.ValueType{i32, i32, i32, i32, i32},
		"subject", "subject_len", "queue", "queue_len", "id_out")
	fn(abi.FuncMsgNext, streamNext(false), []api.ValueType{i32, i32, i32}, "id", "timeout_ms", "result_len")
	fn(abi.FuncMsgUnsubscribe, streamClose(false), []api.ValueType{i32}, "id")
	fn(abi.FuncKVGet, kvGet, []api.ValueType{i32, i32, i32}, "key", "key_len", "result_len")
	fn(abi.FuncKVPut, kvWrite(kvPut), []api.ValueType{i32, i32, i32, i32, i32},
		"key", "key_len", "value", "value_len", "revision_out")
	fn(abi.FuncKVCreate, kvWrite(kvCreate), []api.ValueType{i32, i32, i32, i32, i32},
		"key", "key_len", "value", "value_len", "revision_out")
	fn(abi.FuncKVUpdate, kvWrite(kvUpdate), []api.ValueType{i32, i32, i32, i32, i64, i32},
		"key", "key_len", "value", "value_len", "revision", "revision_out")
	fn(abi.FuncKVDelete, kvDelete, []api.ValueType{i32, i32}, "key", "key_len")
	fn(abi.FuncKVWatch, kvWatch, []api.ValueType{i32, i32, i32}, "key", "key_len", "id_out")
	fn(abi.FuncKVNext, streamNext(true), []api.ValueType{i32, i32, i32}, "id", "timeout_ms", "result_len")
	fn(abi.FuncKVUnwatch, streamClose(true), []api.ValueType{i32}, "id")
	fn(abi.FuncResultRead, resultRead, []api.ValueType{i32, i32}, "buf", "buf_len")
	if _, err := b.Instantiate(ctx); err != nil {
		return fmt.Errorf("host module %s: %w", abi.HostModule, err)
	}
	return nil
}

// appFunc is a host function's body: it returns the status.
type appFunc func(ctx context.Context, st *appState, mem api.Memory, p []uint64) uint32

// appCall adapts f to wazero: it finds the instance's state, passes the
// parameters with an i32's upper bits cleared (wazero does not promise
// them) and puts the status in the result.
func appCall(f appFunc, types []api.ValueType) api.GoModuleFunc {
	return func(ctx context.Context, m api.Module, stack []uint64) {
		st, _ := ctx.Value(appKey{}).(*appState)
		if st == nil || st.svc == nil {
			stack[0] = abi.StatusUnavailable
			return
		}
		st.mu.Lock()
		closed := st.closed
		st.mu.Unlock()
		if closed {
			stack[0] = abi.StatusUnavailable
			return
		}
		var buf [8]uint64
		params := buf[:len(types)]
		for i, t := range types {
			params[i] = stack[i]
			if t == api.ValueTypeI32 {
				params[i] = uint64(uint32(stack[i]))
			}
		}
		stack[0] = uint64(f(ctx, st, m.Memory(), params))
	}
}

// view is guest memory [ptr, ptr+n), or false when it is not all inside
// memory or longer than limit. It aliases the memory: use it before the
// guest runs again.
func view(mem api.Memory, ptr, n uint64, limit int) ([]byte, bool) {
	if mem == nil || n > uint64(limit) {
		return nil, false
	}
	if n == 0 {
		return nil, true
	}
	return mem.Read(uint32(ptr), uint32(n))
}

// guestString reads a name of at most limit bytes.
func guestString(mem api.Memory, ptr, n uint64, limit int) (string, bool) {
	b, ok := view(mem, ptr, n, limit)
	return string(b), ok
}

// writable reports whether n bytes at ptr are inside memory, so a result
// can be stored after the work is done without failing then.
func writable(mem api.Memory, ptr uint64, n uint32) bool {
	if mem == nil || ptr > 0xffffffff {
		return false
	}
	return uint64(uint32(ptr))+uint64(n) <= uint64(mem.Size())
}

// status is the ABI status for an error of the services.
func status(ctx context.Context, err error) uint32 {
	switch {
	case err == nil:
		return abi.StatusOK
	case errors.Is(err, skiffrt.ErrKVNotFound):
		return abi.StatusNotFound
	case errors.Is(err, skiffrt.ErrKVExists):
		return abi.StatusExists
	case errors.Is(err, skiffrt.ErrAppInvalid):
		return abi.StatusInvalid
	case errors.Is(err, skiffrt.ErrNoResponders):
		return abi.StatusUnavailable
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		return abi.StatusTimeout
	}
	return abi.StatusError
}

// guestTimeout is the guest's timeout_ms, capped.
func guestTimeout(ms uint64) time.Duration {
	return time.Duration(min(uint32(ms), abi.MaxTimeoutMillis)) * time.Millisecond
}

// setResult fills the result slot and writes its length to *lenPtr.
func (st *appState) setResult(mem api.Memory, lenPtr uint64, b []byte) uint32 {
	st.mu.Lock()
	st.result = b
	st.mu.Unlock()
	if !mem.WriteUint32Le(uint32(lenPtr), uint32(len(b))) {
		return abi.StatusInvalid
	}
	return abi.StatusOK
}

func msgPublish(ctx context.Context, st *appState, mem api.Memory, p []uint64) uint32 {
	subject, ok1 := guestString(mem, p[0], p[1], abi.MaxSubjectLen)
	reply, ok2 := guestString(mem, p[2], p[3], abi.MaxSubjectLen)
	data, ok3 := view(mem, p[4], p[5], abi.MaxMessageSize)
	if !ok1 || !ok2 || !ok3 || abi.ValidSubject(subject, false) != nil || (reply != "" && abi.ValidSubject(reply, false) != nil) {
		return abi.StatusInvalid
	}
	ctx, cancel := context.WithTimeout(ctx, appCallTimeout)
	defer cancel()
	return status(ctx, st.svc.Publish(ctx, subject, reply, data))
}

func msgRequest(ctx context.Context, st *appState, mem api.Memory, p []uint64) uint32 {
	subject, ok1 := guestString(mem, p[0], p[1], abi.MaxSubjectLen)
	data, ok2 := view(mem, p[2], p[3], abi.MaxMessageSize)
	if !ok1 || !ok2 || abi.ValidSubject(subject, false) != nil || !writable(mem, p[5], 4) {
		return abi.StatusInvalid
	}
	timeout := guestTimeout(p[4])
	if timeout <= 0 {
		return abi.StatusTimeout
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	m, err := st.svc.Request(rctx, subject, data)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return abi.StatusTimeout
		}
		return status(ctx, err)
	}
	return st.setResult(mem, p[5], encodeMessage(m, 0))
}

func encodeMessage(m skiffrt.AppMessage, dropped uint32) []byte {
	if len(m.Data) > abi.MaxMessageSize {
		m.Data = nil // never larger than the ABI promises; the bus bounds it anyway
	}
	return abi.AppendMessage(nil, &abi.Message{Subject: m.Subject, Reply: m.Reply, Data: m.Data, Dropped: dropped})
}

// addStream registers s under a new id, or answers StatusLimit.
func (st *appState) addStream(s *appStream) (uint32, uint32) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		return 0, abi.StatusUnavailable
	}
	if len(st.streams) >= abi.MaxSubscriptions {
		return 0, abi.StatusLimit
	}
	for {
		st.nextID++
		if st.nextID == 0 {
			continue
		}
		if _, used := st.streams[st.nextID]; !used {
			break
		}
	}
	st.streams[st.nextID] = s
	return st.nextID, abi.StatusOK
}

// start registers a stream, starts it with begin and writes its id to
// *idPtr.
func (st *appState) start(ctx context.Context, mem api.Memory, idPtr uint64, watch bool,
	begin func(ctx context.Context, s *appStream) (func(), error)) uint32 {
	if !writable(mem, idPtr, 4) {
		return abi.StatusInvalid
	}
	s := newAppStream(watch, &st.queued)
	id, code := st.addStream(s)
	if code != abi.StatusOK {
		return code
	}
	ctx, cancel := context.WithTimeout(ctx, appCallTimeout)
	defer cancel()
	stop, err := begin(ctx, s)
	if err != nil {
		st.remove(id)
		return status(ctx, err)
	}
	s.mu.Lock()
	closed := s.closed
	s.stop = stop
	s.mu.Unlock()
	if closed {
		// The instance ended while subscribing: its close missed stop.
		stop()
		return abi.StatusUnavailable
	}
	mem.WriteUint32Le(uint32(idPtr), id)
	return abi.StatusOK
}

func (st *appState) remove(id uint32) *appStream {
	st.mu.Lock()
	defer st.mu.Unlock()
	s := st.streams[id]
	delete(st.streams, id)
	return s
}

func (st *appState) stream(id uint64, watch bool) *appStream {
	st.mu.Lock()
	defer st.mu.Unlock()
	if id > 0xffffffff {
		return nil
	}
	if s := st.streams[uint32(id)]; s != nil && s.watch == watch {
		return s
	}
	return nil
}

func msgSubscribe(ctx context.Context, st *appState, mem api.Memory, p []uint64) uint32 {
	subject, ok1 := guestString(mem, p[0], p[1], abi.MaxSubjectLen)
	queue, ok2 := guestString(mem, p[2], p[3], abi.MaxQueueLen)
	if !ok1 || !ok2 || abi.ValidSubject(subject, true) != nil || abi.ValidQueue(queue) != nil {
		return abi.StatusInvalid
	}
	return st.start(ctx, mem, p[4], false, func(ctx context.Context, s *appStream) (func(), error) {
		return st.svc.Subscribe(ctx, subject, queue, func(m skiffrt.AppMessage) {
			s.push(appItem{msg: m, size: len(m.Subject) + len(m.Reply) + len(m.Data)})
		})
	})
}

func kvWatch(ctx context.Context, st *appState, mem api.Memory, p []uint64) uint32 {
	pattern, ok := guestString(mem, p[0], p[1], abi.MaxKeyLen)
	if !ok || abi.ValidSubject(pattern, true) != nil {
		return abi.StatusInvalid
	}
	return st.start(ctx, mem, p[2], true, func(ctx context.Context, s *appStream) (func(), error) {
		return st.svc.KVWatch(ctx, pattern, func(e skiffrt.KVEntry) {
			s.push(appItem{ent: e, size: len(e.Key) + len(e.Value) + 16})
		})
	})
}

func streamNext(watch bool) appFunc {
	return func(ctx context.Context, st *appState, mem api.Memory, p []uint64) uint32 {
		s := st.stream(p[0], watch)
		if s == nil {
			return abi.StatusBadID
		}
		if !writable(mem, p[2], 4) {
			return abi.StatusInvalid
		}
		it, dropped, ok := s.next(ctx, guestTimeout(p[1]))
		if !ok {
			return abi.StatusTimeout
		}
		if watch {
			e := it.ent
			return st.setResult(mem, p[2], abi.AppendEntry(nil, &abi.Entry{Key: e.Key, Value: e.Value,
				Revision: e.Revision, Deleted: e.Deleted, Dropped: dropped}))
		}
		return st.setResult(mem, p[2], encodeMessage(it.msg, dropped))
	}
}

func streamClose(watch bool) appFunc {
	return func(_ context.Context, st *appState, _ api.Memory, p []uint64) uint32 {
		if st.stream(p[0], watch) == nil {
			return abi.StatusBadID
		}
		if s := st.remove(uint32(p[0])); s != nil {
			s.close()
		}
		return abi.StatusOK
	}
}

func resultRead(_ context.Context, st *appState, mem api.Memory, p []uint64) uint32 {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.result == nil || p[1] != uint64(len(st.result)) {
		return abi.StatusInvalid
	}
	if len(st.result) > 0 && !mem.Write(uint32(p[0]), st.result) {
		return abi.StatusInvalid
	}
	st.result = nil
	return abi.StatusOK
}

func kvKey(mem api.Memory, ptr, n uint64) (string, bool) {
	k, ok := guestString(mem, ptr, n, abi.MaxKeyLen)
	return k, ok && abi.ValidKey(k) == nil
}

func kvGet(ctx context.Context, st *appState, mem api.Memory, p []uint64) uint32 {
	key, ok := kvKey(mem, p[0], p[1])
	if !ok || !writable(mem, p[2], 4) {
		return abi.StatusInvalid
	}
	ctx, cancel := context.WithTimeout(ctx, appCallTimeout)
	defer cancel()
	e, err := st.svc.KVGet(ctx, key)
	if err != nil {
		return status(ctx, err)
	}
	if len(e.Value) > abi.MaxValueSize {
		return abi.StatusError
	}
	return st.setResult(mem, p[2], abi.AppendEntry(nil, &abi.Entry{Key: key, Value: e.Value, Revision: e.Revision}))
}

type kvOp int

const (
	kvPut kvOp = iota
	kvCreate
	kvUpdate
)

func kvWrite(op kvOp) appFunc {
	return func(ctx context.Context, st *appState, mem api.Memory, p []uint64) uint32 {
		key, ok1 := kvKey(mem, p[0], p[1])
		value, ok2 := view(mem, p[2], p[3], abi.MaxValueSize)
		revPtr := p[4]
		if op == kvUpdate {
			revPtr = p[5]
		}
		if !ok1 || !ok2 || !writable(mem, revPtr, 8) {
			return abi.StatusInvalid
		}
		ctx, cancel := context.WithTimeout(ctx, appCallTimeout)
		defer cancel()
		var rev uint64
		var err error
		switch op {
		case kvPut:
			rev, err = st.svc.KVPut(ctx, key, value)
		case kvCreate:
			rev, err = st.svc.KVCreate(ctx, key, value)
		case kvUpdate:
			rev, err = st.svc.KVUpdate(ctx, key, value, p[4])
		}
		if err != nil {
			return status(ctx, err)
		}
		mem.WriteUint64Le(uint32(revPtr), rev)
		return abi.StatusOK
	}
}

func kvDelete(ctx context.Context, st *appState, mem api.Memory, p []uint64) uint32 {
	key, ok := kvKey(mem, p[0], p[1])
	if !ok {
		return abi.StatusInvalid
	}
	ctx, cancel := context.WithTimeout(ctx, appCallTimeout)
	defer cancel()
	return status(ctx, st.svc.KVDelete(ctx, key))
}
