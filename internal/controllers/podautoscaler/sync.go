package podautoscaler

import (
	"context"
	"errors"
	"fmt"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/cache"
)

// sync evaluates one HPA and schedules its next evaluation a period on.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil // not a key this controller made
	}
	hpa, err := c.hpas.HorizontalPodAutoscalers(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.history.forget(key)
		return nil
	}
	if err != nil {
		return fmt.Errorf("get hpa %s: %w", key, err)
	}
	// The next evaluation is a period on, failed or not, as in Kubernetes
	// (whose HPA queue's rate limiter is the period): a quicker retry would
	// only repeat the failure's events while metrics are missing. The
	// queue keeps one pending add per key, the earliest, so this never
	// piles up however often the HPA is synced in between.
	c.queue.AddAfter(key, c.period)
	if err := c.reconcile(ctx, key, hpa); err != nil && ctx.Err() == nil {
		c.log.Debug("hpa not reconciled, next try in a sync period", "hpa", key, "err", err)
	}
	return nil
}

// reconcile is Kubernetes' reconcileAutoscaler: read the target's scale,
// compute, bound and apply the desired replicas, report status.
func (c *Controller) reconcile(ctx context.Context, key string, shared *autoscalingv2.HorizontalPodAutoscaler) error {
	original := shared.Status.DeepCopy()
	hpa := shared.DeepCopy()
	ref := hpa.Spec.ScaleTargetRef
	reference := fmt.Sprintf("%s/%s/%s", ref.Kind, hpa.Namespace, ref.Name)

	sc, gr, err := c.targetScale(ctx, hpa)
	if err != nil {
		c.recorder.Event(hpa, corev1.EventTypeWarning, "FailedGetScale", err.Error())
		c.setCondition(hpa, autoscalingv2.AbleToScale, corev1.ConditionFalse, "FailedGetScale",
			"the HPA controller was unable to get the target's current scale: %v", err)
		c.setStatus(hpa, hpa.Status.CurrentReplicas, hpa.Status.DesiredReplicas, hpa.Status.CurrentMetrics, false)
		if uerr := c.updateStatusIfNeeded(ctx, original, hpa); uerr != nil {
			return errors.Join(fmt.Errorf("failed to query scale subresource for %s: %w", reference, err), uerr)
		}
		return fmt.Errorf("failed to query scale subresource for %s: %w", reference, err)
	}
	c.setCondition(hpa, autoscalingv2.AbleToScale, corev1.ConditionTrue, "SucceededGetScale",
		"the HPA controller was able to get the target's current scale")
	current := sc.Spec.Replicas
	c.history.recordInitial(key, current)

	minReplicas := int32(1)
	if hpa.Spec.MinReplicas != nil {
		minReplicas = *hpa.Spec.MinReplicas
	}
	var (
		statuses []autoscalingv2.MetricStatus
		desired  int32
		reason   string
		retErr   error
	)
	rescale := true
	switch {
	case current == 0 && minReplicas != 0:
		// Scaled to zero by hand: autoscaling is off until scaled back.
		desired, rescale = 0, false
		c.setCondition(hpa, autoscalingv2.ScalingActive, corev1.ConditionFalse, "ScalingDisabled",
			"scaling is disabled since the replica count of the target is zero")
	case current > hpa.Spec.MaxReplicas:
		reason, desired = "Current number of replicas above Spec.MaxReplicas", hpa.Spec.MaxReplicas
	case current < minReplicas:
		reason, desired = "Current number of replicas below Spec.MinReplicas", minReplicas
	default:
		proposal, metricName, sts, err := c.replicasForMetrics(ctx, hpa, sc)
		statuses = sts
		if err != nil && proposal == -1 {
			c.setStatus(hpa, current, hpa.Status.DesiredReplicas, statuses, false)
			if uerr := c.updateStatusIfNeeded(ctx, original, hpa); uerr != nil {
				c.log.Warn("hpa status", "hpa", key, "err", uerr)
			}
			c.recorder.Event(hpa, corev1.EventTypeWarning, "FailedComputeMetricsReplicas", err.Error())
			return fmt.Errorf("failed to compute desired number of replicas based on listed metrics for %s: %w", reference, err)
		}
		// Some metrics failed but the others ask for more: scale on them,
		// and report the failure.
		retErr = err
		desired = proposal
		switch {
		case desired > current:
			reason = fmt.Sprintf("%s above target", metricName)
		case desired < current:
			reason = "All metrics below target"
		}
		desired = c.normalize(hpa, key, current, desired, minReplicas)
		rescale = desired != current
	}

	if rescale {
		sc.Spec.Replicas = desired
		if _, err := c.scales.Scales(hpa.Namespace).Update(ctx, gr, sc, metav1.UpdateOptions{}); err != nil {
			c.recorder.Eventf(hpa, corev1.EventTypeWarning, "FailedRescale", "New size: %d; reason: %s; error: %v", desired, reason, err)
			c.setCondition(hpa, autoscalingv2.AbleToScale, corev1.ConditionFalse, "FailedUpdateScale",
				"the HPA controller was unable to update the target scale: %v", err)
			c.setStatus(hpa, current, hpa.Status.DesiredReplicas, statuses, false)
			if uerr := c.updateStatusIfNeeded(ctx, original, hpa); uerr != nil {
				c.log.Warn("hpa status", "hpa", key, "err", uerr)
			}
			return fmt.Errorf("failed to rescale %s: %w", reference, err)
		}
		c.setCondition(hpa, autoscalingv2.AbleToScale, corev1.ConditionTrue, "SucceededRescale",
			"the HPA controller was able to update the target scale to %d", desired)
		c.recorder.Eventf(hpa, corev1.EventTypeNormal, "SuccessfulRescale", "New size: %d; reason: %s", desired, reason)
		c.history.recordScale(key, withDefaults(hpa.Spec.Behavior), current, desired)
		c.log.Info("rescaled", "hpa", key, "from", current, "to", desired, "reason", reason)
	} else {
		desired = current
	}
	c.setStatus(hpa, current, desired, statuses, rescale)
	if err := c.updateStatusIfNeeded(ctx, original, hpa); err != nil {
		return err
	}
	return retErr
}

