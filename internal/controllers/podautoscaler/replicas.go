package podautoscaler

import (
	"context"
	"fmt"
	"math"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/sets"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/utils/clock"
)

// Kubernetes' defaults for the calculator (kube-controller-manager's
// --horizontal-pod-autoscaler-* flags).
const (
	// DefaultTolerance: a usage ratio within 10% of 1 changes nothing.
	DefaultTolerance = 0.1
	// DefaultCPUInitializationPeriod: a pod started this recently has its
	// CPU samples used only once it is ready and a full window has been
	// measured since, because start-up burns CPU that says nothing of load.
	DefaultCPUInitializationPeriod = 5 * time.Minute
	// DefaultInitialReadinessDelay: past the initialization period, a pod
	// that turned unready within this long of its start is taken as never
	// having been ready yet.
	DefaultInitialReadinessDelay = 30 * time.Second
)

// calculator is Kubernetes' replica calculator (pkg/controller/podautoscaler/
// replica_calculator.go): the replicas that bring the pods' average to the
// target, damped where samples are missing or pods are not ready.
type calculator struct {
	metrics             *metricsSource
	pods                corelisters.PodLister
	clock               clock.PassiveClock
	tolerance           float64
	cpuInitialization   time.Duration
	initialReadinessDly time.Duration
}

// resourceReplicas is the proposal for a Utilization target of resource:
// with the current utilization (percent of requests) and the raw average
// usage (milli-units).
func (c *calculator) resourceReplicas(ctx context.Context, current, target int32, resource corev1.ResourceName,
	namespace string, selector labels.Selector, container string) (int32, int32, int64, time.Time, error) {
	metrics, ts, err := c.metrics.resourceMetric(ctx, resource, namespace, selector, container)
	if err != nil {
		return 0, 0, 0, time.Time{}, fmt.Errorf("unable to get metrics for resource %s: %w", resource, err)
	}
	pods, err := c.pods.Pods(namespace).List(selector)
	if err != nil {
		return 0, 0, 0, time.Time{}, fmt.Errorf("unable to get pods while calculating replica count: %w", err)
	}
	if len(pods) == 0 {
		return 0, 0, 0, time.Time{}, fmt.Errorf("no pods returned by selector while calculating replica count")
	}
	ready, unready, missing, ignored := c.groupPods(pods, metrics, resource)
	removeMetrics(metrics, ignored)
	removeMetrics(metrics, unready)
	if len(metrics) == 0 {
		return 0, 0, 0, time.Time{}, fmt.Errorf("did not receive metrics for targeted pods (pods might be unready)")
	}
	requests, err := podRequests(pods, container, resource)
	if err != nil {
		return 0, 0, 0, time.Time{}, err
	}
	ratio, utilization, raw, err := utilizationRatio(metrics, requests, target)
	if err != nil {
		return 0, 0, 0, time.Time{}, err
	}

	scaleUpWithUnready := len(unready) > 0 && ratio > 1.0
	if !scaleUpWithUnready && len(missing) == 0 {
		if math.Abs(1.0-ratio) <= c.tolerance {
			return current, utilization, raw, ts, nil
		}
		return int32(math.Ceil(ratio * float64(ready))), utilization, raw, ts, nil
	}
	// Damp the change: pods without samples count as using their whole
	// request (or the target, if higher) on a scale-down and nothing on a
	// scale-up; unready pods count as using nothing on a scale-up.
	if len(missing) > 0 {
		switch {
		case ratio < 1.0:
			fallback := int64(max(100, target))
			for pod := range missing {
				metrics[pod] = podMetric{Value: requests[pod] * fallback / 100}
			}
		case ratio > 1.0:
			for pod := range missing {
				metrics[pod] = podMetric{Value: 0}
			}
		}
	}
	if scaleUpWithUnready {
		for pod := range unready {
			metrics[pod] = podMetric{Value: 0}
		}
	}
	newRatio, _, _, err := utilizationRatio(metrics, requests, target)
	if err != nil {
		return 0, utilization, raw, time.Time{}, err
	}
	return dampedReplicas(current, ratio, newRatio, len(metrics), c.tolerance), utilization, raw, ts, nil
}

// rawResourceReplicas is the proposal for an AverageValue target of a
// resource, in milli-units; with the current average.
func (c *calculator) rawResourceReplicas(ctx context.Context, current int32, target int64, resource corev1.ResourceName,
	namespace string, selector labels.Selector, container string) (int32, int64, time.Time, error) {
	metrics, ts, err := c.metrics.resourceMetric(ctx, resource, namespace, selector, container)
	if err != nil {
		return 0, 0, time.Time{}, fmt.Errorf("unable to get metrics for resource %s: %w", resource, err)
	}
	replicas, usage, err := c.plainReplicas(metrics, current, target, namespace, selector, resource)
	return replicas, usage, ts, err
}

// podsMetricReplicas is the proposal for a Pods metric's AverageValue
// target, in milli-units; with the current average.
func (c *calculator) podsMetricReplicas(current int32, target int64, metricName, namespace string,
	selector, metricSelector labels.Selector) (int32, int64, time.Time, error) {
	metrics, ts, err := c.metrics.podsMetric(metricName, namespace, selector, metricSelector)
	if err != nil {
		return 0, 0, time.Time{}, fmt.Errorf("unable to get metric %s: %w", metricName, err)
	}
	replicas, usage, err := c.plainReplicas(metrics, current, target, namespace, selector, "")
	return replicas, usage, ts, err
}

