package apiserver

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
)

// fuzzTargets are the writes a body reaches: create, update and every kind
// of patch, for kinds with deep, varied Go types.
var fuzzTargets = []struct{ method, path, contentType string }{
	{"POST", "/api/v1/namespaces/default/configmaps", "application/json"},
	{"POST", "/api/v1/namespaces/default/pods", "application/json"},
	{"POST", "/api/v1/namespaces/default/pods", "application/yaml"},
	{"POST", "/api/v1/namespaces/default/services", "application/vnd.kubernetes.protobuf"},
	{"POST", "/apis/apps/v1/namespaces/default/deployments", "application/json"},
	{"POST", "/apis/batch/v1/namespaces/default/cronjobs", "application/json"},
	{"PUT", "/api/v1/namespaces/default/configmaps/seed", "application/json"},
	{"PUT", "/apis/apps/v1/namespaces/default/deployments/seed/scale", "application/json"},
	{"PATCH", "/api/v1/namespaces/default/configmaps/seed", "application/json-patch+json"},
	{"PATCH", "/api/v1/namespaces/default/configmaps/seed", "application/merge-patch+json"},
	{"PATCH", "/apis/apps/v1/namespaces/default/deployments/seed", "application/strategic-merge-patch+json"},
	{"PATCH", "/apis/apps/v1/namespaces/default/deployments/seed?fieldManager=fuzz", "application/apply-patch+yaml"},
	{"DELETE", "/api/v1/namespaces/default/configmaps/absent", "application/json"},
}

const seedDeployment = `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"seed"},"spec":{"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"i"}]}}}}`

// FuzzRequestBodies: no body, however malformed, makes the server answer
// 500 (or panic, which the handler chain turns into a 500).
func FuzzRequestBodies(f *testing.F) {
	s, _ := newTestServer(f, 1000)
	h := s.Handler()
	do := func(method, path, ct string, body []byte) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer test-token")
		req.Header.Set("Content-Type", ct)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	do("POST", "/api/v1/namespaces/default/configmaps", "application/json", []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"seed"}}`))
	if rec := do("POST", "/apis/apps/v1/namespaces/default/deployments", "application/json", []byte(seedDeployment)); rec.Code != 201 {
		f.Fatalf("seed deployment: %d %s", rec.Code, rec.Body)
	}
	for i := range fuzzTargets {
		for _, seed := range []string{
			`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"data":{"a":"b"}}`,
			`{"apiVersion":"v1","kind":"Pod","metadata":{"generateName":"p-"},"spec":{"containers":[{"name":"c","image":"i","ports":[{"containerPort":80}]}]}}`,
			seedDeployment,
			`[{"op":"replace","path":"/data","value":{"k":"v"}}]`,
			`{"spec":{"replicas":-3,"template":{"spec":{"containers":[{"name":"c","$patch":"delete"}]}}}}`,
			`{"metadata":{"name":"seed"},"spec":{"replicas":2}}`,
			"apiVersion: v1\nkind: Pod\nmetadata: {name: y}\nspec: {containers: [{name: c, image: i}]}\n",
			"k8s\x00\x0a\x0f\x0a\x02v1\x12\x07Service", `{"kind":"Status"}`, `null`, `[]`, `{"metadata":{"name":1}}`, "",
		} {
			f.Add(uint8(i), []byte(seed))
		}
	}
	f.Fuzz(func(t *testing.T, target uint8, body []byte) {
		tg := fuzzTargets[int(target)%len(fuzzTargets)]
		rec := do(tg.method, tg.path, tg.contentType, body)
		if rec.Code >= 500 {
			t.Fatalf("%s %s (%s) with %q: %d %s", tg.method, tg.path, tg.contentType, body, rec.Code, rec.Body)
		}
		if rec.Code >= 400 && !bytes.Contains(rec.Body.Bytes(), []byte(`"kind":"Status"`)) {
			t.Fatalf("%s %s: error %d without a Status body: %s", tg.method, tg.path, rec.Code, rec.Body)
		}
		if rec.Code == http.StatusOK && tg.method == "DELETE" {
			t.Fatalf("deleted an object that was never created")
		}
	})
}
