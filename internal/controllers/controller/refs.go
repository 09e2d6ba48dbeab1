package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// NewControllerRef is the ownerReference that makes owner the controller
// of an object: controller=true, and blockOwnerDeletion so a foreground
// deletion of the owner waits for it.
func NewControllerRef(owner metav1.Object, gvk schema.GroupVersionKind) *metav1.OwnerReference {
	yes := true
	return &metav1.OwnerReference{
		APIVersion: gvk.GroupVersion().String(), Kind: gvk.Kind, Name: owner.GetName(), UID: owner.GetUID(),
		Controller: &yes, BlockOwnerDeletion: &yes,
	}
}

// Claimer sorts a namespace's objects into those owner controls, adopting
// orphans its selector matches and releasing its own that it no longer
// matches, as Kubernetes' ControllerRefManager does.
type Claimer struct {
	Owner    metav1.Object
	Kind     schema.GroupVersionKind
	Selector labels.Selector
	// CanAdopt reads the owner afresh (not from a cache) and fails if it
	// is being deleted or was replaced: adopting for an owner that is
	// going away would make the garbage collector take the orphan with it.
	CanAdopt func(ctx context.Context) error
	// Patch applies a strategic merge patch to the object named name.
	Patch func(ctx context.Context, name string, patch []byte) error

	once     sync.Once
	adoptErr error
}

// Claim returns the objects owner controls after adopting and releasing.
// It goes on past failures to adopt or release one object and returns the
// first error with the objects it did claim.
func Claim[T metav1.Object](ctx context.Context, c *Claimer, objs []T) ([]T, error) {
	var claimed []T
	var first error
	for _, o := range objs {
		ok, err := c.claim(ctx, o)
		if err != nil && first == nil {
			first = err
		}
		if ok {
			claimed = append(claimed, o)
		}
	}
	return claimed, first
}

func (c *Claimer) claim(ctx context.Context, o metav1.Object) (bool, error) {
	match := c.Selector.Matches(labels.Set(o.GetLabels()))
	if ref := metav1.GetControllerOf(o); ref != nil {
		if ref.UID != c.Owner.GetUID() {
			return false, nil // another controller's
		}
		if match {
			return true, nil
		}
		if c.Owner.GetDeletionTimestamp() != nil {
			return false, nil // leave it to the garbage collector
		}
		err := c.Patch(ctx, o.GetName(), releasePatch(c.Owner.GetUID(), o.GetUID()))
		if apierrors.IsNotFound(err) || apierrors.IsInvalid(err) {
			return false, nil // gone, or replaced by another with the same name
		}
		return false, err
	}
	if !match || c.Owner.GetDeletionTimestamp() != nil || o.GetDeletionTimestamp() != nil {
		return false, nil
	}
	c.once.Do(func() { c.adoptErr = c.CanAdopt(ctx) })
	if c.adoptErr != nil {
		return false, c.adoptErr
	}
	patch, err := adoptPatch(NewControllerRef(c.Owner, c.Kind), o.GetUID())
	if err != nil {
		return false, err
	}
	if err := c.Patch(ctx, o.GetName(), patch); err != nil {
		if apierrors.IsNotFound(err) || apierrors.IsInvalid(err) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// CheckOwner is the usual CanAdopt: fresh must be the same object as owner
// (same UID) and not being deleted.
func CheckOwner(owner, fresh metav1.Object) error {
	if fresh.GetUID() != owner.GetUID() {
		return fmt.Errorf("original %s/%s is gone: got uid %v, wanted %v", owner.GetNamespace(), owner.GetName(), fresh.GetUID(), owner.GetUID())
	}
	if fresh.GetDeletionTimestamp() != nil {
		return fmt.Errorf("%s/%s has just been deleted at %v", owner.GetNamespace(), owner.GetName(), fresh.GetDeletionTimestamp())
	}
	return nil
}

// The patches carry the object's uid, as Kubernetes' do: there the patch
// then fails on an object deleted and recreated under the same name (uid is
// immutable). skiff's API keeps the stored uid instead, so the guard is
// only as good as the cache; generated pod names make the case rare.
type refPatch struct {
	Metadata struct {
		OwnerReferences []any     `json:"ownerReferences"`
		UID             types.UID `json:"uid"`
	} `json:"metadata"`
}

func adoptPatch(ref *metav1.OwnerReference, uid types.UID) ([]byte, error) {
	var p refPatch
	p.Metadata.OwnerReferences = []any{ref}
	p.Metadata.UID = uid
	return json.Marshal(p)
}

func releasePatch(owner, uid types.UID) []byte {
	var p refPatch
	p.Metadata.OwnerReferences = []any{map[string]any{"$patch": "delete", "uid": owner}}
	p.Metadata.UID = uid
	b, _ := json.Marshal(p)
	return b
}

// Selecting returns the owners among all whose selector (by selectorOf)
// matches an orphan's labels: each of them may want to adopt it. An empty
// or invalid selector matches nothing.
func Selecting[T any](all []T, selectorOf func(T) *metav1.LabelSelector, orphan map[string]string) []T {
	var out []T
	for _, o := range all {
		sel, err := metav1.LabelSelectorAsSelector(selectorOf(o))
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(orphan)) {
			continue
		}
		out = append(out, o)
	}
	return out
}

// Resolve returns the object a controllerRef names in its namespace, through
// get (a lister), if it is still that object: the same kind and the same
// UID, not a namesake created since.
func Resolve[T metav1.Object](ref *metav1.OwnerReference, gvk schema.GroupVersionKind, get func(name string) (T, error)) (T, bool) {
	var zero T
	if ref == nil || ref.Kind != gvk.Kind || ref.APIVersion != gvk.GroupVersion().String() {
		return zero, false
	}
	o, err := get(ref.Name)
	if err != nil || o.GetUID() != ref.UID {
		return zero, false
	}
	return o, true
}