// targetScale reads the scale subresource of the HPA's target, trying
// each resource its kind maps to.
func (c *Controller) targetScale(ctx context.Context, hpa *autoscalingv2.HorizontalPodAutoscaler) (*autoscalingv1.Scale, schema.GroupResource, error) {
	ref := hpa.Spec.ScaleTargetRef
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return nil, schema.GroupResource{}, fmt.Errorf("invalid API version in scale target reference: %w", err)
	}
	mappings, err := c.mapper.RESTMappings(schema.GroupKind{Group: gv.Group, Kind: ref.Kind})
	if err != nil {
		return nil, schema.GroupResource{}, fmt.Errorf("unable to determine resource for scale target reference: %w", err)
	}
	var first error
	for _, m := range mappings {
		gr := m.Resource.GroupResource()
		sc, err := c.scales.Scales(hpa.Namespace).Get(ctx, gr, ref.Name, metav1.GetOptions{})
		if err == nil {
			return sc, gr, nil
		}
		if first == nil {
			first = err
		}
	}
	if first == nil {
		first = &meta.NoResourceMatchError{PartialResource: schema.GroupVersionResource{Group: gv.Group, Version: gv.Version, Resource: ref.Kind}}
	}
	return nil, schema.GroupResource{}, first
}

// replicasForMetrics proposes a count per metric and takes the largest.
// -1 with an error when every metric failed, or some failed and the rest
// would scale down (a missing metric must not shrink the target).
func (c *Controller) replicasForMetrics(ctx context.Context, hpa *autoscalingv2.HorizontalPodAutoscaler, sc *autoscalingv1.Scale) (int32, string, []autoscalingv2.MetricStatus, error) {
	selector, err := c.parseSelector(hpa, sc.Status.Selector)
	if err != nil {
		return -1, "", nil, err
	}
	specs := hpa.Spec.Metrics
	statuses := make([]autoscalingv2.MetricStatus, len(specs))
	var (
		replicas   int32
		metricName string
		invalid    int
		firstErr   error
		firstCond  autoscalingv2.HorizontalPodAutoscalerCondition
	)
	for i, spec := range specs {
		proposal, name, cond, err := c.replicasForMetric(ctx, hpa, spec, sc.Spec.Replicas, selector, &statuses[i])
		if err != nil {
			if invalid == 0 {
				firstErr, firstCond = err, cond
			}
			invalid++
			continue
		}
		if replicas == 0 || proposal > replicas {
			replicas, metricName = proposal, name
		}
	}
	if firstErr != nil {
		firstErr = fmt.Errorf("invalid metrics (%v invalid out of %v), first error is: %w", invalid, len(specs), firstErr)
	}
	if invalid >= len(specs) || (invalid > 0 && replicas < sc.Spec.Replicas) {
		if firstErr == nil {
			firstErr = errors.New("no metrics to compute a replica count from")
			firstCond = autoscalingv2.HorizontalPodAutoscalerCondition{Type: autoscalingv2.ScalingActive, Status: corev1.ConditionFalse,
				Reason: "InvalidMetricSourceType", Message: "the HPA was unable to compute the replica count: " + firstErr.Error()}
		}
		c.setCondition(hpa, firstCond.Type, firstCond.Status, firstCond.Reason, "%s", firstCond.Message)
		return -1, "", statuses, firstErr
	}
	c.setCondition(hpa, autoscalingv2.ScalingActive, corev1.ConditionTrue, "ValidMetricFound",
		"the HPA was able to successfully calculate a replica count from %s", metricName)
	return replicas, metricName, statuses, firstErr
}

