package agent

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/node/agent/nodestats"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	skiffrt "github.com/skiffhq/skiff/runtime"
)

// TestRankForEviction: the kubelet's memory-pressure order, which at equal
// priority is the QoS order.
func TestRankForEviction(t *testing.T) {
	c := func(name string, qos corev1.PodQOSClass, priority int32, usage, request int64) evictionCandidate {
		return evictionCandidate{name: name, qos: qos, priority: priority, usage: usage * mi, request: request * mi}
	}
	for _, tt := range []struct {
		name  string
		cands []evictionCandidate
		want  []string
	}{
		{"QoS order at equal priority", []evictionCandidate{
			c("guaranteed", corev1.PodQOSGuaranteed, 0, 200, 256),
			c("burstable-within", corev1.PodQOSBurstable, 0, 50, 64),
			c("burstable-over", corev1.PodQOSBurstable, 0, 100, 64),
			c("besteffort", corev1.PodQOSBestEffort, 0, 20, 0),
		}, []string{"burstable-over", "besteffort", "burstable-within", "guaranteed"}},
		{"among those over their request, the most over first", []evictionCandidate{
			c("be-small", corev1.PodQOSBestEffort, 0, 10, 0),
			c("be-large", corev1.PodQOSBestEffort, 0, 300, 0),
			c("burstable-slightly-over", corev1.PodQOSBurstable, 0, 70, 64),
		}, []string{"be-large", "be-small", "burstable-slightly-over"}},
		{"lower priority first, over request still before within", []evictionCandidate{
			c("high-over", corev1.PodQOSBestEffort, 1000, 500, 0),
			c("low-over", corev1.PodQOSBestEffort, 0, 10, 0),
			c("low-within", corev1.PodQOSGuaranteed, -5, 100, 100),
		}, []string{"low-over", "high-over", "low-within"}},
		{"within request: lower priority, then the most used of the request", []evictionCandidate{
			c("g-a", corev1.PodQOSGuaranteed, 0, 10, 100),
			c("g-b", corev1.PodQOSGuaranteed, 0, 90, 100),
			c("g-low", corev1.PodQOSGuaranteed, -1, 1, 100),
		}, []string{"g-low", "g-b", "g-a"}},
	} {
		rankForEviction(tt.cands)
		var got []string
		for _, c := range tt.cands {
			got = append(got, c.name)
		}
		if len(got) != len(tt.want) {
			t.Fatalf("%s: %v", tt.name, got)
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("%s: order %v, want %v", tt.name, got, tt.want)
				break
			}
		}
	}
}

func TestEvictionMessage(t *testing.T) {
	got := evictionMessage(100*mi, 40*mi, []containerUsage{{"a", 300 * mi, 0}, {"b", 10 * mi, 64 * mi}})
	const want = "The node was low on resource: memory. Threshold quantity: 100Mi, available: 40Mi. " +
		"Container a was using 300Mi, request is 0, has larger consumption of memory."
	if got != want {
		t.Errorf("message\n%q\nwant\n%q", got, want)
	}
}

// fakeProc is a running process holding a set amount of memory.
type fakeProc struct {
	bytes int64
	done  chan struct{}
}

func (p *fakeProc) Done() <-chan struct{}      { return p.done }
func (p *fakeProc) Status() skiffrt.ExitStatus { return skiffrt.ExitStatus{} }
func (p *fakeProc) Stop(context.Context, time.Duration) skiffrt.ExitStatus {
	return skiffrt.ExitStatus{}
}
func (p *fakeProc) MemoryBytes() int64 { return p.bytes }

