package podautoscaler

import (
	"context"
	"testing"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/informers"
	kubefake "k8s.io/client-go/kubernetes/fake"
	corelisters "k8s.io/client-go/listers/core/v1"
	scalefake "k8s.io/client-go/scale/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	cmv1beta2 "k8s.io/metrics/pkg/apis/custom_metrics/v1beta2"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
	metricsfake "k8s.io/metrics/pkg/client/clientset/versioned/fake"
	customfake "k8s.io/metrics/pkg/client/custom_metrics/fake"
	testingclock "k8s.io/utils/clock/testing"
)

const ns = "default"

var (
	t0       = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	webLabel = map[string]string{"app": "web"}
)

// world holds the fakes a test sets: the target's scale, the pods and
// what the metrics APIs report for each.
type world struct {
	clock    *testingclock.FakeClock
	replicas int32  // the Deployment "web"'s spec.replicas
	selector string // its scale's status.selector
	pods     []*corev1.Pod
	// Samples per pod name, in milli-units; a pod absent has no sample.
	cpu, mem, rps map[string]int64
	// resourceErr and customErr fail the metrics APIs.
	resourceErr, customErr error
	// targetMissing makes the scale subresource answer 404.
	targetMissing bool
	scaleUpdates  int

	resource *metricsfake.Clientset
	custom   *customfake.FakeCustomMetricsClient
	scales   *scalefake.FakeScaleClient
}

func newWorld() *world {
	w := &world{clock: testingclock.NewFakeClock(t0), selector: "app=web",
		cpu: map[string]int64{}, mem: map[string]int64{}, rps: map[string]int64{}}
	w.resource = metricsfake.NewSimpleClientset()
	w.resource.PrependReactor("list", "pods", func(a clienttesting.Action) (bool, runtime.Object, error) {
		if w.resourceErr != nil {
			return true, nil, w.resourceErr
		}
		sel := a.(clienttesting.ListAction).GetListRestrictions().Labels
		list := &metricsv1beta1.PodMetricsList{}
		for _, p := range w.pods {
			if sel != nil && !sel.Matches(labels.Set(p.Labels)) {
				continue
			}
			usage := corev1.ResourceList{}
			if v, ok := w.cpu[p.Name]; ok {
				usage[corev1.ResourceCPU] = *resource.NewMilliQuantity(v, resource.DecimalSI)
			}
			if v, ok := w.mem[p.Name]; ok {
				usage[corev1.ResourceMemory] = *resource.NewMilliQuantity(v, resource.BinarySI)
			}
			if len(usage) == 0 {
				continue
			}
			list.Items = append(list.Items, metricsv1beta1.PodMetrics{
				ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, Labels: p.Labels},
				Timestamp:  metav1.NewTime(w.clock.Now()), Window: metav1.Duration{Duration: 30 * time.Second},
				Containers: []metricsv1beta1.ContainerMetrics{{Name: "web", Usage: usage}},
			})
		}
		return true, list, nil
	})
	w.custom = &customfake.FakeCustomMetricsClient{}
	w.custom.AddReactor("get", "*", func(a clienttesting.Action) (bool, runtime.Object, error) {
		if w.customErr != nil {
			return true, nil, w.customErr
		}
		name := a.(customfake.GetForAction).GetMetricName()
		list := &cmv1beta2.MetricValueList{}
		if name != "http_requests_per_second" {
			return true, list, nil
		}
		for _, p := range w.pods {
			v, ok := w.rps[p.Name]
			if !ok {
				continue
			}
			list.Items = append(list.Items, cmv1beta2.MetricValue{
				DescribedObject: corev1.ObjectReference{Kind: "Pod", Name: p.Name, Namespace: p.Namespace},
				Metric:          cmv1beta2.MetricIdentifier{Name: name},
				Timestamp:       metav1.NewTime(w.clock.Now()),
				Value:           *resource.NewMilliQuantity(v, resource.DecimalSI),
			})
		}
		return true, list, nil
	})
	w.scales = &scalefake.FakeScaleClient{}
	w.scales.AddReactor("get", "deployments", func(a clienttesting.Action) (bool, runtime.Object, error) {
		if w.targetMissing {
			return true, nil, apierrors.NewNotFound(schema.GroupResource{Group: "apps", Resource: "deployments"}, "web")
		}
		return true, w.scale(), nil
	})
	w.scales.AddReactor("update", "deployments", func(a clienttesting.Action) (bool, runtime.Object, error) {
		sc := a.(clienttesting.UpdateAction).GetObject().(*autoscalingv1.Scale)
		w.replicas = sc.Spec.Replicas
		w.scaleUpdates++
		return true, w.scale(), nil
	})
	return w
}