func (c *Controller) parseSelector(hpa *autoscalingv2.HorizontalPodAutoscaler, s string) (labels.Selector, error) {
	if s == "" {
		msg := "selector is required"
		c.recorder.Event(hpa, corev1.EventTypeWarning, "SelectorRequired", msg)
		c.setCondition(hpa, autoscalingv2.ScalingActive, corev1.ConditionFalse, "InvalidSelector", "the HPA target's scale is missing a selector")
		return nil, errors.New(msg)
	}
	sel, err := labels.Parse(s)
	if err != nil {
		msg := fmt.Sprintf("couldn't convert selector into a corresponding internal selector object: %v", err)
		c.recorder.Event(hpa, corev1.EventTypeWarning, "InvalidSelector", msg)
		c.setCondition(hpa, autoscalingv2.ScalingActive, corev1.ConditionFalse, "InvalidSelector", "%s", msg)
		return nil, errors.New(msg)
	}
	return sel, nil
}

// replicasForMetric is one metric's proposal, filling its status; on
// failure, the ScalingActive condition to report.
func (c *Controller) replicasForMetric(ctx context.Context, hpa *autoscalingv2.HorizontalPodAutoscaler, spec autoscalingv2.MetricSpec,
	current int32, selector labels.Selector, status *autoscalingv2.MetricStatus) (int32, string, autoscalingv2.HorizontalPodAutoscalerCondition, error) {
	switch {
	case spec.Type == autoscalingv2.ResourceMetricSourceType && spec.Resource != nil:
		n, value, name, err := c.resourceProposal(ctx, current, spec.Resource.Target, spec.Resource.Name, hpa.Namespace, "", selector, spec.Type)
		if err != nil {
			err = fmt.Errorf("failed to get %s resource metric value: %w", spec.Resource.Name, err)
			return 0, "", c.unableToCompute(hpa, "FailedGetResourceMetric", err), err
		}
		*status = autoscalingv2.MetricStatus{Type: spec.Type,
			Resource: &autoscalingv2.ResourceMetricStatus{Name: spec.Resource.Name, Current: *value}}
		return n, name, autoscalingv2.HorizontalPodAutoscalerCondition{}, nil
	case spec.Type == autoscalingv2.ContainerResourceMetricSourceType && spec.ContainerResource != nil:
		cr := spec.ContainerResource
		n, value, name, err := c.resourceProposal(ctx, current, cr.Target, cr.Name, hpa.Namespace, cr.Container, selector, spec.Type)
		if err != nil {
			err = fmt.Errorf("failed to get %s container metric value: %w", cr.Container, err)
			return 0, "", c.unableToCompute(hpa, "FailedGetContainerResourceMetric", err), err
		}
		*status = autoscalingv2.MetricStatus{Type: spec.Type, ContainerResource: &autoscalingv2.ContainerResourceMetricStatus{
			Name: cr.Name, Container: cr.Container, Current: *value}}
		return n, name, autoscalingv2.HorizontalPodAutoscalerCondition{}, nil
	case spec.Type == autoscalingv2.PodsMetricSourceType && spec.Pods != nil:
		p := spec.Pods
		metricSelector, err := metav1.LabelSelectorAsSelector(p.Metric.Selector)
		if err == nil && p.Target.AverageValue == nil {
			err = errors.New("invalid pods metric source: an average value target is required")
		}
		if err != nil {
			err = fmt.Errorf("failed to get pods metric value: %w", err)
			return 0, "", c.unableToCompute(hpa, "FailedGetPodsMetric", err), err
		}
		n, usage, _, err := c.calc.podsMetricReplicas(current, p.Target.AverageValue.MilliValue(), p.Metric.Name, hpa.Namespace, selector, metricSelector)
		if err != nil {
			err = fmt.Errorf("failed to get pods metric value: %w", err)
			return 0, "", c.unableToCompute(hpa, "FailedGetPodsMetric", err), err
		}
		*status = autoscalingv2.MetricStatus{Type: spec.Type, Pods: &autoscalingv2.PodsMetricStatus{
			Metric:  autoscalingv2.MetricIdentifier{Name: p.Metric.Name, Selector: p.Metric.Selector},
			Current: autoscalingv2.MetricValueStatus{AverageValue: resource.NewMilliQuantity(usage, resource.DecimalSI)}}}
		return n, "pods metric " + p.Metric.Name, autoscalingv2.HorizontalPodAutoscalerCondition{}, nil
	case spec.Type == autoscalingv2.ObjectMetricSourceType:
		err := errors.New("failed to get object metric value: Object metrics are not supported by skiff")
		return 0, "", c.unableToCompute(hpa, "FailedGetObjectMetric", err), err
	case spec.Type == autoscalingv2.ExternalMetricSourceType:
		err := errors.New("failed to get external metric value: External metrics are not supported by skiff")
		return 0, "", c.unableToCompute(hpa, "FailedGetExternalMetric", err), err
	default:
		err := fmt.Errorf("unknown metric source type %q", spec.Type)
		return 0, "", c.unableToCompute(hpa, "InvalidMetricSourceType", err), err
	}
}

