package podautoscaler

import (
	"math"
	"sync"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/utils/clock"
)

// Kubernetes' behavior defaults (autoscaling/v2 SetDefaults), applied when
// an HPA reaches the controller without them (the API server defaults
// them; a client-go fake does not).
const (
	defaultScaleDownWindow int32 = 300
	defaultScaleUpWindow   int32 = 0
)

func defaultScaleUpRules() *autoscalingv2.HPAScalingRules {
	sel := autoscalingv2.MaxChangePolicySelect
	return &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptrTo(defaultScaleUpWindow), SelectPolicy: &sel,
		Policies: []autoscalingv2.HPAScalingPolicy{
			{Type: autoscalingv2.PodsScalingPolicy, Value: 4, PeriodSeconds: 15},
			{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15},
		}}
}

func defaultScaleDownRules() *autoscalingv2.HPAScalingRules {
	sel := autoscalingv2.MaxChangePolicySelect
	return &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptrTo(defaultScaleDownWindow), SelectPolicy: &sel,
		Policies: []autoscalingv2.HPAScalingPolicy{
			{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15},
		}}
}

// withDefaults fills what b leaves unset with Kubernetes' defaults; b is
// not changed.
func withDefaults(b *autoscalingv2.HorizontalPodAutoscalerBehavior) *autoscalingv2.HorizontalPodAutoscalerBehavior {
	out := &autoscalingv2.HorizontalPodAutoscalerBehavior{}
	if b != nil {
		out = b.DeepCopy()
	}
	out.ScaleUp = fillRules(out.ScaleUp, defaultScaleUpRules())
	out.ScaleDown = fillRules(out.ScaleDown, defaultScaleDownRules())
	return out
}

func fillRules(r, def *autoscalingv2.HPAScalingRules) *autoscalingv2.HPAScalingRules {
	if r == nil {
		return def
	}
	if r.StabilizationWindowSeconds == nil {
		r.StabilizationWindowSeconds = def.StabilizationWindowSeconds
	}
	if r.SelectPolicy == nil {
		r.SelectPolicy = def.SelectPolicy
	}
	if len(r.Policies) == 0 {
		r.Policies = def.Policies
	}
	return r
}

func ptrTo[T any](v T) *T { return &v }

type recommendation struct {
	replicas int32
	at       time.Time
}

type scaleEvent struct {
	change   int32
	at       time.Time
	outdated bool
}

// history is what the controller remembers per HPA between syncs, as
// Kubernetes' controller does in memory: the recommendations of the
// stabilization windows and the scale events the rate policies count.
// A new leader starts with none, as a restarted kube-controller-manager.
type history struct {
	clock clock.PassiveClock

	mu              sync.Mutex
	recommendations map[string][]recommendation
	scaleUps        map[string][]scaleEvent
	scaleDowns      map[string][]scaleEvent
}

func newHistory(c clock.PassiveClock) *history {
	return &history{clock: c, recommendations: map[string][]recommendation{},
		scaleUps: map[string][]scaleEvent{}, scaleDowns: map[string][]scaleEvent{}}
}

// forget drops a deleted HPA's history.
func (h *history) forget(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.recommendations, key)
	delete(h.scaleUps, key)
	delete(h.scaleDowns, key)
}

// recordInitial seeds an HPA's first window with the current size, so a
// fresh controller does not scale down at once on its first low sample.
func (h *history) recordInitial(key string, current int32) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.recommendations[key] == nil {
		h.recommendations[key] = []recommendation{{current, h.clock.Now()}}
	}
}

// normalizeArgs is one HPA's proposal and its bounds.
type normalizeArgs struct {
	key                string
	scaleUp, scaleDown *autoscalingv2.HPAScalingRules // defaulted
	min, max           int32
	current, desired   int32
}

// stabilize records the unstabilized proposal and returns it bounded by
// the window's recommendations: a scale-up no higher than the lowest
// recommendation of the scale-up window, a scale-down no lower than the
// highest of the scale-down window. With the condition's reason and
// message, Kubernetes' wording.
func (h *history) stabilize(a normalizeArgs) (int32, string, string) {
	now := h.clock.Now()
	upRec, downRec := a.desired, a.desired
	upCutoff := now.Add(-time.Duration(*a.scaleUp.StabilizationWindowSeconds) * time.Second)
	downCutoff := now.Add(-time.Duration(*a.scaleDown.StabilizationWindowSeconds) * time.Second)
	h.mu.Lock()
	defer h.mu.Unlock()
	oldIdx := -1
	for i, r := range h.recommendations[a.key] {
		if r.at.After(upCutoff) {
			upRec = min(r.replicas, upRec)
		}
		if r.at.After(downCutoff) {
			downRec = max(r.replicas, downRec)
		}
		if r.at.Before(upCutoff) && r.at.Before(downCutoff) {
			oldIdx = i
		}
	}
	rec := min(max(a.current, upRec), downRec)
	// Reuse an expired slot: the history of an HPA stays as long as its
	// longest window holds samples, not as long as it lives.
	if oldIdx >= 0 {
		h.recommendations[a.key][oldIdx] = recommendation{a.desired, now}
	} else {
		h.recommendations[a.key] = append(h.recommendations[a.key], recommendation{a.desired, now})
	}
	if a.desired >= a.current {
		return rec, "ScaleUpStabilized", "recent recommendations were lower than current one, applying the lowest recent recommendation"
	}
	return rec, "ScaleDownStabilized", "recent recommendations were higher than current one, applying the highest recent recommendation"
}

