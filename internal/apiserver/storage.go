package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiffhq/skiff/internal/apiserver/conversion"
	"github.com/skiffhq/skiff/internal/apiserver/pki"
	"github.com/skiffhq/skiff/internal/apiserver/resources"
	"github.com/skiffhq/skiff/raft"
)

// objectStore keeps API objects in the replicated store, one key each:
//
//	/registry/<group>/<resource>/<namespace>/<name>   namespaced
//	/registry/<group>/<resource>/<name>               cluster-scoped
//
// with "core" for the core group. Values are the objects' JSON without a
// resourceVersion: the store's revision of the key is the resourceVersion,
// set on every read. (The revision is only known once the write is applied,
// so it cannot be inside the value.)
type objectStore struct {
	store  *raft.Store
	scheme *runtime.Scheme
	keys   *pki.Keyring // encrypts the values of encrypted resources
	// onRead completes a custom object read from the store (its schema's
	// defaults); onWrite learns of every write (the CRDs served follow
	// their writes at once). Both may be nil.
	onRead  func(res *resources.Resource, obj runtime.Object)
	onWrite func(res *resources.Resource, obj runtime.Object, deleted bool)
}

// storageGVK is the kind objects of res are stored as: a resource served
// in several versions is stored once, in its storage version.
func storageGVK(res *resources.Resource) schema.GroupVersionKind {
	gvk := res.GVK()
	if res.StorageVersion != "" {
		gvk.Version = res.StorageVersion
	}
	return gvk
}

// encrypted says whether a resource's values are encrypted at rest: Secrets,
// so that no secret value lands in the raft log or snapshots in clear.
func encrypted(res *resources.Resource) bool { return res.Group == "" && res.Resource == "secrets" }

// value is what the store keeps for obj: the object in its storage version,
// encoded, encrypted for encrypted resources.
func (s *objectStore) value(res *resources.Resource, obj runtime.Object) ([]byte, error) {
	if u, ok := obj.(*unstructured.Unstructured); ok && res.Custom != nil {
		// Custom resources convert with strategy None: only apiVersion changes.
		obj = customAsVersion(u, storageGVK(res).Version)
	}
	obj, err := conversion.Convert(obj, storageGVK(res))
	if err != nil {
		return nil, err
	}
	b, err := encode(obj)
	if err != nil {
		return nil, err
	}
	return s.seal(res, b)
}

// seal turns an encoded object into the value stored for res.
func (s *objectStore) seal(res *resources.Resource, b []byte) ([]byte, error) {
	if !encrypted(res) {
		return b, nil
	}
	return s.keys.Encrypt(b)
}

func groupSegment(group string) string {
	if group == "" {
		return "core"
	}
	return group
}

// prefix is the key prefix of a collection: all namespaces when ns is "".
func prefix(res *resources.Resource, ns string) string {
	p := "/registry/" + groupSegment(res.Group) + "/" + res.Resource + "/"
	if res.Namespaced && ns != "" {
		p += ns + "/"
	}
	return p
}

func key(res *resources.Resource, ns, name string) string { return prefix(res, ns) + name }

