package apiserver

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// The StorageClass every cluster has: node-local directories, provisioned
// once the scheduler has chosen the node of the claim's first pod.
const (
	// DefaultStorageClass is the name of the class a claim naming none gets.
	DefaultStorageClass = "local-path"
	// LocalPathProvisioner is the class's provisioner, the control plane's
	// (internal/controllers/volume).
	LocalPathProvisioner = "skiff.dev/local-path"
	// isDefaultClassAnnotation marks the default class, as in Kubernetes.
	isDefaultClassAnnotation = "storageclass.kubernetes.io/is-default-class"
	// betaIsDefaultClassAnnotation is the older key, which Kubernetes
	// honours as well.
	betaIsDefaultClassAnnotation = "storageclass.beta.kubernetes.io/is-default-class"
)

var storageClassesGVR = schema.GroupVersionResource{Group: "storage.k8s.io", Version: "v1", Resource: "storageclasses"}

// ensureStorageClass creates the default StorageClass local-path if absent.
// An operator may delete it or take the default annotation off it; then it
// comes back on the next start only if deleted.
func (s *Server) ensureStorageClass(ctx context.Context) error {
	res, ok := s.reg.Get(storageClassesGVR)
	if !ok {
		return nil
	}
	if _, err := s.objs.get(ctx, res, "", DefaultStorageClass); err == nil {
		return nil
	} else if !apierrors.IsNotFound(err) {
		return fmt.Errorf("get StorageClass %s: %w", DefaultStorageClass, err)
	}
	mode, reclaim := storagev1.VolumeBindingWaitForFirstConsumer, corev1.PersistentVolumeReclaimDelete
	sc := &storagev1.StorageClass{
		ObjectMeta:        metav1.ObjectMeta{Name: DefaultStorageClass, Annotations: map[string]string{isDefaultClassAnnotation: "true"}},
		Provisioner:       LocalPathProvisioner,
		VolumeBindingMode: &mode,
		ReclaimPolicy:     &reclaim,
	}
	sc.SetGroupVersionKind(res.GVK())
	if _, err := s.createObject(ctx, res, sc, nil, ""); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create StorageClass %s: %w", DefaultStorageClass, err)
	}
	return nil
}

// applyDefaultStorageClass is Kubernetes' DefaultStorageClass admission
// plugin, on claim create: a claim that names no class (storageClassName
// unset, not "", and no volume.beta.kubernetes.io/storage-class annotation)
// gets the default one (either is-default-class annotation, GA or beta),
// the newest if several are marked, by name among equals.
// No default class, no change.
func (s *Server) applyDefaultStorageClass(ctx context.Context, pvc *corev1.PersistentVolumeClaim) error {
	// A class named by the beta annotation, which Kubernetes still reads,
	// counts as named.
	if pvc.Spec.StorageClassName != nil || pvc.Annotations[corev1.BetaStorageClassAnnotation] != "" {
		return nil
	}
	res, ok := s.reg.Get(storageClassesGVR)
	if !ok {
		return nil
	}
	objs, err := s.objs.list(ctx, res, "")
	if err != nil {
		return fmt.Errorf("list StorageClasses: %w", err)
	}
	var best *storagev1.StorageClass
	for _, obj := range objs {
		sc, ok := obj.(*storagev1.StorageClass)
		if !ok || sc.Annotations[isDefaultClassAnnotation] != "true" && sc.Annotations[betaIsDefaultClassAnnotation] != "true" {
			continue
		}
		if best == nil || sc.CreationTimestamp.After(best.CreationTimestamp.Time) ||
			(sc.CreationTimestamp.Equal(&best.CreationTimestamp) && sc.Name < best.Name) {
			best = sc
		}
	}
	if best != nil {
		name := best.Name
		pvc.Spec.StorageClassName = &name
	}
	return nil
}
