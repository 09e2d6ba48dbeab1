package apiserver

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// DELETE does what Kubernetes' API server does with a propagation policy
// and leaves dependents to the garbage collector: Background removes the
// object at once, Foreground and Orphan mark it with the collector's
// finalizer (and the object goes when the collector removes it); no
// dependent is touched here.
func TestDeletePropagationMarksForTheCollector(t *testing.T) {
	_, cfg := newTestServer(t, 1000)
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	cms := cs.CoreV1().ConfigMaps("default")
	for _, tc := range []struct {
		policy    metav1.DeletionPropagation
		finalizer string
	}{
		{metav1.DeletePropagationBackground, ""},
		{metav1.DeletePropagationForeground, metav1.FinalizerDeleteDependents},
		{metav1.DeletePropagationOrphan, metav1.FinalizerOrphanDependents},
	} {
		name := "owner-" + strings.ToLower(string(tc.policy))
		owner, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		dep := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "dep-" + name, OwnerReferences: []metav1.OwnerReference{{
			APIVersion: "v1", Kind: "ConfigMap", Name: name, UID: owner.UID}}}}
		if _, err := cms.Create(ctx, dep, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		p := tc.policy
		if err := cms.Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &p}); err != nil {
			t.Fatal(err)
		}
		got, err := cms.Get(ctx, name, metav1.GetOptions{})
		switch {
		case tc.finalizer == "":
			if !apierrors.IsNotFound(err) {
				t.Fatalf("%s: owner still there (%v)", p, err)
			}
		case err != nil:
			t.Fatalf("%s: %v", p, err)
		case got.DeletionTimestamp == nil || len(got.Finalizers) != 1 || got.Finalizers[0] != tc.finalizer:
			t.Fatalf("%s: owner %+v", p, got.ObjectMeta)
		default:
			// The collector's part: its finalizer off, the owner gone.
			got.Finalizers = nil
			if _, err := cms.Update(ctx, got, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			if _, err := cms.Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Fatalf("%s: owner kept after its last finalizer went (%v)", p, err)
			}
		}
		d, err := cms.Get(ctx, "dep-"+name, metav1.GetOptions{})
		if err != nil || len(d.OwnerReferences) != 1 {
			t.Fatalf("%s: the API server touched the dependent: %v %v", p, d, err)
		}
	}
}
