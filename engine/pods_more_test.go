package engine

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"

	"github.com/skiffhq/skiff/internal/sleeper"
	"github.com/skiffhq/skiff/internal/testutil"
	"github.com/skiffhq/skiff/internal/wasmbuild"
)

// End-to-end tests of Wasm pods on a real engine: each runs its own engine
// with its own node name and a pod range inside 127.66.192.0/18, so pod
// addresses never collide with the other tests of the package.

const moreWait = 60 * time.Second

// moreEngine starts an engine whose node is node, with pod IPs from cidr
// and a short crash-loop back-off.
func moreEngine(t *testing.T, node, cidr string) (*Engine, kubernetes.Interface) {
	t.Helper()
	e := startEngine(t, Config{DataDir: t.TempDir(), NodeName: node, PodCIDR: cidr, CrashLoopBackOff: 200 * time.Millisecond})
	cs, err := e.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	return e, cs
}

func createPods(t *testing.T, cs kubernetes.Interface, pods ...*corev1.Pod) {
	t.Helper()
	for _, p := range pods {
		if _, err := cs.CoreV1().Pods("default").Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create pod %s: %v", p.Name, err)
		}
	}
}

func httpserverModule(t *testing.T) []byte {
	return wasmbuild.Build(t, "../examples/httpserver", false)
}

// webContainer is the httpserver example serving port 8080 (named "http"),
// Ready once the port takes connections (it refuses them until the module
// first accepts, as a container's port does).
func webContainer(name, image string) corev1.Container {
	return corev1.Container{Name: name, Image: image,
		Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
		ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("http")}},
			PeriodSeconds: 1}}
}

// podLogs reads a container's log through the API, the agent's stream
// backend answering on the node.
func podLogs(ctx context.Context, cs kubernetes.Interface, pod string, opts corev1.PodLogOptions) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rc, err := cs.CoreV1().Pods("default").GetLogs(pod, &opts).Stream(ctx)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return string(b), err
}

// waitLogs polls a container's log until it contains every one of want.
func waitLogs(t *testing.T, cs kubernetes.Interface, pod string, opts corev1.PodLogOptions, want ...string) string {
	t.Helper()
	var last string
	testutil.Eventually(t, moreWait, func() error {
		out, err := podLogs(context.Background(), cs, pod, opts)
		if err != nil {
			return err
		}
		last = out
		for _, w := range want {
			if !strings.Contains(out, w) {
				return fmt.Errorf("log of %s/%s lacks %q:\n%s", pod, opts.Container, w, out)
			}
		}
		return nil
	})
	return last
}

// waitEvent waits for an event of the pod with the given reason whose
// message contains msg.
func waitEvent(t *testing.T, cs kubernetes.Interface, pod, reason, msg string) corev1.Event {
	t.Helper()
	var found corev1.Event
	testutil.Eventually(t, moreWait, func() error {
		evs, err := cs.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=" + pod})
		if err != nil {
			return err
		}
		var seen []string
		for _, ev := range evs.Items {
			if ev.Reason == reason && strings.Contains(ev.Message, msg) {
				found = ev
				return nil
			}
			seen = append(seen, ev.Reason+": "+ev.Message)
		}
		return fmt.Errorf("no %s event with %q for pod %s among %q", reason, msg, pod, seen)
	})
	return found
}

func podCondition(p *corev1.Pod, typ corev1.PodConditionType) corev1.ConditionStatus {
	for _, c := range p.Status.Conditions {
		if c.Type == typ {
			return c.Status
		}
	}
	return ""
}

func containerStatus(list []corev1.ContainerStatus, name string) *corev1.ContainerStatus {
	for i := range list {
		if list[i].Name == name {
			return &list[i]
		}
	}
	return nil
}

func isRunning(p *corev1.Pod, container string) bool {
	c := containerStatus(p.Status.ContainerStatuses, container)
	return c != nil && c.State.Running != nil
}

// httpGet asks the pod's server for path; a response's body or the error.
func httpGet(u string) (string, error) {
	client := http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(u)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return string(b), err
}

