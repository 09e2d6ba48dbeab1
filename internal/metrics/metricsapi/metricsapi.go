// Package metricsapi serves what the usage store (internal/metrics/usage)
// knows as the Kubernetes metrics APIs, with their real types:
// metrics.k8s.io/v1beta1 (NodeMetrics and PodMetrics, what metrics-server
// serves and `kubectl top` reads) and custom.metrics.k8s.io/v1beta2 and
// v1beta1 (the pod metric http_requests_per_second, as prometheus-adapter
// serves a custom metric to a HorizontalPodAutoscaler). Both are read-only
// API groups of the API server (apiserver.APIGroup).
package metricsapi

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	cmv1beta1 "k8s.io/metrics/pkg/apis/custom_metrics/v1beta1"
	cmv1beta2 "k8s.io/metrics/pkg/apis/custom_metrics/v1beta2"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"

	"github.com/skiffhq/skiff/internal/apiserver"
	"github.com/skiffhq/skiff/internal/metrics/usage"
)

// RequestsPerSecond is the custom metric of pods: the HTTP requests per
// second their containers were handed over the last window, summed over
// the pod's containers. Only runtimes that serve HTTP for the workload
// count requests (Wasm SDK handler modules); a pod none of whose containers
// is counted has no value, never 0.
const RequestsPerSecond = "http_requests_per_second"

// Objects reads the pods and nodes the metrics describe, for their labels
// and so that a metric is only served for an object that exists.
type Objects interface {
	// Pods lists the pods of namespace, of every namespace when "".
	Pods(ctx context.Context, namespace string) ([]corev1.Pod, error)
	// Nodes lists the nodes.
	Nodes(ctx context.Context) ([]corev1.Node, error)
}

// Groups returns the API groups serving store's metrics.
func Groups(store *usage.Store, objs Objects) []apiserver.APIGroup {
	a := &api{store: store, objs: objs}
	return []apiserver.APIGroup{
		{Name: metricsv1beta1.GroupName, Versions: []apiserver.APIGroupVersion{{
			Version: "v1beta1",
			Resources: []metav1.APIResource{
				{Name: "nodes", SingularName: "", Kind: "NodeMetrics", Verbs: []string{"get", "list"}},
				{Name: "pods", SingularName: "", Namespaced: true, Kind: "PodMetrics", Verbs: []string{"get", "list"}},
			},
			Serve: a.serveMetrics,
		}}},
		{Name: cmv1beta2.SchemeGroupVersion.Group, Versions: []apiserver.APIGroupVersion{
			{Version: "v1beta2", Resources: customResources(), Serve: func(r *http.Request, p []string) (runtime.Object, error) {
				return a.serveCustom(r, p, "v1beta2")
			}},
			{Version: "v1beta1", Resources: customResources(), Serve: func(r *http.Request, p []string) (runtime.Object, error) {
				return a.serveCustom(r, p, "v1beta1")
			}},
		}},
	}
}

// customResources is the custom metrics group's resource list, as
// prometheus-adapter lists a pod metric.
func customResources() []metav1.APIResource {
	return []metav1.APIResource{{Name: "pods/" + RequestsPerSecond, Namespaced: true, Kind: "MetricValueList", Verbs: []string{"get"}}}
}

type api struct {
	store *usage.Store
	objs  Objects
}

var (
	nodeMetricsGR = schema.GroupResource{Group: metricsv1beta1.GroupName, Resource: "nodes"}
	podMetricsGR  = schema.GroupResource{Group: metricsv1beta1.GroupName, Resource: "pods"}
)

// serveMetrics answers metrics.k8s.io/v1beta1:
//
//	nodes, nodes/<name>, pods, namespaces/<ns>/pods, namespaces/<ns>/pods/<name>
func (a *api) serveMetrics(r *http.Request, path []string) (runtime.Object, error) {
	q := r.URL.Query()
	sel, err := labels.Parse(q.Get("labelSelector"))
	if err != nil {
		return nil, apierrors.NewBadRequest("labelSelector: " + err.Error())
	}
	fsel, err := fields.ParseSelector(q.Get("fieldSelector"))
	if err != nil {
		return nil, apierrors.NewBadRequest("fieldSelector: " + err.Error())
	}
	switch {
	case path[0] == "nodes" && len(path) <= 2:
		var name string
		if len(path) == 2 {
			name = path[1]
		}
		return a.nodes(r.Context(), name, sel, fsel)
	case path[0] == "pods" && len(path) == 1:
		return a.pods(r.Context(), "", "", sel, fsel)
	case path[0] == "namespaces" && len(path) >= 3 && len(path) <= 4 && path[2] == "pods":
		var name string
		if len(path) == 4 {
			name = path[3]
		}
		return a.pods(r.Context(), path[1], name, sel, fsel)
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Group: metricsv1beta1.GroupName}, strings.Join(path, "/"))
}

