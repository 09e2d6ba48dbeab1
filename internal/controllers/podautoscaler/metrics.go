package podautoscaler

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
	resourceclient "k8s.io/metrics/pkg/client/clientset/versioned/typed/metrics/v1beta1"
	customclient "k8s.io/metrics/pkg/client/custom_metrics"
)

// defaultMetricWindow is the window assumed for a custom metric that
// states none, as Kubernetes' metrics client assumes.
const defaultMetricWindow = time.Minute

// podMetric is one pod's sample: milli-units of the metric (millicores,
// milli-bytes, milli-requests per second).
type podMetric struct {
	Timestamp time.Time
	Window    time.Duration
	Value     int64
}

// podMetrics maps pod names to their samples.
type podMetrics map[string]podMetric

// metricsSource reads pod metrics through the metrics APIs' client-go
// clients, so whatever serves metrics.k8s.io and custom.metrics.k8s.io
// (skiff's API server, or an adapter) feeds the autoscaler unchanged.
type metricsSource struct {
	resource resourceclient.PodMetricsesGetter
	custom   customclient.CustomMetricsClient
}

// resourceMetric is the usage of resource by each pod selector matches:
// the sum over its containers, or the one named container's.
func (m *metricsSource) resourceMetric(ctx context.Context, resource corev1.ResourceName, namespace string,
	selector labels.Selector, container string) (podMetrics, time.Time, error) {
	if m.resource == nil {
		return nil, time.Time{}, fmt.Errorf("unable to fetch metrics from resource metrics API: no client")
	}
	list, err := m.resource.PodMetricses(namespace).List(ctx, metav1.ListOptions{LabelSelector: selector.String()})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("unable to fetch metrics from resource metrics API: %w", err)
	}
	if len(list.Items) == 0 {
		return nil, time.Time{}, fmt.Errorf("no metrics returned from resource metrics API")
	}
	var res podMetrics
	if container != "" {
		if res, err = containerMetrics(list.Items, resource, container); err != nil {
			return nil, time.Time{}, fmt.Errorf("failed to get container metrics: %w", err)
		}
	} else {
		res = podSums(list.Items, resource)
	}
	return res, list.Items[0].Timestamp.Time, nil
}

// podSums adds each pod's containers up. A pod whose sample lacks a
// container's usage is left out, as missing, rather than under-counted.
func podSums(items []metricsv1beta1.PodMetrics, resource corev1.ResourceName) podMetrics {
	res := make(podMetrics, len(items))
	for _, m := range items {
		sum, missing := int64(0), len(m.Containers) == 0
		for _, c := range m.Containers {
			v, ok := c.Usage[resource]
			if !ok {
				missing = true
				break
			}
			sum += v.MilliValue()
		}
		if !missing {
			res[m.Name] = podMetric{Timestamp: m.Timestamp.Time, Window: m.Window.Duration, Value: sum}
		}
	}
	return res
}

func containerMetrics(items []metricsv1beta1.PodMetrics, resource corev1.ResourceName, container string) (podMetrics, error) {
	res := make(podMetrics, len(items))
	for _, m := range items {
		for _, c := range m.Containers {
			if c.Name != container {
				continue
			}
			v, ok := c.Usage[resource]
			if !ok {
				return nil, fmt.Errorf("missing resource metric %v for container %s in pod %s/%s", resource, c.Name, m.Namespace, m.Name)
			}
			res[m.Name] = podMetric{Timestamp: m.Timestamp.Time, Window: m.Window.Duration, Value: v.MilliValue()}
			break
		}
	}
	return res, nil
}

// podsMetric is the custom metric name of each pod selector matches.
func (m *metricsSource) podsMetric(metricName, namespace string, selector, metricSelector labels.Selector) (podMetrics, time.Time, error) {
	if m.custom == nil {
		return nil, time.Time{}, fmt.Errorf("unable to fetch metrics from custom metrics API: no client")
	}
	list, err := m.custom.NamespacedMetrics(namespace).GetForObjects(schema.GroupKind{Kind: "Pod"}, selector, metricName, metricSelector)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("unable to fetch metrics from custom metrics API: %w", err)
	}
	if len(list.Items) == 0 {
		return nil, time.Time{}, fmt.Errorf("no metrics returned from custom metrics API")
	}
	res := make(podMetrics, len(list.Items))
	for _, v := range list.Items {
		window := defaultMetricWindow
		if v.WindowSeconds != nil {
			window = time.Duration(*v.WindowSeconds) * time.Second
		}
		res[v.DescribedObject.Name] = podMetric{Timestamp: v.Timestamp.Time, Window: window, Value: v.Value.MilliValue()}
	}
	return res, list.Items[0].Timestamp.Time, nil
}

// utilizationRatio is the pods' usage against their requests, over the
// target percentage; with the current utilization and the raw average.
func utilizationRatio(metrics podMetrics, requests map[string]int64, target int32) (float64, int32, int64, error) {
	var used, requested int64
	n := 0
	for pod, m := range metrics {
		req, ok := requests[pod]
		if !ok {
			continue // a sample of a pod not listed: extraneous
		}
		used += m.Value
		requested += req
		n++
	}
	if requested == 0 {
		return 0, 0, 0, fmt.Errorf("no metrics returned matched known pods")
	}
	current := int32(used * 100 / requested)
	return float64(current) / float64(target), current, used / int64(n), nil
}

// usageRatio is the pods' average over the target average.
func usageRatio(metrics podMetrics, target int64) (float64, int64) {
	var total int64
	for _, m := range metrics {
		total += m.Value
	}
	avg := total / int64(len(metrics))
	return float64(avg) / float64(target), avg
}
