// Package memapp is an in-process implementation of runtime.AppServices:
// messaging and a key-value store held in memory, one namespace apart from
// another as the engine's are. It lets a program that embeds runtime/wasm
// alone, and tests, give guests messaging and key-value without a bus.
// Nothing is persisted.
package memapp

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"

	skiffrt "github.com/skiffhq/skiff/runtime"
	"github.com/skiffhq/skiff/sdk/abi"
)

// Broker holds every namespace's subscriptions and store. Safe for
// concurrent use.
type Broker struct {
	// MaxBytes bounds the values stored in one namespace together; 0 means
	// 64 MiB. A write past it fails with runtime.ErrAppInvalid.
	MaxBytes int

	mu      sync.Mutex
	subs    map[int]*sub
	nextSub int
	nextRep int
	stores  map[string]*store
}

type sub struct {
	ns, pattern, queue string
	deliver            func(skiffrt.AppMessage)
	watch              func(skiffrt.KVEntry)
}

type store struct {
	rev   uint64
	bytes int
	keys  map[string]skiffrt.KVEntry
}

// New returns an empty Broker.
func New() *Broker { return &Broker{subs: map[int]*sub{}, stores: map[string]*store{}} }

// Namespace returns the services of one namespace.
func (b *Broker) Namespace(ns string) skiffrt.AppServices { return &services{b: b, ns: ns} }

type services struct {
	b  *Broker
	ns string
}

func invalid(err error) error { return fmt.Errorf("%w: %w", skiffrt.ErrAppInvalid, err) }

// match reports whether subject matches pattern ("*" one token, ">" the
// rest).
func match(pattern, subject string) bool {
	p, s := strings.Split(pattern, "."), strings.Split(subject, ".")
	for i, t := range p {
		if t == ">" {
			return len(s) > i
		}
		if i >= len(s) || (t != "*" && t != s[i]) {
			return false
		}
	}
	return len(p) == len(s)
}

func (s *services) Publish(ctx context.Context, subject, reply string, data []byte) error {
	if err := abi.ValidSubject(subject, false); err != nil {
		return invalid(err)
	}
	if len(data) > abi.MaxMessageSize {
		return invalid(fmt.Errorf("message of %d bytes", len(data)))
	}
	s.publish(subject, reply, data)
	return nil
}

// publish delivers to every plain subscriber that matches and to one
// member of each queue; it reports whether anyone got the message.
func (s *services) publish(subject, reply string, data []byte) bool {
	s.b.mu.Lock()
	var targets []func(skiffrt.AppMessage)
	queues := map[string]bool{}
	for _, id := range sortedIDs(s.b.subs) {
		su := s.b.subs[id]
		if su.deliver == nil || su.ns != s.ns || !match(su.pattern, subject) {
			continue
		}
		if su.queue != "" {
			if queues[su.queue] {
				continue
			}
			queues[su.queue] = true
		}
		targets = append(targets, su.deliver)
	}
	s.b.mu.Unlock()
	for _, d := range targets {
		d(skiffrt.AppMessage{Subject: subject, Reply: reply, Data: append([]byte(nil), data...)})
	}
	return len(targets) > 0
}

func sortedIDs(m map[int]*sub) []int {
	return slices.Sorted(maps.Keys(m))
}

func (s *services) Request(ctx context.Context, subject string, data []byte) (skiffrt.AppMessage, error) {
	if err := abi.ValidSubject(subject, false); err != nil {
		return skiffrt.AppMessage{}, invalid(err)
	}
	s.b.mu.Lock()
	s.b.nextRep++
	reply := "_reply." + strconv.Itoa(s.b.nextRep)
	s.b.mu.Unlock()
	got := make(chan skiffrt.AppMessage, 1)
	stop, err := s.Subscribe(ctx, reply, "", func(m skiffrt.AppMessage) {
		select {
		case got <- m:
		default:
		}
	})
	if err != nil {
		return skiffrt.AppMessage{}, err
	}
	defer stop()
	if !s.publish(subject, reply, data) {
		return skiffrt.AppMessage{}, fmt.Errorf("request %s: %w", subject, skiffrt.ErrNoResponders)
	}
	select {
	case m := <-got:
		return m, nil
	case <-ctx.Done():
		return skiffrt.AppMessage{}, fmt.Errorf("request %s: %w", subject, ctx.Err())
	}
}

