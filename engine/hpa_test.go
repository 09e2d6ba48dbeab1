package engine

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/skiffhq/skiff/internal/testutil"
	"github.com/skiffhq/skiff/internal/wasmbuild"
)

// hpaDeployment creates a Deployment whose pods request CPU and wait,
// Pending, for a node that does not exist: the autoscaler only needs its
// scale subresource and its pods.
func hpaDeployment(t *testing.T, cs kubernetes.Interface, name string, replicas int32) {
	t.Helper()
	labels := map[string]string{"app": name}
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
				NodeSelector: map[string]string{"skiff.test/no-such-node": "true"},
				Containers: []corev1.Container{{Name: "web", Image: "example.invalid/web:1",
					Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}}}}}}}}
	if _, err := cs.AppsV1().Deployments("default").Create(context.Background(), d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// waitHPACondition waits until the HPA reports cond with reason, and
// returns it.
func waitHPACondition(t *testing.T, cs kubernetes.Interface, name string, cond autoscalingv2.HorizontalPodAutoscalerConditionType,
	status corev1.ConditionStatus, reason string) *autoscalingv2.HorizontalPodAutoscaler {
	t.Helper()
	var got *autoscalingv2.HorizontalPodAutoscaler
	testutil.Eventually(t, 60*time.Second, func() error {
		h, err := cs.AutoscalingV2().HorizontalPodAutoscalers("default").Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range h.Status.Conditions {
			if c.Type == cond && c.Status == status && c.Reason == reason {
				got = h
				return nil
			}
		}
		return fmt.Errorf("hpa %s conditions %+v", name, h.Status.Conditions)
	})
	return got
}

// Until a metrics API is served, an HPA says why it cannot scale and
// leaves its target alone; kubectl autoscale makes an autoscaling/v1 HPA
// the controller works on as v2.
func TestHPAWithoutMetricsAPI(t *testing.T) {
	e := startEngine(t, Config{DataDir: t.TempDir(), NodeName: "hpa-1", APIListen: "127.0.0.1:0",
		PodCIDR: "127.116.0.0/22", ServiceCIDR: "127.117.0.0/16", HPASyncPeriod: 200 * time.Millisecond})
	cs, err := e.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	hpaDeployment(t, cs, "web", 2)
	minR, target := int32(1), int32(50)
	hpa := &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
			MinReplicas:    &minR, MaxReplicas: 5,
			Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
				Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: &target}}}}}}
	if _, err := cs.AutoscalingV2().HorizontalPodAutoscalers("default").Create(ctx, hpa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got := waitHPACondition(t, cs, "web", autoscalingv2.ScalingActive, corev1.ConditionFalse, "FailedGetResourceMetric")
	for _, c := range got.Status.Conditions {
		if c.Type == autoscalingv2.ScalingActive &&
			!strings.HasPrefix(c.Message, "the HPA was unable to compute the replica count: failed to get cpu resource metric value") {
			t.Errorf("ScalingActive message %q", c.Message)
		}
		if c.Type == autoscalingv2.AbleToScale && (c.Status != corev1.ConditionTrue || c.Reason != "SucceededGetScale") {
			t.Errorf("AbleToScale %+v", c)
		}
	}
	if got.Status.CurrentReplicas != 2 || got.Status.ObservedGeneration == nil {
		t.Errorf("status %+v", got.Status)
	}
	d, err := cs.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *d.Spec.Replicas != 2 {
		t.Errorf("replicas changed to %d without metrics", *d.Spec.Replicas)
	}

	// Only the periodic sync can see a target scaled by hand (the HPA did
	// not change): above maxReplicas, it is brought back through the scale
	// subresource even without metrics.
	k := newKubectl(t, e)
	k.ok("", "", "scale", "deployment", "web", "--replicas=8")
	testutil.Eventually(t, 60*time.Second, func() error {
		d, err := cs.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if *d.Spec.Replicas != 5 {
			return fmt.Errorf("replicas %d, want 5", *d.Spec.Replicas)
		}
		return nil
	})
	testutil.Eventually(t, 60*time.Second, func() error {
		evs, err := cs.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=web,reason=SuccessfulRescale"})
		if err != nil {
			return err
		}
		for _, ev := range evs.Items {
			if ev.Message == "New size: 5; reason: Current number of replicas above Spec.MaxReplicas" && ev.Source.Component == "horizontal-pod-autoscaler" {
				return nil
			}
		}
		return fmt.Errorf("no rescale event among %d", len(evs.Items))
	})
	desc := k.ok("", "", "describe", "hpa", "web")
	for _, want := range []string{"ScalingActive", "FailedGetResourceMetric", "SuccessfulRescale", "New size: 5; reason: Current number of replicas above Spec.MaxReplicas"} {
		if !strings.Contains(desc, want) {
			t.Errorf("kubectl describe hpa lacks %q:\n%s", want, desc)
		}
	}
	// Scaled to zero by hand, the target is left alone.
	k.ok("", "", "scale", "deployment", "web", "--replicas=0")
	waitHPACondition(t, cs, "web", autoscalingv2.ScalingActive, corev1.ConditionFalse, "ScalingDisabled")
	if d, err = cs.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if *d.Spec.Replicas != 0 {
		t.Errorf("a target scaled to zero was scaled to %d", *d.Spec.Replicas)
	}

	hpaDeployment(t, cs, "api", 3)
	k.ok("", "", "autoscale", "deployment", "api", "--cpu-percent=50", "--min=1", "--max=5")
	v1, err := cs.AutoscalingV1().HorizontalPodAutoscalers("default").Get(ctx, "api", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v1.Spec.TargetCPUUtilizationPercentage == nil || *v1.Spec.TargetCPUUtilizationPercentage != 50 || v1.Spec.MaxReplicas != 5 {
		t.Errorf("v1 spec %+v", v1.Spec)
	}
	v2 := waitHPACondition(t, cs, "api", autoscalingv2.ScalingActive, corev1.ConditionFalse, "FailedGetResourceMetric")
	m := v2.Spec.Metrics
	if len(m) != 1 || m[0].Resource == nil || m[0].Resource.Name != corev1.ResourceCPU || m[0].Resource.Target.AverageUtilization == nil ||
		*m[0].Resource.Target.AverageUtilization != 50 || *v2.Spec.MinReplicas != 1 {
		t.Errorf("v2 spec %+v", v2.Spec)
	}
	if v2.Status.CurrentReplicas != 3 {
		t.Errorf("v2 status %+v", v2.Status)
	}
	out := k.ok("", "", "get", "hpa", "api")
	if !strings.Contains(out, "cpu: <unknown>/50%") || !strings.Contains(out, "Deployment/api") {
		t.Errorf("kubectl get hpa:\n%s", out)
	}
	// The controller's status reads back through v1 too.
	if v1, err = cs.AutoscalingV1().HorizontalPodAutoscalers("default").Get(ctx, "api", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if v1.Status.CurrentReplicas != 3 {
		t.Errorf("v1 status %+v", v1.Status)
	}
}

// An HPA on the requests-per-second metric the engine measures scales a
// Deployment of real Wasm HTTP handler pods up under generated load
// through its Service, and back down once the load stops; `kubectl top`
// shows the pods' CPU rise with the load and fall after it.
func TestHPAScalesWasmDeploymentUnderLoad(t *testing.T) {
	ctx := context.Background()
	host := testRegistry(t, map[string][]byte{"handler:1": wasmbuild.Build(t, "../examples/handler", true)})
	e := startEngine(t, Config{DataDir: t.TempDir(), NodeName: "hpa-load", PodCIDR: "127.120.0.0/22", ServiceCIDR: "127.121.0.0/16",
		MetricsInterval: time.Second, HPASyncPeriod: time.Second})
	cs, err := e.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	k := newKubectl(t, e)
	sel := map[string]string{"app": "hpa-web"}
	one, grace := int32(1), int64(1)
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "hpa-web", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: sel}, Spec: corev1.PodSpec{
				TerminationGracePeriodSeconds: &grace,
				Containers: []corev1.Container{{Name: "web", Image: host + "/handler:1",
					Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
					Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
						corev1.ResourceCPU: resource.MustParse("10m")}}}}}}}}
	if _, err := cs.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc, err := cs.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "hpa-web"},
		Spec:       corev1.ServiceSpec{Selector: sel, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	target := "http://" + net.JoinHostPort(svc.Spec.ClusterIP, "80") + "/"
	testutil.Eventually(t, moreWait, func() error {
		resp, err := http.Get(target)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})

	// At most 5 requests per second per pod, 1 to 4 pods; scale down
	// without the default 5-minute window, so the test sees it.
	five, zero := resource.MustParse("5"), int32(0)
	hpa := &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Name: "hpa-web"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "hpa-web"},
			MinReplicas:    &one, MaxReplicas: 4,
			Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.PodsMetricSourceType, Pods: &autoscalingv2.PodsMetricSource{
				Metric: autoscalingv2.MetricIdentifier{Name: "http_requests_per_second"},
				Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: &five}}}},
			Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{
				ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: &zero}}}}
	if _, err := cs.AutoscalingV2().HorizontalPodAutoscalers("default").Create(ctx, hpa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitHPACondition(t, cs, "hpa-web", autoscalingv2.ScalingActive, corev1.ConditionTrue, "ValidMetricFound")

	topCPU := func() int64 { // the hpa-web pods' CPU, in millicores, summed
		out, errOut, code := k.run("", "", "top", "pods", "-l", "app=hpa-web")
		if code != 0 {
			t.Logf("kubectl top pods: exit %d: %s", code, errOut)
			return -1
		}
		var sum int64
		for _, r := range parseTop(t, out, 0) {
			sum += r.cpuMilli
		}
		return sum
	}
	replicas := func() int32 {
		got, err := cs.AppsV1().Deployments("default").Get(ctx, "hpa-web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return *got.Spec.Replicas
	}

	// Load: 4 clients as fast as they can, bounded in count and time.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var served atomic.Int64
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 5 * time.Second}
			deadline := time.Now().Add(3 * time.Minute)
			for i := 0; i < 100_000 && time.Now().Before(deadline); i++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get(target)
				if err != nil {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				served.Add(1)
			}
		}()
	}
	stopLoad := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopLoad()

	var peakCPU int64
	testutil.Eventually(t, 2*time.Minute, func() error {
		peakCPU = max(peakCPU, topCPU())
		if r := replicas(); r < 2 {
			return fmt.Errorf("%d replicas under load", r)
		}
		return nil
	})
	scaledUp, err := cs.AutoscalingV2().HorizontalPodAutoscalers("default").Get(ctx, "hpa-web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("under load (%d requests so far): HPA desired %d, current metrics %+v", served.Load(),
		scaledUp.Status.DesiredReplicas, scaledUp.Status.CurrentMetrics)
	testutil.Eventually(t, 30*time.Second, func() error {
		if peakCPU = max(peakCPU, topCPU()); peakCPU <= 0 {
			return fmt.Errorf("kubectl top shows %dm for the pods under load", peakCPU)
		}
		return nil
	})
	stopLoad()
	t.Logf("load stopped after %d requests; peak CPU shown by kubectl top %dm", served.Load(), peakCPU)

	testutil.Eventually(t, 2*time.Minute, func() error {
		if r := replicas(); r != 1 {
			return fmt.Errorf("%d replicas after the load", r)
		}
		return nil
	})
	testutil.Eventually(t, 30*time.Second, func() error {
		if c := topCPU(); c != 0 {
			return fmt.Errorf("kubectl top shows %dm for the pods at rest", c)
		}
		return nil
	})
	events, err := cs.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=hpa-web,reason=SuccessfulRescale"})
	if err != nil {
		t.Fatal(err)
	}
	var up, down bool
	for _, ev := range events.Items {
		up = up || strings.Contains(ev.Message, "above target")
		down = down || strings.Contains(ev.Message, "below target")
	}
	if !up || !down {
		t.Errorf("SuccessfulRescale events %+v, want one above target and one below", events.Items)
	}
}
