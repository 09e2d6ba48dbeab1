package informer

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// A delete handler's object, seen through a tombstone or not.
func TestObjectOf(t *testing.T) {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "p"}}
	for _, tc := range []struct {
		name string
		obj  any
		want *corev1.Pod
	}{
		{"object", p, p},
		{"tombstone", cache.DeletedFinalStateUnknown{Key: "default/p", Obj: p}, p},
		{"other kind", &corev1.Node{}, nil},
		{"tombstone of another kind", cache.DeletedFinalStateUnknown{Key: "n", Obj: &corev1.Node{}}, nil},
		{"nil", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ObjectOf[*corev1.Pod](tc.obj)
			if got != tc.want || ok != (tc.want != nil) {
				t.Fatalf("ObjectOf = %v, %v; want %v", got, ok, tc.want)
			}
		})
	}
}
