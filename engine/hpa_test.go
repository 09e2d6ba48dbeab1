package engine

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiffhq/skiff/internal/testutil"
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