func (a *api) nodes(ctx context.Context, name string, sel labels.Selector, fsel fields.Selector) (runtime.Object, error) {
	nodes, err := a.objs.Nodes(ctx)
	if err != nil {
		return nil, fmt.Errorf("metrics: list nodes: %w", err)
	}
	now := metav1.Now()
	list := &metricsv1beta1.NodeMetricsList{TypeMeta: metav1.TypeMeta{Kind: "NodeMetricsList", APIVersion: "metrics.k8s.io/v1beta1"}}
	for i := range nodes {
		n := &nodes[i]
		if name != "" && n.Name != name {
			continue
		}
		if name == "" && (!sel.Matches(labels.Set(n.Labels)) || !fsel.Matches(fields.Set{"metadata.name": n.Name})) {
			continue
		}
		m, ok := a.store.Node(n.Name)
		if !ok {
			continue
		}
		list.Items = append(list.Items, metricsv1beta1.NodeMetrics{
			ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: n.Labels, CreationTimestamp: now},
			Timestamp:  metav1.NewTime(m.Timestamp), Window: metav1.Duration{Duration: m.Window},
			Usage: corev1.ResourceList{
				corev1.ResourceCPU:    *resource.NewScaledQuantity(m.CPUNanoCores, resource.Nano),
				corev1.ResourceMemory: *resource.NewQuantity(m.MemoryBytes, resource.BinarySI),
			},
		})
	}
	if name == "" {
		return list, nil
	}
	if len(list.Items) == 0 {
		return nil, apierrors.NewNotFound(nodeMetricsGR, name)
	}
	item := list.Items[0]
	item.TypeMeta = metav1.TypeMeta{Kind: "NodeMetrics", APIVersion: "metrics.k8s.io/v1beta1"}
	return &item, nil
}

func (a *api) pods(ctx context.Context, namespace, name string, sel labels.Selector, fsel fields.Selector) (runtime.Object, error) {
	pods, err := a.objs.Pods(ctx, namespace)
	if err != nil {
		return nil, fmt.Errorf("metrics: list pods: %w", err)
	}
	now := metav1.Now()
	list := &metricsv1beta1.PodMetricsList{TypeMeta: metav1.TypeMeta{Kind: "PodMetricsList", APIVersion: "metrics.k8s.io/v1beta1"}}
	for i := range pods {
		p := &pods[i]
		if name != "" && p.Name != name {
			continue
		}
		if name == "" && (!sel.Matches(labels.Set(p.Labels)) ||
			!fsel.Matches(fields.Set{"metadata.name": p.Name, "metadata.namespace": p.Namespace})) {
			continue
		}
		m, ok := a.store.Pod(p.Namespace, p.Name)
		if !ok || m.UID != string(p.UID) {
			continue
		}
		pm := metricsv1beta1.PodMetrics{
			ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, Labels: p.Labels, CreationTimestamp: now},
			Timestamp:  metav1.NewTime(m.Timestamp), Window: metav1.Duration{Duration: m.Window},
			Containers: []metricsv1beta1.ContainerMetrics{},
		}
		for _, c := range m.Containers {
			pm.Containers = append(pm.Containers, metricsv1beta1.ContainerMetrics{Name: c.Name, Usage: corev1.ResourceList{
				corev1.ResourceCPU:    *resource.NewScaledQuantity(c.CPUNanoCores, resource.Nano),
				corev1.ResourceMemory: *resource.NewQuantity(c.MemoryBytes, resource.BinarySI),
			}})
		}
		list.Items = append(list.Items, pm)
	}
	if name == "" {
		return list, nil
	}
	if len(list.Items) == 0 {
		return nil, apierrors.NewNotFound(podMetricsGR, name)
	}
	item := list.Items[0]
	item.TypeMeta = metav1.TypeMeta{Kind: "PodMetrics", APIVersion: "metrics.k8s.io/v1beta1"}
	return &item, nil
}

