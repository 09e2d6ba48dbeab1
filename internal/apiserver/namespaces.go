package apiserver

import (
	"context"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiffhq/skiff/internal/apiserver/resources"
)

// A namespace's life, as Kubernetes' API server leads it
// (pkg/registry/core/namespace): created Active with the "kubernetes"
// finalizer in spec.finalizers; DELETE only marks it (deletionTimestamp,
// phase Terminating) and answers at once; the namespace controller
// (internal/controllers/namespace) empties it and removes its finalizer
// through PUT namespaces/<name>/finalize; the namespace leaves the store
// once it is marked and both spec.finalizers and metadata.finalizers are
// empty.

func isNamespaces(res *resources.Resource) bool {
	return res.Group == "" && res.Resource == "namespaces"
}

// prepareNamespaceCreate is namespaceStrategy.PrepareForCreate: a new
// namespace is Active whatever the client sent, and carries the
// "kubernetes" finalizer, which only the namespace controller removes.
func prepareNamespaceCreate(ns *corev1.Namespace) {
	ns.Status = corev1.NamespaceStatus{Phase: corev1.NamespaceActive}
	if !slices.Contains(ns.Spec.Finalizers, corev1.FinalizerKubernetes) {
		ns.Spec.Finalizers = append(ns.Spec.Finalizers, corev1.FinalizerKubernetes)
	}
}

// mergeNamespaceUpdate keeps spec.finalizers through the main resource
// (they change through /finalize only) and takes nothing but them through
// /finalize, as namespaceStrategy and namespaceFinalizeStrategy do. ok is
// false when obj is no namespace.
func mergeNamespaceUpdate(sub string, cur, next runtime.Object) (runtime.Object, bool) {
	c, ok1 := cur.(*corev1.Namespace)
	n, ok2 := next.(*corev1.Namespace)
	if !ok1 || !ok2 {
		return nil, false
	}
	if sub == "finalize" {
		merged := c.DeepCopy()
		merged.Spec.Finalizers = n.Spec.Finalizers
		return merged, true
	}
	n.Spec.Finalizers = c.Spec.Finalizers
	return nil, false
}

// gone says whether a marked object has nothing left to wait for and must
// leave the store: no metadata finalizer and, for a namespace, no
// spec.finalizers either.
func gone(obj runtime.Object) bool {
	m := mustMeta(obj)
	if m.GetDeletionTimestamp() == nil || len(m.GetFinalizers()) > 0 {
		return false
	}
	if ns, ok := obj.(*corev1.Namespace); ok && len(ns.Spec.Finalizers) > 0 {
		return false
	}
	return true
}

// immortalNamespaces may not be deleted: the NamespaceLifecycle
// admission's list (the cluster's own Services and DNS live in them).
var immortalNamespaces = []string{metav1.NamespaceDefault, metav1.NamespaceSystem, metav1.NamespacePublic}

// deleteNamespace is the namespace REST storage's Delete: the first call
// marks the namespace Terminating (deleteObject has added the garbage
// collector's finalizer for the policy) and returns it; a namespace whose finalizers are all gone is
// removed. The namespace controller does the rest.
func (s *Server) deleteNamespace(ctx context.Context, req request, cur runtime.Object, curRV int64) (runtime.Object, error) {
	ns := cur.(*corev1.Namespace)
	if slices.Contains(immortalNamespaces, ns.Name) {
		return nil, apierrors.NewForbidden(req.res.GroupResource(), ns.Name, fmt.Errorf("this namespace may not be deleted"))
	}
	if ns.DeletionTimestamp == nil {
		now := metav1.NewTime(time.Now())
		ns.DeletionTimestamp = &now
		ns.Status.Phase = corev1.NamespaceTerminating
		if gone(ns) {
			// Nothing holds it (one made before namespaces carried the
			// "kubernetes" finalizer, or a client finalized it before
			// deleting): no controller would ever remove it.
			return s.remove(ctx, req, curRV)
		}
		return s.objs.update(ctx, req.res, req.ns, req.name, ns, curRV)
	}
	if !gone(ns) {
		return ns, nil // still terminating: the controller and finalizers decide
	}
	return s.remove(ctx, req, curRV)
}

// namespaceAcceptsObjects is the NamespaceLifecycle admission for a create
// of res named name in namespace ns: the namespace must exist and not be
// terminating. The refusal carries the NamespaceTerminating cause, which
// controllers look for to stop creating in a namespace on its way out.
func (s *Server) namespaceAcceptsObjects(ctx context.Context, res *resources.Resource, ns, name string) error {
	nsRes, _ := s.reg.Get(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"})
	obj, err := s.objs.get(ctx, nsRes, "", ns)
	if err != nil {
		return err
	}
	if n := obj.(*corev1.Namespace); n.DeletionTimestamp == nil {
		return nil
	}
	err = apierrors.NewForbidden(res.GroupResource(), name,
		fmt.Errorf("unable to create new content in namespace %s because it is being terminated", ns))
	st := err.(*apierrors.StatusError)
	st.ErrStatus.Details.Causes = append(st.ErrStatus.Details.Causes, metav1.StatusCause{
		Type:    corev1.NamespaceTerminatingCause,
		Message: fmt.Sprintf("namespace %s is being terminated", ns),
		Field:   "metadata.namespace",
	})
	return st
}
