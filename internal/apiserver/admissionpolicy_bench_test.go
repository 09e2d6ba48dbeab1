package apiserver

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// BenchmarkAdmissionPolicyCost: one ConfigMap create through the whole
// handler chain with ValidatingAdmissionPolicy admission running and no
// binding (the baseline: the plugin is skipped), with one bound policy
// matching configmaps, and with ten:
//
//	go test ./internal/apiserver -run '^$' -bench AdmissionPolicyCost -benchtime 2000x
func BenchmarkAdmissionPolicyCost(b *testing.B) {
	b.Logf("GOMAXPROCS=%d", runtime.GOMAXPROCS(0))
	for _, n := range []int{0, 1, 10} {
		b.Run(fmt.Sprintf("policies-%d", n), func(b *testing.B) {
			s, cfg := newTestServer(b, 1000)
			b.Cleanup(s.bgCancel)
			if err := s.startAdmissionPolicies(); err != nil {
				b.Fatal(err)
			}
			cs := kubernetes.NewForConfigOrDie(cfg)
			ctx := context.Background()
			for i := 0; i < n; i++ {
				name := fmt.Sprintf("p%d", i)
				p := policyOn(name, []string{"configmaps"}, []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
					admissionregistrationv1.Validation{Expression: "!object.metadata.name.startsWith('deny-') && object.data.k == 'v'"})
				if _, err := cs.AdmissionregistrationV1().ValidatingAdmissionPolicies().Create(ctx, p, metav1.CreateOptions{}); err != nil {
					b.Fatal(err)
				}
				if _, err := cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Create(ctx, bindingOf(name, name, admissionregistrationv1.Deny), metav1.CreateOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			if n > 0 {
				// Wait (bounded) until the plugin's caches hold every binding.
				deadline := time.Now().Add(10 * time.Second)
				for {
					s.mu.Lock()
					keys := len(s.policies.bindings.GetStore().ListKeys())
					s.mu.Unlock()
					_, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "deny-me"}}, metav1.CreateOptions{})
					if err == nil {
						_ = cs.CoreV1().ConfigMaps("default").Delete(ctx, "deny-me", metav1.DeleteOptions{})
					}
					if err != nil && keys == n {
						break
					}
					if time.Now().After(deadline) {
						b.Fatalf("policies not in effect after 10s (%d bindings cached)", keys)
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
			h := s.Handler()
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
		})
	}
}
