package proxy

import (
	"sync"
	"time"
)

// maxAffinityEntries bounds one frontend's ClientIP affinity table. A full
// table first drops its expired entries; if none expired, new clients get
// no affinity until some do (they are still served, round robin).
const maxAffinityEntries = 10000

// affinityTable remembers, per client IP, the endpoint its last connection
// went to, as kube-proxy's ClientIP session affinity does: a new connection
// within the timeout of the client's last one goes to the same endpoint.
type affinityTable struct {
	mu  sync.Mutex
	max int
	m   map[string]affinityEntry
}

type affinityEntry struct {
	backend string
	last    time.Time
}

func newAffinityTable(max int) *affinityTable {
	return &affinityTable{max: max, m: map[string]affinityEntry{}}
}

// get returns the client's endpoint if its last connection was within ttl.
func (a *affinityTable) get(client string, now time.Time, ttl time.Duration) (string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	e, ok := a.m[client]
	if !ok {
		return "", false
	}
	if now.Sub(e.last) > ttl {
		delete(a.m, client)
		return "", false
	}
	return e.backend, true
}

// set records the client's endpoint as of now.
func (a *affinityTable) set(client, backend string, now time.Time, ttl time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.m[client]; !ok && len(a.m) >= a.max {
		for k, e := range a.m {
			if now.Sub(e.last) > ttl {
				delete(a.m, k)
			}
		}
		if len(a.m) >= a.max {
			return
		}
	}
	a.m[client] = affinityEntry{backend: backend, last: now}
}

func (a *affinityTable) len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.m)
}
