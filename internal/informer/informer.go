// Package informer holds what every client-go informer's event handlers
// need, on the control plane (controllers, the scheduler, dispatch) and on
// nodes (the Service proxy) alike; it depends on client-go's cache only, so
// node-side code can use it without linking control loops.
package informer

import "k8s.io/client-go/tools/cache"

// ObjectOf is an informer object as a T, or the T a tombstone stands for:
// a delete handler gets a cache.DeletedFinalStateUnknown instead of the
// object when its watch missed the delete and a relist found the object
// gone. ok is false when obj is neither.
func ObjectOf[T any](obj any) (T, bool) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	v, ok := obj.(T)
	return v, ok
}
