package resourcequota

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestLowerWaitsForTheQuotaToSettle: a recount that would lower usage is
// held back while the quota's resourceVersion is new (a charge may have
// its object still on the way to the store), and taken once it has stayed
// the same for Settle; a recount that raises usage is taken at once.
func TestLowerWaitsForTheQuotaToSettle(t *testing.T) {
	c := &Controller{cfg: Config{Settle: time.Minute}, seen: map[string]seenVersion{}}
	q := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "q", ResourceVersion: "7"},
		Status: corev1.ResourceQuotaStatus{Used: corev1.ResourceList{"pods": resource.MustParse("3")}}}

	used := corev1.ResourceList{"pods": resource.MustParse("2")}
	if wait := c.lower(q, used); wait <= 0 || wait > time.Minute {
		t.Fatalf("lowering a fresh quota: wait %v, want up to Settle", wait)
	}
	if got := used["pods"]; got.String() != "3" {
		t.Fatalf("lowering a fresh quota: used %s, want the charged 3 kept", got.String())
	}

	raised := corev1.ResourceList{"pods": resource.MustParse("5")}
	if wait := c.lower(q, raised); wait != 0 {
		t.Fatalf("raising: wait %v, want none", wait)
	}
	if got := raised["pods"]; got.String() != "5" {
		t.Fatalf("raising: used %s, want 5", got.String())
	}

	// The same resourceVersion, seen Settle ago: settled.
	c.seen["ns/q"] = seenVersion{rv: "7", at: time.Now().Add(-2 * time.Minute)}
	used = corev1.ResourceList{"pods": resource.MustParse("2")}
	if wait := c.lower(q, used); wait != 0 {
		t.Fatalf("lowering a settled quota: wait %v", wait)
	}
	if got := used["pods"]; got.String() != "2" {
		t.Fatalf("lowering a settled quota: used %s, want the recount 2", got.String())
	}

	// A new charge (new resourceVersion) starts the wait again.
	q.ResourceVersion = "8"
	used = corev1.ResourceList{"pods": resource.MustParse("2")}
	if wait := c.lower(q, used); wait <= 0 {
		t.Fatalf("after a new charge: wait %v, want the settle time again", wait)
	}
}
