package podautoscaler

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	cmv1beta2 "k8s.io/metrics/pkg/apis/custom_metrics/v1beta2"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned"
	custommetrics "k8s.io/metrics/pkg/client/custom_metrics"
)

// The clients the engine builds, over HTTP against a loopback server that
// answers as the metrics APIs do: the paths and bodies the controller
// depends on, so it works the day skiff serves them.
func TestMetricsClientsOverHTTP(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /apis/metrics.k8s.io/v1beta1/namespaces/default/pods", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("labelSelector") != "app=web" {
			http.Error(w, "selector "+r.URL.RawQuery, http.StatusBadRequest)
			return
		}
		writeJSON(w, metricsv1beta1.PodMetricsList{TypeMeta: metav1.TypeMeta{APIVersion: "metrics.k8s.io/v1beta1", Kind: "PodMetricsList"},
			Items: []metricsv1beta1.PodMetrics{{ObjectMeta: metav1.ObjectMeta{Name: "web-a", Namespace: "default"},
				Timestamp: metav1.NewTime(t0), Window: metav1.Duration{Duration: 15e9},
				Containers: []metricsv1beta1.ContainerMetrics{
					{Name: "web", Usage: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("150m")}},
					{Name: "side", Usage: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m")}},
				}}}})
	})
	mux.HandleFunc("GET /apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/{name}/{metric}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("name") != "*" || r.PathValue("metric") != "http_requests_per_second" || r.URL.Query().Get("labelSelector") != "app=web" {
			http.Error(w, "unexpected "+r.URL.String(), http.StatusBadRequest)
			return
		}
		writeJSON(w, cmv1beta2.MetricValueList{TypeMeta: metav1.TypeMeta{APIVersion: "custom.metrics.k8s.io/v1beta2", Kind: "MetricValueList"},
			Items: []cmv1beta2.MetricValue{{DescribedObject: corev1.ObjectReference{Kind: "Pod", Name: "web-a", Namespace: "default", APIVersion: "v1"},
				Metric: cmv1beta2.MetricIdentifier{Name: "http_requests_per_second"}, Timestamp: metav1.NewTime(t0),
				Value: resource.MustParse("2500m")}}})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	cfg := &rest.Config{Host: srv.URL}

	rc, err := metricsclient.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mapper := meta.NewDefaultRESTMapper([]schema.GroupVersion{corev1.SchemeGroupVersion})
	mapper.Add(corev1.SchemeGroupVersion.WithKind("Pod"), meta.RESTScopeNamespace)
	cc, err := custommetrics.NewForVersionForConfig(rest.CopyConfig(cfg), mapper, cmv1beta2.SchemeGroupVersion)
	if err != nil {
		t.Fatal(err)
	}
	src := &metricsSource{resource: rc.MetricsV1beta1(), custom: cc}
	sel := labels.SelectorFromSet(webLabel)

	got, _, err := src.resourceMetric(context.Background(), corev1.ResourceCPU, ns, sel, "")
	if err != nil {
		t.Fatal(err)
	}
	if got["web-a"].Value != 200 {
		t.Errorf("pod cpu %+v, want 200m (both containers)", got)
	}
	got, _, err = src.resourceMetric(context.Background(), corev1.ResourceCPU, ns, sel, "web")
	if err != nil {
		t.Fatal(err)
	}
	if got["web-a"].Value != 150 {
		t.Errorf("container cpu %+v, want 150m", got)
	}
	got, _, err = src.podsMetric("http_requests_per_second", ns, sel, labels.Everything())
	if err != nil {
		t.Fatal(err)
	}
	if got["web-a"].Value != 2500 || got["web-a"].Window != defaultMetricWindow {
		t.Errorf("custom metric %+v, want 2500m over the default window", got)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