// An init container runs to completion before the containers start; under
// restartPolicy Never a failing one fails the pod, and the containers never
// start.
func TestWasmPodInitContainers(t *testing.T) {
	host := testRegistry(t, map[string][]byte{"printenv:1": testGuest(t, "printenv"), "exitcode:1": testGuest(t, "exitcode"),
		"sleeper:1": sleeper.Module()})
	_, cs := moreEngine(t, "more-1", "127.66.192.0/22")
	const node = "more-1"
	ok := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "init-ok"}, Spec: corev1.PodSpec{NodeName: node,
		InitContainers: []corev1.Container{{Name: "setup", Image: host + "/printenv:1",
			Env: []corev1.EnvVar{{Name: "GREETING", Value: "from the init container"}}}},
		Containers: []corev1.Container{{Name: "main", Image: host + "/sleeper:1"}}}}
	bad := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "init-bad"}, Spec: corev1.PodSpec{NodeName: node,
		RestartPolicy:  corev1.RestartPolicyNever,
		InitContainers: []corev1.Container{{Name: "setup", Image: host + "/exitcode:1", Args: []string{"3"}}},
		Containers:     []corev1.Container{{Name: "main", Image: host + "/sleeper:1"}}}}
	createPods(t, cs, ok, bad)

	p := waitPod(t, cs, "default", "init-ok", moreWait, "runs after its init container", func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodRunning && isRunning(p, "main")
	})
	ics := p.Status.InitContainerStatuses
	if len(ics) != 1 || ics[0].State.Terminated == nil || ics[0].State.Terminated.ExitCode != 0 || ics[0].State.Terminated.Reason != "Completed" {
		t.Fatalf("init container status = %+v", ics)
	}
	if got := podCondition(p, corev1.PodInitialized); got != corev1.ConditionTrue {
		t.Errorf("Initialized = %q, want True", got)
	}
	// The container started after the init container finished (both have
	// second precision, so equal is in order).
	if started := containerStatus(p.Status.ContainerStatuses, "main").State.Running.StartedAt; started.Before(&ics[0].State.Terminated.FinishedAt) {
		t.Errorf("main started at %v, before the init container finished at %v", started, ics[0].State.Terminated.FinishedAt)
	}
	// The init container's log is kept and served.
	waitLogs(t, cs, "init-ok", corev1.PodLogOptions{Container: "setup"}, "GREETING=from the init container")

	p = waitPod(t, cs, "default", "init-bad", moreWait, "fails", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	ics = p.Status.InitContainerStatuses
	if len(ics) != 1 || ics[0].State.Terminated == nil || ics[0].State.Terminated.ExitCode != 3 || ics[0].State.Terminated.Reason != "Error" {
		t.Errorf("failed init container status = %+v", ics)
	}
	if len(ics) == 1 && ics[0].RestartCount != 0 {
		t.Errorf("init container restarted %d times under restartPolicy Never", ics[0].RestartCount)
	}
	main := containerStatus(p.Status.ContainerStatuses, "main")
	if main == nil || main.State.Waiting == nil || main.ContainerID != "" || main.RestartCount != 0 {
		t.Fatalf("main container of the failed pod = %+v, want waiting, never started", main)
	}
	mainReason := main.State.Waiting.Reason
	if got := podCondition(p, corev1.PodInitialized); got != corev1.ConditionFalse {
		t.Errorf("Initialized = %q, want False", got)
	}
	evs, err := cs.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=init-bad"})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs.Items {
		if ev.InvolvedObject.FieldPath == "spec.containers{main}" && ev.Reason == "Started" {
			t.Errorf("the main container of init-bad was started: %+v", ev)
		}
	}
	// A kubelet says PodInitializing of the containers of a pod with init
	// containers until they start (ContainerCreating is for pods without).
	if mainReason != "PodInitializing" {
		t.Errorf("the main container of a pod whose init container failed waits with reason %q, want PodInitializing "+
			"(agent/container.go newContainer always starts with ContainerCreating)", mainReason)
	}
}

// restartPolicy OnFailure: a container exiting 0 completes the pod and is
// not restarted; one exiting non-zero is restarted.
func TestWasmPodRestartOnFailure(t *testing.T) {
	host := testRegistry(t, map[string][]byte{"exitcode:1": testGuest(t, "exitcode")})
	_, cs := moreEngine(t, "more-2", "127.66.196.0/22")
	pod := func(name, code string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{NodeName: "more-2",
			RestartPolicy: corev1.RestartPolicyOnFailure,
			Containers:    []corev1.Container{{Name: "c", Image: host + "/exitcode:1", Args: []string{code}}}}}
	}
	createPods(t, cs, pod("exit0", "0"), pod("exit2", "2"))

	p := waitPod(t, cs, "default", "exit0", moreWait, "succeeds", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodSucceeded })
	c := p.Status.ContainerStatuses[0]
	if c.State.Terminated == nil || c.State.Terminated.ExitCode != 0 || c.State.Terminated.Reason != "Completed" || c.RestartCount != 0 {
		t.Errorf("exit0 container = %+v", c)
	}

	p = waitPod(t, cs, "default", "exit2", moreWait, "restarts", func(p *corev1.Pod) bool {
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount >= 2
	})
	if p.Status.Phase != corev1.PodRunning && p.Status.Phase != corev1.PodPending {
		t.Errorf("exit2 phase = %s, want Running (it will restart)", p.Status.Phase)
	}
	if last := p.Status.ContainerStatuses[0].LastTerminationState.Terminated; last == nil || last.ExitCode != 2 || last.Reason != "Error" {
		t.Errorf("exit2 lastState = %+v", p.Status.ContainerStatuses[0].LastTerminationState)
	}

	// Meanwhile the completed pod stayed completed.
	p, err := cs.CoreV1().Pods("default").Get(context.Background(), "exit0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Status.Phase != corev1.PodSucceeded || p.Status.ContainerStatuses[0].RestartCount != 0 {
		t.Errorf("exit0 later: phase %s, restarts %d", p.Status.Phase, p.Status.ContainerStatuses[0].RestartCount)
	}
	evs, err := cs.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=exit0"})
	if err != nil {
		t.Fatal(err)
	}
	started := 0
	for _, ev := range evs.Items {
		if ev.Reason == "Started" {
			started += max(int(ev.Count), 1)
		}
	}
	if started != 1 {
		t.Errorf("exit0 was started %d times, want once", started)
	}
}