// serveCustom answers custom.metrics.k8s.io in version:
//
//	namespaces/<ns>/pods/<name or *>/http_requests_per_second
//
// with a MetricValueList, as prometheus-adapter does (one item for a
// named pod, 404 when it has no value).
func (a *api) serveCustom(r *http.Request, path []string, version string) (runtime.Object, error) {
	if len(path) != 5 || path[0] != "namespaces" || path[2] != "pods" {
		return nil, apierrors.NewNotFound(schema.GroupResource{Group: cmv1beta2.SchemeGroupVersion.Group}, strings.Join(path, "/"))
	}
	ns, name, metric := path[1], path[3], path[4]
	gr := schema.GroupResource{Group: cmv1beta2.SchemeGroupVersion.Group, Resource: "pods/" + metric}
	if metric != RequestsPerSecond {
		return nil, apierrors.NewNotFound(gr, name)
	}
	q := r.URL.Query()
	sel, err := labels.Parse(q.Get("labelSelector"))
	if err != nil {
		return nil, apierrors.NewBadRequest("labelSelector: " + err.Error())
	}
	// The metric has no labels of its own: a metric selector either
	// matches the empty set (no requirement, or only negative ones) or
	// nothing.
	msel, err := labels.Parse(q.Get("metricLabelSelector"))
	if err != nil {
		return nil, apierrors.NewBadRequest("metricLabelSelector: " + err.Error())
	}
	pods, err := a.objs.Pods(r.Context(), ns)
	if err != nil {
		return nil, fmt.Errorf("custom metrics: list pods: %w", err)
	}
	type value struct {
		pod    *corev1.Pod
		m      usage.PodMetrics
		perSec float64
	}
	var values []value
	if msel.Matches(labels.Set{}) {
		for i := range pods {
			p := &pods[i]
			if name != "*" && p.Name != name {
				continue
			}
			if name == "*" && !sel.Matches(labels.Set(p.Labels)) {
				continue
			}
			m, ok := a.store.Pod(p.Namespace, p.Name)
			if !ok || m.UID != string(p.UID) {
				continue
			}
			rps, ok := m.PodRequestsPerSecond()
			if !ok {
				continue
			}
			values = append(values, value{pod: p, m: m, perSec: rps})
		}
	}
	if name != "*" && len(values) == 0 {
		return nil, apierrors.NewNotFound(gr, name)
	}
	ref := func(p *corev1.Pod) corev1.ObjectReference {
		return corev1.ObjectReference{Kind: "Pod", Namespace: p.Namespace, Name: p.Name, APIVersion: "/v1", UID: p.UID}
	}
	quantity := func(rps float64) resource.Quantity {
		return *resource.NewMilliQuantity(int64(rps*1000+0.5), resource.DecimalSI)
	}
	window := func(d time.Duration) *int64 { s := int64(d.Round(time.Second) / time.Second); return &s }
	if version == "v1beta1" {
		list := &cmv1beta1.MetricValueList{TypeMeta: metav1.TypeMeta{Kind: "MetricValueList", APIVersion: "custom.metrics.k8s.io/v1beta1"},
			Items: []cmv1beta1.MetricValue{}}
		for _, v := range values {
			list.Items = append(list.Items, cmv1beta1.MetricValue{DescribedObject: ref(v.pod), MetricName: metric,
				Timestamp: metav1.NewTime(v.m.Timestamp), WindowSeconds: window(v.m.Window), Value: quantity(v.perSec)})
		}
		return list, nil
	}
	list := &cmv1beta2.MetricValueList{TypeMeta: metav1.TypeMeta{Kind: "MetricValueList", APIVersion: "custom.metrics.k8s.io/v1beta2"},
		Items: []cmv1beta2.MetricValue{}}
	for _, v := range values {
		list.Items = append(list.Items, cmv1beta2.MetricValue{DescribedObject: ref(v.pod), Metric: cmv1beta2.MetricIdentifier{Name: metric},
			Timestamp: metav1.NewTime(v.m.Timestamp), WindowSeconds: window(v.m.Window), Value: quantity(v.perSec)})
	}
	return list, nil
}