// plainReplicas is the calculation against an average value, the same
// damping as resourceReplicas with the target standing in for the request.
func (c *calculator) plainReplicas(metrics podMetrics, current int32, target int64, namespace string,
	selector labels.Selector, resource corev1.ResourceName) (int32, int64, error) {
	pods, err := c.pods.Pods(namespace).List(selector)
	if err != nil {
		return 0, 0, fmt.Errorf("unable to get pods while calculating replica count: %w", err)
	}
	if len(pods) == 0 {
		return 0, 0, fmt.Errorf("no pods returned by selector while calculating replica count")
	}
	ready, unready, missing, ignored := c.groupPods(pods, metrics, resource)
	removeMetrics(metrics, ignored)
	removeMetrics(metrics, unready)
	if len(metrics) == 0 {
		return 0, 0, fmt.Errorf("did not receive metrics for targeted pods (pods might be unready)")
	}
	ratio, usage := usageRatio(metrics, target)
	scaleUpWithUnready := len(unready) > 0 && ratio > 1.0
	if !scaleUpWithUnready && len(missing) == 0 {
		if math.Abs(1.0-ratio) <= c.tolerance {
			return current, usage, nil
		}
		return int32(math.Ceil(ratio * float64(ready))), usage, nil
	}
	if len(missing) > 0 {
		v := int64(0)
		if ratio < 1.0 {
			v = target
		}
		for pod := range missing {
			metrics[pod] = podMetric{Value: v}
		}
	}
	if scaleUpWithUnready {
		for pod := range unready {
			metrics[pod] = podMetric{Value: 0}
		}
	}
	newRatio, _ := usageRatio(metrics, target)
	return dampedReplicas(current, ratio, newRatio, len(metrics), c.tolerance), usage, nil
}

// dampedReplicas is the count from the ratio recomputed with the assumed
// samples; the current count when that change is within tolerance or
// would reverse the direction the measured samples asked for.
func dampedReplicas(current int32, ratio, newRatio float64, samples int, tolerance float64) int32 {
	if math.Abs(1.0-newRatio) <= tolerance || (ratio < 1.0 && newRatio > 1.0) || (ratio > 1.0 && newRatio < 1.0) {
		return current
	}
	n := int32(math.Ceil(newRatio * float64(samples)))
	if (newRatio < 1.0 && n > current) || (newRatio > 1.0 && n < current) {
		return current
	}
	return n
}

// groupPods sorts pods as Kubernetes does: deleted and failed ones are
// ignored; pending ones are unready; ones without a sample are missing;
// for CPU, ones not ready or still starting up (see
// DefaultCPUInitializationPeriod) are unready; the rest count as ready.
func (c *calculator) groupPods(pods []*corev1.Pod, metrics podMetrics, resource corev1.ResourceName) (int, sets.Set[string], sets.Set[string], sets.Set[string]) {
	ready := 0
	unready, missing, ignored := sets.New[string](), sets.New[string](), sets.New[string]()
	now := c.clock.Now()
	for _, pod := range pods {
		if pod.DeletionTimestamp != nil || pod.Status.Phase == corev1.PodFailed {
			ignored.Insert(pod.Name)
			continue
		}
		if pod.Status.Phase == corev1.PodPending {
			unready.Insert(pod.Name)
			continue
		}
		m, ok := metrics[pod.Name]
		if !ok {
			missing.Insert(pod.Name)
			continue
		}
		if resource == corev1.ResourceCPU {
			cond := readyCondition(pod)
			var isUnready bool
			switch {
			case cond == nil || pod.Status.StartTime == nil:
				isUnready = true
			case pod.Status.StartTime.Add(c.cpuInitialization).After(now):
				// Still initializing: the sample counts once the pod is
				// ready and a whole window has passed since it became so.
				isUnready = cond.Status == corev1.ConditionFalse || m.Timestamp.Before(cond.LastTransitionTime.Add(m.Window))
			default:
				// Unready and never ready since its start.
				isUnready = cond.Status == corev1.ConditionFalse && pod.Status.StartTime.Add(c.initialReadinessDly).After(cond.LastTransitionTime.Time)
			}
			if isUnready {
				unready.Insert(pod.Name)
				continue
			}
		}
		ready++
	}
	return ready, unready, missing, ignored
}

func readyCondition(pod *corev1.Pod) *corev1.PodCondition {
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == corev1.PodReady {
			return &pod.Status.Conditions[i]
		}
	}
	return nil
}

func removeMetrics(metrics podMetrics, pods sets.Set[string]) {
	for pod := range pods {
		delete(metrics, pod)
	}
}

// podRequests is each pod's request of resource in milli-units: its
// containers' (and sidecars') sum, or the one named container's. A
// container without the request makes utilization meaningless, so it is
// an error, as in Kubernetes.
func podRequests(pods []*corev1.Pod, container string, resource corev1.ResourceName) (map[string]int64, error) {
	requests := make(map[string]int64, len(pods))
	for _, pod := range pods {
		containers := append([]corev1.Container{}, pod.Spec.Containers...)
		for _, ic := range pod.Spec.InitContainers {
			if ic.RestartPolicy != nil && *ic.RestartPolicy == corev1.ContainerRestartPolicyAlways {
				containers = append(containers, ic)
			}
		}
		sum := int64(0)
		for _, ct := range containers {
			if container != "" && container != ct.Name {
				continue
			}
			req, ok := ct.Resources.Requests[resource]
			if !ok {
				return nil, fmt.Errorf("missing request for %s in container %s of Pod %s", resource, ct.Name, pod.Name)
			}
			sum += req.MilliValue()
		}
		requests[pod.Name] = sum
	}
	return requests, nil
}
