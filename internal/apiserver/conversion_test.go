package apiserver

import (
	"context"
	"testing"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// annMetrics is where autoscaling/v1 carries the metrics only v2 can
// express: Kubernetes' own annotation, which v1 clients keep.
const annMetrics = "autoscaling.alpha.kubernetes.io/metrics"

// An HPA is one object seen through autoscaling/v1 and v2: what v1 cannot
// express survives a v1 client's read-modify-write.
func TestHPAServedInTwoVersions(t *testing.T) {
	_, cfg := newTestServer(t, 1000)
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	cpu, mem := int32(60), resource.MustParse("500Mi")
	min := int32(2)
	v2 := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
			MinReplicas:    &min, MaxReplicas: 5,
			Metrics: []autoscalingv2.MetricSpec{
				{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{Name: corev1.ResourceCPU,
					Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: &cpu}}},
				{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{Name: corev1.ResourceMemory,
					Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: &mem}}},
			},
		},
	}
	if _, err := cs.AutoscalingV2().HorizontalPodAutoscalers("default").Create(ctx, v2, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	v1, err := cs.AutoscalingV1().HorizontalPodAutoscalers("default").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v1.Spec.TargetCPUUtilizationPercentage == nil || *v1.Spec.TargetCPUUtilizationPercentage != 60 || v1.Spec.MaxReplicas != 5 {
		t.Fatalf("v1 view: %+v", v1.Spec)
	}
	if v1.Annotations[annMetrics] == "" {
		t.Fatalf("the memory metric is not carried in v1: %v", v1.Annotations)
	}
	// A v1 client changes maxReplicas and writes back what it read.
	v1.Spec.MaxReplicas = 8
	if _, err := cs.AutoscalingV1().HorizontalPodAutoscalers("default").Update(ctx, v1, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	back, err := cs.AutoscalingV2().HorizontalPodAutoscalers("default").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if back.Spec.MaxReplicas != 8 || len(back.Spec.Metrics) != 2 || back.Spec.Metrics[1].Resource.Name != corev1.ResourceMemory {
		t.Fatalf("v2 after a v1 update: %+v", back.Spec)
	}
	if _, leaked := back.Annotations[annMetrics]; leaked {
		t.Fatalf("conversion annotation visible in v2: %v", back.Annotations)
	}
	// kubectl get through v1: a Table printed from the converted object.
	var table metav1.Table
	err = cs.AutoscalingV1().RESTClient().Get().Namespace("default").Resource("horizontalpodautoscalers").
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").Do(ctx).Into(&table)
	if err != nil || len(table.Rows) != 1 || table.Rows[0].Cells[0] != "web" {
		t.Fatalf("v1 table: %+v %v", table.Rows, err)
	}
	// Both versions list the same single object.
	l1, _ := cs.AutoscalingV1().HorizontalPodAutoscalers("default").List(ctx, metav1.ListOptions{})
	l2, _ := cs.AutoscalingV2().HorizontalPodAutoscalers("default").List(ctx, metav1.ListOptions{})
	if len(l1.Items) != 1 || len(l2.Items) != 1 || l1.Items[0].UID != l2.Items[0].UID {
		t.Fatalf("lists: v1 %d v2 %d", len(l1.Items), len(l2.Items))
	}
}