// Probes: an exec readiness probe toggles Ready with what the command
// answers; a startup probe holds readiness back until it passes; a failing
// tcpSocket liveness probe restarts the container.
func TestWasmPodProbes(t *testing.T) {
	host := testRegistry(t, map[string][]byte{"web:1": httpserverModule(t), "sleeper:1": sleeper.Module()})
	e, cs := moreEngine(t, "more-3", "127.66.200.0/22")
	const node = "more-3"

	// Readiness: `httpserver cat /data/ready` in a new instance of the
	// module exits 0 while the file exists in the pod's emptyDir, 1 when
	// it does not.
	ready := webContainer("web", host+"/web:1")
	ready.VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
	ready.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"httpserver", "cat", "/data/ready"}}},
		PeriodSeconds: 1, FailureThreshold: 1}
	readyPod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "ready"}, Spec: corev1.PodSpec{NodeName: node,
		Containers: []corev1.Container{ready},
		Volumes:    []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}}}

	// Startup: the probe asks port 8081 for /healthz, where the test puts a
	// gate in front of the module's own port 8080: 503 until opened, then
	// the module's answer. Readiness (the module's / on 8080) would pass at
	// once, but must wait for the startup probe.
	startup := webContainer("web", host+"/web:1")
	startup.StartupProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8081)}},
		PeriodSeconds: 1, FailureThreshold: 1000}
	startup.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromString("http")}},
		PeriodSeconds: 1}
	startupPod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "startup"}, Spec: corev1.PodSpec{NodeName: node,
		Containers: []corev1.Container{startup}}}

	// Liveness: nothing listens on port 9 of the pod's address.
	live := corev1.Container{Name: "s", Image: host + "/sleeper:1",
		LivenessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(9)}},
			PeriodSeconds: 1, FailureThreshold: 1}}
	livePod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "live"}, Spec: corev1.PodSpec{NodeName: node,
		Containers: []corev1.Container{live}}}
	createPods(t, cs, readyPod, startupPod, livePod)

	t.Run("exec readiness", func(t *testing.T) {
		p := waitPod(t, cs, "default", "ready", moreWait, "runs", func(p *corev1.Pod) bool { return isRunning(p, "web") })
		waitEvent(t, cs, "ready", "Unhealthy", "Readiness probe failed")
		p = waitPod(t, cs, "default", "ready", moreWait, "runs", func(p *corev1.Pod) bool { return isRunning(p, "web") })
		if p.Status.ContainerStatuses[0].Ready || podCondition(p, corev1.PodReady) != corev1.ConditionFalse {
			t.Fatalf("ready while its readiness probe fails: %+v", p.Status)
		}
		flag := filepath.Join(e.Config().DataDir, agentSubdir, "pods", string(p.UID), "volumes", "data", "ready")
		if err := os.WriteFile(flag, []byte("yes\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		waitPod(t, cs, "default", "ready", moreWait, "becomes Ready", func(p *corev1.Pod) bool {
			return podCondition(p, corev1.PodReady) == corev1.ConditionTrue && p.Status.ContainerStatuses[0].Ready
		})
		if err := os.Remove(flag); err != nil {
			t.Fatal(err)
		}
		p = waitPod(t, cs, "default", "ready", moreWait, "becomes unready", func(p *corev1.Pod) bool {
			return podCondition(p, corev1.PodReady) == corev1.ConditionFalse && !p.Status.ContainerStatuses[0].Ready
		})
		if c := p.Status.ContainerStatuses[0]; c.RestartCount != 0 || c.State.Running == nil {
			t.Errorf("a readiness probe restarted or stopped the container: %+v", c)
		}
	})

	t.Run("startup gates readiness", func(t *testing.T) {
		p := waitPod(t, cs, "default", "startup", moreWait, "runs", func(p *corev1.Pod) bool { return isRunning(p, "web") })
		var open atomic.Bool
		var probed atomic.Int32
		target, err := url.Parse("http://" + net.JoinHostPort(p.Status.PodIP, "8080"))
		if err != nil {
			t.Fatal(err)
		}
		proxy := httputil.NewSingleHostReverseProxy(target)
		ln, err := net.Listen("tcp", net.JoinHostPort(p.Status.PodIP, "8081"))
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/healthz" && strings.HasPrefix(r.UserAgent(), "kube-probe/") {
				probed.Add(1)
			}
			if !open.Load() {
				http.Error(w, "not started", http.StatusServiceUnavailable)
				return
			}
			proxy.ServeHTTP(w, r)
		}), ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })

		waitEvent(t, cs, "startup", "Unhealthy", "Startup probe failed: HTTP probe failed with statuscode: 503")
		p, err = cs.CoreV1().Pods("default").Get(context.Background(), "startup", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		c := p.Status.ContainerStatuses[0]
		if c.Started == nil || *c.Started || c.Ready || podCondition(p, corev1.PodReady) != corev1.ConditionFalse || c.State.Running == nil {
			t.Fatalf("before the startup probe passed: %+v, conditions %+v", c, p.Status.Conditions)
		}
		open.Store(true)
		p = waitPod(t, cs, "default", "startup", moreWait, "started and ready", func(p *corev1.Pod) bool {
			c := p.Status.ContainerStatuses[0]
			return c.Started != nil && *c.Started && c.Ready && podCondition(p, corev1.PodReady) == corev1.ConditionTrue
		})
		if c := p.Status.ContainerStatuses[0]; c.RestartCount != 0 {
			t.Errorf("restarted %d times while its startup probe failed below the threshold", c.RestartCount)
		}
		if probed.Load() == 0 {
			t.Error("the startup probe never reached the gate")
		}
		// The probe went through to the module.
		waitLogs(t, cs, "startup", corev1.PodLogOptions{}, "GET /healthz")
	})

	t.Run("tcpSocket liveness", func(t *testing.T) {
		p := waitPod(t, cs, "default", "live", moreWait, "restarted by its liveness probe", func(p *corev1.Pod) bool {
			return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount >= 2
		})
		if last := p.Status.ContainerStatuses[0].LastTerminationState.Terminated; last == nil || last.ExitCode != 137 {
			t.Errorf("lastState = %+v, want killed (137)", p.Status.ContainerStatuses[0].LastTerminationState)
		}
		waitEvent(t, cs, "live", "Killing", "Container s failed liveness probe, will be restarted")
		waitEvent(t, cs, "live", "Unhealthy", "Liveness probe failed")
	})
}

