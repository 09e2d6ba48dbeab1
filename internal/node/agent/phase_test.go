package agent

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiffhq/skiff/internal/bus"
)

// Container states as the kubelet's getPhase tells them apart.
func csRunning(name string, ready bool) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, Ready: ready,
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}
}

func csWaiting(name string) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name,
		State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}}
}

func csExited(name string, code int32) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name,
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code}}}
}

// csRestarting waits to run again after exiting with code.
func csRestarting(name string, code int32) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, RestartCount: 1,
		State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
		LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code}}}
}

func TestPhaseLocked(t *testing.T) {
	const (
		always    = corev1.RestartPolicyAlways
		onFailure = corev1.RestartPolicyOnFailure
		never     = corev1.RestartPolicyNever
	)
	type cs = corev1.ContainerStatus
	tests := []struct {
		name     string
		policy   corev1.RestartPolicy
		statuses []cs
		want     corev1.PodPhase
	}{
		{"always: creating", always, []cs{csWaiting("a")}, corev1.PodPending},
		{"always: running", always, []cs{csRunning("a", true)}, corev1.PodRunning},
		{"always: one running, one creating", always, []cs{csRunning("a", true), csWaiting("b")}, corev1.PodPending},
		{"always: exited 0 restarts", always, []cs{csExited("a", 0)}, corev1.PodRunning},
		{"always: exited 1 restarts", always, []cs{csExited("a", 1)}, corev1.PodRunning},
		{"always: in back-off", always, []cs{csRestarting("a", 1)}, corev1.PodRunning},
		{"always: running and exited", always, []cs{csRunning("a", true), csExited("b", 0)}, corev1.PodRunning},

		{"onFailure: exited 0", onFailure, []cs{csExited("a", 0)}, corev1.PodSucceeded},
		{"onFailure: all exited 0", onFailure, []cs{csExited("a", 0), csExited("b", 0)}, corev1.PodSucceeded},
		{"onFailure: exited 1 restarts", onFailure, []cs{csExited("a", 1)}, corev1.PodRunning},
		{"onFailure: one failed", onFailure, []cs{csExited("a", 0), csExited("b", 2)}, corev1.PodRunning},
		{"onFailure: in back-off", onFailure, []cs{csRestarting("a", 1)}, corev1.PodRunning},
		{"onFailure: waiting after exit 0 is not a success", onFailure, []cs{csRestarting("a", 0)}, corev1.PodRunning},
		{"onFailure: one still running", onFailure, []cs{csRunning("a", true), csExited("b", 0)}, corev1.PodRunning},
		{"onFailure: creating", onFailure, []cs{csWaiting("a")}, corev1.PodPending},

		{"never: exited 0", never, []cs{csExited("a", 0)}, corev1.PodSucceeded},
		{"never: exited 1", never, []cs{csExited("a", 1)}, corev1.PodFailed},
		{"never: one killed", never, []cs{csExited("a", 0), csExited("b", 137)}, corev1.PodFailed},
		{"never: one still running", never, []cs{csRunning("a", false), csExited("b", 1)}, corev1.PodRunning},
		{"never: creating", never, []cs{csWaiting("a")}, corev1.PodPending},
		{"never: creating while another exited", never, []cs{csWaiting("a"), csExited("b", 1)}, corev1.PodPending},
	}
	for _, tt := range tests {
		w := &podWorker{pod: &corev1.Pod{Spec: corev1.PodSpec{RestartPolicy: tt.policy}}, initialized: true}
		if got := w.phaseLocked(tt.statuses); got != tt.want {
			t.Errorf("%s: phase %s, want %s", tt.name, got, tt.want)
		}
		// Before the init containers have completed, nothing else counts.
		w.initialized = false
		if got := w.phaseLocked(tt.statuses); got != corev1.PodPending {
			t.Errorf("%s, not initialized: phase %s, want Pending", tt.name, got)
		}
	}
}

// statusTestWorker is a pod worker whose containers have the given
// statuses, as the restart loops would have left them.
func statusTestWorker(policy corev1.RestartPolicy, inits, containers []corev1.ContainerStatus) *podWorker {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "uid-1"},
		Spec:       corev1.PodSpec{RestartPolicy: policy},
	}
	w := &podWorker{a: &Agent{hostIP: "127.0.0.1"}, uid: "uid-1", pod: pod, ip: "127.66.0.7",
		startTime: metav1.Now(), readyToStart: true, initialized: true}
	add := func(list *[]*container, st corev1.ContainerStatus, init bool) {
		c := newContainer(w, corev1.Container{Name: st.Name}, init, nil)
		c.status = st
		*list = append(*list, c)
	}
	for _, st := range inits {
		pod.Spec.InitContainers = append(pod.Spec.InitContainers, corev1.Container{Name: st.Name})
		add(&w.inits, st, true)
	}
	for _, st := range containers {
		pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: st.Name})
		add(&w.containers, st, false)
	}
	return w
}