func (w *world) scale() *autoscalingv1.Scale {
	return &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: autoscalingv1.ScaleSpec{Replicas: w.replicas}, Status: autoscalingv1.ScaleStatus{Replicas: w.replicas, Selector: w.selector}}
}

// podLister lists w.pods as they are when it is called.
func (w *world) podLister() corelisters.PodLister {
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	for _, p := range w.pods {
		_ = idx.Add(p)
	}
	return corelisters.NewPodLister(idx)
}

func (w *world) calculator() *calculator {
	return &calculator{metrics: &metricsSource{resource: w.resource.MetricsV1beta1(), custom: w.custom},
		pods: w.podLister(), clock: w.clock, tolerance: DefaultTolerance,
		cpuInitialization: DefaultCPUInitializationPeriod, initialReadinessDly: DefaultInitialReadinessDelay}
}

// addPod adds a running, ready pod of "web" started an hour before t0,
// requesting cpuMilli millicores ("" memory) unless cpuMilli is 0.
func (w *world) addPod(name string, cpuMilli int64, mut ...func(*corev1.Pod)) *corev1.Pod {
	start := metav1.NewTime(t0.Add(-time.Hour))
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: webLabel},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, StartTime: &start,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: start}}},
	}
	if cpuMilli > 0 {
		p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{
			corev1.ResourceCPU:    *resource.NewMilliQuantity(cpuMilli, resource.DecimalSI),
			corev1.ResourceMemory: resource.MustParse("64Mi"),
		}
	}
	for _, m := range mut {
		m(p)
	}
	w.pods = append(w.pods, p)
	return p
}

// harness is a controller over w's fakes and a fake kubernetes clientset
// holding the HPA.
type harness struct {
	t      *testing.T
	w      *world
	kube   *kubefake.Clientset
	events *record.FakeRecorder
	ctl    *Controller
}

func newHarness(t *testing.T, w *world, hpa *autoscalingv2.HorizontalPodAutoscaler) *harness {
	t.Helper()
	objs := []runtime.Object{hpa}
	for _, p := range w.pods {
		objs = append(objs, p)
	}
	kube := kubefake.NewSimpleClientset(objs...)
	factory := informers.NewSharedInformerFactory(kube, 0)
	mapper := meta.NewDefaultRESTMapper([]schema.GroupVersion{{Group: "apps", Version: "v1"}})
	mapper.Add(schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}, meta.RESTScopeNamespace)
	events := record.NewFakeRecorder(100)
	ctl, err := New(Config{Client: kube, HPAs: factory.Autoscaling().V2().HorizontalPodAutoscalers(),
		Pods: factory.Core().V1().Pods(), Scales: w.scales, Mapper: mapper,
		ResourceMetrics: w.resource.MetricsV1beta1(), CustomMetrics: w.custom, Recorder: events, Clock: w.clock})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); factory.Shutdown(); ctl.queue.ShutDown() })
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	return &harness{t: t, w: w, kube: kube, events: events, ctl: ctl}
}

// sync runs one evaluation of the HPA as stored, and returns it as stored
// after.
func (h *harness) sync(name string) (*autoscalingv2.HorizontalPodAutoscaler, error) {
	h.t.Helper()
	ctx := context.Background()
	hpa, err := h.kube.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	serr := h.ctl.reconcile(ctx, ns+"/"+name, hpa)
	out, err := h.kube.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	return out, serr
}

// drainEvents returns the events recorded so far.
func (h *harness) drainEvents() []string {
	var out []string
	for {
		select {
		case e := <-h.events.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func cpuHPA(name string, target int32, minR, maxR int32) *autoscalingv2.HorizontalPodAutoscaler {
	return &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Generation: 1},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
			MinReplicas:    &minR, MaxReplicas: maxR,
			Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType,
				Resource: &autoscalingv2.ResourceMetricSource{Name: corev1.ResourceCPU,
					Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: &target}}}},
		},
	}
}

func rpsMetric(avg string) autoscalingv2.MetricSpec {
	q := resource.MustParse(avg)
	return autoscalingv2.MetricSpec{Type: autoscalingv2.PodsMetricSourceType, Pods: &autoscalingv2.PodsMetricSource{
		Metric: autoscalingv2.MetricIdentifier{Name: "http_requests_per_second"},
		Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: &q}}}
}

func condition(h *autoscalingv2.HorizontalPodAutoscaler, typ autoscalingv2.HorizontalPodAutoscalerConditionType) *autoscalingv2.HorizontalPodAutoscalerCondition {
	for i := range h.Status.Conditions {
		if h.Status.Conditions[i].Type == typ {
			return &h.Status.Conditions[i]
		}
	}
	return nil
}

func errNotFound(what string) error {
	return apierrors.NewNotFound(schema.GroupResource{Resource: what}, "")
}

func resourceQuantity(s string) resource.Quantity { return resource.MustParse(s) }