// Logs through the API server and the node agent's stream backend, as
// kubectl logs reads them: per container, tailed, the previous start's and
// followed.
func TestWasmPodLogs(t *testing.T) {
	host := testRegistry(t, map[string][]byte{"printenv:1": testGuest(t, "printenv"), "sleeper:1": sleeper.Module(),
		"web:1": httpserverModule(t)})
	_, cs := moreEngine(t, "more-4", "127.66.204.0/22")
	ctx := context.Background()
	two := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "two"}, Spec: corev1.PodSpec{NodeName: "more-4",
		RestartPolicy: corev1.RestartPolicyNever,
		Containers: []corev1.Container{
			{Name: "env", Image: host + "/printenv:1", Env: []corev1.EnvVar{{Name: "GREETING", Value: "two containers"}}},
			{Name: "sleep", Image: host + "/sleeper:1"}}}}
	web := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: corev1.PodSpec{NodeName: "more-4",
		Containers: []corev1.Container{webContainer("web", host+"/web:1")}}}
	createPods(t, cs, two, web)

	t.Run("container", func(t *testing.T) {
		waitPod(t, cs, "default", "two", moreWait, "env done, sleep running", func(p *corev1.Pod) bool {
			c := containerStatus(p.Status.ContainerStatuses, "env")
			return c != nil && c.State.Terminated != nil && isRunning(p, "sleep")
		})
		full := waitLogs(t, cs, "two", corev1.PodLogOptions{Container: "env"}, "GREETING=two containers", "to stderr")
		out, err := podLogs(ctx, cs, "two", corev1.PodLogOptions{Container: "sleep"})
		if err != nil || strings.Contains(out, "GREETING") {
			t.Errorf("log of the sleeper: %q, %v", out, err)
		}
		_, err = podLogs(ctx, cs, "two", corev1.PodLogOptions{})
		if !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), "a container name must be specified") {
			t.Errorf("logs without a container of a two-container pod: %v", err)
		}
		_, err = podLogs(ctx, cs, "two", corev1.PodLogOptions{Container: "nosuch"})
		if !apierrors.IsBadRequest(err) {
			t.Errorf("logs of a container that does not exist: %v", err)
		}

		lines := strings.Split(strings.TrimSuffix(full, "\n"), "\n")
		if len(lines) < 4 {
			t.Fatalf("the printenv log has %d lines:\n%s", len(lines), full)
		}
		out, err = podLogs(ctx, cs, "two", corev1.PodLogOptions{Container: "env", TailLines: ptr(int64(2))})
		if want := strings.Join(lines[len(lines)-2:], "\n") + "\n"; err != nil || out != want {
			t.Errorf("tail 2 = %q, %v; want %q", out, err, want)
		}
		out, err = podLogs(ctx, cs, "two", corev1.PodLogOptions{Container: "env", TailLines: ptr(int64(0))})
		if err != nil || out != "" {
			t.Errorf("tail 0 = %q, %v", out, err)
		}
		out, err = podLogs(ctx, cs, "two", corev1.PodLogOptions{Container: "env", LimitBytes: ptr(int64(7))})
		if err != nil || out != full[:7] {
			t.Errorf("limitBytes 7 = %q, %v; want %q", out, err, full[:7])
		}
		out, err = podLogs(ctx, cs, "two", corev1.PodLogOptions{Container: "env", Timestamps: true, TailLines: ptr(int64(1))})
		stamp, text, _ := strings.Cut(strings.TrimSuffix(out, "\n"), " ")
		if _, perr := time.Parse(time.RFC3339Nano, stamp); err != nil || perr != nil || text+"\n" != lines[len(lines)-1]+"\n" {
			t.Errorf("timestamps, tail 1 = %q, %v", out, err)
		}
		// Following a container that has ended gives its log and ends.
		out, err = podLogs(ctx, cs, "two", corev1.PodLogOptions{Container: "env", Follow: true})
		if err != nil || out != full {
			t.Errorf("follow of an ended container = %q, %v; want the whole log", out, err)
		}
		// It never restarted: there is no previous log.
		_, err = podLogs(ctx, cs, "two", corev1.PodLogOptions{Container: "env", Previous: true})
		if !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), "previous terminated container") {
			t.Errorf("previous of a container that never restarted: %v", err)
		}
	})

	t.Run("previous", func(t *testing.T) {
		p := waitPod(t, cs, "default", "web", moreWait, "runs", func(p *corev1.Pod) bool { return isRunning(p, "web") })
		waitLogs(t, cs, "web", corev1.PodLogOptions{}, "serving on the container ports")
		// /crash makes the module exit 1; the response never comes. The
		// port refuses connections until the module first accepts, which is
		// after it printed that line: ask again while it refuses.
		testutil.Eventually(t, 20*time.Second, func() error {
			_, err := httpGet("http://" + net.JoinHostPort(p.Status.PodIP, "8080") + "/crash")
			if err != nil && errors.Is(err, syscall.ECONNREFUSED) {
				return err
			}
			return nil
		})
		waitPod(t, cs, "default", "web", moreWait, "restarted and running", func(p *corev1.Pod) bool {
			return isRunning(p, "web") && p.Status.ContainerStatuses[0].RestartCount == 1
		})
		prev := waitLogs(t, cs, "web", corev1.PodLogOptions{Previous: true}, "serving on the container ports", "GET /crash", "crashing on request")
		cur, err := podLogs(ctx, cs, "web", corev1.PodLogOptions{})
		if err != nil || strings.Contains(cur, "crashing") {
			t.Errorf("current log after the crash = %q, %v; previous %q", cur, err, prev)
		}
	})

	t.Run("follow", func(t *testing.T) {
		p := waitPod(t, cs, "default", "web", moreWait, "runs", func(p *corev1.Pod) bool { return isRunning(p, "web") })
		waitLogs(t, cs, "web", corev1.PodLogOptions{}, "serving on the container ports")
		fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		rc, err := cs.CoreV1().Pods("default").GetLogs("web", &corev1.PodLogOptions{Follow: true}).Stream(fctx)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		lines := make(chan string, 64)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(rc)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		next := func(want string) {
			t.Helper()
			for {
				select {
				case l, ok := <-lines:
					if !ok {
						t.Fatalf("the followed log ended before %q", want)
					}
					if strings.Contains(l, want) {
						return
					}
				case <-fctx.Done():
					t.Fatalf("no %q in the followed log: %v", want, fctx.Err())
				}
			}
		}
		// What the log held when the stream started comes first: after it,
		// the stream is following.
		next("serving on the container ports")
		path := fmt.Sprintf("/followed-%d", time.Now().UnixNano())
		// The module prints that line before it first accepts, and its port
		// refuses connections until then, as a container's does: ask until
		// it answers (404 is expected, and logged).
		testutil.Eventually(t, 20*time.Second, func() error {
			_, err := httpGet("http://" + net.JoinHostPort(p.Status.PodIP, "8080") + path)
			if err == nil {
				t.Fatalf("GET %s succeeded; the module serves no such page", path)
			}
			if !strings.Contains(err.Error(), "404") {
				return err
			}
			return nil
		})
		next("GET " + path)
	})
}