// limitRate bounds the stabilized proposal by min/max and by the scaling
// policies over the scale events of their periods; with the
// ScalingLimited reason and message.
func (h *history) limitRate(a normalizeArgs) (int32, string, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.clock.Now()
	ups, downs := h.scaleUps[a.key], h.scaleDowns[a.key]
	switch {
	case a.desired > a.current:
		limit := max(scaleUpLimit(now, a.current, ups, downs, a.scaleUp), a.current)
		allowed, reason, msg := a.max, "TooManyReplicas", "the desired replica count is more than the maximum replica count"
		if allowed > limit {
			allowed, reason, msg = limit, "ScaleUpLimit", "the desired replica count is increasing faster than the maximum scale rate"
		}
		if a.desired > allowed {
			return allowed, reason, msg
		}
	case a.desired < a.current:
		limit := min(scaleDownLimit(now, a.current, ups, downs, a.scaleDown), a.current)
		allowed, reason, msg := a.min, "TooFewReplicas", "the desired replica count is less than the minimum replica count"
		if allowed < limit {
			allowed, reason, msg = limit, "ScaleDownLimit", "the desired replica count is decreasing faster than the maximum scale rate"
		}
		if a.desired < allowed {
			return allowed, reason, msg
		}
	}
	return a.desired, "DesiredWithinRange", "the desired count is within the acceptable range"
}

// recordScale remembers a rescale for the rate policies, reusing a slot
// older than the direction's longest policy period.
func (h *history) recordScale(key string, b *autoscalingv2.HorizontalPodAutoscalerBehavior, prev, next int32) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.clock.Now()
	events, rules, change := h.scaleUps, b.ScaleUp, next-prev
	if next < prev {
		events, rules, change = h.scaleDowns, b.ScaleDown, prev-next
	}
	list := events[key]
	cutoff := now.Add(-time.Duration(longestPeriod(rules)) * time.Second)
	for i := range list {
		if list[i].at.Before(cutoff) {
			list[i].outdated = true
		}
	}
	for i := range list {
		if list[i].outdated {
			list[i] = scaleEvent{change: change, at: now}
			return
		}
	}
	events[key] = append(list, scaleEvent{change: change, at: now})
}

func longestPeriod(r *autoscalingv2.HPAScalingRules) int32 {
	var p int32
	for _, pol := range r.Policies {
		p = max(p, pol.PeriodSeconds)
	}
	return p
}

// changeInPeriod sums the replica changes of events within the last
// periodSeconds.
func changeInPeriod(now time.Time, periodSeconds int32, events []scaleEvent) int32 {
	cutoff := now.Add(-time.Duration(periodSeconds) * time.Second)
	var n int32
	for _, e := range events {
		if e.at.After(cutoff) {
			n += e.change
		}
	}
	return n
}

// scaleUpLimit is the most replicas the policies allow now: each policy
// counts from the size at the start of its period; Max takes the largest
// allowance, Min the smallest, Disabled none.
func scaleUpLimit(now time.Time, current int32, ups, downs []scaleEvent, r *autoscalingv2.HPAScalingRules) int32 {
	if *r.SelectPolicy == autoscalingv2.DisabledPolicySelect {
		return current
	}
	pick, result := maxOf, int32(math.MinInt32)
	if *r.SelectPolicy == autoscalingv2.MinChangePolicySelect {
		pick, result = minOf, int32(math.MaxInt32)
	}
	for _, p := range r.Policies {
		start := current - changeInPeriod(now, p.PeriodSeconds, ups) + changeInPeriod(now, p.PeriodSeconds, downs)
		var proposed int32
		switch p.Type {
		case autoscalingv2.PodsScalingPolicy:
			proposed = start + p.Value
		case autoscalingv2.PercentScalingPolicy:
			// Rounded up, or a small target could never grow.
			proposed = int32(math.Ceil(float64(start) * (1 + float64(p.Value)/100)))
		default:
			continue
		}
		result = pick(result, proposed)
	}
	if result == math.MinInt32 || result == math.MaxInt32 {
		return current // no usable policy
	}
	return result
}

// scaleDownLimit is the fewest replicas the policies allow now; Max
// (the largest change) takes the smallest count.
func scaleDownLimit(now time.Time, current int32, ups, downs []scaleEvent, r *autoscalingv2.HPAScalingRules) int32 {
	if *r.SelectPolicy == autoscalingv2.DisabledPolicySelect {
		return current
	}
	pick, result := minOf, int32(math.MaxInt32)
	if *r.SelectPolicy == autoscalingv2.MinChangePolicySelect {
		pick, result = maxOf, int32(math.MinInt32)
	}
	for _, p := range r.Policies {
		start := current - changeInPeriod(now, p.PeriodSeconds, ups) + changeInPeriod(now, p.PeriodSeconds, downs)
		var proposed int32
		switch p.Type {
		case autoscalingv2.PodsScalingPolicy:
			proposed = start - p.Value
		case autoscalingv2.PercentScalingPolicy:
			proposed = int32(float64(start) * (1 - float64(p.Value)/100))
		default:
			continue
		}
		result = pick(result, proposed)
	}
	if result == math.MinInt32 || result == math.MaxInt32 {
		return current
	}
	return result
}

func maxOf(a, b int32) int32 { return max(a, b) }
func minOf(a, b int32) int32 { return min(a, b) }
