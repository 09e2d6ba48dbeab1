package apiserver

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"runtime"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiffhq/skiff/internal/audit"
)

// BenchmarkAdmissionCost: one ConfigMap create through the whole handler
// chain in a namespace without a quota (the baseline), with a
// count/configmaps quota (a second compare-and-swap write per create), and
// with the audit log at Metadata and at Request level, in one run:
//
//	go test ./internal/apiserver -run '^$' -bench AdmissionCost -benchtime 2000x
func BenchmarkAdmissionCost(b *testing.B) {
	b.Logf("GOMAXPROCS=%d", runtime.GOMAXPROCS(0))
	run := func(b *testing.B, s *Server, ns string) {
		h := s.Handler()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			body := fmt.Sprintf(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm-%d"},"data":{"k":"v"}}`, i)
			req := httptest.NewRequest("POST", "/api/v1/namespaces/"+ns+"/configmaps", bytes.NewBufferString(body))
			req.Header.Set("Authorization", "Bearer test-token")
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != 201 {
				b.Fatalf("create: %d %s", rec.Code, rec.Body)
			}
		}
	}
	b.Run("baseline", func(b *testing.B) {
		s, cfg := newTestServer(b, 1000)
		quotaNamespace(b, cfg, "plain", nil)
		run(b, s, "plain")
	})
	b.Run("quota", func(b *testing.B) {
		s, cfg := newTestServer(b, 1000)
		quotaNamespace(b, cfg, "quota", corev1.ResourceList{"count/configmaps": resource.MustParse("1000000")})
		run(b, s, "quota")
	})
	for _, level := range []audit.Level{audit.LevelMetadata, audit.LevelRequest} {
		b.Run("audit-"+string(level), func(b *testing.B) {
			s, cfg, _ := newAuditedServer(b, level)
			quotaNamespace(b, cfg, "plain", nil)
			run(b, s, "plain")
		})
	}
}

// quotaNamespace makes ns, with a quota on hard if given.
func quotaNamespace(b *testing.B, cfg *rest.Config, ns string, hard corev1.ResourceList) {
	b.Helper()
	cs := kubernetes.NewForConfigOrDie(cfg)
	if hard == nil {
		if _, err := cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		return
	}
	zero := corev1.ResourceList{}
	for n := range hard {
		zero[n] = resource.MustParse("0")
	}
	quotaFixture(b, cs, ns, hard, zero)
}
