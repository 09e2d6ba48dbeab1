package controller

import (
	"sync"
	"time"
)

// ExpectationsTimeout bounds how long a controller waits to observe its own
// creations and deletions before acting again anyway: a watch event can be
// lost (a relist only replays the final state), and a controller stuck
// forever on one would never repair its object.
const ExpectationsTimeout = 5 * time.Minute

// Expectations remembers, per controller key, the pod creations and
// deletions a controller has issued but not yet seen in its informer.
// Until they are seen the cache is known to be stale, and acting on it
// would create or delete twice. Safe for concurrent use.
type Expectations struct {
	mu sync.Mutex
	m  map[string]*expectation
}

type expectation struct {
	adds int
	dels map[string]struct{} // keys of the objects whose deletion is awaited
	at   time.Time
}

// NewExpectations returns an empty record.
func NewExpectations() *Expectations { return &Expectations{m: map[string]*expectation{}} }

// Satisfied reports whether key may act on its cache: nothing is awaited,
// or what is awaited has been awaited longer than ExpectationsTimeout.
func (e *Expectations) Satisfied(key string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	x, ok := e.m[key]
	if !ok {
		return true
	}
	return x.adds <= 0 && len(x.dels) == 0 || time.Since(x.at) > ExpectationsTimeout
}

// ExpectCreations replaces what key awaits with n creations.
func (e *Expectations) ExpectCreations(key string, n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.m[key] = &expectation{adds: n, dels: map[string]struct{}{}, at: time.Now()}
}

// ExpectDeletions replaces what key awaits with the deletion of objs.
func (e *Expectations) ExpectDeletions(key string, objs []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	x := &expectation{dels: make(map[string]struct{}, len(objs)), at: time.Now()}
	for _, o := range objs {
		x.dels[o] = struct{}{}
	}
	e.m[key] = x
}

// Expect replaces what key awaits with n creations and the deletion of
// objs together, for a controller that does both in one sync (a DaemonSet
// replaces pods on some nodes while creating them on others).
func (e *Expectations) Expect(key string, n int, objs []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	x := &expectation{adds: n, dels: make(map[string]struct{}, len(objs)), at: time.Now()}
	for _, o := range objs {
		x.dels[o] = struct{}{}
	}
	e.m[key] = x
}

// CreationObserved counts one awaited creation as seen (or as never coming,
// when the create call failed).
func (e *Expectations) CreationObserved(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x, ok := e.m[key]; ok {
		x.adds--
	}
}

// DeletionObserved counts the deletion of obj as seen, if key awaited it.
func (e *Expectations) DeletionObserved(key, obj string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x, ok := e.m[key]; ok {
		delete(x.dels, obj)
	}
}

// Delete forgets key, whose object is gone.
func (e *Expectations) Delete(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.m, key)
}
