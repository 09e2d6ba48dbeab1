package raft

import (
	"hash/fnv"
	"strings"
	"sync"

	"github.com/google/btree"
)

// version is one state of a key. Versions are kept while a watch or a paged
// list could still ask for them: until the event that superseded them leaves
// the history window.
type version struct {
	value     []byte
	createRev int64
	modRev    int64
	deleted   bool
}

// keyHist holds a key's versions in increasing modRev order. The last one is
// the current state (a tombstone if the key is deleted).
type keyHist struct {
	key      string
	versions []version
}

func (h *keyHist) current() version { return h.versions[len(h.versions)-1] }

// at returns the key's state at revision rev.
func (h *keyHist) at(rev int64) (version, bool) {
	for i := len(h.versions) - 1; i >= 0; i-- {
		if v := h.versions[i]; v.modRev <= rev {
			return v, !v.deleted
		}
	}
	return version{}, false
}

func (v version) kv(key string) KeyValue {
	return KeyValue{Key: key, Value: v.value, CreateRev: v.createRev, ModRev: v.modRev}
}

func lessHist(a, b *keyHist) bool { return a.key < b.key }

// index is the FSM's state: the ordered key space with MVCC history, the event
// window and the watchers fed from it. Writes happen on raft's FSM goroutine
// under mu; reads take mu for reading.
type index struct {
	mu sync.RWMutex

	tree *btree.BTreeG[*keyHist]
	rev  int64
	// compactRev: history for revisions <= compactRev is gone. Watches and
	// reads may start at compactRev or later.
	compactRev int64
	live       int // keys that exist now

	// ring holds the events for revisions (compactRev, rev], oldest at head.
	ring     []Event
	head, n  int
	watchers map[*Watcher]struct{}
	// applied is the raft log index of the last entry applied.
	applied uint64

	appliedMu   sync.Mutex
	appliedWait []appliedWaiter
}

type appliedWaiter struct {
	index uint64
	ch    chan struct{}
}

func newIndex(historySize int) *index {
	if historySize < 1 {
		historySize = 1
	}
	return &index{
		tree:     btree.NewG(32, lessHist),
		ring:     make([]Event, historySize),
		watchers: map[*Watcher]struct{}{},
	}
}

// applyOps applies one raft entry's writes. Revisions are assigned here, one per
// successful write, in entry order: the same on every server.
func (x *index) applyOps(logIndex uint64, ops []op) []result {
	x.mu.Lock()
	rs := make([]result, len(ops))
	for i, o := range ops {
		rs[i] = x.applyOne(o)
	}
	x.applied = logIndex
	x.mu.Unlock()
	x.notifyApplied(logIndex)
	return rs
}

func (x *index) applyOne(o op) result {
	if o.key == "" {
		return result{err: ErrInvalid}
	}
	h, found := x.tree.Get(&keyHist{key: o.key})
	exists := found && !h.current().deleted
	var cur KeyValue
	if exists {
		cur = h.current().kv(o.key)
	}
	switch o.typ {
	case opCreate:
		if exists {
			return result{kv: cur, err: ErrKeyExists}
		}
	case opUpdate, opDelete:
		if !exists {
			return result{err: ErrNotFound}
		}
		if o.expectRev != 0 && o.expectRev != cur.ModRev {
			return result{kv: cur, err: ErrConflict}
		}
	default:
		return result{err: ErrInvalid}
	}

	x.rev++
	v := version{value: o.value, createRev: x.rev, modRev: x.rev}
	ev := Event{Type: Put, Created: !exists, PrevKV: cur}
	switch o.typ {
	case opUpdate:
		v.createRev = cur.CreateRev
	case opDelete:
		v = version{value: cur.Value, createRev: cur.CreateRev, modRev: x.rev, deleted: true}
		ev.Type = Deleted
	}
	if !found {
		h = &keyHist{key: o.key}
		x.tree.ReplaceOrInsert(h)
	}
	h.versions = append(h.versions, v)
	switch {
	case !exists:
		x.live++
	case v.deleted:
		x.live--
	}
	ev.KV = v.kv(o.key)
	x.record(ev)
	return result{kv: ev.KV}
}

// record appends an event to the history window, evicting (compacting) the
// oldest one when full, and hands it to the watchers.
func (x *index) record(ev Event) {
	if x.n == len(x.ring) {
		old := x.ring[x.head]
		x.ring[x.head] = Event{}
		x.head = (x.head + 1) % len(x.ring)
		x.n--
		x.compactRev = old.Rev()
		x.compactKey(old.KV.Key)
	}
	x.ring[(x.head+x.n)%len(x.ring)] = ev
	x.n++
	for w := range x.watchers {
		if strings.HasPrefix(ev.KV.Key, w.prefix) {
			w.push(ev)
		}
	}
}

// compactKey drops the versions of key that no revision >= compactRev can see.
// Each version's event passes through here when it leaves the window, so every
// superseded version is dropped exactly when it becomes unreachable.
func (x *index) compactKey(key string) {
	h, ok := x.tree.Get(&keyHist{key: key})
	if !ok {
		return
	}
	keep := 0
	for i, v := range h.versions {
		if v.modRev <= x.compactRev {
			keep = i
		}
	}
	if keep > 0 {
		h.versions = append(h.versions[:0:0], h.versions[keep:]...)
	}
	if len(h.versions) == 1 && h.versions[0].deleted && h.versions[0].modRev <= x.compactRev {
		x.tree.Delete(h)
	}
}

// checkRev validates a read revision (0 means current) under mu.
func (x *index) checkRev(rev int64) (int64, error) {
	switch {
	case rev == 0:
		return x.rev, nil
	case rev < x.compactRev:
		return 0, ErrCompacted
	case rev > x.rev:
		return 0, ErrFutureRevision
	}
	return rev, nil
}

