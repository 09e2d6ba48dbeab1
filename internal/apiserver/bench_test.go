package apiserver

import (
	"bytes"
	"fmt"
	"net/http/httptest"
	"runtime"
	"testing"
)

// BenchmarkCreateConfigMap measures one create through the whole handler
// chain (no network), for profiling: go test -bench CreateConfigMap -cpuprofile.
func BenchmarkCreateConfigMap(b *testing.B) {
	s, _ := newTestServer(b, 1000)
	h := s.Handler()
	b.Logf("GOMAXPROCS=%d", runtime.GOMAXPROCS(0))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		body := fmt.Sprintf(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm-%d"},"data":{"k":"v"}}`, i)
		req := httptest.NewRequest("POST", "/api/v1/namespaces/default/configmaps", bytes.NewBufferString(body))
		req.Header.Set("Authorization", "Bearer test-token")
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 201 {
			b.Fatalf("create: %d %s", rec.Code, rec.Body)
		}
	}
}
