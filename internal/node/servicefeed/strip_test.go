package servicefeed

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The feed carries of a pod what NetworkPolicy reads, and an update that
// changed nothing of that is no update for the feed.
func TestStripPod(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db", UID: "u1", ResourceVersion: "7",
			Labels: map[string]string{"role": "db"}, Annotations: map[string]string{"big": "value"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}},
		Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{
			{Name: "app", Image: "app:1", Env: []corev1.EnvVar{{Name: "SECRETISH", Value: "x"}},
				Ports: []corev1.ContainerPort{{Name: "redis", ContainerPort: 6379}}},
			{Name: "sidecar", Image: "side:1"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "127.66.0.5", PodIPs: []corev1.PodIP{{IP: "127.66.0.5"}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
	want := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db", UID: "u1", ResourceVersion: "7",
			Labels: map[string]string{"role": "db"}},
		Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{
			{Name: "app", Ports: []corev1.ContainerPort{{Name: "redis", ContainerPort: 6379}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "127.66.0.5", PodIPs: []corev1.PodIP{{IP: "127.66.0.5"}}},
	}
	got := StripPod(pod)
	if !equality.Semantic.DeepEqual(got, want) {
		t.Errorf("stripped:\n%+v\nwant\n%+v", got, want)
	}

	// A condition changed: nothing the feed carries.
	ready := pod.DeepCopy()
	ready.ResourceVersion = "8"
	ready.Status.Conditions[0].Status = corev1.ConditionFalse
	if !samePod(got, StripPod(ready)) {
		t.Error("a condition change is an update for the feed")
	}
	relabelled := ready.DeepCopy()
	relabelled.Labels = map[string]string{"role": "cache"}
	if samePod(got, StripPod(relabelled)) {
		t.Error("a label change is no update for the feed")
	}
	moved := ready.DeepCopy()
	moved.Status.PodIPs = []corev1.PodIP{{IP: "127.66.0.6"}}
	if samePod(got, StripPod(moved)) {
		t.Error("an address change is no update for the feed")
	}
}
