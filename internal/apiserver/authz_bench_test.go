package apiserver

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// BenchmarkAuthorization measures what RBAC costs a request: ConfigMap
// create and get p50 and p99 through the whole handler chain in process,
// as a user granted them by a RoleBinding, with authorization on and off
// (Config.DisableRBAC) in the same run, alternating in rounds so both see
// the same machine. It prints GOMAXPROCS, the versions and the ratios:
//
//	go test ./internal/apiserver -run '^$' -bench 'BenchmarkAuthorization$' -benchtime 1x
func BenchmarkAuthorization(b *testing.B) {
	const perRound, rounds = 300, 4 // bounded: 2×4×300 creates and gets
	s, admin := newTestServer(b, 1000)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := s.ensureRBACPolicy(ctx); err != nil {
		b.Fatal(err)
	}
	if err := s.startAuthorizers(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.stopAuthorizers)
	acs := kubernetes.NewForConfigOrDie(admin)
	if _, err := acs.RbacV1().Roles("default").Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "cm"},
		Rules: []rbacv1.PolicyRule{{Verbs: []string{"create", "get"}, APIGroups: []string{""}, Resources: []string{"configmaps"}}}},
		metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	if _, err := acs.RbacV1().RoleBindings("default").Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "cm"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "cm"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "bench"}}}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	u := &user.DefaultInfo{Name: "bench", Groups: []string{"dev", user.AllAuthenticated}}
	cs := kubernetes.NewForConfigOrDie(&rest.Config{Host: "http://in-process", Transport: s.InProcessTransportAs(u), QPS: -1})
	cms := cs.CoreV1().ConfigMaps("default")
	// Wait (bounded) for the binding to reach the authorizer's cache.
	for i := 0; ; i++ {
		if _, err := cms.Get(ctx, "none", metav1.GetOptions{}); err == nil || !isForbidden(err) {
			break
		} else if i > 100 {
			b.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	lat := map[string][]time.Duration{}
	n := 0
	measure := func(mode string) {
		for i := 0; i < perRound; i++ {
			n++
			name := fmt.Sprintf("cm-%d", n)
			t0 := time.Now()
			if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"k": "v"}}, metav1.CreateOptions{}); err != nil {
				b.Fatalf("%s create: %v", mode, err)
			}
			t1 := time.Now()
			if _, err := cms.Get(ctx, name, metav1.GetOptions{}); err != nil {
				b.Fatalf("%s get: %v", mode, err)
			}
			lat[mode+" create"] = append(lat[mode+" create"], t1.Sub(t0))
			lat[mode+" get"] = append(lat[mode+" get"], time.Since(t1))
		}
	}
	b.ResetTimer()
	for r := 0; r < rounds; r++ {
		s.cfg.DisableRBAC = false
		measure("rbac")
		s.cfg.DisableRBAC = true
		measure("off")
	}
	s.cfg.DisableRBAC = false
	b.StopTimer()
	b.Logf("GOMAXPROCS=%d %s %s", runtime.GOMAXPROCS(0), runtime.Version(), k8sVersion())
	pct := func(d []time.Duration, p float64) time.Duration {
		slices.Sort(d)
		return d[min(len(d)-1, int(float64(len(d))*p))]
	}
	for _, op := range []string{"create", "get"} {
		on, off := lat["rbac "+op], lat["off "+op]
		on50, off50, on99, off99 := pct(on, .5), pct(off, .5), pct(on, .99), pct(off, .99)
		b.Logf("%-6s n=%d  rbac p50 %v p99 %v | off p50 %v p99 %v | ratio p50 %.2f p99 %.2f",
			op, len(on), on50, on99, off50, off99, float64(on50)/float64(off50), float64(on99)/float64(off99))
		b.ReportMetric(float64(on50.Microseconds()), op+"-rbac-p50-µs")
		b.ReportMetric(float64(off50.Microseconds()), op+"-off-p50-µs")
	}
}

func isForbidden(err error) bool {
	st, ok := err.(interface{ Status() metav1.Status })
	return ok && st.Status().Code == 403
}

// k8sVersion is the versions of the modules that decide the figures, from
// go.mod (a test binary carries no module list).
func k8sVersion() string {
	b, err := os.ReadFile("../../go.mod")
	if err != nil {
		return ""
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && (f[0] == "k8s.io/apiserver" || f[0] == "k8s.io/client-go" || f[0] == "github.com/hashicorp/raft") {
			out = append(out, f[0]+" "+f[1])
		}
	}
	return strings.Join(out, " ")
}

// BenchmarkRBACDecision is one decision alone, for a user with one
// RoleBinding among the bootstrap policy's bindings:
//
//	go test ./internal/apiserver -run '^$' -bench 'BenchmarkRBACDecision$'
func BenchmarkRBACDecision(b *testing.B) {
	s, admin := newTestServer(b, 1000)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.ensureRBACPolicy(ctx); err != nil {
		b.Fatal(err)
	}
	if err := s.startAuthorizers(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.stopAuthorizers)
	acs := kubernetes.NewForConfigOrDie(admin)
	if _, err := acs.RbacV1().RoleBindings("default").Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "v"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:aggregate-to-edit"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "bench"}}}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	u := &user.DefaultInfo{Name: "bench", Groups: []string{"dev", user.AllAuthenticated}}
	a := &authorizer.AttributesRecord{User: u, Verb: "update", Namespace: "default", APIGroup: "apps",
		Resource: "deployments", Name: "d", ResourceRequest: true}
	for i := 0; ; i++ {
		if ok, _, _ := s.decide(ctx, a); ok {
			break
		} else if i > 100 {
			b.Fatal("the binding did not reach the cache")
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.Logf("GOMAXPROCS=%d %s %s", runtime.GOMAXPROCS(0), runtime.Version(), k8sVersion())
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if ok, _, _ := s.decide(ctx, a); !ok {
			b.Fatal("refused")
		}
	}
}
