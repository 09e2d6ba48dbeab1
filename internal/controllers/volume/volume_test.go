package volume_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"

	"github.com/skiffhq/skiff/internal/controllers/volume"
	"github.com/skiffhq/skiff/internal/testutil"
)

func class(name string, reclaim corev1.PersistentVolumeReclaimPolicy) *storagev1.StorageClass {
	mode := storagev1.VolumeBindingWaitForFirstConsumer
	return &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Provisioner: volume.Provisioner,
		VolumeBindingMode: &mode, ReclaimPolicy: &reclaim}
}

func claim(name, class string) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name)},
		Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: &class,
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("2Gi")}}}}
}

func start(t *testing.T, objs ...any) *fake.Clientset {
	t.Helper()
	cs := fake.NewClientset()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Annotations: map[string]string{volume.LocalVolumesDirAnnotation: "/data/n1/volumes"}}}
	if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		var err error
		switch o := o.(type) {
		case *storagev1.StorageClass:
			_, err = cs.StorageV1().StorageClasses().Create(ctx, o, metav1.CreateOptions{})
		case *corev1.PersistentVolumeClaim:
			_, err = cs.CoreV1().PersistentVolumeClaims(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	f := informers.NewSharedInformerFactory(cs, 0)
	c, err := volume.New(volume.Config{Client: cs, Claims: f.Core().V1().PersistentVolumeClaims(),
		Volumes: f.Core().V1().PersistentVolumes(), Nodes: f.Core().V1().Nodes(),
		StorageClasses: f.Storage().V1().StorageClasses(), Recorder: record.NewFakeRecorder(100)})
	if err != nil {
		t.Fatal(err)
	}
	f.Start(ctx.Done())
	go c.Run(ctx, 1)
	return cs
}

func selectNode(t *testing.T, cs *fake.Clientset, name, node string) {
	t.Helper()
	pvc, err := cs.CoreV1().PersistentVolumeClaims("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pvc.Annotations = map[string]string{volume.SelectedNodeAnnotation: node}
	if _, err := cs.CoreV1().PersistentVolumeClaims("default").Update(context.Background(), pvc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestProvisionAndBind: a claim waits for its node; once the scheduler
// selected one, a local volume is made there, with the claim's size, and
// both are Bound to each other. Deleting the claim deletes a Delete volume.
func TestProvisionAndBind(t *testing.T) {
	pvc := claim("data", "local-path")
	cs := start(t, class("local-path", corev1.PersistentVolumeReclaimDelete), pvc)
	ctx := context.Background()
	time.Sleep(200 * time.Millisecond)
	if pvs, _ := cs.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{}); len(pvs.Items) != 0 {
		t.Fatalf("volume made before a node was selected: %v", pvs.Items)
	}
	selectNode(t, cs, "data", "n1")
	name := volume.VolumeName(pvc)
	testutil.Eventually(t, 10*time.Second, func() error {
		got, err := cs.CoreV1().PersistentVolumeClaims("default").Get(ctx, "data", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if got.Spec.VolumeName != name || got.Status.Phase != corev1.ClaimBound {
			return fmt.Errorf("claim volume %q phase %s", got.Spec.VolumeName, got.Status.Phase)
		}
		pv, err := cs.CoreV1().PersistentVolumes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if pv.Status.Phase != corev1.VolumeBound {
			return fmt.Errorf("volume phase %s", pv.Status.Phase)
		}
		return nil
	})
	pv, _ := cs.CoreV1().PersistentVolumes().Get(ctx, name, metav1.GetOptions{})
	if pv.Spec.Local == nil || pv.Spec.Local.Path != "/data/n1/volumes/"+name {
		t.Errorf("local = %+v", pv.Spec.Local)
	}
	if q := pv.Spec.Capacity[corev1.ResourceStorage]; q.String() != "2Gi" {
		t.Errorf("capacity = %s", q.String())
	}
	terms := pv.Spec.NodeAffinity.Required.NodeSelectorTerms
	if len(terms) != 1 || terms[0].MatchFields[0].Values[0] != "n1" {
		t.Errorf("node affinity = %+v", terms)
	}
	if ref := pv.Spec.ClaimRef; ref == nil || ref.Name != "data" || ref.Namespace != "default" {
		t.Errorf("claimRef = %+v", ref)
	}
	if pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete {
		t.Errorf("reclaim = %s", pv.Spec.PersistentVolumeReclaimPolicy)
	}

	if err := cs.CoreV1().PersistentVolumeClaims("default").Delete(ctx, "data", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		_, err := cs.CoreV1().PersistentVolumes().Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("volume still there: %v", err)
	})
}

// TestRetain: a Retain volume outlives its claim, Released.
func TestRetain(t *testing.T) {
	pvc := claim("keep", "kept")
	cs := start(t, class("kept", corev1.PersistentVolumeReclaimRetain), pvc)
	ctx := context.Background()
	selectNode(t, cs, "keep", "n1")
	name := volume.VolumeName(pvc)
	testutil.Eventually(t, 10*time.Second, func() error {
		pv, err := cs.CoreV1().PersistentVolumes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if pv.Status.Phase != corev1.VolumeBound {
			return fmt.Errorf("volume phase %s", pv.Status.Phase)
		}
		return nil
	})
	if err := cs.CoreV1().PersistentVolumeClaims("default").Delete(ctx, "keep", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		pv, err := cs.CoreV1().PersistentVolumes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if pv.Status.Phase != corev1.VolumeReleased {
			return fmt.Errorf("volume phase %s", pv.Status.Phase)
		}
		return nil
	})
}

// TestOtherProvisioner: a claim of a class this controller does not serve
// is left alone.
func TestOtherProvisioner(t *testing.T) {
	sc := class("ebs", corev1.PersistentVolumeReclaimDelete)
	sc.Provisioner = "ebs.csi.aws.com"
	cs := start(t, sc, claim("other", "ebs"))
	selectNode(t, cs, "other", "n1")
	time.Sleep(300 * time.Millisecond)
	if pvs, _ := cs.CoreV1().PersistentVolumes().List(context.Background(), metav1.ListOptions{}); len(pvs.Items) != 0 {
		t.Fatalf("volume made for another provisioner: %v", pvs.Items)
	}
}
