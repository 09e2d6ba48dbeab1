package controller

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiffhq/skiff/internal/informer"
)

// PodOwnerHandler turns pod events into the keys of the controllers (of
// one kind) that must look again, as Kubernetes' ReplicaSet, Job,
// DaemonSet and StatefulSet controllers each do by hand:
//
//   - a pod with a controllerRef wakes that owner, if the ref still names
//     it (same kind and UID); its creation is counted in Expectations;
//   - a terminating pod counts as deleted at once (it no longer is a
//     replica, and its node may take the grace period to remove it), and
//     so does a removed one, seen directly or through a tombstone;
//   - an orphan wakes every owner whose selector matches it (each may
//     adopt it), on its creation and when its labels or its controllerRef
//     change;
//   - a pod released by, or moved away from, an owner wakes the old owner,
//     which may need a replacement; a label change of a terminating pod
//     also counts as a deletion for the owner its old labels named.
//
// Its fields are set once, before the handler is registered.
type PodOwnerHandler[T metav1.Object] struct {
	Kind  schema.GroupVersionKind // the owners' kind, e.g. apps/v1 ReplicaSet
	Queue workqueue.TypedRateLimitingInterface[string]
	// Get reads an owner from the lister; List lists the owners of a
	// namespace; Selector is an owner's pod selector.
	Get      func(namespace, name string) (T, error)
	List     func(namespace string) ([]T, error)
	Selector func(T) *metav1.LabelSelector
	// Expectations, when set, observes the pod creations and deletions
	// the controller awaits (nil: the controller keeps none).
	Expectations *Expectations
	// MinReadySeconds, when set, is an owner's spec.minReadySeconds: a pod
	// that just became ready turns available that much later with no
	// event to say so, so its owner is queued again then.
	MinReadySeconds func(T) int32
}

// Funcs is the handler to register on the pod informer.
func (h *PodOwnerHandler[T]) Funcs() cache.ResourceEventHandlerFuncs {
	return cache.ResourceEventHandlerFuncs{AddFunc: h.add, UpdateFunc: h.update, DeleteFunc: h.delete}
}

// Owner is the live owner pod's controllerRef names, if it is of Kind.
func (h *PodOwnerHandler[T]) Owner(pod *corev1.Pod) (T, bool) {
	return Resolve(metav1.GetControllerOf(pod), h.Kind, func(name string) (T, error) { return h.Get(pod.Namespace, name) })
}

func (h *PodOwnerHandler[T]) enqueue(owner T) {
	if key := KeyOf(owner); key != "" {
		h.Queue.Add(key)
	}
}

// selecting wakes the owners that may adopt an orphan.
func (h *PodOwnerHandler[T]) selecting(pod *corev1.Pod) {
	all, err := h.List(pod.Namespace)
	if err != nil {
		return
	}
	for _, o := range Selecting(all, h.Selector, pod.Labels) {
		h.enqueue(o)
	}
}

func (h *PodOwnerHandler[T]) add(obj any) {
	pod, ok := informer.ObjectOf[*corev1.Pod](obj)
	if !ok {
		return
	}
	if pod.DeletionTimestamp != nil {
		h.delete(pod) // seen for the first time already terminating (a relist)
		return
	}
	if metav1.GetControllerOf(pod) != nil {
		if owner, ok := h.Owner(pod); ok {
			key := KeyOf(owner)
			if h.Expectations != nil {
				h.Expectations.CreationObserved(key)
			}
			h.Queue.Add(key)
		}
		return
	}
	h.selecting(pod)
}

func (h *PodOwnerHandler[T]) update(old, cur any) {
	oldPod, ok1 := old.(*corev1.Pod)
	pod, ok2 := cur.(*corev1.Pod)
	if !ok1 || !ok2 || pod.ResourceVersion == oldPod.ResourceVersion {
		return // a resync: nothing changed
	}
	labelsChanged := !labels.Equals(pod.Labels, oldPod.Labels)
	if pod.DeletionTimestamp != nil {
		h.delete(pod)
		if labelsChanged {
			h.delete(oldPod)
		}
		return
	}
	curRef, oldRef := metav1.GetControllerOf(pod), metav1.GetControllerOf(oldPod)
	if oldRef != nil && (curRef == nil || curRef.UID != oldRef.UID) {
		if owner, ok := h.Owner(oldPod); ok {
			h.enqueue(owner) // released: the old owner may need a replacement
		}
	}
	if curRef != nil {
		owner, ok := h.Owner(pod)
		if !ok {
			return
		}
		h.enqueue(owner)
		if h.MinReadySeconds != nil {
			if s := h.MinReadySeconds(owner); s > 0 && !IsPodReady(oldPod) && IsPodReady(pod) {
				h.Queue.AddAfter(KeyOf(owner), time.Duration(s)*time.Second+time.Second)
			}
		}
		return
	}
	if labelsChanged || oldRef != nil {
		h.selecting(pod)
	}
}

func (h *PodOwnerHandler[T]) delete(obj any) {
	pod, ok := informer.ObjectOf[*corev1.Pod](obj)
	if !ok {
		return
	}
	owner, ok := h.Owner(pod)
	if !ok {
		return
	}
	key := KeyOf(owner)
	if h.Expectations != nil {
		h.Expectations.DeletionObserved(key, PodKey(pod))
	}
	h.Queue.Add(key)
}