// decode turns a stored value into a typed object with its resourceVersion.
func (s *objectStore) decode(res *resources.Resource, kv raft.KeyValue) (runtime.Object, error) {
	if res.Custom != nil {
		return s.decodeCustom(res, kv)
	}
	obj, err := s.scheme.New(storageGVK(res))
	if err != nil {
		return nil, err
	}
	value := kv.Value
	if encrypted(res) {
		if value, err = s.keys.Decrypt(value); err != nil {
			return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
	}
	if err := json.Unmarshal(value, obj); err != nil {
		return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
	}
	obj.GetObjectKind().SetGroupVersionKind(storageGVK(res))
	if obj, err = conversion.Convert(obj, res.GVK()); err != nil {
		return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
	}
	obj.GetObjectKind().SetGroupVersionKind(res.GVK())
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	m.SetResourceVersion(strconv.FormatInt(kv.ModRev, 10))
	return obj, nil
}

// decodeCustom is decode for a custom object: unstructured, in the
// version asked for (strategy None), with its schema's defaults.
func (s *objectStore) decodeCustom(res *resources.Resource, kv raft.KeyValue) (runtime.Object, error) {
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(kv.Value); err != nil {
		return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
	}
	gvk := res.GVK()
	u.SetGroupVersionKind(gvk)
	u.SetResourceVersion(strconv.FormatInt(kv.ModRev, 10))
	if s.onRead != nil {
		s.onRead(res, u)
	}
	return u, nil
}

// encode stores an object without its resourceVersion.
func encode(obj runtime.Object) ([]byte, error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	rv := m.GetResourceVersion()
	m.SetResourceVersion("")
	defer m.SetResourceVersion(rv)
	return json.Marshal(obj)
}

func (s *objectStore) get(ctx context.Context, res *resources.Resource, ns, name string) (runtime.Object, error) {
	kv, _, err := s.store.Get(ctx, key(res, ns, name), raft.ReadOptions{})
	if err != nil {
		return nil, storeError(err, res, name)
	}
	return s.decode(res, kv)
}

// list decodes every object under res's prefix in namespace ns (all
// namespaces when ns is ""), read at the latest revision.
func (s *objectStore) list(ctx context.Context, res *resources.Resource, ns string) ([]runtime.Object, error) {
	page, err := s.store.List(ctx, prefix(res, ns), raft.ListOptions{})
	if err != nil {
		return nil, storeError(err, res, "")
	}
	objs := make([]runtime.Object, 0, len(page.KVs))
	for _, kv := range page.KVs {
		obj, err := s.decode(res, kv)
		if err != nil {
			return nil, err
		}
		objs = append(objs, obj)
	}
	return objs, nil
}

func (s *objectStore) create(ctx context.Context, res *resources.Resource, ns, name string, obj runtime.Object) (runtime.Object, error) {
	b, err := s.value(res, obj)
	if err != nil {
		return nil, err
	}
	kv, err := s.store.Create(ctx, key(res, ns, name), b)
	if err != nil {
		return nil, storeError(err, res, name)
	}
	return s.written(res, kv, false)
}

// update writes obj if the key is still at revision rev (compare-and-swap).
func (s *objectStore) update(ctx context.Context, res *resources.Resource, ns, name string, obj runtime.Object, rev int64) (runtime.Object, error) {
	b, err := s.value(res, obj)
	if err != nil {
		return nil, err
	}
	kv, err := s.store.Update(ctx, key(res, ns, name), b, rev)
	if err != nil {
		return nil, storeError(err, res, name)
	}
	return s.written(res, kv, false)
}

// remove deletes the key if it is still at revision rev; it returns the last
// state with the deletion's revision as its resourceVersion.
func (s *objectStore) remove(ctx context.Context, res *resources.Resource, ns, name string, rev int64) (runtime.Object, error) {
	kv, err := s.store.Delete(ctx, key(res, ns, name), rev)
	if err != nil {
		return nil, storeError(err, res, name)
	}
	return s.written(res, kv, true)
}

// written decodes what a write stored and tells onWrite.
func (s *objectStore) written(res *resources.Resource, kv raft.KeyValue, deleted bool) (runtime.Object, error) {
	obj, err := s.decode(res, kv)
	if err == nil && s.onWrite != nil {
		s.onWrite(res, obj, deleted)
	}
	return obj, err
}

// storeError maps store errors to Kubernetes API errors. Anything unexpected
// becomes 500 only when it really is the server's fault; an indeterminate
// write is a 504 timeout, as the apiserver reports an etcd timeout.
func storeError(err error, res *resources.Resource, name string) error {
	gr := res.GroupResource()
	switch {
	case errors.Is(err, raft.ErrNotFound):
		return apierrors.NewNotFound(gr, name)
	case errors.Is(err, raft.ErrKeyExists):
		return apierrors.NewAlreadyExists(gr, name)
	case errors.Is(err, raft.ErrConflict):
		return apierrors.NewConflict(gr, name, errors.New(conflictMsg))
	case errors.Is(err, raft.ErrCompacted):
		return apierrors.NewResourceExpired("too old resource version: " + err.Error())
	case errors.Is(err, raft.ErrFutureRevision):
		return apierrors.NewTimeoutError("Too large resource version", 1)
	case errors.Is(err, raft.ErrIndeterminate), errors.Is(err, raft.ErrNoLeader), errors.Is(err, context.DeadlineExceeded):
		return apierrors.NewTimeoutError(err.Error(), 1)
	case errors.Is(err, raft.ErrStopped):
		return apierrors.NewServiceUnavailable("the server is shutting down")
	}
	return apierrors.NewInternalError(err)
}

const conflictMsg = "the object has been modified; please apply your changes to the latest version and try again"

// parseRV reads a resourceVersion: "" and "0" mean none.
func parseRV(s string) (int64, error) {
	if s == "" || s == "0" {
		return 0, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		return 0, apierrors.NewBadRequest(fmt.Sprintf("invalid resource version %q", s))
	}
	return v, nil
}
