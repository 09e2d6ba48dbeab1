package apiserver

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// quotaFixture makes namespace ns with a quota whose status says hard and
// used as the quota controller would (no controller runs here).
func quotaFixture(t testing.TB, cs kubernetes.Interface, ns string, hard, used corev1.ResourceList) {
	t.Helper()
	ctx := context.Background()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	q, err := cs.CoreV1().ResourceQuotas(ns).Create(ctx, &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "q"},
		Spec: corev1.ResourceQuotaSpec{Hard: hard}, Status: corev1.ResourceQuotaStatus{Hard: hard, Used: used}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(q.Status.Hard) != 0 {
		t.Fatalf("a created quota kept the client's status %v; the controller's to compute", q.Status)
	}
	q.Status = corev1.ResourceQuotaStatus{Hard: hard, Used: used}
	if _, err := cs.CoreV1().ResourceQuotas(ns).UpdateStatus(ctx, q, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func quotaPod(name string, res corev1.ResourceRequirements) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{
		Containers: []corev1.Container{{Name: "app", Image: "app", Resources: res}}}}
}

// TestQuotaConcurrentCreates: 20 pods created at once against pods: 5
// leave exactly 5; the others are refused 403 with Kubernetes' words, and
// status.used says 5.
func TestQuotaConcurrentCreates(t *testing.T) {
	_, cfg := newTestServer(t, 1000)
	cs := kubernetes.NewForConfigOrDie(cfg)
	quotaFixture(t, cs, "q1", corev1.ResourceList{corev1.ResourcePods: resource.MustParse("5")},
		corev1.ResourceList{corev1.ResourcePods: resource.MustParse("0")})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, 20)
	start := make(chan struct{})
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, errs[i] = cs.CoreV1().Pods("q1").Create(ctx, quotaPod(fmt.Sprintf("p%d", i), corev1.ResourceRequirements{}), metav1.CreateOptions{})
		}()
	}
	began := time.Now()
	close(start)
	wg.Wait()
	t.Logf("20 concurrent creates against pods: 5 took %v", time.Since(began))
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case apierrors.IsForbidden(err) && strings.Contains(err.Error(), "exceeded quota: q, requested: pods=1, used: pods=5, limited: pods=5"):
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	if ok != 5 {
		t.Fatalf("%d creates succeeded, want exactly 5", ok)
	}
	pods, err := cs.CoreV1().Pods("q1").List(ctx, metav1.ListOptions{})
	if err != nil || len(pods.Items) != 5 {
		t.Fatalf("pods stored = %d (%v), want 5", len(pods.Items), err)
	}
	q, err := cs.CoreV1().ResourceQuotas("q1").Get(ctx, "q", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if u := q.Status.Used[corev1.ResourcePods]; u.Value() != 5 {
		t.Errorf("status.used.pods = %s, want 5", u.String())
	}
}

