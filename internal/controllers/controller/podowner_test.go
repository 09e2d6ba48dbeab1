package controller

import (
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
)

var rsKind = appsv1.SchemeGroupVersion.WithKind("ReplicaSet")

// The handler wakes the right owners for each kind of pod event, and
// observes the creations and deletions the owners await.
func TestPodOwnerHandler(t *testing.T) {
	owners := map[string]*appsv1.ReplicaSet{}
	for _, name := range []string{"a", "b", "web"} {
		owners[name] = &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID("uid-" + name)},
			Spec: appsv1.ReplicaSetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
				MinReadySeconds: 0}}
	}
	queue := NewQueue("test")
	defer queue.ShutDown()
	expect := NewExpectations()
	h := &PodOwnerHandler[*appsv1.ReplicaSet]{Kind: rsKind, Queue: queue, Expectations: expect,
		Get: func(_, name string) (*appsv1.ReplicaSet, error) {
			if o, ok := owners[name]; ok {
				return o, nil
			}
			return nil, apierrors.NewNotFound(appsv1.Resource("replicasets"), name)
		},
		List: func(string) ([]*appsv1.ReplicaSet, error) {
			return []*appsv1.ReplicaSet{owners["a"], owners["b"], owners["web"]}, nil
		},
		Selector: func(rs *appsv1.ReplicaSet) *metav1.LabelSelector { return rs.Spec.Selector }}
	f := h.Funcs()
	drain := func() []string {
		var keys []string
		for queue.Len() > 0 {
			k, _ := queue.Get()
			queue.Done(k)
			keys = append(keys, k)
		}
		slices.Sort(keys)
		return keys
	}
	pod := func(rv, app, owner string, terminating bool) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p", ResourceVersion: rv,
			Labels: map[string]string{"app": app}}}
		if owner != "" {
			yes := true
			p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: owner,
				UID: types.UID("uid-" + owner), Controller: &yes}}
		}
		if terminating {
			now := metav1.Now()
			p.DeletionTimestamp = &now
		}
		return p
	}
	check := func(what string, want ...string) {
		t.Helper()
		if got := drain(); !slices.Equal(got, want) {
			t.Errorf("%s: queued %v, want %v", what, got, want)
		}
	}

	expect.ExpectCreations("ns/web", 1)
	f.OnAdd(pod("1", "web", "web", false), false)
	check("owned pod created", "ns/web")
	if !expect.Satisfied("ns/web") {
		t.Error("creation not observed")
	}
	f.OnAdd(pod("1", "a", "", false), false)
	check("orphan created", "ns/a")
	f.OnAdd(pod("1", "web", "gone", false), false)
	check("owner not found")

	f.OnUpdate(pod("2", "web", "web", false), pod("2", "web", "web", false))
	check("resync")
	f.OnUpdate(pod("2", "web", "web", false), pod("3", "web", "", false))
	check("released by its owner", "ns/web")
	f.OnUpdate(pod("3", "a", "", false), pod("4", "b", "", false))
	check("orphan relabelled", "ns/b")
	f.OnUpdate(pod("4", "web", "web", false), pod("5", "web", "a", false))
	check("moved to another owner", "ns/a", "ns/web")

	expect.ExpectDeletions("ns/web", []string{"ns/p"})
	f.OnUpdate(pod("5", "web", "web", false), pod("6", "web", "web", true))
	check("terminating", "ns/web")
	if !expect.Satisfied("ns/web") {
		t.Error("terminating pod not counted as deleted")
	}
	expect.ExpectDeletions("ns/web", []string{"ns/p"})
	f.OnDelete(cache.DeletedFinalStateUnknown{Key: "ns/p", Obj: pod("7", "web", "web", false)})
	check("tombstone", "ns/web")
	if !expect.Satisfied("ns/web") {
		t.Error("deletion through a tombstone not observed")
	}
	f.OnDelete(pod("7", "a", "", false))
	check("orphan deleted")
}
