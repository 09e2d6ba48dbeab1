package scheduler

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
)

// TestVolumeBinding: a pod whose claim is bound goes where the volume is;
// one whose WaitForFirstConsumer claim is unbound goes anywhere and the
// claim gets the node chosen; a claim already selected for a node holds
// the pod to it; a missing claim or an unbound Immediate one keeps the pod
// waiting.
func TestVolumeBinding(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wffc, imm := storagev1.VolumeBindingWaitForFirstConsumer, storagev1.VolumeBindingImmediate
	local, now := "local-path", "now"
	pvc := func(name string, class *string, volume string, ann map[string]string) *corev1.PersistentVolumeClaim {
		return &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Annotations: ann},
			Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: class, VolumeName: volume,
				Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}}}
	}
	pv := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pv-b"}, Spec: corev1.PersistentVolumeSpec{
		NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
			MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"b"}}}}}}}}}
	cs := fake.NewClientset(
		&storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: local}, Provisioner: "skiff.dev/local-path", VolumeBindingMode: &wffc},
		&storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: now}, Provisioner: "x", VolumeBindingMode: &imm},
		pv,
		pvc("bound", &local, "pv-b", nil),
		pvc("fresh", &local, "", nil),
		pvc("selected", &local, "", map[string]string{SelectedNodeAnnotation: "c"}),
		pvc("immediate", &now, "", nil),
	)
	f := informers.NewSharedInformerFactory(cs, 0)
	s, err := New(Config{Client: cs, Pods: f.Core().V1().Pods(), Nodes: f.Core().V1().Nodes(), Recorder: record.NewFakeRecorder(10),
		Claims: f.Core().V1().PersistentVolumeClaims(), Volumes: f.Core().V1().PersistentVolumes(), StorageClasses: f.Storage().V1().StorageClasses()})
	if err != nil {
		t.Fatal(err)
	}
	f.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), s.loop.Synced...) {
		t.Fatal("caches")
	}
	nodes := func() map[string]*nodeInfo {
		return infos(testNode("a", nil, "4", "8Gi", 110), testNode("b", nil, "4", "8Gi", 110), testNode("c", nil, "4", "8Gi", 110))
	}
	withClaim := func(name string) *corev1.Pod {
		p := testPod("", "")
		p.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: name}}}}
		return p
	}
	for _, tc := range []struct{ claim, node, msg string }{
		{"bound", "b", ""},
		{"selected", "c", ""},
		{"fresh", "a", ""},
		{"missing", "", `persistentvolumeclaim "missing" not found`},
		{"immediate", "", "pod has unbound immediate PersistentVolumeClaims"},
	} {
		pod := withClaim(tc.claim)
		cc, msg, err := s.podClaims(pod)
		if err != nil {
			t.Fatal(err)
		}
		if msg != tc.msg {
			t.Errorf("%s: message %q, want %q", tc.claim, msg, tc.msg)
			continue
		}
		if msg != "" {
			continue
		}
		if node, why := placeWith(pod, cc, nodes()); node != tc.node {
			t.Errorf("%s: placed on %q (%s), want %q", tc.claim, node, why, tc.node)
		}
		if err := s.selectNode(ctx, cc, tc.node); err != nil {
			t.Fatal(err)
		}
	}
	got, err := cs.CoreV1().PersistentVolumeClaims("default").Get(ctx, "fresh", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Annotations[SelectedNodeAnnotation] != "a" {
		t.Errorf("fresh claim annotations = %v, want the selected node a", got.Annotations)
	}
	// The bound volume's node fits nowhere else.
	m := infos(testNode("a", nil, "4", "8Gi", 110))
	cc, _, _ := s.podClaims(withClaim("bound"))
	if node, why := placeWith(withClaim("bound"), cc, m); node != "" || why != "0/1 nodes are available: 1 node(s) had volume node affinity conflict." {
		t.Errorf("bound claim on the wrong node: %q %q", node, why)
	}
}
