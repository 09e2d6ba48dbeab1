package namespace

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
)

// The conditions a namespace's deletion keeps, with Kubernetes' reasons
// and messages (pkg/controller/namespace/deletion/status_condition_utils.go),
// so that `kubectl describe namespace` and tools that read them say the
// same as on any cluster. Each is False with its "ok" reason while nothing
// is wrong.
var (
	conditionTypes = []corev1.NamespaceConditionType{
		corev1.NamespaceDeletionDiscoveryFailure,
		corev1.NamespaceDeletionGVParsingFailure,
		corev1.NamespaceDeletionContentFailure,
		corev1.NamespaceContentRemaining,
		corev1.NamespaceFinalizersRemaining,
	}
	okMessages = map[corev1.NamespaceConditionType]string{
		corev1.NamespaceDeletionDiscoveryFailure: "All resources successfully discovered",
		corev1.NamespaceDeletionGVParsingFailure: "All legacy kube types successfully parsed",
		corev1.NamespaceDeletionContentFailure:   "All content successfully deleted, may be waiting on finalization",
		corev1.NamespaceContentRemaining:         "All content successfully removed",
		corev1.NamespaceFinalizersRemaining:      "All content-preserving finalizers finished",
	}
	okReasons = map[corev1.NamespaceConditionType]string{
		corev1.NamespaceDeletionDiscoveryFailure: "ResourcesDiscovered",
		corev1.NamespaceDeletionGVParsingFailure: "ParsedGroupVersions",
		corev1.NamespaceDeletionContentFailure:   "ContentDeleted",
		corev1.NamespaceContentRemaining:         "ContentRemoved",
		corev1.NamespaceFinalizersRemaining:      "ContentHasNoFinalizers",
	}
)

// conditions gathers what one pass over a namespace found wrong.
type conditions struct {
	failed        []corev1.NamespaceCondition
	contentErrors []error
}

// remaining is what a pass left in the namespace: objects per resource and
// objects per finalizer that holds them.
type remaining struct {
	byResource  map[schema.GroupVersionResource]int
	byFinalizer map[string]int
}

func (c *conditions) add(t corev1.NamespaceConditionType, reason, msg string) {
	c.failed = append(c.failed, corev1.NamespaceCondition{Type: t, Status: corev1.ConditionTrue,
		LastTransitionTime: metav1.Now(), Reason: reason, Message: msg})
}

func (c *conditions) discoveryFailed(err error) {
	msg := err.Error()
	var gerr *discovery.ErrGroupDiscoveryFailed
	if errors.As(err, &gerr) {
		msg = fmt.Sprintf("Discovery failed for some groups, %d failing: %v", len(gerr.Groups), err)
	}
	c.add(corev1.NamespaceDeletionDiscoveryFailure, "DiscoveryFailed", msg)
}

func (c *conditions) groupVersionFailed(err error) {
	c.add(corev1.NamespaceDeletionGVParsingFailure, "GroupVersionParsingFailed", err.Error())
}

func (c *conditions) contentFailed(err error) { c.contentErrors = append(c.contentErrors, err) }

func (c *conditions) contentTotals(r remaining) {
	var res []string
	for gvr, n := range r.byResource {
		if n > 0 {
			res = append(res, fmt.Sprintf("%s.%s has %d resource instances", gvr.Resource, gvr.Group, n))
		}
	}
	if len(res) > 0 {
		sort.Strings(res)
		c.add(corev1.NamespaceContentRemaining, "SomeResourcesRemain",
			fmt.Sprintf("Some resources are remaining: %s", strings.Join(res, ", ")))
	}
	var fins []string
	for f, n := range r.byFinalizer {
		if n > 0 {
			fins = append(fins, fmt.Sprintf("%s in %d resource instances", f, n))
		}
	}
	if len(fins) > 0 {
		sort.Strings(fins)
		c.add(corev1.NamespaceFinalizersRemaining, "SomeFinalizersRemain",
			fmt.Sprintf("Some content in the namespace has finalizers remaining: %s", strings.Join(fins, ", ")))
	}
}

// apply writes the conditions into st, the "ok" variant for every type
// nothing failed for, and says whether anything changed. A condition's
// lastTransitionTime moves only when its status does.
func (c *conditions) apply(st *corev1.NamespaceStatus) bool {
	if len(c.contentErrors) > 0 {
		msgs := make([]string, 0, len(c.contentErrors))
		for _, e := range c.contentErrors {
			msgs = append(msgs, e.Error())
		}
		sort.Strings(msgs)
		c.add(corev1.NamespaceDeletionContentFailure, "ContentDeletionFailed",
			fmt.Sprintf("Failed to delete all resource types, %d remaining: %v", len(msgs), strings.Join(msgs, ", ")))
	}
	changed := false
	for _, t := range conditionTypes {
		want := find(c.failed, t)
		if want == nil {
			want = &corev1.NamespaceCondition{Type: t, Status: corev1.ConditionFalse, LastTransitionTime: metav1.Now(),
				Reason: okReasons[t], Message: okMessages[t]}
		}
		old := find(st.Conditions, t)
		switch {
		case old == nil:
			st.Conditions = append(st.Conditions, *want)
			changed = true
		case old.Status != want.Status || old.Reason != want.Reason || old.Message != want.Message:
			if old.Status != want.Status {
				old.LastTransitionTime = metav1.Now()
			}
			old.Status, old.Reason, old.Message = want.Status, want.Reason, want.Message
			changed = true
		}
	}
	return changed
}

func find(cs []corev1.NamespaceCondition, t corev1.NamespaceConditionType) *corev1.NamespaceCondition {
	for i := range cs {
		if cs[i].Type == t {
			return &cs[i]
		}
	}
	return nil
}