// TestQuotaRefusals: the other ways Kubernetes' admission refuses, in its
// words, and what it charges.
func TestQuotaRefusals(t *testing.T) {
	_, cfg := newTestServer(t, 1000)
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	quotaFixture(t, cs, "q2", corev1.ResourceList{
		corev1.ResourceLimitsCPU: resource.MustParse("1"), corev1.ResourceRequestsMemory: resource.MustParse("1Gi"),
		corev1.ResourceServicesNodePorts: resource.MustParse("1"), "count/configmaps": resource.MustParse("1"),
	}, corev1.ResourceList{
		corev1.ResourceLimitsCPU: resource.MustParse("0"), corev1.ResourceRequestsMemory: resource.MustParse("0"),
		corev1.ResourceServicesNodePorts: resource.MustParse("0"), "count/configmaps": resource.MustParse("0"),
	})
	want := func(err error, msg string) {
		t.Helper()
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), msg) {
			t.Errorf("error = %v, want 403 with %q", err, msg)
		}
	}
	_, err := cs.CoreV1().Pods("q2").Create(ctx, quotaPod("bare", corev1.ResourceRequirements{}), metav1.CreateOptions{})
	want(err, `pods "bare" is forbidden: failed quota: q: must specify limits.cpu for: app; requests.memory for: app`)

	res := corev1.ResourceRequirements{
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("600m")},
		Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("512Mi"), corev1.ResourceCPU: resource.MustParse("100m")}}
	if _, err := cs.CoreV1().Pods("q2").Create(ctx, quotaPod("a", res), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = cs.CoreV1().Pods("q2").Create(ctx, quotaPod("b", res), metav1.CreateOptions{})
	want(err, "exceeded quota: q, requested: limits.cpu=600m, used: limits.cpu=600m, limited: limits.cpu=1")

	// A dry run is checked, not charged.
	if _, err := cs.CoreV1().ConfigMaps("q2").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "dry"}},
		metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().ConfigMaps("q2").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c1"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = cs.CoreV1().ConfigMaps("q2").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c2"}}, metav1.CreateOptions{})
	want(err, "exceeded quota: q, requested: count/configmaps=1, used: count/configmaps=1, limited: count/configmaps=1")

	// Quotas count themselves too (resourcequotas, count/resourcequotas).
	q, err := cs.CoreV1().ResourceQuotas("q2").Get(ctx, "q", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	q.Spec.Hard["resourcequotas"], q.Status.Hard["resourcequotas"], q.Status.Used["resourcequotas"] = resource.MustParse("1"), resource.MustParse("1"), resource.MustParse("1")
	if _, err := cs.CoreV1().ResourceQuotas("q2").Update(ctx, q, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if q, err = cs.CoreV1().ResourceQuotas("q2").Get(ctx, "q", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	q.Status.Hard["resourcequotas"], q.Status.Used["resourcequotas"] = resource.MustParse("1"), resource.MustParse("1")
	if _, err := cs.CoreV1().ResourceQuotas("q2").UpdateStatus(ctx, q, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = cs.CoreV1().ResourceQuotas("q2").Create(ctx, &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "second"},
		Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("1")}}}, metav1.CreateOptions{})
	want(err, `resourcequotas "second" is forbidden: exceeded quota: q, requested: resourcequotas=1, used: resourcequotas=1, limited: resourcequotas=1`)

	// An update that raises usage is charged: a ClusterIP Service made a
	// NodePort one with two ports needs two node ports.
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: corev1.ServiceSpec{
		Ports: []corev1.ServicePort{{Name: "a", Port: 80}, {Name: "b", Port: 81}}}}
	svc, err = cs.CoreV1().Services("q2").Create(ctx, svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc.Spec.Type = corev1.ServiceTypeNodePort
	_, err = cs.CoreV1().Services("q2").Update(ctx, svc, metav1.UpdateOptions{})
	want(err, "exceeded quota: q, requested: services.nodeports=2, used: services.nodeports=0, limited: services.nodeports=1")

	q, err = cs.CoreV1().ResourceQuotas("q2").Get(ctx, "q", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for name, w := range map[corev1.ResourceName]string{corev1.ResourceLimitsCPU: "600m", corev1.ResourceRequestsMemory: "512Mi",
		"count/configmaps": "1", corev1.ResourceServicesNodePorts: "0"} {
		if got := q.Status.Used[name]; got.String() != w {
			t.Errorf("status.used[%s] = %s, want %s", name, got.String(), w)
		}
	}
}

// TestQuotaStatusUnknown: a quota the controller has not counted yet
// refuses what it limits, as Kubernetes' admission does.
func TestQuotaStatusUnknown(t *testing.T) {
	_, cfg := newTestServer(t, 1000)
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "q3"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().ResourceQuotas("q3").Create(ctx, &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "q"},
		Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourceSecrets: resource.MustParse("3")}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Not yet counted: Kubernetes reads status.hard, which is empty, so
	// the quota does not match anything yet.
	if _, err := cs.CoreV1().Secrets("q3").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s0"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	q, _ := cs.CoreV1().ResourceQuotas("q3").Get(ctx, "q", metav1.GetOptions{})
	q.Status.Hard = q.Spec.Hard
	if _, err := cs.CoreV1().ResourceQuotas("q3").UpdateStatus(ctx, q, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := cs.CoreV1().Secrets("q3").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s1"}}, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "status unknown for quota: q, resources: secrets") {
		t.Fatalf("error = %v, want 403 status unknown", err)
	}
}
