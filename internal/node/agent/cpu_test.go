package agent

import (
	"log/slog"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	skiffrt "github.com/skiffhq/skiff/runtime"
)

// limitless is a runtime that cannot say whether it holds CPU limits (it
// does not implement runtime.CPULimiter), as an OCI runtime might be.
type limitless struct{ skiffrt.Runtime }

func (limitless) Name() string    { return "limitless" }
func (limitless) Version() string { return "limitless://0" }

// limiter answers CPULimitEnforced as told.
type limiter struct {
	limitless
	ok  bool
	why string
}

func (l limiter) CPULimitEnforced() (bool, string) { return l.ok, l.why }

// TestNodeSaysWhetherCPULimitsHold: the registered Node carries the
// CPULimitsNotEnforced condition and the cpu-limits label as the runtime
// answers, and a runtime that cannot answer is taken not to enforce.
func TestNodeSaysWhetherCPULimitsHold(t *testing.T) {
	for _, tc := range []struct {
		name   string
		rt     skiffrt.Runtime
		status corev1.ConditionStatus
		label  string
		msg    string
	}{
		{"enforced", limiter{ok: true}, corev1.ConditionFalse, "enforced", "containers are held to their CPU limits"},
		{"no controller", limiter{why: "no cgroup cpu controller is mounted"}, corev1.ConditionTrue, "not-enforced",
			"CPU limits not enforced on this node: no cgroup cpu controller is mounted"},
		{"cannot say", limitless{}, corev1.ConditionTrue, "not-enforced",
			"CPU limits not enforced on this node: the runtime does not enforce CPU limits"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &Agent{cfg: Config{Runtime: tc.rt, MaxPods: 1}, log: slog.New(slog.DiscardHandler)}
			node, err := a.describeNode()
			if err != nil {
				t.Fatal(err)
			}
			var cond *corev1.NodeCondition
			for i := range node.Status.Conditions {
				if node.Status.Conditions[i].Type == NodeCPULimitsNotEnforced {
					cond = &node.Status.Conditions[i]
				}
			}
			if cond == nil || cond.Status != tc.status || cond.Message != tc.msg {
				t.Errorf("condition %+v, want %s %q", cond, tc.status, tc.msg)
			}
			if got := node.Labels[CPULimitsLabel]; got != tc.label {
				t.Errorf("label %s = %q, want %q", CPULimitsLabel, got, tc.label)
			}
		})
	}
}

func TestCPULimitMillis(t *testing.T) {
	for limit, want := range map[string]int64{"": 0, "100m": 100, "1": 1000, "1.5": 1500, "0.5m": 1} {
		c := corev1.Container{}
		if limit != "" {
			c.Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(limit)}
		}
		if got := cpuLimitMillis(&c); got != want {
			t.Errorf("limits.cpu %q: %d millis, want %d", limit, got, want)
		}
	}
}
