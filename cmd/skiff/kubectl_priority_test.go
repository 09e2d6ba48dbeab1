package main

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestKubectlPriorityAndBudgets: kubectl lists the built-in PriorityClasses
// with Kubernetes' columns, creates one, sees a pod's class resolved and an
// unknown class refused; a PodDisruptionBudget made with `kubectl create
// pdb` gets its status from the disruption controller and `kubectl get
// pdb` shows ALLOWED DISRUPTIONS.
func TestKubectlPriorityAndBudgets(t *testing.T) {
	c := startServer(t)
	ns := "prio"
	c.ok("", "create", "namespace", ns)
	pcs := c.ok("", "get", "priorityclass")
	if !regexp.MustCompile(`(?m)^NAME\s+VALUE\s+GLOBAL-DEFAULT\s+AGE\s+PREEMPTIONPOLICY\n(.*\n)*system-node-critical\s+2000001000\s+false\s+\S+\s+PreemptLowerPriority$`).MatchString(strings.TrimSpace(pcs)) {
		t.Fatalf("get priorityclass:\n%s", pcs)
	}
	contains(t, "explain", c.ok("", "explain", "priorityclass.preemptionPolicy"), "PreemptLowerPriority")
	c.ok("", "create", "priorityclass", "batch-high", "--value=1000", "--description=urgent work")
	pod := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"NAME","namespace":"prio"},
		"spec":{"priorityClassName":"CLASS","nodeSelector":{"nowhere":"true"},"containers":[{"name":"c","image":"example.com/a:1"}]}}`
	c.ok(strings.NewReplacer("NAME", "urgent", "CLASS", "batch-high").Replace(pod), "create", "-f", "-")
	if got := c.ok("", "get", "pod", "urgent", "-n", ns, "-o", "jsonpath={.spec.priority} {.spec.preemptionPolicy}"); got != "1000 PreemptLowerPriority" {
		t.Fatalf("resolved priority: %q", got)
	}
	contains(t, "unknown class", c.fails(strings.NewReplacer("NAME", "lost", "CLASS", "nope").Replace(pod), "create", "-f", "-"),
		"Forbidden", "no PriorityClass with name nope was found")

	c.ok("", "create", "pdb", "guard", "-n", ns, "--selector=app=web", "--min-available=1")
	var got string
	for range 100 { // bounded: 100 × 100 ms
		if got = c.ok("", "get", "pdb", "guard", "-n", ns, "-o", "jsonpath={.status.observedGeneration} {.status.expectedPods} {.status.conditions[0].reason}"); got == "1 0 InsufficientPods" {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got != "1 0 InsufficientPods" {
		t.Fatalf("pdb status: %q", got)
	}
	out := c.ok("", "get", "pdb", "-n", ns)
	if !regexp.MustCompile(`(?m)^NAME\s+MIN AVAILABLE\s+MAX UNAVAILABLE\s+ALLOWED DISRUPTIONS\s+AGE\nguard\s+1\s+N/A\s+0\s+\S+$`).MatchString(strings.TrimSpace(out)) {
		t.Fatalf("get pdb:\n%s", out)
	}
}
