package metricsapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	cmv1beta1 "k8s.io/metrics/pkg/apis/custom_metrics/v1beta1"
	cmv1beta2 "k8s.io/metrics/pkg/apis/custom_metrics/v1beta2"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"

	"github.com/skiffhq/skiff/internal/apiserver"
	"github.com/skiffhq/skiff/internal/metrics/usage"
	"github.com/skiffhq/skiff/internal/node/protocol"
)

type objects struct {
	pods  []corev1.Pod
	nodes []corev1.Node
}

func (o objects) Pods(_ context.Context, ns string) ([]corev1.Pod, error) {
	var out []corev1.Pod
	for _, p := range o.pods {
		if ns == "" || p.Namespace == ns {
			out = append(out, p)
		}
	}
	return out, nil
}

func (o objects) Nodes(context.Context) ([]corev1.Node, error) { return o.nodes, nil }

func u64(n uint64) *uint64 { return &n }

// fixture: node n1 with pods web (counted requests, app=web), cmd (not
// counted, app=cmd) in default and other/web2; two reports 2 s apart.
func fixture(t *testing.T) []apiserver.APIGroup {
	t.Helper()
	pod := func(ns, name, app string) corev1.Pod {
		return corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + name),
			Labels: map[string]string{"app": app}}}
	}
	objs := objects{
		pods:  []corev1.Pod{pod("default", "web", "web"), pod("default", "cmd", "cmd"), pod("other", "web2", "web")},
		nodes: []corev1.Node{{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{"zone": "a"}}}},
	}
	store := usage.New(time.Hour)
	start := time.Now()
	for i, at := range []time.Duration{0, 2 * time.Second} {
		n := uint64(i)
		store.Add(protocol.UsageReport{Node: "n1", Time: start.Add(at), CPUNanos: n * 2e9, MemoryBytes: 1 << 30, Pods: []protocol.PodUsage{
			{Namespace: "default", Name: "web", UID: "uid-web", Containers: []protocol.ContainerUsage{
				{Name: "c", CPUNanos: n * 1e9, MemoryBytes: 8 << 20, HTTPRequests: u64(n * 30)}}},
			{Namespace: "default", Name: "cmd", UID: "uid-cmd", Containers: []protocol.ContainerUsage{
				{Name: "c", CPUNanos: n * 4e8, MemoryBytes: 2 << 20}}},
			{Namespace: "other", Name: "web2", UID: "uid-web2", Containers: []protocol.ContainerUsage{
				{Name: "c", CPUNanos: 0, MemoryBytes: 1 << 20, HTTPRequests: u64(0)}}},
		}})
	}
	return Groups(store, objs)
}

func get(t *testing.T, g apiserver.APIGroupVersion, url string) (runtime.Object, error) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, url, nil)
	path := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	return g.Serve(r, path)
}

func TestResourceMetrics(t *testing.T) {
	m := fixture(t)[0].Versions[0]
	obj, err := get(t, m, "/pods")
	if err != nil {
		t.Fatal(err)
	}
	if l := obj.(*metricsv1beta1.PodMetricsList); len(l.Items) != 3 || l.Kind != "PodMetricsList" {
		t.Fatalf("all pods: %+v", l)
	}
	obj, err = get(t, m, "/namespaces/default/pods?labelSelector=app%3Dweb")
	if err != nil {
		t.Fatal(err)
	}
	l := obj.(*metricsv1beta1.PodMetricsList)
	if len(l.Items) != 1 || l.Items[0].Name != "web" || l.Items[0].Labels["app"] != "web" || l.Items[0].Window.Duration != 2*time.Second {
		t.Fatalf("app=web in default: %+v", l.Items)
	}
	c := l.Items[0].Containers[0]
	if c.Usage.Cpu().MilliValue() != 500 || c.Usage.Memory().Value() != 8<<20 {
		t.Errorf("web's usage %v %v, want 500m and 8Mi", c.Usage.Cpu(), c.Usage.Memory())
	}
	obj, err = get(t, m, "/namespaces/default/pods/cmd")
	if err != nil || obj.(*metricsv1beta1.PodMetrics).Kind != "PodMetrics" {
		t.Errorf("one pod: %+v %v", obj, err)
	}
	obj, err = get(t, m, "/nodes?labelSelector=zone%3Da")
	if err != nil {
		t.Fatal(err)
	}
	if nl := obj.(*metricsv1beta1.NodeMetricsList); len(nl.Items) != 1 || nl.Items[0].Usage.Cpu().MilliValue() != 1000 {
		t.Errorf("nodes: %+v", nl)
	}
	for _, url := range []string{"/nodes/nosuch", "/namespaces/default/pods/nosuch", "/namespaces/other/pods/web", "/services", "/namespaces/default/pods/web/extra"} {
		if _, err := get(t, m, url); !apierrors.IsNotFound(err) {
			t.Errorf("%s: %v, want NotFound", url, err)
		}
	}
	if _, err := get(t, m, "/pods?labelSelector=a%20b%20c"); !apierrors.IsBadRequest(err) {
		t.Errorf("a bad selector: %v, want BadRequest", err)
	}
}

