package podautoscaler

import (
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	testingclock "k8s.io/utils/clock/testing"
)

func rules(window int32, sel autoscalingv2.ScalingPolicySelect, policies ...autoscalingv2.HPAScalingPolicy) *autoscalingv2.HPAScalingRules {
	return &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: &window, SelectPolicy: &sel, Policies: policies}
}

func pods(n, period int32) autoscalingv2.HPAScalingPolicy {
	return autoscalingv2.HPAScalingPolicy{Type: autoscalingv2.PodsScalingPolicy, Value: n, PeriodSeconds: period}
}

func percent(n, period int32) autoscalingv2.HPAScalingPolicy {
	return autoscalingv2.HPAScalingPolicy{Type: autoscalingv2.PercentScalingPolicy, Value: n, PeriodSeconds: period}
}

func TestScaleDownStabilizationWindow(t *testing.T) {
	clk := testingclock.NewFakeClock(t0)
	h := newHistory(clk)
	b := withDefaults(nil) // scale-down window 300 s
	args := normalizeArgs{key: "k", scaleUp: b.ScaleUp, scaleDown: b.ScaleDown, min: 1, max: 10, current: 5}
	h.recordInitial("k", 5)

	clk.Step(10 * time.Second)
	args.desired = 2
	got, reason, _ := h.stabilize(args)
	if got != 5 || reason != "ScaleDownStabilized" {
		t.Fatalf("inside the window: %d (%s), want 5 (ScaleDownStabilized)", got, reason)
	}
	// A later, higher recommendation holds the floor up as long as it is
	// in the window.
	clk.Step(100 * time.Second)
	args.desired = 4
	if got, _, _ = h.stabilize(args); got != 5 {
		t.Fatalf("still inside the initial sample's window: %d, want 5", got)
	}
	clk.Step(195 * time.Second) // the initial 5 is 305 s old; the 4 is 195 s old
	args.desired = 2
	if got, _, _ = h.stabilize(args); got != 4 {
		t.Fatalf("after the 5 left the window: %d, want 4", got)
	}
	clk.Step(300 * time.Second)
	if got, _, _ = h.stabilize(args); got != 2 {
		t.Fatalf("after every higher sample left the window: %d, want 2", got)
	}
}

func TestScaleUpStabilizationWindow(t *testing.T) {
	clk := testingclock.NewFakeClock(t0)
	h := newHistory(clk)
	b := withDefaults(&autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: rules(60, autoscalingv2.MaxChangePolicySelect, pods(100, 15))})
	args := normalizeArgs{key: "k", scaleUp: b.ScaleUp, scaleDown: b.ScaleDown, min: 1, max: 10, current: 2}
	h.recordInitial("k", 2)
	clk.Step(time.Second)
	args.desired = 8
	if got, reason, _ := h.stabilize(args); got != 2 || reason != "ScaleUpStabilized" {
		t.Fatalf("a spike inside the window: %d (%s), want 2 (ScaleUpStabilized)", got, reason)
	}
	clk.Step(30 * time.Second)
	args.desired = 6
	if got, _, _ := h.stabilize(args); got != 2 {
		t.Fatalf("the initial 2 is still in the window: %d, want 2", got)
	}
	clk.Step(30 * time.Second) // the 2 is 61 s old; 8 and 6 remain
	if got, _, _ := h.stabilize(args); got != 6 {
		t.Fatalf("lowest recent recommendation: %d, want 6", got)
	}
}

func TestScaleUpPolicies(t *testing.T) {
	for _, tc := range []struct {
		name       string
		sel        autoscalingv2.ScalingPolicySelect
		want       int32
		wantReason string
	}{
		// From 3: Pods 4 -> 7, Percent 100 -> 6.
		{"Max takes the larger change", autoscalingv2.MaxChangePolicySelect, 7, "ScaleUpLimit"},
		{"Min takes the smaller change", autoscalingv2.MinChangePolicySelect, 6, "ScaleUpLimit"},
		{"Disabled does not scale up", autoscalingv2.DisabledPolicySelect, 3, "ScaleUpLimit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHistory(testingclock.NewFakeClock(t0))
			b := withDefaults(&autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: rules(0, tc.sel, pods(4, 15), percent(100, 15))})
			got, reason, _ := h.limitRate(normalizeArgs{key: "k", scaleUp: b.ScaleUp, scaleDown: b.ScaleDown, min: 1, max: 20, current: 3, desired: 15})
			if got != tc.want || reason != tc.wantReason {
				t.Errorf("%d (%s), want %d (%s)", got, reason, tc.want, tc.wantReason)
			}
		})
	}
}

func TestScaleUpPolicyCountsThePeriodsEvents(t *testing.T) {
	clk := testingclock.NewFakeClock(t0)
	h := newHistory(clk)
	b := withDefaults(&autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: rules(0, autoscalingv2.MaxChangePolicySelect, pods(2, 60))})
	args := normalizeArgs{key: "k", scaleUp: b.ScaleUp, scaleDown: b.ScaleDown, min: 1, max: 20, current: 2, desired: 10}
	if got, _, _ := h.limitRate(args); got != 4 {
		t.Fatalf("first step: %d, want 4", got)
	}
	h.recordScale("k", b, 2, 4)
	clk.Step(30 * time.Second)
	args.current = 4
	if got, _, _ := h.limitRate(args); got != 4 {
		t.Fatalf("the period's 2 pods are spent: %d, want 4", got)
	}
	clk.Step(31 * time.Second)
	if got, _, _ := h.limitRate(args); got != 6 {
		t.Fatalf("a new period: %d, want 6", got)
	}
}

func TestScaleDownPolicies(t *testing.T) {
	h := newHistory(testingclock.NewFakeClock(t0))
	b := withDefaults(&autoscalingv2.HorizontalPodAutoscalerBehavior{
		ScaleDown: rules(0, autoscalingv2.MaxChangePolicySelect, percent(50, 60), pods(2, 60))})
	args := normalizeArgs{key: "k", scaleUp: b.ScaleUp, scaleDown: b.ScaleDown, min: 1, max: 20, current: 10, desired: 1}
	// Percent 50 -> 5, Pods 2 -> 8; Max (the larger change) -> 5.
	if got, reason, _ := h.limitRate(args); got != 5 || reason != "ScaleDownLimit" {
		t.Fatalf("%d (%s), want 5 (ScaleDownLimit)", got, reason)
	}
	*b.ScaleDown.SelectPolicy = autoscalingv2.MinChangePolicySelect
	if got, _, _ := h.limitRate(args); got != 8 {
		t.Fatalf("Min: %d, want 8", got)
	}
}

func TestLimitsByMinAndMax(t *testing.T) {
	h := newHistory(testingclock.NewFakeClock(t0))
	b := withDefaults(nil)
	args := normalizeArgs{key: "k", scaleUp: b.ScaleUp, scaleDown: b.ScaleDown, min: 2, max: 5, current: 4, desired: 7}
	if got, reason, _ := h.limitRate(args); got != 5 || reason != "TooManyReplicas" {
		t.Errorf("above max: %d (%s), want 5 (TooManyReplicas)", got, reason)
	}
	args.desired = 1
	if got, reason, _ := h.limitRate(args); got != 2 || reason != "TooFewReplicas" {
		t.Errorf("below min: %d (%s), want 2 (TooFewReplicas)", got, reason)
	}
	args.desired = 3
	if got, reason, _ := h.limitRate(args); got != 3 || reason != "DesiredWithinRange" {
		t.Errorf("within: %d (%s), want 3 (DesiredWithinRange)", got, reason)
	}
}