func condition(st corev1.PodStatus, typ corev1.PodConditionType) corev1.PodCondition {
	for _, c := range st.Conditions {
		if c.Type == typ {
			return c
		}
	}
	return corev1.PodCondition{Type: typ, Status: "missing"}
}

type wantCond struct {
	status          corev1.ConditionStatus
	reason, message string
}

func checkCond(t *testing.T, st corev1.PodStatus, typ corev1.PodConditionType, want wantCond) {
	t.Helper()
	c := condition(st, typ)
	if c.Status != want.status || c.Reason != want.reason || c.Message != want.message {
		t.Errorf("%s = %s %q %q, want %s %q %q", typ, c.Status, c.Reason, c.Message, want.status, want.reason, want.message)
	}
}

func TestStatusAllReady(t *testing.T) {
	w := statusTestWorker(corev1.RestartPolicyAlways, nil, []corev1.ContainerStatus{csRunning("a", true), csRunning("b", true)})
	ps := w.status(false)
	st := ps.Status
	if ps.UID != "uid-1" || ps.Namespace != "ns" || ps.Name != "web" || ps.Terminated {
		t.Errorf("report header %+v", ps)
	}
	if st.Phase != corev1.PodRunning || st.PodIP != "127.66.0.7" || len(st.PodIPs) != 1 || st.HostIP != "127.0.0.1" || st.StartTime == nil {
		t.Errorf("status phase %s podIP %s podIPs %v hostIP %s startTime %v", st.Phase, st.PodIP, st.PodIPs, st.HostIP, st.StartTime)
	}
	if len(st.ContainerStatuses) != 2 || st.ContainerStatuses[0].Name != "a" || st.ContainerStatuses[1].Name != "b" {
		t.Errorf("container statuses %v", st.ContainerStatuses)
	}
	for _, typ := range []corev1.PodConditionType{corev1.PodReadyToStartContainers, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
		checkCond(t, st, typ, wantCond{status: corev1.ConditionTrue})
	}
	// A deleted pod's final report: its sandbox is gone.
	if ps := w.status(true); !ps.Terminated {
		t.Error("status(true) is not marked Terminated")
	} else {
		checkCond(t, ps.Status, corev1.PodReadyToStartContainers, wantCond{status: corev1.ConditionFalse})
	}
}

func TestStatusUnreadyContainers(t *testing.T) {
	w := statusTestWorker(corev1.RestartPolicyAlways, nil,
		[]corev1.ContainerStatus{csRunning("a", false), csRunning("b", true), csWaiting("c")})
	st := w.status(false).Status
	if st.Phase != corev1.PodPending {
		t.Errorf("phase %s, want Pending", st.Phase)
	}
	want := wantCond{corev1.ConditionFalse, "ContainersNotReady", "containers with unready status: [a c]"}
	checkCond(t, st, corev1.ContainersReady, want)
	checkCond(t, st, corev1.PodReady, want)

	w = statusTestWorker(corev1.RestartPolicyAlways, nil, []corev1.ContainerStatus{csRunning("a", true), csRestarting("b", 1)})
	st = w.status(false).Status
	if st.Phase != corev1.PodRunning {
		t.Errorf("phase %s, want Running", st.Phase)
	}
	checkCond(t, st, corev1.PodReady, wantCond{corev1.ConditionFalse, "ContainersNotReady", "containers with unready status: [b]"})
}

func TestStatusUnreadyMessageInSpecOrder(t *testing.T) {
	// The kubelet lists unready containers in the pod spec's order.
	w := statusTestWorker(corev1.RestartPolicyAlways, nil, []corev1.ContainerStatus{csRunning("web", false), csRunning("app", false)})
	c := condition(w.status(false).Status, corev1.PodReady)
	if want := "containers with unready status: [web app]"; c.Message != want {
		t.Errorf("worker.go status sorts unready container names: message %q, want %q", c.Message, want)
	}
}

func TestStatusNotInitialized(t *testing.T) {
	w := statusTestWorker(corev1.RestartPolicyAlways,
		[]corev1.ContainerStatus{csExited("init-a", 0), csRunning("init-b", false), csExited("init-c", 1)},
		[]corev1.ContainerStatus{csWaiting("app")})
	w.initialized = false
	st := w.status(false).Status
	if st.Phase != corev1.PodPending {
		t.Errorf("phase %s, want Pending", st.Phase)
	}
	if len(st.InitContainerStatuses) != 3 {
		t.Errorf("init container statuses %v", st.InitContainerStatuses)
	}
	checkCond(t, st, corev1.PodInitialized, wantCond{corev1.ConditionFalse, "ContainersNotInitialized", "containers with incomplete status: [init-b init-c]"})
	checkCond(t, st, corev1.PodReady, wantCond{corev1.ConditionFalse, "ContainersNotReady", "containers with unready status: [app]"})
	checkCond(t, st, corev1.PodReadyToStartContainers, wantCond{status: corev1.ConditionTrue})

	w.readyToStart = false // volumes not set up yet
	checkCond(t, w.status(false).Status, corev1.PodReadyToStartContainers, wantCond{status: corev1.ConditionFalse})
}

