package apiserver

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

func TestMetricsAndAuthentication(t *testing.T) {
	s, cfg := newTestServer(t, 100)
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "m"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cs.CoreV1().ConfigMaps("default").Get(ctx, "absent", metav1.GetOptions{})

	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	do := func(method, path, token string) (int, string) {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	get := func(path, token string) (int, string) { return do(http.MethodGet, path, token) }
	code, body := get("/metrics", "test-token")
	if code != 200 {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	for _, want := range []string{
		`apiserver_request_total{code="201",group="",resource="configmaps",subresource="",verb="POST",version="v1"} 1`,
		`apiserver_request_total{code="404",group="",resource="configmaps",subresource="",verb="GET",version="v1"} 1`,
		`apiserver_request_duration_seconds_bucket{group="",resource="configmaps",subresource="",verb="POST",version="v1",le=`,
		"skiff_store_revision ", "skiff_raft_leader 1", "go_goroutines ",
	} {
		if !strings.Contains(body, want) {
			t.Fatalf("/metrics lacks %q", want)
		}
	}
	// Without the token: 401 with a Status body, for metrics and resources alike.
	for _, p := range []string{"/metrics", "/api/v1/namespaces/default/configmaps", "/apis"} {
		code, body := get(p, "")
		var st metav1.Status
		if code != 401 || json.Unmarshal([]byte(body), &st) != nil || st.Reason != metav1.StatusReasonUnauthorized {
			t.Fatalf("%s without a token: %d %s", p, code, body)
		}
		if code, _ := get(p, "wrong"); code != 401 {
			t.Fatalf("%s with a wrong token: %d", p, code)
		}
	}
	// Health and version answer GET without credentials, as in Kubernetes;
	// other methods need the token.
	for _, p := range []string{"/healthz", "/livez", "/readyz", "/version"} {
		if code, body := get(p, ""); code != 200 {
			t.Fatalf("%s: %d %s", p, code, body)
		}
		for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
			if code, body := do(m, p, ""); code != 401 {
				t.Errorf("%s %s without a token: %d %s", m, p, code, body)
			}
		}
	}
}
