package podautoscaler

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
)

// threePodsAt adds three pods requesting 100m with usage cpuMilli each.
func threePodsAt(w *world, cpuMilli int64) {
	for _, name := range []string{"web-a", "web-b", "web-c"} {
		p := w.addPod(name, 100)
		w.cpu[p.Name] = cpuMilli
	}
	w.replicas = 3
}

func TestControllerScalesUpOnCPU(t *testing.T) {
	w := newWorld()
	threePodsAt(w, 100) // 100% of requests against 50%: 6 wanted
	h := newHarness(t, w, cpuHPA("web", 50, 1, 10))

	hpa, err := h.sync("web")
	if err != nil {
		t.Fatal(err)
	}
	if w.replicas != 6 {
		t.Fatalf("target replicas %d, want 6", w.replicas)
	}
	if hpa.Status.CurrentReplicas != 3 || hpa.Status.DesiredReplicas != 6 || hpa.Status.LastScaleTime == nil ||
		hpa.Status.ObservedGeneration == nil || *hpa.Status.ObservedGeneration != 1 {
		t.Errorf("status %+v", hpa.Status)
	}
	if len(hpa.Status.CurrentMetrics) != 1 || hpa.Status.CurrentMetrics[0].Resource == nil ||
		*hpa.Status.CurrentMetrics[0].Resource.Current.AverageUtilization != 100 ||
		hpa.Status.CurrentMetrics[0].Resource.Current.AverageValue.String() != "100m" {
		t.Errorf("current metrics %+v", hpa.Status.CurrentMetrics)
	}
	for typ, want := range map[autoscalingv2.HorizontalPodAutoscalerConditionType]string{
		autoscalingv2.AbleToScale: "SucceededRescale", autoscalingv2.ScalingActive: "ValidMetricFound",
		autoscalingv2.ScalingLimited: "DesiredWithinRange",
	} {
		if c := condition(hpa, typ); c == nil || c.Reason != want {
			t.Errorf("%s: %+v, want reason %s", typ, c, want)
		}
	}
	want := "Normal SuccessfulRescale New size: 6; reason: cpu resource utilization (percentage of request) above target"
	if ev := h.drainEvents(); !slices.Contains(ev, want) {
		t.Errorf("events %q, want %q", ev, want)
	}
}

func TestControllerScaleUpLimitedByDefaultPolicies(t *testing.T) {
	w := newWorld()
	threePodsAt(w, 500) // 500% against 50%: 30 wanted
	h := newHarness(t, w, cpuHPA("web", 50, 1, 50))
	hpa, err := h.sync("web")
	if err != nil {
		t.Fatal(err)
	}
	// Kubernetes' default scale-up: max(+4 pods, +100%) per 15 s.
	if w.replicas != 7 {
		t.Fatalf("target replicas %d, want 7", w.replicas)
	}
	if c := condition(hpa, autoscalingv2.ScalingLimited); c == nil || c.Status != corev1.ConditionTrue || c.Reason != "ScaleUpLimit" {
		t.Errorf("ScalingLimited %+v", c)
	}
}

func TestControllerWithoutMetricsAPI(t *testing.T) {
	w := newWorld()
	threePodsAt(w, 100)
	w.resourceErr = errNotFound("pods.metrics.k8s.io")
	h := newHarness(t, w, cpuHPA("web", 50, 1, 10))
	hpa, err := h.sync("web")
	if err == nil {
		t.Fatal("sync succeeded without metrics")
	}
	if w.scaleUpdates != 0 {
		t.Errorf("scaled %d times without metrics", w.scaleUpdates)
	}
	c := condition(hpa, autoscalingv2.ScalingActive)
	if c == nil || c.Status != corev1.ConditionFalse || c.Reason != "FailedGetResourceMetric" ||
		!strings.Contains(c.Message, "unable to fetch metrics from resource metrics API") {
		t.Errorf("ScalingActive %+v", c)
	}
	if hpa.Status.CurrentReplicas != 3 {
		t.Errorf("currentReplicas %d, want 3", hpa.Status.CurrentReplicas)
	}
}

