package podautoscaler

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

var webSelector = labels.SelectorFromSet(webLabel)

func cpuReplicas(t *testing.T, w *world, current, target int32) (int32, int32, error) {
	t.Helper()
	n, util, _, _, err := w.calculator().resourceReplicas(context.Background(), current, target, corev1.ResourceCPU, ns, webSelector, "")
	return n, util, err
}

// The cases are Kubernetes' replica calculator's rules, each with numbers
// where breaking the rule changes the answer.
func TestResourceUtilizationReplicas(t *testing.T) {
	unready := func(p *corev1.Pod) {
		// Started a minute ago, inside the CPU initialization period, not
		// ready yet.
		start := metav1.NewTime(t0.Add(-time.Minute))
		p.Status.StartTime = &start
		p.Status.Conditions[0].Status, p.Status.Conditions[0].LastTransitionTime = corev1.ConditionFalse, start
	}
	for _, tc := range []struct {
		name     string
		setup    func(w *world)
		current  int32
		target   int32
		want     int32
		wantUtil int32
	}{
		{"scale up to the ratio", func(w *world) {
			for i, u := range []int64{900, 1000, 1100} {
				p := w.addPod(string(rune('a'+i)), 1000)
				w.cpu[p.Name] = u
			}
		}, 3, 50, 6, 100},
		{"within tolerance keeps the count", func(w *world) {
			for i, u := range []int64{520, 540, 530} {
				p := w.addPod(string(rune('a'+i)), 1000)
				w.cpu[p.Name] = u
			}
		}, 3, 50, 3, 53},
		{"scale down to the ratio", func(w *world) {
			for i := range 4 {
				p := w.addPod(string(rune('a'+i)), 1000)
				w.cpu[p.Name] = 100
			}
		}, 4, 50, 1, 10},
		{"missing samples count as the full request on a scale-down", func(w *world) {
			for i := range 3 {
				p := w.addPod(string(rune('a'+i)), 1000)
				w.cpu[p.Name] = 100
			}
			w.addPod("no-sample", 1000)
			// Undamped: ceil(0.2*3) = 1. Damped: (300+1000)/4000 = 32%.
		}, 4, 50, 3, 10},
		{"missing samples that would reverse the direction keep the count", func(w *world) {
			for i := range 2 {
				p := w.addPod(string(rune('a'+i)), 1000)
				w.cpu[p.Name] = 1000
			}
			w.addPod("no-sample-1", 1000)
			w.addPod("no-sample-2", 1000)
			// Undamped: ceil(1.25*2) = 3; with the missing at 0: 50% < 80%.
		}, 4, 80, 4, 100},
		{"unready pods count as idle on a CPU scale-up", func(w *world) {
			for i := range 2 {
				p := w.addPod(string(rune('a'+i)), 1000)
				w.cpu[p.Name] = 1000
			}
			p := w.addPod("starting", 1000, unready)
			w.cpu[p.Name] = 1000
			// Ready ones at 100% of 50%: 2000/3000 = 66% -> ceil(1.32*3) = 4,
			// where counting the starting pod's burn would give 6.
		}, 3, 50, 4, 100},
		{"a pod past initialization that was never ready counts as idle on a scale-up", func(w *world) {
			for i := range 2 {
				p := w.addPod(string(rune('a'+i)), 1000)
				w.cpu[p.Name] = 1000
			}
			p := w.addPod("never-ready", 1000, func(p *corev1.Pod) {
				start := metav1.NewTime(t0.Add(-10 * time.Minute))
				p.Status.StartTime = &start
				// Turned unready 10 s after its start: within the initial
				// readiness delay, so it has never been ready.
				p.Status.Conditions[0].Status = corev1.ConditionFalse
				p.Status.Conditions[0].LastTransitionTime = metav1.NewTime(start.Add(10 * time.Second))
			})
			w.cpu[p.Name] = 1000
		}, 3, 50, 4, 100},
		{"a pod past initialization that was ready once counts as measured", func(w *world) {
			for i := range 2 {
				p := w.addPod(string(rune('a'+i)), 1000)
				w.cpu[p.Name] = 1000
			}
			p := w.addPod("was-ready", 1000, func(p *corev1.Pod) {
				start := metav1.NewTime(t0.Add(-10 * time.Minute))
				p.Status.StartTime = &start
				p.Status.Conditions[0].Status = corev1.ConditionFalse
				p.Status.Conditions[0].LastTransitionTime = metav1.NewTime(start.Add(2 * time.Minute))
			})
			w.cpu[p.Name] = 1000
		}, 3, 50, 6, 100},
		{"an initializing pod's sample from before a full window of readiness counts as idle", func(w *world) {
			for i := range 2 {
				p := w.addPod(string(rune('a'+i)), 1000)
				w.cpu[p.Name] = 1000
			}
			p := w.addPod("just-ready", 1000, func(p *corev1.Pod) {
				start := metav1.NewTime(t0.Add(-2 * time.Minute))
				p.Status.StartTime = &start
				// Ready 10 s ago: the 30 s sample window still covers start-up.
				p.Status.Conditions[0].LastTransitionTime = metav1.NewTime(t0.Add(-10 * time.Second))
			})
			w.cpu[p.Name] = 1000
		}, 3, 50, 4, 100},
		{"pending, failed and deleted pods are left out", func(w *world) {
			for i := range 2 {
				p := w.addPod(string(rune('a'+i)), 1000)
				w.cpu[p.Name] = 1000
			}
			w.addPod("pending", 1000, func(p *corev1.Pod) { p.Status.Phase = corev1.PodPending })
			f := w.addPod("failed", 1000, func(p *corev1.Pod) { p.Status.Phase = corev1.PodFailed })
			w.cpu[f.Name] = 5000
			now := metav1.NewTime(t0)
			d := w.addPod("deleted", 1000, func(p *corev1.Pod) { p.DeletionTimestamp = &now })
			w.cpu[d.Name] = 5000
			// Pending is unready (0 on scale-up): 2000/3000 = 66% -> 4.
		}, 2, 50, 4, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld()
			tc.setup(w)
			got, util, err := cpuReplicas(t, w, tc.current, tc.target)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want || util != tc.wantUtil {
				t.Errorf("replicas %d at %d%%, want %d at %d%%", got, util, tc.want, tc.wantUtil)
			}
		})
	}
}

