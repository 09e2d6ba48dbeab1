package apiserver

import (
	"context"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiffhq/skiff/internal/testutil"
)

// TestNodeAuthorizerGraph decides a node's requests from the pods bound
// to it, over real informers: a claim and its volume, a service account's
// token, a projected Secret, an image pull Secret, its own pods' status
// and its own Lease; nothing of another node's pods.
func TestNodeAuthorizerGraph(t *testing.T) {
	s, admin, _ := startAuthzServer(t)
	ctx := context.Background()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p1", Namespace: "default"}, Spec: corev1.PodSpec{
		NodeName: "n1", ServiceAccountName: "sa1", ImagePullSecrets: []corev1.LocalObjectReference{{Name: "pull"}},
		Containers: []corev1.Container{{Name: "c", Image: "x"}},
		Volumes: []corev1.Volume{
			{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "claim1"}}},
			{Name: "proj", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "projected"}}}}}}},
		}}}
	if _, err := admin.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	other := pod.DeepCopy()
	other.Name, other.Spec.NodeName, other.Spec.ServiceAccountName = "p2", "n2", "sa2"
	other.Spec.Volumes, other.Spec.ImagePullSecrets = nil, []corev1.LocalObjectReference{{Name: "theirs"}}
	if _, err := admin.CoreV1().Pods("default").Create(ctx, other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	claim := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "claim1", Namespace: "default"},
		Spec: corev1.PersistentVolumeClaimSpec{VolumeName: "pv1", AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}}}
	if _, err := admin.CoreV1().PersistentVolumeClaims("default").Create(ctx, claim, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	n1 := &user.DefaultInfo{Name: "system:node:n1", Groups: []string{"system:nodes", user.AllAuthenticated}}
	ask := func(verb, group, resource, sub, ns, name string) bool {
		ok, _, _ := s.decide(ctx, &authorizer.AttributesRecord{User: n1, Verb: verb, APIGroup: group, Resource: resource,
			Subresource: sub, Namespace: ns, Name: name, ResourceRequest: true})
		return ok
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		if !ask("get", "", "persistentvolumes", "", "", "pv1") {
			return errString("pv1 not yet readable through claim1")
		}
		return nil
	})
	// The object's name is checked on create, where the URL has none.
	asN1 := kubernetes.NewForConfigOrDie(&rest.Config{Host: "http://in-process", Transport: s.InProcessTransportAs(n1), QPS: -1})
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "n2", Namespace: "kube-node-lease"}}
	if _, err := asN1.CoordinationV1().Leases("kube-node-lease").Create(ctx, lease, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("n1 creating n2's lease: %v, want 403", err)
	}
	lease.Name = "n1"
	if _, err := asN1.CoordinationV1().Leases("kube-node-lease").Create(ctx, lease, metav1.CreateOptions{}); err != nil {
		t.Errorf("n1 creating its lease: %v", err)
	}
	mirror := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "m", Namespace: "default"},
		Spec: corev1.PodSpec{NodeName: "n2", Containers: []corev1.Container{{Name: "c", Image: "x"}}}}
	if _, err := asN1.CoreV1().Pods("default").Create(ctx, mirror, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("n1 creating a pod on n2: %v, want 403", err)
	}
	for _, c := range []struct {
		verb, group, resource, sub, ns, name string
		want                                 bool
	}{
		{"get", "", "persistentvolumeclaims", "", "default", "claim1", true},
		{"get", "", "persistentvolumes", "", "", "pv2", false},
		{"get", "", "secrets", "", "default", "pull", true},
		{"get", "", "secrets", "", "default", "projected", true},
		{"get", "", "secrets", "", "default", "theirs", false},
		{"list", "", "secrets", "", "default", "", false},
		{"create", "", "serviceaccounts", "token", "default", "sa1", true},
		{"create", "", "serviceaccounts", "token", "default", "sa2", false},
		{"update", "", "pods", "status", "default", "p1", true},
		{"update", "", "pods", "status", "default", "p2", false},
		{"delete", "", "pods", "", "default", "p2", false},
		{"update", "coordination.k8s.io", "leases", "", "kube-node-lease", "n1", true},
		{"update", "coordination.k8s.io", "leases", "", "kube-node-lease", "n2", false},
		{"patch", "", "nodes", "status", "", "n1", true},
		{"patch", "", "nodes", "status", "", "n2", false},
		{"list", "", "pods", "", "", "", true},
		{"list", "", "namespaces", "", "", "", false},
	} {
		if got := ask(c.verb, c.group, c.resource, c.sub, c.ns, c.name); got != c.want {
			t.Errorf("n1 %s %s/%s %s/%s: %v, want %v", c.verb, c.resource, c.sub, c.ns, c.name, got, c.want)
		}
	}
}
