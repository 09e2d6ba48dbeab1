package agent

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/node/agent/nodestats"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiffhq/skiff/internal/node/protocol"
)

const mi = 1 << 20

func memPod(uid string, created time.Time, limits ...string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "pod-" + uid, UID: types.UID(uid),
		CreationTimestamp: metav1.NewTime(created)}}
	for i, l := range limits {
		c := corev1.Container{Name: string(rune('a' + i))}
		if l != "" {
			c.Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(l)}
		}
		p.Spec.Containers = append(p.Spec.Containers, c)
	}
	return p
}

// TestPodMemoryLimit: the node's default fills in for containers without a
// limit; init containers count as the scheduler counts them.
func TestPodMemoryLimit(t *testing.T) {
	a := &Agent{cfg: Config{DefaultPodMemoryLimit: 64 * mi}}
	always := corev1.ContainerRestartPolicyAlways
	withInits := func(p *corev1.Pod, inits ...corev1.Container) *corev1.Pod {
		p.Spec.InitContainers = inits
		return p
	}
	limited := func(name, l string, restart *corev1.ContainerRestartPolicy) corev1.Container {
		return corev1.Container{Name: name, RestartPolicy: restart,
			Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(l)}}}
	}
	for _, tt := range []struct {
		name string
		pod  *corev1.Pod
		want int64
	}{
		{"own limit", memPod("1", time.Time{}, "32Mi"), 32 * mi},
		{"no limit: the default", memPod("2", time.Time{}, ""), 64 * mi},
		{"two containers, one default", memPod("3", time.Time{}, "10Mi", ""), 74 * mi},
		{"a larger init container", withInits(memPod("4", time.Time{}, "10Mi"), limited("i", "100Mi", nil)), 100 * mi},
		{"a sidecar adds", withInits(memPod("5", time.Time{}, "10Mi"), limited("s", "5Mi", &always)), 15 * mi},
	} {
		if got, unlimited := a.podMemoryLimit(tt.pod); got != tt.want || unlimited {
			t.Errorf("%s: %d MiB (unlimited %v), want %d MiB", tt.name, got/mi, unlimited, tt.want/mi)
		}
	}
	off := &Agent{cfg: Config{DefaultPodMemoryLimit: -1}}
	if got, unlimited := off.podMemoryLimit(memPod("6", time.Time{}, "")); got != 0 || !unlimited {
		t.Errorf("default off: %d, unlimited %v", got, unlimited)
	}
	if got := off.containerMemoryLimit(&corev1.Container{}); got != 0 {
		t.Errorf("default off: container limit %d, want none", got)
	}
}

func TestAdmitMemoryWording(t *testing.T) {
	if _, ok := admitMemory(100, 900, 1000); !ok {
		t.Error("a pod that fits exactly was refused")
	}
	msg, ok := admitMemory(101, 900, 1000)
	if ok || msg != "Node didn't have enough resource: memory, requested: 101, used: 900, capacity: 1000" {
		t.Errorf("refusal: %v %q", ok, msg)
	}
}

// TestAdmissionRejectsWhatDoesNotFit: with 1 GiB allocatable and 600 MiB
// held by a running pod, a pod of the 512 MiB default is rejected the
// kubelet's way, and stays rejected when the next sync shows it again, even
// once it would fit; an older pod is admitted before a newer one.
func TestAdmissionRejectsWhatDoesNotFit(t *testing.T) {
	a := &Agent{cfg: Config{NodeName: "n", DataDir: t.TempDir(), DefaultPodMemoryLimit: 512 * mi},
		log: slog.New(slog.DiscardHandler), hostIP: "127.0.0.1",
		allocatable: corev1.ResourceList{corev1.ResourceMemory: *resource.NewQuantity(1024*mi, resource.BinarySI)}}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // workers admitted here stop at once: nothing runs
	a.runCtx = ctx
	var err error
	if a.ipam, err = newIPAM("127.66.0.0/24"); err != nil {
		t.Fatal(err)
	}
	a.reports = newReporter(a)
	a.pods = newPodManager(a)
	m := a.pods

	now := time.Now()
	running := memPod("running", now.Add(-time.Hour), "600Mi")
	w := a.newPodWorker(running)
	w.memLimit = 600 * mi
	w.initialized = true
	w.containers[0].status.State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
	m.workers["running"] = w

	newer := memPod("newer", now, "")                        // the 512 MiB default
	older := memPod("older", now.Add(-time.Minute), "400Mi") // fits beside the running pod
	m.sync([]corev1.Pod{*running, *newer, *older})

	if m.workers["older"] == nil {
		t.Error("the older pod, which fits, was not admitted")
	}
	if m.workers["newer"] != nil || !m.ended["newer"] {
		t.Fatal("the pod that does not fit was admitted")
	}
	a.reports.mu.Lock()
	st, ok := a.reports.pending["newer"]
	var events []protocol.Event
	for _, ev := range a.reports.events {
		if ev.UID == "newer" {
			events = append(events, ev)
		}
	}
	a.reports.mu.Unlock()
	const want = "Node didn't have enough resource: memory, requested: 536870912, used: 1048576000, capacity: 1073741824"
	if !ok || st.Status.Phase != corev1.PodFailed || st.Status.Reason != "OutOfmemory" || st.Status.Message != "Pod was rejected: "+want {
		t.Errorf("rejected pod's status: %+v", st.Status)
	}
	if len(events) != 1 || events[0].Reason != "OutOfmemory" || events[0].Type != corev1.EventTypeWarning || events[0].Message != want {
		t.Errorf("events: %+v", events)
	}

	// The running pod is gone and the next sync still shows the rejected
	// pod as it was: it is not started.
	delete(m.workers, "running")
	m.sync([]corev1.Pod{*newer, *older})
	if m.workers["newer"] != nil {
		t.Error("a rejected pod was started on a later sync")
	}
	// Once the control plane forgets it, so does the node.
	m.sync([]corev1.Pod{*older})
	if m.ended["newer"] {
		t.Error("a deleted pod is still remembered")
	}
	a.pods.stopAll()
}

func TestParseMeminfo(t *testing.T) {
	m, err := nodestats.ParseMeminfo(strings.NewReader("MemTotal:       24683748 kB\nMemFree:  100 kB\nMemAvailable:   23544056 kB\n"))
	if err != nil || m.Total != 24683748*1024 || m.Available != 23544056*1024 {
		t.Errorf("%+v %v", m, err)
	}
	if _, err := nodestats.ParseMeminfo(strings.NewReader("MemFree: 1 kB\n")); err == nil {
		t.Error("no MemTotal accepted")
	}
	v2, v1 := nodestats.CgroupPaths("12:memory:/kubepods/pod1\n0::/system.slice/skiff.service\n")
	if v2 != "/system.slice/skiff.service" || v1 != "/kubepods/pod1" {
		t.Errorf("cgroup paths %q %q", v2, v1)
	}
}