func TestResourceUtilizationNeedsRequests(t *testing.T) {
	w := newWorld()
	p := w.addPod("web-1", 0)
	w.cpu[p.Name] = 100
	_, _, err := cpuReplicas(t, w, 1, 50)
	if err == nil || !strings.Contains(err.Error(), "missing request for cpu in container web of Pod web-1") {
		t.Fatalf("err = %v, want the missing request named", err)
	}
}

func TestResourceUtilizationNoMetricsAPI(t *testing.T) {
	w := newWorld()
	w.addPod("web-1", 100)
	w.resourceErr = errNotFound("pods.metrics.k8s.io")
	_, _, err := cpuReplicas(t, w, 1, 50)
	if err == nil || !strings.Contains(err.Error(), "unable to fetch metrics from resource metrics API") {
		t.Fatalf("err = %v", err)
	}
}

func TestAverageValueReplicas(t *testing.T) {
	w := newWorld()
	const mi = int64(1 << 20)
	for i := range 3 {
		p := w.addPod(string(rune('a'+i)), 100)
		w.mem[p.Name] = 200 * mi * 1000
	}
	n, avg, _, err := w.calculator().rawResourceReplicas(context.Background(), 3, 100*mi*1000, corev1.ResourceMemory, ns, webSelector, "")
	if err != nil {
		t.Fatal(err)
	}
	if n != 6 || avg != 200*mi*1000 {
		t.Errorf("replicas %d at %d, want 6 at %d", n, avg, 200*mi*1000)
	}
}

func TestPodsMetricReplicas(t *testing.T) {
	for _, tc := range []struct {
		name    string
		samples map[string]int64 // milli-requests/s
		current int32
		want    int32
	}{
		{"scale up", map[string]int64{"a": 30000, "b": 30000}, 2, 6},
		{"scale down", map[string]int64{"a": 2000, "b": 2000, "c": 2000, "d": 2000}, 4, 1},
		// Undamped ceil(0.2*1) = 1; the missing pod at the target: (2+10)/2 = 6 -> ceil(0.6*2) = 2.
		{"missing sample at the target on a scale-down", map[string]int64{"a": 2000}, 2, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld()
			for _, name := range []string{"a", "b", "c", "d"}[:tc.current] {
				w.addPod(name, 100)
			}
			w.rps = tc.samples
			n, _, _, err := w.calculator().podsMetricReplicas(tc.current, 10000, "http_requests_per_second", ns, webSelector, labels.Everything())
			if err != nil {
				t.Fatal(err)
			}
			if n != tc.want {
				t.Errorf("replicas %d, want %d", n, tc.want)
			}
		})
	}
}