func (s *services) add(su *sub) func() {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	s.b.nextSub++
	id := s.b.nextSub
	s.b.subs[id] = su
	return func() {
		s.b.mu.Lock()
		defer s.b.mu.Unlock()
		delete(s.b.subs, id)
	}
}

func (s *services) Subscribe(ctx context.Context, subject, queue string, deliver func(skiffrt.AppMessage)) (func(), error) {
	if err := abi.ValidSubject(subject, true); err != nil {
		return nil, invalid(err)
	}
	if err := abi.ValidQueue(queue); err != nil {
		return nil, invalid(err)
	}
	return s.add(&sub{ns: s.ns, pattern: subject, queue: queue, deliver: deliver}), nil
}

func (s *services) store() *store {
	st := s.b.stores[s.ns]
	if st == nil {
		st = &store{keys: map[string]skiffrt.KVEntry{}}
		s.b.stores[s.ns] = st
	}
	return st
}

func (s *services) KVGet(ctx context.Context, key string) (skiffrt.KVEntry, error) {
	if err := abi.ValidKey(key); err != nil {
		return skiffrt.KVEntry{}, invalid(err)
	}
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	e, ok := s.store().keys[key]
	if !ok || e.Deleted {
		return skiffrt.KVEntry{}, fmt.Errorf("get %s: %w", key, skiffrt.ErrKVNotFound)
	}
	e.Value = append([]byte(nil), e.Value...)
	return e, nil
}

// write stores key when check allows it and tells the watchers.
func (s *services) write(key string, value []byte, deleted bool, check func(old skiffrt.KVEntry, ok bool) error) (uint64, error) {
	if err := abi.ValidKey(key); err != nil {
		return 0, invalid(err)
	}
	if len(value) > abi.MaxValueSize {
		return 0, invalid(fmt.Errorf("value of %d bytes", len(value)))
	}
	s.b.mu.Lock()
	st := s.store()
	old, ok := st.keys[key]
	if err := check(old, ok && !old.Deleted); err != nil {
		s.b.mu.Unlock()
		return 0, err
	}
	limit := s.b.MaxBytes
	if limit == 0 {
		limit = 64 << 20
	}
	if st.bytes-len(old.Value)+len(value) > limit {
		s.b.mu.Unlock()
		return 0, invalid(fmt.Errorf("namespace %s's store is full (%d bytes)", s.ns, limit))
	}
	st.rev++
	e := skiffrt.KVEntry{Key: key, Value: append([]byte(nil), value...), Revision: st.rev, Deleted: deleted}
	st.bytes += len(e.Value) - len(old.Value)
	st.keys[key] = e
	var watchers []func(skiffrt.KVEntry)
	for _, id := range sortedIDs(s.b.subs) {
		if su := s.b.subs[id]; su.watch != nil && su.ns == s.ns && match(su.pattern, key) {
			watchers = append(watchers, su.watch)
		}
	}
	s.b.mu.Unlock()
	for _, w := range watchers {
		w(e)
	}
	return e.Revision, nil
}

func (s *services) KVPut(ctx context.Context, key string, value []byte) (uint64, error) {
	return s.write(key, value, false, func(skiffrt.KVEntry, bool) error { return nil })
}

func (s *services) KVCreate(ctx context.Context, key string, value []byte) (uint64, error) {
	return s.write(key, value, false, func(_ skiffrt.KVEntry, ok bool) error {
		if ok {
			return fmt.Errorf("create %s: %w", key, skiffrt.ErrKVExists)
		}
		return nil
	})
}

func (s *services) KVUpdate(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	return s.write(key, value, false, func(old skiffrt.KVEntry, ok bool) error {
		if old.Revision != rev {
			return fmt.Errorf("update %s at revision %d: %w", key, rev, skiffrt.ErrKVExists)
		}
		return nil
	})
}

func (s *services) KVDelete(ctx context.Context, key string) error {
	_, err := s.write(key, nil, true, func(skiffrt.KVEntry, bool) error { return nil })
	return err
}

func (s *services) KVWatch(ctx context.Context, pattern string, deliver func(skiffrt.KVEntry)) (func(), error) {
	if err := abi.ValidSubject(pattern, true); err != nil {
		return nil, invalid(err)
	}
	return s.add(&sub{ns: s.ns, pattern: pattern, watch: deliver}), nil
}
