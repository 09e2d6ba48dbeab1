package endpoints

import (
	"strconv"
	"strings"
	"sync"
)

// tracker remembers the objects this controller wrote until its informers
// have seen the writes. It serves two ends, as Kubernetes' EndpointSlice
// tracker does:
//
//   - staleness: a sync that ran on a cache without its own last create would
//     create the same endpoints again under a new generated name, so a sync
//     first checks that the cache holds everything the controller wrote for
//     the Service and retries shortly otherwise;
//   - echoes: the informer event of the controller's own write needs no sync.
//
// Resource versions are compared as numbers. The Kubernetes API calls them
// opaque, but skiff's are raft indexes, and a version that does not parse
// counts as caught up (never stale), so the worst case is one duplicate
// slice that the next sync merges away.
type tracker struct {
	mu sync.Mutex
	rv map[string]string // object key -> version written; "" = deleted
}

func newTracker() *tracker { return &tracker{rv: map[string]string{}} }

// sliceKey names a slice by its Service too, so that one Service's slices
// share a prefix (slicePrefix) that no other Service's do.
func sliceKey(ns, svc, name string) string { return slicePrefix(ns, svc) + name }
func slicePrefix(ns, svc string) string    { return "slice/" + ns + "/" + svc + "/" }
func endpointsKey(ns, name string) string  { return "endpoints/" + ns + "/" + name }

// wrote records a create or update that returned version rv.
func (t *tracker) wrote(key, rv string) {
	t.mu.Lock()
	t.rv[key] = rv
	t.mu.Unlock()
}

// deleted records a delete.
func (t *tracker) deleted(key string) {
	t.mu.Lock()
	t.rv[key] = ""
	t.mu.Unlock()
}

// isEcho says whether an informer event shows the object as this controller
// last left it. Either way the event means the cache has caught up to it,
// when it is at or past the written version, so the entry is dropped then.
func (t *tracker) isEcho(key, rv string, deleted bool) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	want, ok := t.rv[key]
	if !ok {
		return false
	}
	if deleted {
		delete(t.rv, key)
		return want == ""
	}
	if want == "" {
		return false // an event for an object we deleted: an older event or a recreation
	}
	if !older(rv, want) {
		delete(t.rv, key)
	}
	return rv == want
}

// stale says whether the cache (name -> version of each cached slice of one
// Service, whose keys share prefix) lacks any write the controller made
// under that prefix.
func (t *tracker) stale(prefix string, cached map[string]string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for key, want := range t.rv {
		name, ok := strings.CutPrefix(key, prefix)
		if !ok {
			continue
		}
		have, present := cached[name]
		switch {
		case want == "" && present, want != "" && !present, want != "" && older(have, want):
			return true
		}
	}
	return false
}

// older says whether version a is before version b. Versions that do not
// parse are never older.
func older(a, b string) bool {
	x, err1 := strconv.ParseUint(a, 10, 64)
	y, err2 := strconv.ParseUint(b, 10, 64)
	return err1 == nil && err2 == nil && x < y
}