func TestStatusInitFailedUnderNever(t *testing.T) {
	w := statusTestWorker(corev1.RestartPolicyNever, []corev1.ContainerStatus{csExited("init", 3)}, []corev1.ContainerStatus{csWaiting("app")})
	w.initialized = false
	w.failed = "init container init failed"
	st := w.status(false).Status
	if st.Phase != corev1.PodFailed || st.Reason != "Failed" || st.Message != "init container init failed" {
		t.Errorf("phase %s reason %q message %q, want Failed with the reason", st.Phase, st.Reason, st.Message)
	}
	if c := condition(st, corev1.PodReady); c.Status != corev1.ConditionFalse {
		t.Errorf("Ready %s for a failed pod", c.Status)
	}
}

func TestStatusSucceeded(t *testing.T) {
	w := statusTestWorker(corev1.RestartPolicyOnFailure, nil, []corev1.ContainerStatus{csExited("a", 0), csExited("b", 0)})
	st := w.status(false).Status
	if st.Phase != corev1.PodSucceeded {
		t.Fatalf("phase %s, want Succeeded", st.Phase)
	}
	for _, typ := range []corev1.PodConditionType{corev1.ContainersReady, corev1.PodReady} {
		if c := condition(st, typ); c.Status != corev1.ConditionFalse || c.Reason != "PodCompleted" {
			t.Errorf("%s = %s %q, want False PodCompleted", typ, c.Status, c.Reason)
		}
	}
}

func TestStatusTerminalConditionsAsKubelet(t *testing.T) {
	// kubelet status/generate.go (since the fix for terminal pods, v1.25):
	// ContainersReady and Ready of a terminal pod say PodCompleted or
	// PodFailed, with no message.
	var diffs []string
	for _, tt := range []struct {
		policy     corev1.RestartPolicy
		containers []corev1.ContainerStatus
		reason     string
	}{
		{corev1.RestartPolicyNever, []corev1.ContainerStatus{csExited("a", 0)}, "PodCompleted"},
		{corev1.RestartPolicyNever, []corev1.ContainerStatus{csExited("a", 1)}, "PodFailed"},
	} {
		st := statusTestWorker(tt.policy, nil, tt.containers).status(false).Status
		for _, typ := range []corev1.PodConditionType{corev1.ContainersReady, corev1.PodReady} {
			c := condition(st, typ)
			if c.Status != corev1.ConditionFalse {
				t.Errorf("%s phase: %s is %s", st.Phase, typ, c.Status)
			}
			if c.Reason != tt.reason || c.Message != "" {
				diffs = append(diffs, string(st.Phase)+" "+string(typ)+": "+c.Reason+" "+c.Message)
			}
		}
	}
	if len(diffs) > 0 {
		t.Errorf("worker.go status: terminal pods' Ready conditions differ from the kubelet's (want PodCompleted/PodFailed, no message): %v", diffs)
	}
}

func TestBackoff(t *testing.T) {
	// New's defaults are the kubelet's CrashLoopBackOff: 10s doubling to
	// 5m. (New only keeps the Bus; nothing is sent here.)
	defaults, err := New(Config{NodeName: "n", Bus: &bus.Conn{}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		a    *Agent
		n    int
		want time.Duration
	}{
		{defaults, -1, 0},
		{defaults, 0, 0}, // the first restart is immediate
		{defaults, 1, 10 * time.Second},
		{defaults, 2, 20 * time.Second},
		{defaults, 3, 40 * time.Second},
		{defaults, 4, 80 * time.Second},
		{defaults, 5, 160 * time.Second},
		{defaults, 6, 5 * time.Minute}, // 320s, capped
		{defaults, 7, 5 * time.Minute},
		{defaults, 1000, 5 * time.Minute},
		{&Agent{cfg: Config{BackOffInitial: 100 * time.Millisecond, BackOffMax: 250 * time.Millisecond}}, 2, 200 * time.Millisecond},
		{&Agent{cfg: Config{BackOffInitial: 100 * time.Millisecond, BackOffMax: 250 * time.Millisecond}}, 3, 250 * time.Millisecond},
		{&Agent{cfg: Config{BackOffInitial: time.Minute, BackOffMax: time.Second}}, 1, time.Second},
	}
	for _, tt := range tests {
		if got := tt.a.backoff(tt.n); got != tt.want {
			t.Errorf("backoff(%d) with %v..%v = %v, want %v", tt.n, tt.a.cfg.BackOffInitial, tt.a.cfg.BackOffMax, got, tt.want)
		}
	}
}