func TestCustomMetrics(t *testing.T) {
	cm := fixture(t)[1]
	if cm.Versions[0].Version != "v1beta2" {
		t.Fatalf("preferred version %s, want v1beta2 (what client-go's custom metrics client prefers)", cm.Versions[0].Version)
	}
	v2, v1 := cm.Versions[0], cm.Versions[1]
	obj, err := get(t, v2, "/namespaces/default/pods/*/http_requests_per_second?labelSelector=app%3Dweb")
	if err != nil {
		t.Fatal(err)
	}
	l := obj.(*cmv1beta2.MetricValueList)
	if len(l.Items) != 1 || l.Items[0].DescribedObject.Name != "web" || l.Items[0].Metric.Name != RequestsPerSecond ||
		l.Items[0].Value.MilliValue() != 15000 || *l.Items[0].WindowSeconds != 2 {
		t.Fatalf("v1beta2: %+v", l.Items)
	}
	// Every pod of the namespace with a counted value: the command pod
	// has none, so it is left out rather than shown as 0.
	obj, err = get(t, v2, "/namespaces/default/pods/*/http_requests_per_second")
	if err != nil || len(obj.(*cmv1beta2.MetricValueList).Items) != 1 {
		t.Errorf("every pod: %+v %v", obj, err)
	}
	obj, err = get(t, v2, "/namespaces/other/pods/web2/http_requests_per_second")
	if err != nil || len(obj.(*cmv1beta2.MetricValueList).Items) != 1 || obj.(*cmv1beta2.MetricValueList).Items[0].Value.MilliValue() != 0 {
		t.Errorf("an idle counted pod: %+v %v", obj, err)
	}
	obj, err = get(t, v1, "/namespaces/default/pods/web/http_requests_per_second")
	if err != nil {
		t.Fatal(err)
	}
	if l := obj.(*cmv1beta1.MetricValueList); len(l.Items) != 1 || l.Items[0].MetricName != RequestsPerSecond || l.Items[0].Value.MilliValue() != 15000 {
		t.Errorf("v1beta1: %+v", l.Items)
	}
	// A metric selector with a requirement matches nothing: the metric
	// has no labels.
	obj, err = get(t, v2, "/namespaces/default/pods/*/http_requests_per_second?metricLabelSelector=code%3D200")
	if err != nil || len(obj.(*cmv1beta2.MetricValueList).Items) != 0 {
		t.Errorf("metric selector: %+v %v", obj, err)
	}
	for _, url := range []string{
		"/namespaces/default/pods/cmd/http_requests_per_second",    // not counted
		"/namespaces/default/pods/nosuch/http_requests_per_second", // no such pod
		"/namespaces/default/pods/web/cpu_usage",                   // no such metric
		"/namespaces/default/services/web/http_requests_per_second",
		"/pods/*/http_requests_per_second",
	} {
		if _, err := get(t, v2, url); !apierrors.IsNotFound(err) {
			t.Errorf("%s: %v, want NotFound", url, err)
		}
	}
}