func (x *index) get(key string, rev int64) (KeyValue, int64, error) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	rev, err := x.checkRev(rev)
	if err != nil {
		return KeyValue{}, 0, err
	}
	h, ok := x.tree.Get(&keyHist{key: key})
	if !ok {
		return KeyValue{}, rev, ErrNotFound
	}
	v, ok := h.at(rev)
	if !ok {
		return KeyValue{}, rev, ErrNotFound
	}
	return v.kv(key), rev, nil
}

// list returns up to limit keys with prefix, starting at startKey, as of rev.
func (x *index) list(prefix, startKey string, rev int64, limit int) (ListResult, error) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	rev, err := x.checkRev(rev)
	if err != nil {
		return ListResult{}, err
	}
	if startKey < prefix {
		startKey = prefix
	}
	res := ListResult{Rev: rev}
	x.tree.AscendGreaterOrEqual(&keyHist{key: startKey}, func(h *keyHist) bool {
		if !strings.HasPrefix(h.key, prefix) {
			return false
		}
		v, ok := h.at(rev)
		if !ok {
			return true
		}
		if limit > 0 && len(res.KVs) == limit {
			res.More = true
			res.NextKey = h.key
			return false
		}
		res.KVs = append(res.KVs, v.kv(h.key))
		return true
	})
	return res, nil
}

// count returns the number of keys with prefix that exist now.
func (x *index) count(prefix string) int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	n := 0
	x.tree.AscendGreaterOrEqual(&keyHist{key: prefix}, func(h *keyHist) bool {
		if !strings.HasPrefix(h.key, prefix) {
			return false
		}
		if !h.current().deleted {
			n++
		}
		return true
	})
	return n
}

// register adds a watcher that receives every event with revision > from,
// first from the history window, then live. Both happen under mu, so no event
// falls between replay and registration.
func (x *index) register(w *Watcher, from int64) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if from == 0 {
		from = x.rev
	}
	if from < x.compactRev {
		return ErrCompacted
	}
	if from > x.rev {
		return ErrFutureRevision
	}
	for i := 0; i < x.n; i++ {
		ev := x.ring[(x.head+i)%len(x.ring)]
		if ev.Rev() > from && strings.HasPrefix(ev.KV.Key, w.prefix) {
			w.push(ev)
		}
	}
	x.watchers[w] = struct{}{}
	return nil
}

func (x *index) unregister(w *Watcher) {
	x.mu.Lock()
	delete(x.watchers, w)
	x.mu.Unlock()
}

// snapshotState copies the live keys for a snapshot. Values are shared, not
// copied: a value is never mutated after it is applied.
func (x *index) snapshotState() (rev int64, applied uint64, kvs []KeyValue) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	kvs = make([]KeyValue, 0, x.live)
	x.tree.Ascend(func(h *keyHist) bool {
		if v := h.current(); !v.deleted {
			kvs = append(kvs, v.kv(h.key))
		}
		return true
	})
	return x.rev, x.applied, kvs
}

// restore replaces the whole state. The history is gone: watchers on this
// server are closed with ErrCompacted and must watch again.
func (x *index) restore(rev int64, applied uint64, kvs []KeyValue) {
	tree := btree.NewG(32, lessHist)
	for _, kv := range kvs {
		tree.ReplaceOrInsert(&keyHist{key: kv.Key, versions: []version{{value: kv.Value, createRev: kv.CreateRev, modRev: kv.ModRev}}})
	}
	x.mu.Lock()
	x.tree, x.rev, x.compactRev, x.live, x.applied = tree, rev, rev, len(kvs), applied
	clear(x.ring)
	x.head, x.n = 0, 0
	ws := x.watchers
	x.watchers = map[*Watcher]struct{}{}
	x.mu.Unlock()
	for w := range ws {
		w.fail(ErrCompacted)
	}
	x.notifyApplied(applied)
}

func (x *index) closeWatchers(err error) {
	x.mu.Lock()
	ws := x.watchers
	x.watchers = map[*Watcher]struct{}{}
	x.mu.Unlock()
	for w := range ws {
		w.fail(err)
	}
}

// hash is a digest of the current state and revision, equal on servers that
// applied the same log.
func (x *index) hash() (uint64, int64) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	h := fnv.New64a()
	var e encoder
	x.tree.Ascend(func(kh *keyHist) bool {
		if v := kh.current(); !v.deleted {
			e.buf = e.buf[:0]
			e.kv(v.kv(kh.key))
			h.Write(e.buf)
		}
		return true
	})
	e.buf = e.buf[:0]
	e.varint(x.rev)
	h.Write(e.buf)
	return h.Sum64(), x.rev
}

func (x *index) stats() (rev, compactRev int64, live int, applied uint64) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.rev, x.compactRev, x.live, x.applied
}

// waitApplied returns a channel closed once the FSM has applied log index i.
func (x *index) waitApplied(i uint64) <-chan struct{} {
	ch := make(chan struct{})
	x.appliedMu.Lock()
	defer x.appliedMu.Unlock()
	x.mu.RLock()
	done := x.applied >= i
	x.mu.RUnlock()
	if done {
		close(ch)
		return ch
	}
	x.appliedWait = append(x.appliedWait, appliedWaiter{index: i, ch: ch})
	return ch
}

func (x *index) notifyApplied(i uint64) {
	x.appliedMu.Lock()
	defer x.appliedMu.Unlock()
	kept := x.appliedWait[:0]
	for _, w := range x.appliedWait {
		if w.index <= i {
			close(w.ch)
		} else {
			kept = append(kept, w)
		}
	}
	clear(x.appliedWait[len(kept):])
	x.appliedWait = kept
}