// Exec through client-go's executors over the API's network listener:
// `httpserver env` prints the environment the pod got from a ConfigMap, a
// failing command's exit code comes back as an exit error.
func TestWasmPodExec(t *testing.T) {
	host := testRegistry(t, map[string][]byte{"web:1": httpserverModule(t)})
	e, cs := moreEngine(t, "more-5", "127.66.208.0/22")
	ctx := context.Background()
	if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "exec-cfg"},
		Data: map[string]string{"GREETING": "hello through exec"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c := webContainer("web", host+"/web:1")
	c.EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "exec-cfg"}}}}
	createPods(t, cs, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: corev1.PodSpec{NodeName: "more-5",
		Containers: []corev1.Container{c}}})
	waitPod(t, cs, "default", "web", moreWait, "runs", func(p *corev1.Pod) bool { return isRunning(p, "web") })

	cfg, err := clientcmd.BuildConfigFromFlags("", e.KubeconfigPath()) // upgrades need a real connection
	if err != nil {
		t.Fatal(err)
	}
	netcs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	run := func(t *testing.T, protocol, pod string, cmd ...string) (string, string, error) {
		t.Helper()
		u := netcs.CoreV1().RESTClient().Post().Namespace("default").Resource("pods").Name(pod).SubResource("exec").
			VersionedParams(&corev1.PodExecOptions{Container: "web", Command: cmd, Stdout: true, Stderr: true}, scheme.ParameterCodec).URL()
		var ex remotecommand.Executor
		if protocol == "websocket" {
			ex, err = remotecommand.NewWebSocketExecutor(cfg, "GET", u.String())
		} else {
			ex, err = remotecommand.NewSPDYExecutor(cfg, "POST", u)
		}
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		var stdout, stderr strings.Builder
		err := ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &stdout, Stderr: &stderr})
		return stdout.String(), stderr.String(), err
	}
	for _, protocol := range []string{"websocket", "spdy"} {
		t.Run(protocol, func(t *testing.T) {
			out, errOut, err := run(t, protocol, "web", "httpserver", "env")
			if err != nil || !strings.Contains(out, "GREETING=hello through exec\n") || !strings.Contains(out, "HOSTNAME=web\n") {
				t.Errorf("exec httpserver env: %v\nstdout: %s\nstderr: %s", err, out, errOut)
			}
			for _, tc := range []struct {
				cmd    []string
				code   int
				stderr string
			}{
				{[]string{"httpserver", "cat", "/no/such/file"}, 1, "cat: open /no/such/file"},
				{[]string{"httpserver", "bogus"}, 2, "usage: httpserver"},
			} {
				_, errOut, err := run(t, protocol, "web", tc.cmd...)
				var exit utilexec.ExitError
				if !errors.As(err, &exit) || exit.ExitStatus() != tc.code {
					t.Errorf("exec %q: %v (%T), want exit code %d", tc.cmd, err, err, tc.code)
				}
				if !strings.Contains(errOut, tc.stderr) {
					t.Errorf("exec %q: stderr %q, want %q", tc.cmd, errOut, tc.stderr)
				}
			}
		})
	}

	// An exec runs in the environment the container started with: a
	// ConfigMap changed or deleted since does not matter, as a process
	// exec'd into a container inherits nothing from the ConfigMap either.
	t.Run("after the ConfigMap changed", func(t *testing.T) {
		cm, err := cs.CoreV1().ConfigMaps("default").Get(ctx, "exec-cfg", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cm.Data["GREETING"] = "changed"
		if _, err := cs.CoreV1().ConfigMaps("default").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		out, errOut, err := run(t, "websocket", "web", "httpserver", "env")
		if err != nil || !strings.Contains(out, "GREETING=hello through exec\n") {
			t.Errorf("exec after the ConfigMap changed: %v\nstdout: %s\nstderr: %s", err, out, errOut)
		}
		if err := cs.CoreV1().ConfigMaps("default").Delete(ctx, "exec-cfg", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		out, errOut, err = run(t, "websocket", "web", "httpserver", "env")
		if err != nil || !strings.Contains(out, "GREETING=hello through exec\n") {
			t.Errorf("exec fails once the container's ConfigMap is deleted (agent/streams.go Exec calls prepare, "+
				"which resolves envFrom again): %v\nstdout: %s\nstderr: %s", err, out, errOut)
		}
	})

	// A container that is not running has nothing to exec into: kubectl
	// refuses a completed pod itself, and a kubelet answers an exec into a
	// container that is not running with an error ("container not found").
	t.Run("completed pod", func(t *testing.T) {
		createPods(t, cs, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "done"}, Spec: corev1.PodSpec{NodeName: "more-5",
			RestartPolicy: corev1.RestartPolicyNever,
			Containers:    []corev1.Container{{Name: "web", Image: host + "/web:1", Args: []string{"env"}}}}})
		waitPod(t, cs, "default", "done", moreWait, "succeeds", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodSucceeded })
		out, errOut, err := run(t, "websocket", "done", "httpserver", "env")
		if err == nil {
			t.Errorf("exec into the terminated container of a Succeeded pod ran a new instance (stdout %q, stderr %q); "+
				"want an error: the container is not running", out, errOut)
		}
	})
}

