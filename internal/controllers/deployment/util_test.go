package deployment

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func rolling(replicas int32, surge, unavailable intstr.IntOrString) *appsv1.Deployment {
	return &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Replicas: &replicas, Strategy: appsv1.DeploymentStrategy{
		Type:          appsv1.RollingUpdateDeploymentStrategyType,
		RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &surge, MaxUnavailable: &unavailable}}}}
}

func rsOf(name string, replicas, available int32) *appsv1.ReplicaSet {
	return &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: appsv1.ReplicaSetSpec{Replicas: &replicas},
		Status: appsv1.ReplicaSetStatus{Replicas: replicas, AvailableReplicas: available}}
}

func TestFenceposts(t *testing.T) {
	for _, tc := range []struct {
		d                 *appsv1.Deployment
		surge, unavail    int32
		maxUnavailableCap int32
	}{
		// 25% of 10: surge rounds up, unavailable down.
		{rolling(10, intstr.FromString("25%"), intstr.FromString("25%")), 3, 2, 2},
		{rolling(1, intstr.FromString("25%"), intstr.FromString("25%")), 1, 0, 0},
		// Both zero would never progress: one may be unavailable.
		{rolling(3, intstr.FromInt32(0), intstr.FromInt32(0)), 0, 1, 1},
		{rolling(2, intstr.FromInt32(1), intstr.FromInt32(5)), 1, 5, 2},
	} {
		s, u := resolveFenceposts(tc.d)
		if s != tc.surge || u != tc.unavail || maxUnavailable(tc.d) != tc.maxUnavailableCap {
			t.Errorf("replicas %d: surge %d unavailable %d cap %d, want %d %d %d", *tc.d.Spec.Replicas, s, u,
				maxUnavailable(tc.d), tc.surge, tc.unavail, tc.maxUnavailableCap)
		}
	}
	recreate := &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Replicas: ptrTo[int32](3),
		Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}}}
	if maxUnavailable(recreate) != 0 || maxSurge(recreate) != 0 {
		t.Error("Recreate has a surge or an unavailability budget")
	}
}

func TestNewRSReplicas(t *testing.T) {
	d := rolling(4, intstr.FromInt32(1), intstr.FromInt32(0))
	for _, tc := range []struct {
		old, cur, want int32
	}{
		{4, 0, 1}, // one surge pod
		{4, 1, 1}, // at the surge limit: wait
		{3, 1, 2}, // an old one went: one more
		{0, 2, 4}, // old all gone: the rest
		{0, 4, 4},
	} {
		newRS := rsOf("new", tc.cur, 0)
		if got := newRSReplicas(d, []*appsv1.ReplicaSet{rsOf("old", tc.old, tc.old), newRS}, newRS); got != tc.want {
			t.Errorf("old %d new %d: got %d, want %d", tc.old, tc.cur, got, tc.want)
		}
	}
}

func TestProportionalFraction(t *testing.T) {
	// A rollout of 10 (surge 3) in progress at 6 old + 7 new, scaled to 20
	// (surge 5): each grows by the ratio of the maxima, 25/13.
	d := rolling(20, intstr.FromString("25%"), intstr.FromString("25%"))
	old, cur := rsOf("old", 6, 6), rsOf("new", 7, 0)
	setReplicasAnnotations(old, 10, 13)
	setReplicasAnnotations(cur, 10, 13)
	if f := rsFraction(old, d); f != 6 { // round(6*25/13)=12 → +6
		t.Errorf("old fraction %d", f)
	}
	if f := rsFraction(cur, d); f != 6 { // round(7*25/13)=13 → +6
		t.Errorf("new fraction %d", f)
	}
	if p := proportion(cur, d, 12, 6); p != 6 {
		t.Errorf("proportion %d", p)
	}
	if p := proportion(cur, d, 8, 6); p != 2 { // only what is left
		t.Errorf("proportion capped %d", p)
	}
	zero := rolling(0, intstr.FromInt32(1), intstr.FromInt32(0))
	if f := rsFraction(old, zero); f != -6 {
		t.Errorf("scaling to zero: %d", f)
	}
}

func TestTemplateHash(t *testing.T) {
	tmpl := &corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "a", "b": "c"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i:1"}}}}
	h := templateHash(tmpl, nil)
	for range 5 {
		if templateHash(tmpl.DeepCopy(), nil) != h {
			t.Fatal("hash not stable")
		}
	}
	one := int32(1)
	if templateHash(tmpl, &one) == h {
		t.Fatal("collision count ignored")
	}
	other := tmpl.DeepCopy()
	other.Spec.Containers[0].Image = "i:2"
	if templateHash(other, nil) == h {
		t.Fatal("image ignored")
	}
	labelled := tmpl.DeepCopy()
	labelled.Labels[appsv1.DefaultDeploymentUniqueLabelKey] = h
	if !equalIgnoreHash(tmpl, labelled) || equalIgnoreHash(tmpl, other) {
		t.Fatal("equalIgnoreHash")
	}
}

func TestSetNewRSAnnotations(t *testing.T) {
	d := rolling(3, intstr.FromInt32(1), intstr.FromInt32(0))
	d.Annotations = map[string]string{"kubernetes.io/change-cause": "v2", lastAppliedAnnotation: "{}", RevisionAnnotation: "1"}
	rs := rsOf("rs", 0, 0)
	if !setNewRSAnnotations(d, rs, 1, false) {
		t.Fatal("no change reported")
	}
	if rs.Annotations[RevisionAnnotation] != "1" || rs.Annotations["kubernetes.io/change-cause"] != "v2" ||
		rs.Annotations[lastAppliedAnnotation] != "" || rs.Annotations[DesiredReplicasAnnotation] != "3" ||
		rs.Annotations[MaxReplicasAnnotation] != "4" {
		t.Fatalf("annotations %v", rs.Annotations)
	}
	// Becoming new again (a rollback) takes the next revision and keeps
	// the old one in the history.
	if !setNewRSAnnotations(d, rs, 5, true) || rs.Annotations[RevisionAnnotation] != "5" || rs.Annotations[RevisionHistoryAnnotation] != "1" {
		t.Fatalf("annotations %v", rs.Annotations)
	}
	if setNewRSAnnotations(d, rs, 5, true) {
		t.Fatal("change reported for nothing")
	}
}
