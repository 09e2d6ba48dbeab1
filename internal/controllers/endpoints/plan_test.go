package endpoints

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func testService() *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "svc-uid"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}}},
	}
}

func testPods(n int) []*corev1.Pod {
	var pods []*corev1.Pod
	for i := range n {
		pods = append(pods, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p%03d", i), Namespace: "ns", UID: types.UID(fmt.Sprint("uid", i))},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: fmt.Sprintf("127.66.1.%d", i+1),
				Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
		})
	}
	return pods
}

// materialize turns a plan's creates into existing slices, named as the API
// would name them.
func materialize(plan slicePlan) []*discoveryv1.EndpointSlice {
	var out []*discoveryv1.EndpointSlice
	for i, s := range plan.create {
		s = s.DeepCopy()
		s.Name = fmt.Sprintf("%s%05d", s.GenerateName, i)
		out = append(out, s)
	}
	return out
}

func noZone(string) string { return "" }

// One pod's change rewrites only the slice it is in; a new pod fills free
// room before a slice is created; a slice emptied is deleted.
func TestPlanKeepsEndpointsInPlace(t *testing.T) {
	svc := testService()
	pods := testPods(25)
	first := planSlices(svc, desiredGroups(svc, pods, noZone), nil, 10)
	if len(first.create) != 3 || len(first.update)+len(first.delete) != 0 {
		t.Fatalf("first plan: %d creates, %d updates, %d deletes; want 3 creates", len(first.create), len(first.update), len(first.delete))
	}
	existing := materialize(first)

	// Nothing changed: nothing to write.
	if p := planSlices(svc, desiredGroups(svc, pods, noZone), existing, 10); len(p.create)+len(p.update)+len(p.delete) != 0 {
		t.Fatalf("steady state writes: %+v", p)
	}

	// p003 stops being ready: one update, of the slice holding it.
	pods[3].Status.Conditions[0].Status = corev1.ConditionFalse
	p := planSlices(svc, desiredGroups(svc, pods, noZone), existing, 10)
	if len(p.update) != 1 || len(p.create)+len(p.delete) != 0 || p.update[0].Name != existing[0].Name {
		t.Fatalf("one pod's change: %d creates, %d updates, %d deletes", len(p.create), len(p.update), len(p.delete))
	}

	// Pods 10..19 (the whole second slice) go: that slice is deleted.
	kept := append(append([]*corev1.Pod{}, pods[:10]...), pods[20:]...)
	p = planSlices(svc, desiredGroups(svc, kept, noZone), existing, 10)
	if len(p.delete) != 1 || p.delete[0].Name != existing[1].Name || len(p.create) != 0 || len(p.update) != 1 {
		t.Fatalf("slice emptied: %d creates, %d updates, %d deletes", len(p.create), len(p.update), len(p.delete))
	}

	// Two new pods fill the free room of the first slice that has some
	// instead of making a slice.
	more := append(append([]*corev1.Pod{}, pods...), testPods(27)[25:]...)
	p = planSlices(svc, desiredGroups(svc, more, noZone), existing, 10)
	if len(p.create)+len(p.delete) != 0 || len(p.update) != 2 || p.update[1].Name != existing[2].Name ||
		len(p.update[1].Endpoints) != 7 {
		t.Fatalf("new pods: %d creates, %d updates, %d deletes", len(p.create), len(p.update), len(p.delete))
	}
}

// No endpoints: one placeholder, reusing an existing slice of the right
// address type; slices of a former Service of the same name are deleted.
func TestPlanPlaceholderAndForeignSlices(t *testing.T) {
	svc := testService()
	existing := materialize(planSlices(svc, desiredGroups(svc, testPods(3), noZone), nil, 100))
	foreign := existing[0].DeepCopy()
	foreign.Name, foreign.OwnerReferences[0].UID = "web-old", "old-uid"
	p := planSlices(svc, nil, append(existing, foreign), 100)
	if len(p.create) != 0 || len(p.update) != 1 || len(p.delete) != 1 || p.delete[0].Name != "web-old" {
		t.Fatalf("got %d creates, %d updates, %d deletes", len(p.create), len(p.update), len(p.delete))
	}
	if u := p.update[0]; len(u.Endpoints) != 0 || len(u.Ports) != 0 {
		t.Fatalf("placeholder has %d endpoints, %d ports", len(u.Endpoints), len(u.Ports))
	}
	if p := planSlices(svc, nil, nil, 100); len(p.create) != 1 || p.create[0].Labels[discoveryv1.LabelManagedBy] != ManagedBy {
		t.Fatalf("placeholder from nothing: %+v", p)
	}
}

func TestFindPort(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	pod := &corev1.Pod{Spec: corev1.PodSpec{
		Containers: []corev1.Container{{Ports: []corev1.ContainerPort{
			{Name: "http", ContainerPort: 8080},
			{Name: "dns", ContainerPort: 5353, Protocol: corev1.ProtocolUDP},
		}}},
		InitContainers: []corev1.Container{
			{Ports: []corev1.ContainerPort{{Name: "once", ContainerPort: 1}}},
			{RestartPolicy: &always, Ports: []corev1.ContainerPort{{Name: "sidecar", ContainerPort: 15000}}},
		},
	}}
	for _, c := range []struct {
		sp   corev1.ServicePort
		want int32
		ok   bool
	}{
		{corev1.ServicePort{Port: 80, TargetPort: intstr.FromString("http")}, 8080, true},
		{corev1.ServicePort{Port: 80, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolUDP}, 0, false},
		{corev1.ServicePort{Port: 53, TargetPort: intstr.FromString("dns"), Protocol: corev1.ProtocolUDP}, 5353, true},
		{corev1.ServicePort{Port: 80, TargetPort: intstr.FromString("sidecar")}, 15000, true},
		{corev1.ServicePort{Port: 80, TargetPort: intstr.FromString("once")}, 0, false},
		{corev1.ServicePort{Port: 80, TargetPort: intstr.FromString("missing")}, 0, false},
		{corev1.ServicePort{Port: 80, TargetPort: intstr.FromInt32(9000)}, 9000, true},
		{corev1.ServicePort{Port: 80}, 80, true},
	} {
		got, ok := findPort(pod, &c.sp)
		if got != c.want || ok != c.ok {
			t.Errorf("%+v: got %d %t, want %d %t", c.sp, got, ok, c.want, c.ok)
		}
	}
}
