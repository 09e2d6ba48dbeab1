package garbagecollector_test

import (
	"context"
	"fmt"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/skiffhq/skiff/internal/controllers/controllertest"
	"github.com/skiffhq/skiff/internal/testutil"
)

const ns = "default"

func yes() *bool { v := true; return &v }

func ownerRef(cm *corev1.ConfigMap, block bool) metav1.OwnerReference {
	r := metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: cm.Name, UID: cm.UID}
	if block {
		r.BlockOwnerDeletion = yes()
	}
	return r
}

func createCM(t *testing.T, c *controllertest.Cluster, name string, owners ...metav1.OwnerReference) *corev1.ConfigMap {
	t.Helper()
	cm, err := c.Client.CoreV1().ConfigMaps(ns).Create(context.Background(), &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, OwnerReferences: owners}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return cm
}

func gone(c *controllertest.Cluster, name string) error {
	_, err := c.Client.CoreV1().ConfigMaps(ns).Get(context.Background(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	return fmt.Errorf("configmap %s still there", name)
}

func deleteWith(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Each propagation policy on a plain owner, a chain, and a dependent with
// a second owner.
func TestPropagation(t *testing.T) {
	c := controllertest.Start(t)
	ctx := context.Background()
	cms := c.Client.CoreV1().ConfigMaps(ns)
	policy := func(p metav1.DeletionPropagation) metav1.DeleteOptions {
		return metav1.DeleteOptions{PropagationPolicy: &p}
	}

	t.Run("background", func(t *testing.T) {
		owner := createCM(t, c, "bg-owner")
		createCM(t, c, "bg-dep", ownerRef(owner, false))
		grand := createCM(t, c, "bg-dep2", ownerRef(owner, true))
		createCM(t, c, "bg-grand", metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: grand.Name, UID: grand.UID})
		deleteWith(t, cms.Delete(ctx, owner.Name, policy(metav1.DeletePropagationBackground)))
		if err := gone(c, owner.Name); err != nil {
			t.Fatalf("background: the owner is not gone at once: %v", err)
		}
		for _, n := range []string{"bg-dep", "bg-dep2", "bg-grand"} {
			testutil.Eventually(t, controllertest.Timeout, func() error { return gone(c, n) })
		}
	})

	t.Run("foreground", func(t *testing.T) {
		owner := createCM(t, c, "fg-owner")
		createCM(t, c, "fg-dep", ownerRef(owner, true))
		// A finalizer of the test's keeps the dependent (and so the owner)
		// until the test lets go.
		held := createCM(t, c, "fg-held", ownerRef(owner, true))
		held.Finalizers = []string{"skiff.test/hold"}
		held, err := cms.Update(ctx, held, metav1.UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		deleteWith(t, cms.Delete(ctx, owner.Name, policy(metav1.DeletePropagationForeground)))
		got, err := cms.Get(ctx, owner.Name, metav1.GetOptions{})
		if err != nil || got.DeletionTimestamp == nil || len(got.Finalizers) != 1 || got.Finalizers[0] != metav1.FinalizerDeleteDependents {
			t.Fatalf("foreground: owner %+v, %v", got.ObjectMeta, err)
		}
		testutil.Eventually(t, controllertest.Timeout, func() error { return gone(c, "fg-dep") })
		testutil.Eventually(t, controllertest.Timeout, func() error {
			h, err := cms.Get(ctx, "fg-held", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if h.DeletionTimestamp == nil {
				return fmt.Errorf("held dependent not being deleted")
			}
			return nil
		})
		if err := gone(c, owner.Name); err == nil {
			t.Fatal("foreground: the owner went before a blocking dependent")
		}
		h, err := cms.Get(ctx, "fg-held", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		h.Finalizers = nil
		if _, err := cms.Update(ctx, h, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, controllertest.Timeout, func() error { return gone(c, owner.Name) })
	})

	t.Run("orphan", func(t *testing.T) {
		owner := createCM(t, c, "or-owner")
		other := createCM(t, c, "or-other")
		createCM(t, c, "or-dep", ownerRef(owner, true), ownerRef(other, false))
		deleteWith(t, cms.Delete(ctx, owner.Name, policy(metav1.DeletePropagationOrphan)))
		testutil.Eventually(t, controllertest.Timeout, func() error { return gone(c, owner.Name) })
		dep, err := cms.Get(ctx, "or-dep", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(dep.OwnerReferences) != 1 || dep.OwnerReferences[0].UID != other.UID {
			t.Fatalf("orphan: dependent's owners %+v", dep.OwnerReferences)
		}
	})

	t.Run("another owner keeps a dependent", func(t *testing.T) {
		a, b := createCM(t, c, "two-a"), createCM(t, c, "two-b")
		createCM(t, c, "two-dep", ownerRef(a, false), ownerRef(b, false))
		deleteWith(t, cms.Delete(ctx, a.Name, metav1.DeleteOptions{}))
		testutil.Eventually(t, controllertest.Timeout, func() error {
			dep, err := cms.Get(ctx, "two-dep", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if len(dep.OwnerReferences) != 1 || dep.OwnerReferences[0].UID != b.UID {
				return fmt.Errorf("owners %+v", dep.OwnerReferences)
			}
			return nil
		})
		deleteWith(t, cms.Delete(ctx, b.Name, metav1.DeleteOptions{}))
		testutil.Eventually(t, controllertest.Timeout, func() error { return gone(c, "two-dep") })
	})
}

func newDeployment(name string) *appsv1.Deployment {
	sel := map[string]string{"app": name}
	two := int32(2)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{Replicas: &two, Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: sel},
				Spec: corev1.PodSpec{NodeSelector: controllertest.FakeNodeSelector,
					Containers: []corev1.Container{{Name: "app", Image: "example.invalid/app:1"}}}}},
	}
}

// A Deployment deleted with each policy: its ReplicaSet and pods go with
// it (Background, Foreground: the Deployment last) or stay, released
// (Orphan).
func TestDeploymentDeletion(t *testing.T) {
	c := controllertest.Start(t)
	c.AddNode(t, "fake-1", nil, nil)
	c.StartKubelet(t, "fake-1")
	ctx := context.Background()
	for _, p := range []metav1.DeletionPropagation{metav1.DeletePropagationBackground, metav1.DeletePropagationForeground, metav1.DeletePropagationOrphan} {
		t.Run(string(p), func(t *testing.T) {
			name := "web-" + map[metav1.DeletionPropagation]string{"Background": "bg", "Foreground": "fg", "Orphan": "or"}[p]
			sel := labels.SelectorFromSet(map[string]string{"app": name}).String()
			d, err := c.Client.AppsV1().Deployments(ns).Create(ctx, newDeployment(name), metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			testutil.Eventually(t, controllertest.Timeout, func() error {
				if n := len(c.ActivePods(t, ns, map[string]string{"app": name})); n != 2 {
					return fmt.Errorf("%d pods", n)
				}
				return nil
			})
			rss, err := c.Client.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
			if err != nil || len(rss.Items) != 1 {
				t.Fatalf("replicasets %v %v", rss, err)
			}
			if err := c.Client.AppsV1().Deployments(ns).Delete(ctx, d.Name, metav1.DeleteOptions{PropagationPolicy: &p}); err != nil {
				t.Fatal(err)
			}
			testutil.Eventually(t, controllertest.Timeout, func() error {
				_, err := c.Client.AppsV1().Deployments(ns).Get(ctx, d.Name, metav1.GetOptions{})
				if !apierrors.IsNotFound(err) {
					return fmt.Errorf("deployment still there (%v)", err)
				}
				return nil
			})
			if p == metav1.DeletePropagationForeground {
				// The Deployment went last: its ReplicaSet (blockOwnerDeletion) first.
				if _, err := c.Client.AppsV1().ReplicaSets(ns).Get(ctx, rss.Items[0].Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
					t.Fatalf("foreground: the deployment went before its replicaset (%v)", err)
				}
			}
			testutil.Eventually(t, controllertest.Timeout, func() error {
				rs, err := c.Client.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
				if err != nil {
					return err
				}
				pods := c.Pods(t, ns, map[string]string{"app": name})
				if p == metav1.DeletePropagationOrphan {
					if len(rs.Items) != 1 || len(rs.Items[0].OwnerReferences) != 0 || len(pods) != 2 {
						return fmt.Errorf("orphan: %d replicasets (%+v), %d pods", len(rs.Items), rs.Items, len(pods))
					}
					for _, pod := range pods {
						if ref := metav1.GetControllerOf(&pod); ref == nil || ref.UID != rs.Items[0].UID {
							return fmt.Errorf("pod %s lost its replicaset", pod.Name)
						}
					}
					return nil
				}
				if len(rs.Items) != 0 || len(pods) != 0 {
					return fmt.Errorf("%s: %d replicasets, %d pods left", p, len(rs.Items), len(pods))
				}
				return nil
			})
		})
	}
}