// A downward API volume and a projected volume (a Secret's and a
// ConfigMap's items at paths of their own, and a downward API file) are
// files the module reads.
func TestWasmPodProjectedVolumes(t *testing.T) {
	host := testRegistry(t, map[string][]byte{"printenv:1": testGuest(t, "printenv"), "web:1": httpserverModule(t)})
	_, cs := moreEngine(t, "more-6", "127.66.212.0/22")
	ctx := context.Background()
	if _, err := cs.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "proj-sec"},
		Data: map[string][]byte{"msg": []byte("from a projected secret"), "other": []byte("not projected")}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "proj-cm"},
		Data: map[string]string{"k": "from a projected configmap"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	downward := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "downward",
		Labels: map[string]string{"app": "dw", "tier": "front-end"}, Annotations: map[string]string{"note": "an annotation"}},
		Spec: corev1.PodSpec{NodeName: "more-6", RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{Name: "cat", Image: host + "/web:1",
				Args:         []string{"cat", "/etc/podinfo/labels", "/etc/podinfo/annotations", "/etc/podinfo/name"},
				VolumeMounts: []corev1.VolumeMount{{Name: "podinfo", MountPath: "/etc/podinfo"}}}},
			Volumes: []corev1.Volume{{Name: "podinfo", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{
				Items: []corev1.DownwardAPIVolumeFile{
					{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
					{Path: "annotations", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations"}},
					{Path: "name", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}}}}}}}
	mount := []corev1.VolumeMount{{Name: "proj", MountPath: "/config"}}
	projected := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "projected"}, Spec: corev1.PodSpec{NodeName: "more-6",
		RestartPolicy: corev1.RestartPolicyNever,
		Containers: []corev1.Container{
			{Name: "printenv", Image: host + "/printenv:1", VolumeMounts: mount},
			{Name: "cat", Image: host + "/web:1", Args: []string{"cat", "/config/sub/extra.txt", "/config/podname", "/config/other"},
				VolumeMounts: mount}},
		Volumes: []corev1.Volume{{Name: "proj", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{
				{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "proj-sec"},
					Items: []corev1.KeyToPath{{Key: "msg", Path: "message.txt"}}}},
				{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "proj-cm"},
					Items: []corev1.KeyToPath{{Key: "k", Path: "sub/extra.txt"}}}},
				{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{
					{Path: "podname", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}}}}}}}}}}
	createPods(t, cs, downward, projected)

	p := waitPod(t, cs, "default", "downward", moreWait, "succeeds", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodSucceeded })
	out := waitLogs(t, cs, "downward", corev1.PodLogOptions{}, `app="dw"`, `tier="front-end"`, `note="an annotation"`)
	if !strings.Contains(out, `note="an annotation"downward`) { // cat prints the files back to back
		t.Errorf("downward API files: the name file is not the pod's name:\n%s", out)
	}
	if strings.Contains(out, "cat:") {
		t.Errorf("a downward API file is missing:\n%s (status %+v)", out, p.Status.ContainerStatuses)
	}

	// The cat container exits 1 (see below), so under Never the pod ends
	// Failed once both containers are done.
	p = waitPod(t, cs, "default", "projected", moreWait, "ends", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	waitLogs(t, cs, "projected", corev1.PodLogOptions{Container: "printenv"}, "message=from a projected secret")
	out = waitLogs(t, cs, "projected", corev1.PodLogOptions{Container: "cat"}, "from a projected configmapprojected")
	// Only the listed item of the Secret is projected: cat of "other"
	// fails, so the container exits 1.
	if !strings.Contains(out, "cat: open /config/other") || strings.Contains(out, "not projected") {
		t.Errorf("a Secret key that is not an item was projected:\n%s", out)
	}
	if c := containerStatus(p.Status.ContainerStatuses, "cat"); c == nil || c.State.Terminated == nil || c.State.Terminated.ExitCode != 1 {
		t.Errorf("cat container = %+v, want exit 1 for the missing file", c)
	}
}

