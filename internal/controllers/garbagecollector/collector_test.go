package garbagecollector

import (
	"context"
	"fmt"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"

	"github.com/skiffhq/skiff/internal/testutil"
)

var cmGVR = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}

func cm(name string, uid types.UID, mutate func(*unstructured.Unstructured)) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("v1")
	u.SetKind("ConfigMap")
	u.SetNamespace("default")
	u.SetName(name)
	u.SetUID(uid)
	if mutate != nil {
		mutate(u)
	}
	return u
}

func ownedBy(name string, uid types.UID, block bool) func(*unstructured.Unstructured) {
	return func(u *unstructured.Unstructured) {
		ref := metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: name, UID: uid}
		if block {
			ref.BlockOwnerDeletion = &block
		}
		u.SetOwnerReferences(append(u.GetOwnerReferences(), ref))
	}
}

func deleting(finalizer string) func(*unstructured.Unstructured) {
	return func(u *unstructured.Unstructured) {
		now := metav1.Now()
		u.SetDeletionTimestamp(&now)
		u.SetFinalizers([]string{finalizer})
	}
}

// start runs a collector over ConfigMaps on a fake dynamic client holding
// objs, until the test ends.
func start(t *testing.T, objs ...runtime.Object) *dynamicfake.FakeDynamicClient {
	t.Helper()
	client := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{cmGVR: "ConfigMapList"}, objs...)
	c, err := New(Config{Client: client, Resources: []Resource{{GVR: cmGVR, Kind: "ConfigMap", Namespaced: true}},
		Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx, 2)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return client
}

func get(client *dynamicfake.FakeDynamicClient, name string) (*unstructured.Unstructured, error) {
	return client.Resource(cmGVR).Namespace("default").Get(context.Background(), name, metav1.GetOptions{})
}

func waitGone(t *testing.T, client *dynamicfake.FakeDynamicClient, name string) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, func() error {
		if _, err := get(client, name); !apierrors.IsNotFound(err) {
			return fmt.Errorf("%s still there (%v)", name, err)
		}
		return nil
	})
}

func waitFor(t *testing.T, client *dynamicfake.FakeDynamicClient, name string, ok func(*unstructured.Unstructured) error) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, func() error {
		u, err := get(client, name)
		if err != nil {
			return err
		}
		return ok(u)
	})
}

// Background: a dependent whose only owner is gone is deleted; one whose
// other owner lives only loses the dangling reference; an owned object
// whose owner exists stays.
func TestBackground(t *testing.T) {
	client := start(t,
		cm("owner", "u-owner", nil),
		cm("kept", "u-kept", ownedBy("owner", "u-owner", false)),
		cm("orphaned", "u-orphaned", ownedBy("gone", "u-gone", false)),
		cm("shared", "u-shared", func(u *unstructured.Unstructured) {
			ownedBy("gone", "u-gone", true)(u)
			ownedBy("owner", "u-owner", false)(u)
		}))
	waitGone(t, client, "orphaned")
	waitFor(t, client, "shared", func(u *unstructured.Unstructured) error {
		if refs := u.GetOwnerReferences(); len(refs) != 1 || refs[0].UID != "u-owner" {
			return fmt.Errorf("owners %+v", refs)
		}
		return nil
	})
	if _, err := get(client, "kept"); err != nil {
		t.Fatalf("a dependent of a live owner went: %v", err)
	}
	// The owner goes: its dependents follow.
	if err := client.Resource(cmGVR).Namespace("default").Delete(context.Background(), "owner", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitGone(t, client, "kept")
	waitGone(t, client, "shared")
}

// Foreground: the owner's dependents are deleted, and its finalizer comes
// off only once no blocking dependent remains.
func TestForeground(t *testing.T) {
	client := start(t,
		cm("owner", "u-owner", deleting(metav1.FinalizerDeleteDependents)),
		cm("blocking", "u-blocking", ownedBy("owner", "u-owner", true)),
		cm("loose", "u-loose", ownedBy("owner", "u-owner", false)),
		// Held by a finalizer of another party: it is marked, not removed,
		// and blocks the owner until that party lets go.
		cm("held", "u-held", func(u *unstructured.Unstructured) {
			ownedBy("owner", "u-owner", true)(u)
			now := metav1.Now()
			u.SetDeletionTimestamp(&now)
			u.SetFinalizers([]string{"example.com/hold"})
		}))
	waitGone(t, client, "blocking")
	waitGone(t, client, "loose")
	time.Sleep(100 * time.Millisecond) // a few syncs: the owner must keep its finalizer
	owner, err := get(client, "owner")
	if err != nil || len(owner.GetFinalizers()) != 1 {
		t.Fatalf("owner released while a blocking dependent remains: %v %v", owner, err)
	}
	if err := client.Resource(cmGVR).Namespace("default").Delete(context.Background(), "held", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, client, "owner", func(u *unstructured.Unstructured) error {
		if fs := u.GetFinalizers(); len(fs) != 0 {
			return fmt.Errorf("finalizers %v", fs)
		}
		return nil
	})
}

// Orphan: every dependent loses its reference to the owner, then the
// owner's finalizer comes off; no dependent is deleted.
func TestOrphan(t *testing.T) {
	client := start(t,
		cm("owner", "u-owner", deleting(metav1.FinalizerOrphanDependents)),
		cm("a", "u-a", ownedBy("owner", "u-owner", true)),
		cm("b", "u-b", func(u *unstructured.Unstructured) {
			ownedBy("owner", "u-owner", false)(u)
			ownedBy("other", "u-other", false)(u)
		}),
		cm("other", "u-other", nil))
	waitFor(t, client, "owner", func(u *unstructured.Unstructured) error {
		if fs := u.GetFinalizers(); len(fs) != 0 {
			return fmt.Errorf("finalizers %v", fs)
		}
		return nil
	})
	for name, want := range map[string]int{"a": 0, "b": 1} {
		u, err := get(client, name)
		if err != nil {
			t.Fatalf("orphan deleted %s: %v", name, err)
		}
		if refs := u.GetOwnerReferences(); len(refs) != want {
			t.Fatalf("%s owners %+v", name, refs)
		}
	}
}

// The index follows adds, updates and deletes.
func TestGraph(t *testing.T) {
	g := newGraph()
	ref := func(uid types.UID) metav1.OwnerReference { return metav1.OwnerReference{UID: uid} }
	g.upsert(&item{uid: "d", owners: []metav1.OwnerReference{ref("o1"), ref("o2")}})
	if len(g.dependentsOf("o1")) != 1 || len(g.dependentsOf("o2")) != 1 {
		t.Fatal("edges not recorded")
	}
	g.upsert(&item{uid: "d", owners: []metav1.OwnerReference{ref("o2")}})
	if g.hasDependents("o1") || len(g.dependentsOf("o2")) != 1 {
		t.Fatal("a dropped reference kept its edge")
	}
	g.upsert(&item{uid: "o2"})
	g.remove("o2")
	if len(g.dependentsOf("o2")) != 1 {
		t.Fatal("removing an owner dropped its dependents' edges")
	}
	g.remove("d")
	if g.hasDependents("o2") || g.get("d") != nil {
		t.Fatal("removed dependent still indexed")
	}
}
