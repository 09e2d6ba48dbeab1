// Package conversion converts objects between the versions the API serves.
// A resource served in several versions is stored once, in its storage
// version, and converted at the store's edge, as Kubernetes does: both
// versions are views of the same objects.
package conversion

import (
	"encoding/json"
	"fmt"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Convert turns obj into the kind to. Only the pairs served here exist;
// an object already of kind to is returned as it is.
func Convert(obj runtime.Object, to schema.GroupVersionKind) (runtime.Object, error) {
	switch o := obj.(type) {
	case *autoscalingv1.HorizontalPodAutoscaler:
		if to == autoscalingv2.SchemeGroupVersion.WithKind("HorizontalPodAutoscaler") {
			return hpaV1ToV2(o)
		}
	case *autoscalingv2.HorizontalPodAutoscaler:
		if to == autoscalingv1.SchemeGroupVersion.WithKind("HorizontalPodAutoscaler") {
			return hpaV2ToV1(o)
		}
	}
	if obj.GetObjectKind().GroupVersionKind() == to {
		return obj, nil
	}
	return nil, fmt.Errorf("no conversion from %T to %s", obj, to)
}

// The annotations in which autoscaling/v1 carries what only v2 can say, so
// that a v1 client's read-modify-write keeps it (Kubernetes' own names).
const (
	annMetrics        = "autoscaling.alpha.kubernetes.io/metrics"
	annCurrentMetrics = "autoscaling.alpha.kubernetes.io/current-metrics"
	annConditions     = "autoscaling.alpha.kubernetes.io/conditions"
	annBehavior       = "autoscaling.alpha.kubernetes.io/behavior"
)

func isCPUUtilization(m autoscalingv2.MetricSpec) bool {
	return m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource != nil &&
		m.Resource.Name == corev1.ResourceCPU && m.Resource.Target.Type == autoscalingv2.UtilizationMetricType &&
		m.Resource.Target.AverageUtilization != nil
}

func hpaV2ToV1(in *autoscalingv2.HorizontalPodAutoscaler) (*autoscalingv1.HorizontalPodAutoscaler, error) {
	out := &autoscalingv1.HorizontalPodAutoscaler{ObjectMeta: *in.ObjectMeta.DeepCopy()}
	out.SetGroupVersionKind(autoscalingv1.SchemeGroupVersion.WithKind("HorizontalPodAutoscaler"))
	out.Spec = autoscalingv1.HorizontalPodAutoscalerSpec{
		ScaleTargetRef: autoscalingv1.CrossVersionObjectReference(in.Spec.ScaleTargetRef),
		MinReplicas:    in.Spec.MinReplicas, MaxReplicas: in.Spec.MaxReplicas,
	}
	var other []autoscalingv2.MetricSpec
	for _, m := range in.Spec.Metrics {
		if isCPUUtilization(m) && out.Spec.TargetCPUUtilizationPercentage == nil {
			out.Spec.TargetCPUUtilizationPercentage = m.Resource.Target.AverageUtilization
			continue
		}
		other = append(other, m)
	}
	out.Status = autoscalingv1.HorizontalPodAutoscalerStatus{
		ObservedGeneration: in.Status.ObservedGeneration, LastScaleTime: in.Status.LastScaleTime,
		CurrentReplicas: in.Status.CurrentReplicas, DesiredReplicas: in.Status.DesiredReplicas,
	}
	var otherCurrent []autoscalingv2.MetricStatus
	for _, m := range in.Status.CurrentMetrics {
		if m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource != nil && m.Resource.Name == corev1.ResourceCPU &&
			m.Resource.Current.AverageUtilization != nil && out.Status.CurrentCPUUtilizationPercentage == nil {
			out.Status.CurrentCPUUtilizationPercentage = m.Resource.Current.AverageUtilization
			continue
		}
		otherCurrent = append(otherCurrent, m)
	}
	for ann, v := range map[string]any{annMetrics: other, annCurrentMetrics: otherCurrent,
		annConditions: in.Status.Conditions, annBehavior: in.Spec.Behavior} {
		if err := setJSONAnnotation(out, ann, v); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func hpaV1ToV2(in *autoscalingv1.HorizontalPodAutoscaler) (*autoscalingv2.HorizontalPodAutoscaler, error) {
	out := &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: *in.ObjectMeta.DeepCopy()}
	out.SetGroupVersionKind(autoscalingv2.SchemeGroupVersion.WithKind("HorizontalPodAutoscaler"))
	out.Spec = autoscalingv2.HorizontalPodAutoscalerSpec{
		ScaleTargetRef: autoscalingv2.CrossVersionObjectReference(in.Spec.ScaleTargetRef),
		MinReplicas:    in.Spec.MinReplicas, MaxReplicas: in.Spec.MaxReplicas,
	}
	out.Status = autoscalingv2.HorizontalPodAutoscalerStatus{
		ObservedGeneration: in.Status.ObservedGeneration, LastScaleTime: in.Status.LastScaleTime,
		CurrentReplicas: in.Status.CurrentReplicas, DesiredReplicas: in.Status.DesiredReplicas,
	}
	if in.Spec.TargetCPUUtilizationPercentage != nil {
		out.Spec.Metrics = append(out.Spec.Metrics, autoscalingv2.MetricSpec{Type: autoscalingv2.ResourceMetricSourceType,
			Resource: &autoscalingv2.ResourceMetricSource{Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{
				Type: autoscalingv2.UtilizationMetricType, AverageUtilization: in.Spec.TargetCPUUtilizationPercentage}}})
	}
	if in.Status.CurrentCPUUtilizationPercentage != nil {
		out.Status.CurrentMetrics = append(out.Status.CurrentMetrics, autoscalingv2.MetricStatus{Type: autoscalingv2.ResourceMetricSourceType,
			Resource: &autoscalingv2.ResourceMetricStatus{Name: corev1.ResourceCPU, Current: autoscalingv2.MetricValueStatus{
				AverageUtilization: in.Status.CurrentCPUUtilizationPercentage}}})
	}
	ann := out.Annotations
	var err error
	if err = takeJSONAnnotation(ann, annMetrics, &out.Spec.Metrics); err == nil {
		if err = takeJSONAnnotation(ann, annCurrentMetrics, &out.Status.CurrentMetrics); err == nil {
			if err = takeJSONAnnotation(ann, annConditions, &out.Status.Conditions); err == nil {
				err = takeJSONAnnotation(ann, annBehavior, &out.Spec.Behavior)
			}
		}
	}
	if len(ann) == 0 {
		out.Annotations = nil
	}
	return out, err
}

// setJSONAnnotation stores v as JSON under key, unless v is empty.
func setJSONAnnotation(obj *autoscalingv1.HorizontalPodAutoscaler, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if s := string(b); s == "null" || s == "[]" || s == "{}" {
		return nil
	}
	if obj.Annotations == nil {
		obj.Annotations = map[string]string{}
	}
	obj.Annotations[key] = string(b)
	return nil
}

// takeJSONAnnotation moves a JSON annotation into into (appending to a
// slice), removing it from the map.
func takeJSONAnnotation[T any](ann map[string]string, key string, into *T) error {
	v, ok := ann[key]
	if !ok {
		return nil
	}
	delete(ann, key)
	var decoded T
	if err := json.Unmarshal([]byte(v), &decoded); err != nil {
		return fmt.Errorf("annotation %s: %w", key, err)
	}
	switch cur := any(into).(type) {
	case *[]autoscalingv2.MetricSpec:
		*cur = append(*cur, any(decoded).([]autoscalingv2.MetricSpec)...)
	case *[]autoscalingv2.MetricStatus:
		*cur = append(*cur, any(decoded).([]autoscalingv2.MetricStatus)...)
	default:
		*into = decoded
	}
	return nil
}