// $(VAR) in command, args and env values expands from the container's
// environment; $$ escapes a dollar; an unknown $(VAR) stays as written.
func TestWasmPodEnvExpansion(t *testing.T) {
	host := testRegistry(t, map[string][]byte{"printenv:1": testGuest(t, "printenv")})
	_, cs := moreEngine(t, "more-7", "127.66.216.0/22")
	createPods(t, cs, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "expand"}, Spec: corev1.PodSpec{NodeName: "more-7",
		RestartPolicy: corev1.RestartPolicyNever,
		Containers: []corev1.Container{{Name: "c", Image: host + "/printenv:1",
			Command: []string{"$(PROG)"},
			Args:    []string{"$(GREETING)", "$$(GREETING)", "$(NOPE)", "a$$b", "say $(GREETING)!"},
			Env: []corev1.EnvVar{{Name: "PROG", Value: "printenv"}, {Name: "GREETING", Value: "hi there"},
				{Name: "REF", Value: "$(GREETING), again"}, {Name: "ESCAPED", Value: "$$(GREETING)"}}}}}})
	waitPod(t, cs, "default", "expand", moreWait, "succeeds", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodSucceeded })
	waitLogs(t, cs, "expand", corev1.PodLogOptions{},
		`args=["printenv" "hi there" "$(GREETING)" "$(NOPE)" "a$b" "say hi there!"]`,
		`"REF=hi there, again"`, `"ESCAPED=$(GREETING)"`, "GREETING=hi there\n")
}