// resourceProposal is the proposal for a (container) resource target:
// AverageValue against the raw average, else AverageUtilization against
// requests.
func (c *Controller) resourceProposal(ctx context.Context, current int32, target autoscalingv2.MetricTarget, res corev1.ResourceName,
	namespace, container string, selector labels.Selector, source autoscalingv2.MetricSourceType) (int32, *autoscalingv2.MetricValueStatus, string, error) {
	if target.AverageValue != nil {
		n, raw, _, err := c.calc.rawResourceReplicas(ctx, current, target.AverageValue.MilliValue(), res, namespace, selector, container)
		if err != nil {
			return 0, nil, "", fmt.Errorf("failed to get %s usage: %w", res, err)
		}
		return n, &autoscalingv2.MetricValueStatus{AverageValue: resource.NewMilliQuantity(raw, resource.DecimalSI)},
			fmt.Sprintf("%s resource", res), nil
	}
	if target.AverageUtilization == nil {
		return 0, nil, "", errors.New("invalid resource metric source: neither an average utilization target nor an average value (usage) target was set")
	}
	n, pct, raw, _, err := c.calc.resourceReplicas(ctx, current, *target.AverageUtilization, res, namespace, selector, container)
	if err != nil {
		return 0, nil, "", fmt.Errorf("failed to get %s utilization: %w", res, err)
	}
	name := fmt.Sprintf("%s resource utilization (percentage of request)", res)
	if source == autoscalingv2.ContainerResourceMetricSourceType {
		name = fmt.Sprintf("%s container resource utilization (percentage of request)", res)
	}
	return n, &autoscalingv2.MetricValueStatus{AverageUtilization: &pct, AverageValue: resource.NewMilliQuantity(raw, resource.DecimalSI)}, name, nil
}