func TestControllerPodsWithoutRequests(t *testing.T) {
	w := newWorld()
	p := w.addPod("web-a", 0)
	w.cpu[p.Name], w.replicas = 300, 1
	h := newHarness(t, w, cpuHPA("web", 50, 1, 10))
	hpa, _ := h.sync("web")
	c := condition(hpa, autoscalingv2.ScalingActive)
	if c == nil || c.Status != corev1.ConditionFalse || c.Reason != "FailedGetResourceMetric" ||
		c.Message != "the HPA was unable to compute the replica count: failed to get cpu resource metric value: failed to get cpu utilization: missing request for cpu in container web of Pod web-a" {
		t.Errorf("ScalingActive %+v", c)
	}
	if w.scaleUpdates != 0 {
		t.Errorf("scaled without requests")
	}
}

func TestControllerScaledToZeroIsDisabled(t *testing.T) {
	w := newWorld()
	threePodsAt(w, 500)
	w.replicas = 0
	h := newHarness(t, w, cpuHPA("web", 50, 1, 10))
	hpa, err := h.sync("web")
	if err != nil {
		t.Fatal(err)
	}
	if w.scaleUpdates != 0 {
		t.Errorf("scaled a target at zero")
	}
	if c := condition(hpa, autoscalingv2.ScalingActive); c == nil || c.Status != corev1.ConditionFalse || c.Reason != "ScalingDisabled" {
		t.Errorf("ScalingActive %+v", c)
	}
}

func TestControllerBringsTargetIntoRange(t *testing.T) {
	w := newWorld()
	threePodsAt(w, 50)
	w.replicas = 9
	h := newHarness(t, w, cpuHPA("web", 50, 1, 4))
	if _, err := h.sync("web"); err != nil {
		t.Fatal(err)
	}
	want := "Normal SuccessfulRescale New size: 4; reason: Current number of replicas above Spec.MaxReplicas"
	if w.replicas != 4 || !slices.Contains(h.drainEvents(), want) {
		t.Errorf("replicas %d, want 4 with event %q", w.replicas, want)
	}
}

func TestControllerScaleDownWaitsForWindow(t *testing.T) {
	w := newWorld()
	threePodsAt(w, 10) // 10% against 50%: 1 wanted
	h := newHarness(t, w, cpuHPA("web", 50, 1, 10))
	hpa, err := h.sync("web")
	if err != nil {
		t.Fatal(err)
	}
	if w.replicas != 3 {
		t.Fatalf("scaled down at once to %d", w.replicas)
	}
	if c := condition(hpa, autoscalingv2.AbleToScale); c == nil || c.Reason != "ScaleDownStabilized" {
		t.Errorf("AbleToScale %+v", c)
	}
	w.clock.Step(301 * time.Second)
	if _, err := h.sync("web"); err != nil {
		t.Fatal(err)
	}
	if w.replicas != 1 {
		t.Fatalf("after the window: %d replicas, want 1", w.replicas)
	}
	if ev := h.drainEvents(); !slices.Contains(ev, "Normal SuccessfulRescale New size: 1; reason: All metrics below target") {
		t.Errorf("events %q", ev)
	}
}

func TestControllerPodsMetricAndMaxOfMetrics(t *testing.T) {
	w := newWorld()
	threePodsAt(w, 60) // cpu: 60% against 50% -> 4
	for _, p := range w.pods {
		w.rps[p.Name] = 15000 // 15/s against 10/s -> 5
	}
	hpa := cpuHPA("web", 50, 1, 10)
	hpa.Spec.Metrics = append(hpa.Spec.Metrics, rpsMetric("10"))
	h := newHarness(t, w, hpa)
	got, err := h.sync("web")
	if err != nil {
		t.Fatal(err)
	}
	if w.replicas != 5 {
		t.Fatalf("replicas %d, want 5 (the larger proposal)", w.replicas)
	}
	if len(got.Status.CurrentMetrics) != 2 || got.Status.CurrentMetrics[1].Pods == nil ||
		got.Status.CurrentMetrics[1].Pods.Current.AverageValue.String() != "15" {
		t.Errorf("current metrics %+v", got.Status.CurrentMetrics)
	}
	if c := condition(got, autoscalingv2.ScalingActive); c == nil ||
		c.Message != "the HPA was able to successfully calculate a replica count from pods metric http_requests_per_second" {
		t.Errorf("ScalingActive %+v", c)
	}
}

