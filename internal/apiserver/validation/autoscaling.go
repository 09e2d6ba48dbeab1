package validation

import (
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/api/validation/path"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

var metricSourceTypes = []autoscalingv2.MetricSourceType{autoscalingv2.ContainerResourceMetricSourceType,
	autoscalingv2.ExternalMetricSourceType, autoscalingv2.ObjectMetricSourceType,
	autoscalingv2.PodsMetricSourceType, autoscalingv2.ResourceMetricSourceType}

// validateHPA is validateHorizontalPodAutoscalerSpec (without scale to zero,
// which is alpha in 1.32).
func validateHPA(h *autoscalingv2.HorizontalPodAutoscaler) field.ErrorList {
	var errs field.ErrorList
	sp := field.NewPath("spec")
	spec := &h.Spec
	if spec.MinReplicas != nil && *spec.MinReplicas < 1 {
		errs = append(errs, field.Invalid(sp.Child("minReplicas"), *spec.MinReplicas, "must be greater than or equal to 1"))
	}
	if spec.MaxReplicas < 1 {
		errs = append(errs, field.Invalid(sp.Child("maxReplicas"), spec.MaxReplicas, "must be greater than 0"))
	}
	if spec.MinReplicas != nil && spec.MaxReplicas < *spec.MinReplicas {
		errs = append(errs, field.Invalid(sp.Child("maxReplicas"), spec.MaxReplicas, "must be greater than or equal to `minReplicas`"))
	}
	rp := sp.Child("scaleTargetRef")
	ref := spec.ScaleTargetRef
	errs = append(errs, requiredName(ref.Kind, rp.Child("kind"), pathSegment)...)
	errs = append(errs, requiredName(ref.Name, rp.Child("name"), pathSegment)...)
	for i := range spec.Metrics {
		errs = append(errs, validateMetricSpec(&spec.Metrics[i], sp.Child("metrics").Index(i))...)
	}
	if b := spec.Behavior; b != nil {
		errs = append(errs, validateScalingRules(b.ScaleUp, sp.Child("behavior", "scaleUp"))...)
		errs = append(errs, validateScalingRules(b.ScaleDown, sp.Child("behavior", "scaleDown"))...)
	}
	return errs
}

func pathSegment(v string, p *field.Path) field.ErrorList {
	return invalidEach(nil, p, v, path.IsValidPathSegmentName(v))
}

func validateMetricSpec(m *autoscalingv2.MetricSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if m.Type == "" {
		errs = append(errs, field.Required(p.Child("type"), "must specify a metric source type"))
	} else {
		errs = append(errs, optionalEnum(m.Type, p.Child("type"), metricSourceTypes...)...)
	}
	expected := map[autoscalingv2.MetricSourceType]string{
		autoscalingv2.ObjectMetricSourceType: "object", autoscalingv2.PodsMetricSourceType: "pods",
		autoscalingv2.ResourceMetricSourceType: "resource", autoscalingv2.ContainerResourceMetricSourceType: "containerResource",
		autoscalingv2.ExternalMetricSourceType: "external",
	}[m.Type]
	set := setFields(m)
	if expected != "" {
		found := false
		for _, s := range set {
			found = found || s == expected
		}
		if !found {
			errs = append(errs, field.Required(p.Child(expected), "must populate information for the given metric source"))
		}
	}
	if len(set) > 1 {
		for _, s := range set {
			if s != expected {
				errs = append(errs, field.Forbidden(p.Child(s), "must populate the given metric source only"))
			}
		}
	}
	if r := m.Resource; r != nil && expected == "resource" {
		rp := p.Child("resource")
		if r.Name == "" {
			errs = append(errs, field.Required(rp.Child("name"), "must specify a resource name"))
		}
		errs = append(errs, validateResourceTarget(&r.Target, rp.Child("target"))...)
	}
	if r := m.ContainerResource; r != nil && expected == "containerResource" {
		rp := p.Child("containerResource")
		if r.Name == "" {
			errs = append(errs, field.Required(rp.Child("name"), "must specify a resource name"))
		}
		if r.Container == "" {
			errs = append(errs, field.Required(rp.Child("container"), "must specify a container"))
		}
		errs = append(errs, validateResourceTarget(&r.Target, rp.Child("target"))...)
	}
	if o := m.Pods; o != nil && expected == "pods" {
		errs = append(errs, validateMetricIdentifier(o.Metric.Name, p.Child("pods", "metric", "name"))...)
		if o.Target.AverageValue == nil {
			errs = append(errs, field.Required(p.Child("pods", "target", "averageValue"), "must specify a positive target averageValue"))
		}
		errs = append(errs, validateMetricTarget(&o.Target, p.Child("pods", "target"))...)
	}
	if o := m.Object; o != nil && expected == "object" {
		errs = append(errs, requiredName(o.DescribedObject.Kind, p.Child("object", "describedObject", "kind"), pathSegment)...)
		errs = append(errs, requiredName(o.DescribedObject.Name, p.Child("object", "describedObject", "name"), pathSegment)...)
		errs = append(errs, validateMetricIdentifier(o.Metric.Name, p.Child("object", "metric", "name"))...)
		if o.Target.Value == nil && o.Target.AverageValue == nil {
			errs = append(errs, field.Required(p.Child("object", "target", "averageValue"), "must set either a target value or averageValue"))
		}
		errs = append(errs, validateMetricTarget(&o.Target, p.Child("object", "target"))...)
	}
	if o := m.External; o != nil && expected == "external" {
		errs = append(errs, validateMetricIdentifier(o.Metric.Name, p.Child("external", "metric", "name"))...)
		if o.Target.Value == nil && o.Target.AverageValue == nil {
			errs = append(errs, field.Required(p.Child("external", "target", "averageValue"), "must set either a target value for metric or a per-pod target"))
		}
		errs = append(errs, validateMetricTarget(&o.Target, p.Child("external", "target"))...)
	}
	return errs
}

func validateMetricIdentifier(name string, p *field.Path) field.ErrorList {
	if name == "" {
		return field.ErrorList{field.Required(p, "must specify a metric name")}
	}
	return invalidEach(nil, p, name, path.IsValidPathSegmentName(name))
}

func validateResourceTarget(t *autoscalingv2.MetricTarget, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if t.AverageValue == nil && t.AverageUtilization == nil {
		errs = append(errs, field.Required(p.Child("averageUtilization"), "must set either a target raw value or a target utilization"))
	}
	if t.AverageValue != nil && t.AverageUtilization != nil {
		errs = append(errs, field.Forbidden(p.Child("averageValue"), "may not set both a target raw value and a target utilization"))
	}
	return append(errs, validateMetricTarget(t, p)...)
}

func validateMetricTarget(t *autoscalingv2.MetricTarget, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if t.Type == "" {
		errs = append(errs, field.Required(p.Child("type"), "must specify a metric target type"))
	} else {
		errs = append(errs, optionalEnum(t.Type, p.Child("type"), autoscalingv2.AverageValueMetricType,
			autoscalingv2.UtilizationMetricType, autoscalingv2.ValueMetricType)...)
	}
	if t.Value != nil && t.Value.Sign() <= 0 {
		errs = append(errs, field.Invalid(p.Child("value"), t.Value.String(), "must be positive"))
	}
	if t.AverageValue != nil && t.AverageValue.Sign() <= 0 {
		errs = append(errs, field.Invalid(p.Child("averageValue"), t.AverageValue.String(), "must be positive"))
	}
	if t.AverageUtilization != nil && *t.AverageUtilization < 1 {
		errs = append(errs, field.Invalid(p.Child("averageUtilization"), *t.AverageUtilization, "must be greater than 0"))
	}
	return errs
}

func validateScalingRules(r *autoscalingv2.HPAScalingRules, p *field.Path) field.ErrorList {
	if r == nil {
		return nil
	}
	var errs field.ErrorList
	if w := r.StabilizationWindowSeconds; w != nil {
		if *w < 0 {
			errs = append(errs, field.Invalid(p.Child("stabilizationWindowSeconds"), *w, "must be greater than or equal to zero"))
		} else if *w > 3600 {
			errs = append(errs, field.Invalid(p.Child("stabilizationWindowSeconds"), *w, "must be less than or equal to 3600"))
		}
	}
	if r.SelectPolicy != nil {
		errs = append(errs, enum(*r.SelectPolicy, p.Child("selectPolicy"), autoscalingv2.DisabledPolicySelect,
			autoscalingv2.MaxChangePolicySelect, autoscalingv2.MinChangePolicySelect)...)
	}
	if len(r.Policies) == 0 {
		errs = append(errs, field.Required(p.Child("policies"), "must specify at least one Policy"))
	}
	for i, pol := range r.Policies {
		pp := p.Child("policies").Index(i)
		errs = append(errs, enum(pol.Type, pp.Child("type"), autoscalingv2.PercentScalingPolicy, autoscalingv2.PodsScalingPolicy)...)
		if pol.Value <= 0 {
			errs = append(errs, field.Invalid(pp.Child("value"), pol.Value, "must be greater than zero"))
		}
		if pol.PeriodSeconds <= 0 {
			errs = append(errs, field.Invalid(pp.Child("periodSeconds"), pol.PeriodSeconds, "must be greater than zero"))
		} else if pol.PeriodSeconds > 1800 {
			errs = append(errs, field.Invalid(pp.Child("periodSeconds"), pol.PeriodSeconds, "must be less than or equal to 1800"))
		}
	}
	return errs
}
