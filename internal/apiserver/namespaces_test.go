package apiserver

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
)

// A namespace's life through the API alone (no namespace controller runs
// here): created with the "kubernetes" finalizer, DELETE marks it
// Terminating and leaves its content alone, new content is refused with the
// NamespaceTerminating cause, spec.finalizers change through /finalize only,
// and the namespace goes once both finalizer lists are empty.
func TestNamespaceLifecycle(t *testing.T) {
	_, cfg := newTestServer(t, 1000)
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nss := cs.CoreV1().Namespaces()

	ns, err := nss.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "life",
		Finalizers: []string{"example.com/hold"}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ns.Spec.Finalizers, []corev1.FinalizerName{corev1.FinalizerKubernetes}) || ns.Status.Phase != corev1.NamespaceActive {
		t.Fatalf("created: finalizers %v, phase %q", ns.Spec.Finalizers, ns.Status.Phase)
	}
	if _, err := cs.CoreV1().ConfigMaps("life").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kept"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// An update through the main resource cannot drop the finalizer.
	ns.Spec.Finalizers = nil
	if ns, err = nss.Update(ctx, ns, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if len(ns.Spec.Finalizers) != 1 {
		t.Fatalf("update changed spec.finalizers: %v", ns.Spec.Finalizers)
	}

	if err := nss.Delete(ctx, "life", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	ns, err = nss.Get(ctx, "life", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("namespace removed at once: %v", err)
	}
	if ns.DeletionTimestamp == nil || ns.Status.Phase != corev1.NamespaceTerminating {
		t.Fatalf("deleted namespace: deletionTimestamp %v, phase %q", ns.DeletionTimestamp, ns.Status.Phase)
	}
	if _, err := cs.CoreV1().ConfigMaps("life").Get(ctx, "kept", metav1.GetOptions{}); err != nil {
		t.Fatalf("DELETE emptied the namespace itself: %v", err)
	}
	// A second DELETE changes nothing while finalizers remain.
	if err := nss.Delete(ctx, "life", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	_, err = cs.CoreV1().ConfigMaps("life").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "late"}}, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || !apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
		t.Fatalf("create in a terminating namespace: %v", err)
	}

	if err := cs.CoreV1().RESTClient().Get().Resource("namespaces").Name("life").SubResource("finalize").Do(ctx).Error(); !apierrors.IsMethodNotSupported(err) {
		t.Fatalf("GET namespaces/life/finalize: %v", err)
	}
	// The controller's part: /finalize takes the finalizer off; the
	// metadata finalizer still holds the namespace.
	ns.Spec.Finalizers = nil
	if ns, err = nss.Finalize(ctx, ns, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if len(ns.Spec.Finalizers) != 0 || ns.Status.Phase != corev1.NamespaceTerminating {
		t.Fatalf("finalized: %v, phase %q", ns.Spec.Finalizers, ns.Status.Phase)
	}
	if _, err := nss.Get(ctx, "life", metav1.GetOptions{}); err != nil {
		t.Fatalf("removed with a metadata finalizer left: %v", err)
	}
	ns.Finalizers = nil
	if _, err := nss.Update(ctx, ns, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := nss.Get(ctx, "life", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("namespace kept after both finalizer lists emptied: %v", err)
	}
}

// The cluster's own namespaces may not be deleted, as Kubernetes'
// NamespaceLifecycle admission refuses.
func TestImmortalNamespaces(t *testing.T) {
	_, cfg := newTestServer(t, 1000)
	nss := kubernetes.NewForConfigOrDie(cfg).CoreV1().Namespaces()
	ctx := context.Background()
	for _, name := range []string{"default", "kube-system", "kube-public"} {
		if err := nss.Delete(ctx, name, metav1.DeleteOptions{}); !apierrors.IsForbidden(err) {
			t.Fatalf("delete %s: %v", name, err)
		}
		if ns, err := nss.Get(ctx, name, metav1.GetOptions{}); err != nil || ns.DeletionTimestamp != nil {
			t.Fatalf("%s after a refused delete: %v %v", name, ns, err)
		}
	}
}

// A namespace a client finalized before deleting it has nothing to wait
// for: DELETE removes it.
func TestNamespaceWithoutFinalizersGoesAtOnce(t *testing.T) {
	_, cfg := newTestServer(t, 1000)
	nss := kubernetes.NewForConfigOrDie(cfg).CoreV1().Namespaces()
	ctx := context.Background()
	ns, err := nss.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bare"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ns.Spec.Finalizers = nil
	if _, err := nss.Finalize(ctx, ns, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := nss.Delete(ctx, "bare", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := nss.Get(ctx, "bare", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("namespace without finalizers kept: %v", err)
	}
}

// DeleteCollection deletes exactly what the selector matches, every one of
// them, with its workers in parallel.
func TestDeleteCollectionDeletesEveryMatch(t *testing.T) {
	_, cfg := newTestServer(t, 1000)
	cms := kubernetes.NewForConfigOrDie(cfg).CoreV1().ConfigMaps("default")
	ctx := context.Background()
	const n = 3*deleteCollectionWorkers + 5
	for i := range n {
		batch := "drop"
		if i%3 == 0 {
			batch = "keep"
		}
		if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%d", i),
			Labels: map[string]string{"batch": batch}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := cms.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "batch=drop"}); err != nil {
		t.Fatal(err)
	}
	left, err := cms.List(ctx, metav1.ListOptions{LabelSelector: "batch"})
	if err != nil {
		t.Fatal(err)
	}
	want := (n + 2) / 3
	if len(left.Items) != want {
		t.Fatalf("%d left, want the %d kept", len(left.Items), want)
	}
	for _, cm := range left.Items {
		if cm.Labels["batch"] != "keep" {
			t.Fatalf("%s left", cm.Name)
		}
	}
}

// A namespace stored before namespaces carried the kubernetes finalizer
// gets it on the next start, so deleting it empties it first instead of
// leaving its objects behind.
func TestOldNamespacesGetTheFinalizer(t *testing.T) {
	s, cfg := newTestServer(t, 1000)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nsRes, _ := s.reg.Get(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"})
	old := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "old"}}
	old.SetGroupVersionKind(nsRes.GVK())
	if _, err := s.objs.create(ctx, nsRes, "", "old", old); err != nil {
		t.Fatal(err)
	}
	if err := s.ensureDefaults(ctx); err != nil { // the next start
		t.Fatal(err)
	}
	got, err := kubernetes.NewForConfigOrDie(cfg).CoreV1().Namespaces().Get(ctx, "old", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Spec.Finalizers, []corev1.FinalizerName{corev1.FinalizerKubernetes}) {
		t.Fatalf("spec.finalizers after a start: %v", got.Spec.Finalizers)
	}
}