// A failing metric must not let the others scale down, but may let them
// scale up.
func TestControllerPartialMetrics(t *testing.T) {
	w := newWorld()
	threePodsAt(w, 200) // cpu asks for 12
	w.customErr = errors.New("custom metrics down")
	hpa := cpuHPA("web", 50, 1, 10)
	hpa.Spec.Metrics = append(hpa.Spec.Metrics, rpsMetric("10"))
	h := newHarness(t, w, hpa)
	if _, err := h.sync("web"); err == nil || !strings.Contains(err.Error(), "invalid metrics (1 invalid out of 2)") {
		t.Fatalf("err = %v", err)
	}
	if w.replicas != 7 { // 3 + max(4, 100%) by the default policies
		t.Fatalf("scale-up on the working metric: %d, want 7", w.replicas)
	}

	w2 := newWorld()
	threePodsAt(w2, 10) // cpu asks for 1
	w2.customErr = errors.New("custom metrics down")
	w2.clock.Step(time.Hour)
	h2 := newHarness(t, w2, hpa)
	got, err := h2.sync("web")
	if err == nil || w2.scaleUpdates != 0 {
		t.Fatalf("scaled down with a metric missing: err %v, updates %d", err, w2.scaleUpdates)
	}
	if c := condition(got, autoscalingv2.ScalingActive); c == nil || c.Reason != "FailedGetPodsMetric" {
		t.Errorf("ScalingActive %+v", c)
	}
}

func TestControllerTargetMissing(t *testing.T) {
	w := newWorld()
	threePodsAt(w, 100)
	w.targetMissing = true
	h := newHarness(t, w, cpuHPA("web", 50, 1, 10))
	hpa, err := h.sync("web")
	if err == nil {
		t.Fatal("sync succeeded without a target")
	}
	c := condition(hpa, autoscalingv2.AbleToScale)
	if c == nil || c.Status != corev1.ConditionFalse || c.Reason != "FailedGetScale" ||
		!strings.HasPrefix(c.Message, "the HPA controller was unable to get the target's current scale: ") {
		t.Errorf("AbleToScale %+v", c)
	}
	if ev := h.drainEvents(); len(ev) == 0 || !strings.HasPrefix(ev[0], "Warning FailedGetScale ") {
		t.Errorf("events %q", ev)
	}
}

func TestControllerContainerResourceAverageValue(t *testing.T) {
	w := newWorld()
	threePodsAt(w, 100)
	const mi = int64(1 << 20)
	for _, p := range w.pods {
		w.mem[p.Name] = 96 * mi * 1000 // 96Mi against 32Mi: 9
	}
	hpa := cpuHPA("web", 50, 1, 20)
	target := resourceQuantity("32Mi")
	hpa.Spec.Metrics = []autoscalingv2.MetricSpec{{Type: autoscalingv2.ContainerResourceMetricSourceType,
		ContainerResource: &autoscalingv2.ContainerResourceMetricSource{Name: corev1.ResourceMemory, Container: "web",
			Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: &target}}}}
	hpa.Spec.Behavior = &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: rules(0, autoscalingv2.MaxChangePolicySelect, pods(10, 15))}
	h := newHarness(t, w, hpa)
	got, err := h.sync("web")
	if err != nil {
		t.Fatal(err)
	}
	if w.replicas != 9 {
		t.Fatalf("replicas %d, want 9", w.replicas)
	}
	st := got.Status.CurrentMetrics
	if len(st) != 1 || st[0].ContainerResource == nil || st[0].ContainerResource.Container != "web" ||
		st[0].ContainerResource.Current.AverageValue.Value() != 96*mi {
		t.Errorf("current metrics %+v", st)
	}
}

func TestControllerForgetsDeletedHPA(t *testing.T) {
	w := newWorld()
	threePodsAt(w, 10)
	h := newHarness(t, w, cpuHPA("web", 50, 1, 10))
	h.ctl.history.recordInitial(ns+"/gone", 3)
	if err := h.ctl.sync(context.Background(), ns+"/gone"); err != nil {
		t.Fatal(err)
	}
	h.ctl.history.mu.Lock()
	defer h.ctl.history.mu.Unlock()
	if _, ok := h.ctl.history.recommendations[ns+"/gone"]; ok {
		t.Error("a deleted HPA's recommendations were kept")
	}
}
