package namespace

import (
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
)

// The conditions carry Kubernetes' reasons and messages, word for word:
// every type is present, "ok" (False) where nothing failed, and a second
// pass with the same findings changes nothing.
func TestConditions(t *testing.T) {
	var c conditions
	c.discoveryFailed(&discovery.ErrGroupDiscoveryFailed{Groups: map[schema.GroupVersion]error{
		{Group: "metrics.k8s.io", Version: "v1beta1"}: errors.New("unavailable")}})
	c.contentFailed(errors.New("b failed"))
	c.contentFailed(errors.New("a failed"))
	c.contentTotals(remaining{
		byResource: map[schema.GroupVersionResource]int{
			{Version: "v1", Resource: "pods"}:                       2,
			{Group: "apps", Version: "v1", Resource: "replicasets"}: 1,
			{Version: "v1", Resource: "secrets"}:                    0,
		},
		byFinalizer: map[string]int{"example.com/b": 1, "example.com/a": 2},
	})
	var st corev1.NamespaceStatus
	if !c.apply(&st) {
		t.Fatal("first apply changed nothing")
	}
	want := map[corev1.NamespaceConditionType][3]string{
		corev1.NamespaceDeletionDiscoveryFailure: {"True", "DiscoveryFailed",
			"Discovery failed for some groups, 1 failing: unable to retrieve the complete list of server APIs: metrics.k8s.io/v1beta1: unavailable"},
		corev1.NamespaceDeletionGVParsingFailure: {"False", "ParsedGroupVersions", "All legacy kube types successfully parsed"},
		corev1.NamespaceDeletionContentFailure: {"True", "ContentDeletionFailed",
			"Failed to delete all resource types, 2 remaining: a failed, b failed"},
		corev1.NamespaceContentRemaining: {"True", "SomeResourcesRemain",
			"Some resources are remaining: pods. has 2 resource instances, replicasets.apps has 1 resource instances"},
		corev1.NamespaceFinalizersRemaining: {"True", "SomeFinalizersRemain",
			"Some content in the namespace has finalizers remaining: example.com/a in 2 resource instances, example.com/b in 1 resource instances"},
	}
	if len(st.Conditions) != len(want) {
		t.Fatalf("%d conditions: %+v", len(st.Conditions), st.Conditions)
	}
	for _, got := range st.Conditions {
		w := want[got.Type]
		if string(got.Status) != w[0] || got.Reason != w[1] || got.Message != w[2] {
			t.Errorf("%s: %s %s %q, want %v", got.Type, got.Status, got.Reason, got.Message, w)
		}
	}

	// All well now: every condition flips to its ok variant.
	var ok conditions
	ok.contentTotals(remaining{})
	if !ok.apply(&st) {
		t.Fatal("recovery changed nothing")
	}
	for _, got := range st.Conditions {
		if got.Status != corev1.ConditionFalse || got.Reason != okReasons[got.Type] || got.Message != okMessages[got.Type] {
			t.Errorf("%s after recovery: %+v", got.Type, got)
		}
	}
	var again conditions
	if again.apply(&st) {
		t.Fatal("the same findings changed the status again")
	}
}
