package garbagecollector

import (
	"slices"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// item is one object as the collector knows it: what it is, who owns it,
// and whether it is being deleted and how.
type item struct {
	gvr        schema.GroupVersionResource
	apiVersion string
	kind       string
	namespace  string
	name       string
	uid        types.UID
	owners     []metav1.OwnerReference
	deleting   bool
	finalizers []string
}

func (it *item) hasFinalizer(f string) bool { return slices.Contains(it.finalizers, f) }

// waitingForDependents reports a foreground deletion in progress: the
// owner stays until its blocking dependents are gone.
func (it *item) waitingForDependents() bool {
	return it.deleting && it.hasFinalizer(metav1.FinalizerDeleteDependents)
}

func (it *item) sameState(o *item) bool {
	return it.deleting == o.deleting && slices.Equal(it.finalizers, o.finalizers) && slices.EqualFunc(it.owners, o.owners,
		func(a, b metav1.OwnerReference) bool {
			return a.UID == b.UID && ptrEq(a.BlockOwnerDeletion, b.BlockOwnerDeletion)
		})
}

func ptrEq(a, b *bool) bool { return (a != nil && *a) == (b != nil && *b) }

// graph is the owner index: every object of the watched resources by uid,
// and for every uid named as an owner the uids of its dependents (whether
// or not the owner itself is known). Safe for concurrent use.
type graph struct {
	mu         sync.Mutex
	items      map[types.UID]*item
	dependents map[types.UID]map[types.UID]struct{}
}

func newGraph() *graph {
	return &graph{items: map[types.UID]*item{}, dependents: map[types.UID]map[types.UID]struct{}{}}
}

// upsert records it and returns what was recorded before (nil if nothing).
func (g *graph) upsert(it *item) *item {
	g.mu.Lock()
	defer g.mu.Unlock()
	old := g.items[it.uid]
	if old != nil {
		g.unlinkLocked(old)
	}
	g.items[it.uid] = it
	for _, ref := range it.owners {
		deps := g.dependents[ref.UID]
		if deps == nil {
			deps = map[types.UID]struct{}{}
			g.dependents[ref.UID] = deps
		}
		deps[it.uid] = struct{}{}
	}
	return old
}

// remove forgets the object uid (its dependents still name it) and returns
// what was recorded.
func (g *graph) remove(uid types.UID) *item {
	g.mu.Lock()
	defer g.mu.Unlock()
	old := g.items[uid]
	if old == nil {
		return nil
	}
	g.unlinkLocked(old)
	delete(g.items, uid)
	return old
}

func (g *graph) unlinkLocked(it *item) {
	for _, ref := range it.owners {
		if deps := g.dependents[ref.UID]; deps != nil {
			delete(deps, it.uid)
			if len(deps) == 0 {
				delete(g.dependents, ref.UID)
			}
		}
	}
}

func (g *graph) get(uid types.UID) *item {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.items[uid]
}

// dependentsOf lists the known objects that name uid as an owner.
func (g *graph) dependentsOf(uid types.UID) []*item {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]*item, 0, len(g.dependents[uid]))
	for d := range g.dependents[uid] {
		if it := g.items[d]; it != nil {
			out = append(out, it)
		}
	}
	return out
}

func (g *graph) hasDependents(uid types.UID) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.dependents[uid]) > 0
}