// badImportModule is a WASI command whose one import no runtime provides:
//
//	(module (import "skiffnope" "missing" (func)) (func (export "_start")))
func badImportModule() []byte {
	b := []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}
	b = append(b, 0x01, 0x04, 0x01, 0x60, 0x00, 0x00) // type section: () -> ()
	imp := []byte{0x01, 9}
	imp = append(imp, "skiffnope"...)
	imp = append(imp, 7)
	imp = append(imp, "missing"...)
	imp = append(imp, 0x00, 0x00) // a function of type 0
	b = append(b, 0x02, byte(len(imp)))
	b = append(b, imp...)
	b = append(b, 0x03, 0x02, 0x01, 0x00) // function section: one of type 0
	exp := []byte{0x01, 6}
	exp = append(exp, "_start"...)
	exp = append(exp, 0x00, 0x01) // function 1 (0 is the import)
	b = append(b, 0x07, byte(len(exp)))
	b = append(b, exp...)
	b = append(b, 0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b) // code section: an empty body
	return b
}

// An image whose Wasm layer is not Wasm, and a module importing what the
// runtime does not provide: each container says why in its status, and
// the node goes on running other pods.
func TestWasmPodBadModules(t *testing.T) {
	garbage := []byte(strings.Repeat("this is not a Wasm module\n", 20))
	host := testRegistry(t, map[string][]byte{"garbage:1": garbage, "badimport:1": badImportModule(), "sleeper:1": sleeper.Module()})
	_, cs := moreEngine(t, "more-8", "127.66.220.0/22")
	const node = "more-8"
	createPods(t, cs,
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "garbage"}, Spec: corev1.PodSpec{NodeName: node,
			Containers: []corev1.Container{{Name: "g", Image: host + "/garbage:1"}}}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "badimport"}, Spec: corev1.PodSpec{NodeName: node, RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{Name: "b", Image: host + "/badimport:1"}}}})

	p := waitPod(t, cs, "default", "garbage", moreWait, "fails to pull", func(p *corev1.Pod) bool {
		c := containerStatus(p.Status.ContainerStatuses, "g")
		return c != nil && c.State.Waiting != nil && (c.State.Waiting.Reason == "ErrImagePull" || c.State.Waiting.Reason == "ImagePullBackOff")
	})
	if msg := p.Status.ContainerStatuses[0].State.Waiting.Message; !strings.Contains(msg, "garbage:1") || !strings.Contains(msg, "magic") {
		t.Errorf("garbage image: waiting message %q, want the image and the reason (no Wasm magic number)", msg)
	}
	if p.Status.Phase != corev1.PodPending {
		t.Errorf("garbage pod phase %s, want Pending", p.Status.Phase)
	}

	p = waitPod(t, cs, "default", "badimport", moreWait, "fails", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	term := p.Status.ContainerStatuses[0].State.Terminated
	if term == nil || term.ExitCode != 128 || !strings.Contains(term.Message, "skiffnope") {
		t.Errorf("bad import: container state %+v, want terminated 128 naming the missing import", p.Status.ContainerStatuses[0].State)
	}
	badImportReason := ""
	if term != nil {
		badImportReason = term.Reason
	}

	// The node is fine: a good pod still runs.
	createPods(t, cs, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "healthy"}, Spec: corev1.PodSpec{NodeName: node,
		Containers: []corev1.Container{{Name: "s", Image: host + "/sleeper:1"}}}})
	waitPod(t, cs, "default", "healthy", moreWait, "runs", func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodRunning && podCondition(p, corev1.PodReady) == corev1.ConditionTrue
	})
	n, err := cs.CoreV1().Nodes().Get(context.Background(), node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady && c.Status != corev1.ConditionTrue {
			t.Errorf("node %s: Ready %s (%s)", node, c.Status, c.Message)
		}
	}

	// As a kubelet reports a container its runtime could not start: the
	// reason StartError (exit code 128), a Warning event saying why, and no
	// Started event. The events were sent before the healthy pod ran.
	var bugs []string
	if badImportReason != "StartError" {
		bugs = append(bugs, fmt.Sprintf("terminated reason %q, want StartError (agent/container.go runOnce rewrites "+
			"every non-zero exit's reason to Error, the runtime's StartError too)", badImportReason))
	}
	evs, err := cs.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=badimport"})
	if err != nil {
		t.Fatal(err)
	}
	warned := false
	for _, ev := range evs.Items {
		if ev.Type == corev1.EventTypeWarning && strings.Contains(ev.Message, "skiffnope") {
			warned = true
		}
		if ev.Reason == "Started" {
			bugs = append(bugs, "a Started event for a container that never started: "+ev.Message)
		}
	}
	if !warned {
		bugs = append(bugs, "no Warning event says why the container did not start (runtime/wasm/pod.go Start "+
			"instantiates on the process's goroutine, so the agent sees a start that succeeded and an exit)")
	}
	if len(bugs) > 0 {
		t.Errorf("a module that cannot be instantiated: %s", strings.Join(bugs, "; "))
	}
}
