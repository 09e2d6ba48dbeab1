package quota

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	quota "k8s.io/apiserver/pkg/quota/v1"
	"k8s.io/apiserver/pkg/quota/v1/generic"
)

// Refusal is a request a quota refuses: the API server answers it 403
// Forbidden with Message, as Kubernetes' admission does.
type Refusal struct{ Message string }

func (r *Refusal) Error() string { return r.Message }

func refuse(format string, args ...any) error { return &Refusal{Message: fmt.Sprintf(format, args...)} }

// Check decides a create (old nil) or update of obj against the
// namespace's quotas, as Kubernetes' ResourceQuota admission does: each
// quota that matches must know its usage (status), obj must satisfy its
// constraints, and usage plus what obj adds must stay within status.hard.
// It returns the quotas whose status.used must grow, with the new usage
// set (copies), or a *Refusal.
func Check(quotas []*corev1.ResourceQuota, ev Evaluator, obj, old runtime.Object) ([]*corev1.ResourceQuota, error) {
	if old != nil && !ev.HandlesUpdate() {
		return nil, nil
	}
	var matched []*corev1.ResourceQuota
	for _, q := range quotas {
		ok, err := ev.Matches(q, obj)
		if err != nil {
			return nil, fmt.Errorf("matching quota %s: %w", q.Name, err)
		}
		if !ok {
			continue
		}
		restricted := ev.MatchingResources(quota.ResourceNames(q.Status.Hard))
		if err := ev.Constraints(restricted, obj); err != nil {
			return nil, refuse("failed quota: %s: %v", q.Name, err)
		}
		for _, n := range restricted {
			if _, ok := q.Status.Used[n]; !ok {
				return nil, refuse("status unknown for quota: %s, resources: %s", q.Name, names(restricted))
			}
		}
		matched = append(matched, q)
	}
	if len(matched) == 0 {
		return nil, nil
	}
	delta, err := ev.Usage(obj)
	if err != nil {
		return nil, err
	}
	if neg := quota.IsNegative(delta); len(neg) > 0 {
		return nil, refuse("quota usage is negative for resource(s): %s", names(neg))
	}
	if old != nil {
		prev, err := ev.Usage(old)
		if err != nil {
			return nil, err
		}
		delta = quota.SubtractWithNonNegativeResult(delta, prev)
	}
	delta = quota.RemoveZeros(delta)
	if len(delta) == 0 {
		return nil, nil
	}
	var out []*corev1.ResourceQuota
	for _, q := range matched {
		requested := quota.Mask(delta, quota.ResourceNames(q.Status.Hard))
		if len(requested) == 0 {
			continue
		}
		newUsed := quota.Add(q.Status.Used, requested)
		if ok, exceeded := quota.LessThanOrEqual(quota.Mask(newUsed, quota.ResourceNames(requested)), q.Status.Hard); !ok {
			return nil, refuse("exceeded quota: %s, requested: %s, used: %s, limited: %s", q.Name,
				pretty(quota.Mask(requested, exceeded)), pretty(quota.Mask(q.Status.Used, exceeded)),
				pretty(quota.Mask(q.Status.Hard, exceeded)))
		}
		c := q.DeepCopy()
		c.Status.Used = newUsed
		out = append(out, c)
	}
	return out, nil
}

// Usage is what objs (one resource's objects in q's namespace) cost
// against q's spec.hard: every name ev measures, zero when nothing
// matches, so the status says "0" rather than nothing.
func Usage(q *corev1.ResourceQuota, ev Evaluator, objs []runtime.Object) (corev1.ResourceList, error) {
	probe := q.DeepCopy()
	probe.Status.Hard = q.Spec.Hard // match on what the quota asks now
	names := ev.MatchingResources(quota.ResourceNames(q.Spec.Hard))
	out := corev1.ResourceList{}
	for _, n := range names {
		out[n] = *resource.NewQuantity(0, q.Spec.Hard[n].Format)
	}
	for _, obj := range objs {
		ok, err := generic.Matches(probe, obj, ev.MatchingResources, scopeOf(ev))
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		u, err := ev.Usage(obj)
		if err != nil {
			return nil, err
		}
		out = quota.Add(out, quota.Mask(u, names))
	}
	return out, nil
}

func scopeOf(ev Evaluator) generic.MatchesScopeFunc {
	if _, ok := ev.(podEvaluator); ok {
		return podMatchesScope
	}
	return generic.MatchesNoScopeFunc
}

// pretty is Kubernetes' prettyPrint: name=value, sorted, comma-separated.
func pretty(l corev1.ResourceList) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, string(k))
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		v := l[corev1.ResourceName(k)]
		parts = append(parts, k+"="+v.String())
	}
	return strings.Join(parts, ",")
}

func names(ns []corev1.ResourceName) string {
	s := make([]string, 0, len(ns))
	for _, n := range ns {
		s = append(s, string(n))
	}
	sort.Strings(s)
	return strings.Join(s, ",")
}
