package apiserver

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// TestDefaultStorageClass: the server starts with the StorageClass
// local-path, the default; a claim naming no class gets it, one naming a
// class or "" (no class) keeps its own.
func TestDefaultStorageClass(t *testing.T) {
	_, cfg := newTestServer(t, 1000)
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sc, err := cs.StorageV1().StorageClasses().Get(ctx, DefaultStorageClass, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sc.Annotations[isDefaultClassAnnotation] != "true" || sc.Provisioner != LocalPathProvisioner ||
		sc.VolumeBindingMode == nil || *sc.VolumeBindingMode != storagev1.VolumeBindingWaitForFirstConsumer ||
		sc.ReclaimPolicy == nil || *sc.ReclaimPolicy != corev1.PersistentVolumeReclaimDelete {
		t.Errorf("default class = %+v", sc)
	}
	claim := func(name string, class *string) *corev1.PersistentVolumeClaim {
		return &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: class,
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		}}
	}
	fast, none := "fast", ""
	for _, tc := range []struct {
		name  string
		class *string
		want  string
	}{{"plain", nil, DefaultStorageClass}, {"fast", &fast, "fast"}, {"none", &none, ""}} {
		got, err := cs.CoreV1().PersistentVolumeClaims("default").Create(ctx, claim(tc.name, tc.class), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Spec.StorageClassName == nil || *got.Spec.StorageClassName != tc.want {
			t.Errorf("claim %s: class %v, want %q", tc.name, got.Spec.StorageClassName, tc.want)
		}
	}
}
