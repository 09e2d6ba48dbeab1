package engine

import (
	"context"
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiffhq/skiff/internal/testutil"
)

// Deleting a namespace goes as in Kubernetes: DELETE returns at once with
// the namespace Terminating, the namespace controller deletes its content
// (objects of several resources, a Deployment whose Wasm pods terminate
// gracefully on the node), new content is refused meanwhile, and the
// namespace vanishes once its finalizer is removed. A namespace held by a
// content finalizer reports it in its conditions and stays until released.
func TestNamespaceDeletionEmptiesThenRemoves(t *testing.T) {
	host := testRegistry(t, map[string][]byte{"sleeper:1": testGuest(t, "sleeper")})
	e := startEngine(t, Config{DataDir: t.TempDir(), NodeName: "nsdel-1", PodCIDR: "127.118.0.0/22",
		ServiceCIDR: "127.119.0.0/16"})
	cs, err := e.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const ns = "doomed"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%d", i)}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("s-%d", i)}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "headless"},
		Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app": "sleep"}
	replicas := int32(2)
	grace := int64(5)
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "sleep"},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
				TerminationGracePeriodSeconds: &grace,
				Containers:                    []corev1.Container{{Name: "c", Image: host + "/sleeper:1"}}}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 60*time.Second, func() error {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		running := 0
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning {
				running++
			}
		}
		if running != 2 {
			return fmt.Errorf("%d of %d pods running", running, len(pods.Items))
		}
		return nil
	})
	// A ConfigMap a finalizer holds: the namespace must wait for it.
	if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "held",
		Finalizers: []string{"example.com/hold"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	if err := cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("namespace gone at once, with content held by a finalizer: %v", err)
	}
	if got.Status.Phase != corev1.NamespaceTerminating {
		t.Fatalf("phase %q after DELETE", got.Status.Phase)
	}
	_, err = cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "late"}}, metav1.CreateOptions{})
	if !apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
		t.Fatalf("create in a terminating namespace: %v", err)
	}

	// Everything but the held ConfigMap goes; the conditions say what holds
	// the namespace.
	testutil.Eventually(t, 60*time.Second, func() error {
		n, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if err != nil {
			return err
		}
		c := condition(n, corev1.NamespaceFinalizersRemaining)
		want := "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances"
		if c == nil || c.Status != corev1.ConditionTrue || c.Reason != "SomeFinalizersRemain" || c.Message != want {
			return fmt.Errorf("finalizers condition %+v", c)
		}
		c = condition(n, corev1.NamespaceContentRemaining)
		if c == nil || c.Reason != "SomeResourcesRemain" || c.Message != "Some resources are remaining: configmaps. has 1 resource instances" {
			return fmt.Errorf("content condition %+v", c)
		}
		if c := condition(n, corev1.NamespaceDeletionDiscoveryFailure); c == nil || c.Status != corev1.ConditionFalse || c.Reason != "ResourcesDiscovered" {
			return fmt.Errorf("discovery condition %+v", c)
		}
		for _, list := range []func() (int, error){
			func() (int, error) {
				l, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
				return len(l.Items), err
			},
			func() (int, error) {
				l, err := cs.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
				return len(l.Items), err
			},
			func() (int, error) {
				l, err := cs.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
				return len(l.Items), err
			},
			func() (int, error) {
				l, err := cs.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
				return len(l.Items), err
			},
			func() (int, error) {
				l, err := cs.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
				return len(l.Items) - 1, err
			},
		} {
			if n, err := list(); err != nil || n != 0 {
				return fmt.Errorf("%d objects left (%v)", n, err)
			}
		}
		return nil
	})
	if _, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
		t.Fatalf("namespace gone while a finalizer holds its content: %v", err)
	}

	held, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "held", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	held.Finalizers = nil
	if _, err := cs.CoreV1().ConfigMaps(ns).Update(ctx, held, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 60*time.Second, func() error {
		_, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("namespace still there (%v)", err)
	})
}

func condition(ns *corev1.Namespace, t corev1.NamespaceConditionType) *corev1.NamespaceCondition {
	for i := range ns.Status.Conditions {
		if ns.Status.Conditions[i].Type == t {
			return &ns.Status.Conditions[i]
		}
	}
	return nil
}