// TestCheckMemoryEvicts: below the threshold the node reports
// MemoryPressure and evicts the first pod of the ranking, the kubelet's
// way; BestEffort pods are not admitted meanwhile; the condition clears
// only after the transition period.
func TestCheckMemoryEvicts(t *testing.T) {
	a := &Agent{cfg: Config{NodeName: "n", DataDir: t.TempDir(), EvictionMemoryAvailable: 100 * mi, DefaultPodMemoryLimit: 64 * mi},
		log: slog.New(slog.DiscardHandler), heartbeatNow: make(chan struct{}, 1), runCtx: context.Background()}
	a.reports = newReporter(a)
	a.pods = newPodManager(a)
	add := func(uid string, qos corev1.PodQOSClass, request string, usage int64) *podWorker {
		p := memPod(uid, time.Now(), "")
		if request != "" {
			p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(request)}
		}
		p.Status.QOSClass = qos
		w := a.newPodWorker(p)
		w.initialized = true
		c := w.containers[0]
		c.status.State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
		c.proc = &fakeProc{bytes: usage, done: make(chan struct{})}
		a.pods.workers[uid] = w
		return w
	}
	guaranteed := add("g", corev1.PodQOSGuaranteed, "256Mi", 200*mi)
	burstable := add("b", corev1.PodQOSBurstable, "32Mi", 48*mi)
	bestEffort := add("be", corev1.PodQOSBestEffort, "", 30*mi)

	now := time.Now()
	if got := a.checkMemory(nodestats.Memory{Total: 1024 * mi, Available: 500 * mi}, now); got != "" {
		t.Fatalf("evicted %s with memory to spare", got)
	}
	if a.conditions()[0].Status != corev1.ConditionFalse {
		t.Fatal("MemoryPressure without pressure")
	}

	// Burstable exceeds its request by 16 MiB, BestEffort by 30 MiB.
	if got := a.checkMemory(nodestats.Memory{Total: 1024 * mi, Available: 80 * mi}, now); got != "ns/pod-be" {
		t.Fatalf("evicted %q, want the BestEffort pod", got)
	}
	cond := a.conditions()[0]
	if cond.Type != corev1.NodeMemoryPressure || cond.Status != corev1.ConditionTrue || cond.Reason != "KubeletHasInsufficientMemory" {
		t.Errorf("condition under pressure: %+v", cond)
	}
	select {
	case <-a.heartbeatNow:
	default:
		t.Error("no heartbeat asked for the condition change")
	}
	if bestEffort.ctx.Err() == nil || guaranteed.ctx.Err() != nil || burstable.ctx.Err() != nil {
		t.Fatal("the wrong pods were stopped")
	}
	st := bestEffort.status(false).Status
	const msg = "The node was low on resource: memory. Threshold quantity: 100Mi, available: 80Mi. " +
		"Container a was using 30Mi, request is 0, has larger consumption of memory."
	if st.Phase != corev1.PodFailed || st.Reason != "Evicted" || st.Message != msg {
		t.Errorf("evicted pod's status: phase %s reason %q message %q", st.Phase, st.Reason, st.Message)
	}
	disrupted := false
	for _, c := range st.Conditions {
		disrupted = disrupted || (c.Type == corev1.DisruptionTarget && c.Status == corev1.ConditionTrue && c.Reason == "TerminationByKubelet")
	}
	if !disrupted {
		t.Errorf("no DisruptionTarget condition: %+v", st.Conditions)
	}
	if !a.pods.ended["be"] {
		t.Error("an evicted pod could start again")
	}
	evicted := false
	for _, ev := range a.reports.events {
		evicted = evicted || (ev.UID == "be" && ev.Reason == "Evicted" && ev.Type == corev1.EventTypeWarning && ev.Message == msg)
	}
	if !evicted {
		t.Errorf("no Evicted event: %+v", a.reports.events)
	}

	// Under pressure a new BestEffort pod is not admitted.
	newBE := memPod("new", now, "")
	newBE.Status.QOSClass = corev1.PodQOSBestEffort
	if msg, ok := a.admitUnderPressure(newBE); ok || msg != "The node had condition: [MemoryPressure]. " {
		t.Errorf("BestEffort admitted under pressure: %v %q", ok, msg)
	}

	// The next round takes the Burstable pod (the evicted one no longer
	// counts: it stopped).
	delete(a.pods.workers, "be")
	if got := a.checkMemory(nodestats.Memory{Total: 1024 * mi, Available: 90 * mi}, now.Add(10*time.Second)); got != "ns/pod-b" {
		t.Fatalf("second eviction: %q, want the Burstable pod", got)
	}
	delete(a.pods.workers, "b")

	// Memory is back: the condition holds for the transition period.
	a.checkMemory(nodestats.Memory{Total: 1024 * mi, Available: 600 * mi}, now.Add(time.Minute))
	if a.conditions()[0].Status != corev1.ConditionTrue {
		t.Error("MemoryPressure cleared before the transition period")
	}
	a.checkMemory(nodestats.Memory{Total: 1024 * mi, Available: 600 * mi}, now.Add(10*time.Second+pressureTransitionPeriod+time.Second))
	if a.conditions()[0].Status != corev1.ConditionFalse {
		t.Error("MemoryPressure still set after the transition period")
	}
	if guaranteed.ctx.Err() != nil {
		t.Error("the Guaranteed pod was evicted")
	}
}