// unableToCompute records a metric's failure as an event and returns the
// ScalingActive condition that reports it.
func (c *Controller) unableToCompute(hpa *autoscalingv2.HorizontalPodAutoscaler, reason string, err error) autoscalingv2.HorizontalPodAutoscalerCondition {
	c.recorder.Event(hpa, corev1.EventTypeWarning, reason, err.Error())
	return autoscalingv2.HorizontalPodAutoscalerCondition{Type: autoscalingv2.ScalingActive, Status: corev1.ConditionFalse,
		Reason: reason, Message: fmt.Sprintf("the HPA was unable to compute the replica count: %v", err)}
}

// normalize stabilizes the proposal and bounds it by min/max and the
// behavior's policies, reporting AbleToScale and ScalingLimited.
func (c *Controller) normalize(hpa *autoscalingv2.HorizontalPodAutoscaler, key string, current, proposal, minReplicas int32) int32 {
	b := withDefaults(hpa.Spec.Behavior)
	args := normalizeArgs{key: key, scaleUp: b.ScaleUp, scaleDown: b.ScaleDown, min: minReplicas, max: hpa.Spec.MaxReplicas,
		current: current, desired: proposal}
	stabilized, reason, msg := c.history.stabilize(args)
	if stabilized != proposal {
		c.setCondition(hpa, autoscalingv2.AbleToScale, corev1.ConditionTrue, reason, "%s", msg)
	} else {
		c.setCondition(hpa, autoscalingv2.AbleToScale, corev1.ConditionTrue, "ReadyForNewScale", "recommended size matches current size")
	}
	args.desired = stabilized
	desired, reason, msg := c.history.limitRate(args)
	limited := corev1.ConditionFalse
	if desired != stabilized {
		limited = corev1.ConditionTrue
	}
	c.setCondition(hpa, autoscalingv2.ScalingLimited, limited, reason, "%s", msg)
	return desired
}

// setStatus replaces the status, keeping the conditions and, unless this
// sync rescaled, lastScaleTime.
func (c *Controller) setStatus(hpa *autoscalingv2.HorizontalPodAutoscaler, current, desired int32, metrics []autoscalingv2.MetricStatus, rescaled bool) {
	gen := hpa.Generation
	hpa.Status = autoscalingv2.HorizontalPodAutoscalerStatus{
		ObservedGeneration: &gen,
		CurrentReplicas:    current,
		DesiredReplicas:    desired,
		LastScaleTime:      hpa.Status.LastScaleTime,
		CurrentMetrics:     metrics,
		Conditions:         hpa.Status.Conditions,
	}
	if rescaled {
		now := metav1.NewTime(c.clock.Now())
		hpa.Status.LastScaleTime = &now
	}
}

// setCondition sets a condition, moving its lastTransitionTime only when
// its status changes.
func (c *Controller) setCondition(hpa *autoscalingv2.HorizontalPodAutoscaler, typ autoscalingv2.HorizontalPodAutoscalerConditionType,
	status corev1.ConditionStatus, reason, format string, args ...any) {
	conds := hpa.Status.Conditions
	i := 0
	for ; i < len(conds) && conds[i].Type != typ; i++ {
	}
	if i == len(conds) {
		conds = append(conds, autoscalingv2.HorizontalPodAutoscalerCondition{Type: typ})
	}
	if conds[i].Status != status {
		conds[i].LastTransitionTime = metav1.NewTime(c.clock.Now())
	}
	conds[i].Status, conds[i].Reason, conds[i].Message = status, reason, fmt.Sprintf(format, args...)
	hpa.Status.Conditions = conds
}

// updateStatusIfNeeded writes the status when it changed.
func (c *Controller) updateStatusIfNeeded(ctx context.Context, old *autoscalingv2.HorizontalPodAutoscalerStatus, hpa *autoscalingv2.HorizontalPodAutoscaler) error {
	if equality.Semantic.DeepEqual(old, &hpa.Status) {
		return nil
	}
	if _, err := c.client.AutoscalingV2().HorizontalPodAutoscalers(hpa.Namespace).UpdateStatus(ctx, hpa, metav1.UpdateOptions{}); err != nil {
		c.recorder.Event(hpa, corev1.EventTypeWarning, "FailedUpdateStatus", err.Error())
		return fmt.Errorf("failed to update status for %s: %w", hpa.Name, err)
	}
	return nil
}
