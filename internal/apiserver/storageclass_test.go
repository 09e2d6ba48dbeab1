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

// TestDefaultStorageClassAnnotations: the beta annotations count as
// Kubernetes' plugin reads them: a claim naming its class by the beta
// annotation keeps it, and a class marked default by the beta annotation
// is a default (the newest default wins).
func TestDefaultStorageClassAnnotations(t *testing.T) {
	_, cfg := newTestServer(t, 1000)
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Newer than local-path, or in the same second and first by name:
	// the default either way.
	if _, err := cs.StorageV1().StorageClasses().Create(ctx, &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "beta-default",
		Annotations: map[string]string{"storageclass.beta.kubernetes.io/is-default-class": "true"}}, Provisioner: "example.com/x"}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	claim := func(name string, ann map[string]string) *corev1.PersistentVolumeClaim {
		return &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann}, Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		}}
	}
	got, err := cs.CoreV1().PersistentVolumeClaims("default").Create(ctx, claim("plain", nil), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.StorageClassName == nil || *got.Spec.StorageClassName != "beta-default" {
		t.Errorf("claim without class: %v, want the newest default beta-default", got.Spec.StorageClassName)
	}
	got, err = cs.CoreV1().PersistentVolumeClaims("default").Create(ctx, claim("annotated",
		map[string]string{"volume.beta.kubernetes.io/storage-class": "slow"}), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.StorageClassName != nil {
		t.Errorf("claim naming its class by annotation got storageClassName %q", *got.Spec.StorageClassName)
	}
}
