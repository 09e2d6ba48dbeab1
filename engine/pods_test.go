package engine

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiffhq/skiff/internal/sleeper"
	"github.com/skiffhq/skiff/internal/testutil"
	"github.com/skiffhq/skiff/runtime/image"
)

// Test guests come from runtime/wasm/testdata, built once per test binary.
var (
	guestsOnce sync.Once
	guestsErr  error
	guestsDir  string
)

func testGuest(t *testing.T, name string) []byte {
	t.Helper()
	guestsOnce.Do(func() {
		guestsDir, guestsErr = os.MkdirTemp("", "skiff-engine-guests-")
		if guestsErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", guestsDir+string(filepath.Separator),
			"../runtime/wasm/testdata/printenv", "../runtime/wasm/testdata/exitcode", "../runtime/wasm/testdata/membomb",
			"../runtime/wasm/testdata/sleeper")
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		if out, err := cmd.CombinedOutput(); err != nil {
			guestsErr = fmt.Errorf("build guests: %v\n%s", err, out)
		}
	})
	if guestsErr != nil {
		t.Fatal(guestsErr)
	}
	b, err := os.ReadFile(filepath.Join(guestsDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testRegistry is an OCI registry on loopback holding the given modules as
// Wasm images; it returns the registry's host:port.
func testRegistry(t *testing.T, modules map[string][]byte) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	for ref, wasm := range modules {
		img, err := mutate.AppendLayers(empty.Image, static.NewLayer(wasm, image.MediaTypeWasmLayer))
		if err != nil {
			t.Fatal(err)
		}
		img = mutate.MediaType(img, types.OCIManifestSchema1)
		r, err := name.ParseReference(host + "/" + ref)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(r, img); err != nil {
			t.Fatalf("push %s: %v", ref, err)
		}
	}
	return host
}

func waitPod(t *testing.T, cs kubernetes.Interface, ns, name string, timeout time.Duration, what string, ok func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	var last *corev1.Pod
	err := testutil.Poll(timeout, func() error {
		p, err := cs.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		last = p
		if !ok(p) {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	if err != nil {
		var st any
		if last != nil {
			st = last.Status
		}
		t.Fatalf("pod %s/%s: %s: %v; last status: %+v", ns, name, what, err, st)
	}
	return last
}

func TestWasmPodRunsWithEnvAndVolumes(t *testing.T) {
	host := testRegistry(t, map[string][]byte{"printenv:1": testGuest(t, "printenv")})
	e := startEngine(t, Config{DataDir: t.TempDir(), NodeName: "wasm-1", CrashLoopBackOff: 200 * time.Millisecond})
	cs, err := e.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg"},
		Data: map[string]string{"GREETING": "hello from a ConfigMap"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sec"},
		Data: map[string][]byte{"message.txt": []byte("secret file content")}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "printenv"}, Spec: corev1.PodSpec{
		NodeName: "wasm-1", RestartPolicy: corev1.RestartPolicyNever,
		Containers: []corev1.Container{{Name: "main", Image: host + "/printenv:1",
			EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}},
			Env: []corev1.EnvVar{{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
				{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}}},
			VolumeMounts: []corev1.VolumeMount{{Name: "sec", MountPath: "/config"}}}},
		Volumes: []corev1.Volume{{Name: "sec", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "sec"}}}},
	}}
	if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := waitPod(t, cs, "default", "printenv", 60*time.Second, "succeeds", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodSucceeded })
	if r := netip.MustParsePrefix(e.Config().ClusterPodCIDR); !r.Contains(netip.MustParseAddr(p.Status.PodIP)) {
		t.Errorf("podIP = %q, want one in the cluster's pod range %s", p.Status.PodIP, r)
	}
	cst := p.Status.ContainerStatuses
	if len(cst) != 1 || cst[0].State.Terminated == nil || cst[0].State.Terminated.ExitCode != 0 || !strings.HasPrefix(cst[0].ContainerID, "wasm://") {
		t.Fatalf("container status = %+v", cst)
	}
	logs, err := os.ReadFile(filepath.Join(e.Config().DataDir, agentSubdir, "pods", string(p.UID), "logs", "main", "0.log"))
	if err != nil {
		t.Fatal(err)
	}
	// /etc is the pod's own, which the node writes (resolv.conf, hosts,
	// hostname), as in every Kubernetes container; that the host's files
	// stay out of reach, also by climbing out of a mount, runtime/wasm's
	// own test checks without it.
	for _, want := range []string{"GREETING=hello from a ConfigMap", "message=secret file content", "POD_NAME=printenv",
		"POD_IP=" + p.Status.PodIP, "stdout F /etc/hostname: VISIBLE", "stdout F /config/../etc/hostname: VISIBLE",
		"stderr F to stderr"} {
		if !strings.Contains(string(logs), want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
	etc := filepath.Join(e.Config().DataDir, agentSubdir, "pods", string(p.UID), "etc")
	for name, want := range map[string]string{"hostname": "printenv\n",
		"resolv.conf": "nameserver " + e.clusterDNS() + "\nsearch default.svc.cluster.local svc.cluster.local cluster.local"} {
		if b, err := os.ReadFile(filepath.Join(etc, name)); err != nil || !strings.HasPrefix(string(b), want) {
			t.Errorf("the pod's /etc/%s = %q (%v), want it to start with %q", name, b, err, want)
		}
	}
}

func TestWasmPodCrashLoopAndOOM(t *testing.T) {
	host := testRegistry(t, map[string][]byte{"exitcode:1": testGuest(t, "exitcode"), "membomb:1": testGuest(t, "membomb")})
	e := startEngine(t, Config{DataDir: t.TempDir(), NodeName: "wasm-2", CrashLoopBackOff: 300 * time.Millisecond})
	cs, err := e.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	crash := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "crasher"}, Spec: corev1.PodSpec{NodeName: "wasm-2",
		Containers: []corev1.Container{{Name: "c", Image: host + "/exitcode:1", Args: []string{"3"}}}}}
	bomb := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "bomb"}, Spec: corev1.PodSpec{NodeName: "wasm-2", RestartPolicy: corev1.RestartPolicyNever,
		Containers: []corev1.Container{{Name: "b", Image: host + "/membomb:1",
			Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("32Mi")}}}}}}
	for _, p := range []*corev1.Pod{crash, bomb} {
		if _, err := cs.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	p := waitPod(t, cs, "default", "bomb", 60*time.Second, "ends OOMKilled", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	if term := p.Status.ContainerStatuses[0].State.Terminated; term == nil || term.Reason != "OOMKilled" || term.ExitCode != 137 {
		t.Errorf("bomb container = %+v", p.Status.ContainerStatuses[0].State)
	}
	p = waitPod(t, cs, "default", "crasher", 60*time.Second, "in CrashLoopBackOff after 3 restarts", func(p *corev1.Pod) bool {
		cs := p.Status.ContainerStatuses
		return len(cs) == 1 && cs[0].RestartCount >= 3 && cs[0].State.Waiting != nil && cs[0].State.Waiting.Reason == "CrashLoopBackOff"
	})
	last := p.Status.ContainerStatuses[0].LastTerminationState.Terminated
	if last == nil || last.ExitCode != 3 || last.Reason != "Error" {
		t.Errorf("lastState = %+v, want terminated with exit code 3", p.Status.ContainerStatuses[0].LastTerminationState)
	}
	if msg := p.Status.ContainerStatuses[0].State.Waiting.Message; !strings.Contains(msg, "back-off") {
		t.Errorf("waiting message = %q", msg)
	}
	// The back-off grows: the restart delays double, so the BackOff events
	// carry the growing delays in the container's waiting messages.
	evs, err := cs.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=crasher"})
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]bool{}
	for _, ev := range evs.Items {
		reasons[ev.Reason] = true
	}
	for _, want := range []string{"Pulling", "Pulled", "Created", "Started", "BackOff"} {
		if !reasons[want] {
			t.Errorf("no %s event for the crashing pod; got %v", want, reasons)
		}
	}
}

// A Deployment of Wasm pods goes through the scheduler, the ReplicaSet
// controller and the node agent to Available; after an engine restart the
// pods run again, and the module is not compiled again: the compile cache
// on disk serves it.
func TestWasmDeploymentSurvivesRestartWithoutRecompiling(t *testing.T) {
	host := testRegistry(t, map[string][]byte{"sleeper:1": sleeper.Module()})
	dir := t.TempDir()
	cfg := Config{DataDir: dir, NodeName: "wasm-3", PodCIDR: "127.66.64.0/18"}
	e := startEngine(t, cfg)
	cs, err := e.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	wasmClass := "wasm"
	labels := map[string]string{"app": "sleeper"}
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "sleeper"}, Spec: appsv1.DeploymentSpec{
		Replicas: ptr(int32(2)), Selector: &metav1.LabelSelector{MatchLabels: labels},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
			RuntimeClassName: &wasmClass,
			Containers:       []corev1.Container{{Name: "sleeper", Image: host + "/sleeper:1"}}}}}}
	if _, err := cs.AppsV1().Deployments("default").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitAvailable := func(e *Engine) {
		t.Helper()
		testutil.Eventually(t, 60*time.Second, func() error {
			d, err := cs.AppsV1().Deployments("default").Get(ctx, "sleeper", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if d.Status.AvailableReplicas != 2 || d.Status.ObservedGeneration != d.Generation {
				return fmt.Errorf("status %+v", d.Status)
			}
			return nil
		})
	}
	waitAvailable(e)
	ids := map[string]bool{} // container IDs before the restart: none may come back
	pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=sleeper"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		ids[p.Status.ContainerStatuses[0].ContainerID] = true
	}
	before := e.testWasm().CacheStats()
	if before.Compiled != 1 {
		t.Fatalf("first start: %+v, want the module compiled once", before)
	}
	if err := e.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	restarted := time.Now().Add(-time.Second) // RFC 3339 times have second precision
	e = startEngine(t, cfg)
	if cs, err = e.Clientset(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 60*time.Second, func() error {
		pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=sleeper"})
		if err != nil {
			return err
		}
		back := 0
		for _, p := range pods.Items {
			for _, c := range p.Status.ContainerStatuses {
				if c.State.Running != nil && !c.State.Running.StartedAt.Time.Before(restarted) && c.Ready {
					if ids[c.ContainerID] {
						return fmt.Errorf("container ID %s reused after the restart", c.ContainerID)
					}
					back++
				}
			}
		}
		if back != 2 {
			return fmt.Errorf("%d of 2 pods running again", back)
		}
		return nil
	})
	waitAvailable(e)
	after := e.testWasm().CacheStats()
	if after.Compiled != 0 || after.DiskHits == 0 {
		t.Fatalf("after restart: %+v, want no compilation and a disk cache hit", after)
	}
}

func ptr[T any](v T) *T { return &v }

// Deleting a running pod with a grace period goes through its node: the
// API server marks it deleting, the agent stops its containers ("Killing")
// and reports them stopped, and the control plane then removes the pod.
func TestWasmPodGracefulDelete(t *testing.T) {
	host := testRegistry(t, map[string][]byte{"sleeper:1": sleeper.Module()})
	e := startEngine(t, Config{DataDir: t.TempDir(), NodeName: "wasm-4", PodCIDR: "127.66.128.0/18"})
	cs, err := e.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "doomed"}, Spec: corev1.PodSpec{NodeName: "wasm-4",
		Containers: []corev1.Container{{Name: "s", Image: host + "/sleeper:1"}}}}
	if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := waitPod(t, cs, "default", "doomed", 60*time.Second, "runs", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	if err := cs.CoreV1().Pods("default").Delete(ctx, "doomed", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, func() error {
		_, err := cs.CoreV1().Pods("default").Get(ctx, "doomed", metav1.GetOptions{})
		if err == nil {
			return fmt.Errorf("pod still there")
		}
		return nil
	})
	testutil.Eventually(t, 10*time.Second, func() error {
		evs, err := cs.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.uid=" + string(p.UID)})
		if err != nil {
			return err
		}
		for _, ev := range evs.Items {
			if ev.Reason == "Killing" && ev.Message == "Stopping container s" {
				return nil
			}
		}
		return fmt.Errorf("no Killing event among %d", len(evs.Items))
	})
	if _, err := os.Stat(filepath.Join(e.Config().DataDir, agentSubdir, "pods", string(p.UID))); !os.IsNotExist(err) {
		t.Errorf("the pod's directory is still on the node: %v", err)
	}
}

// A pod that finished before the engine restarted is not run again, and
// its log is still served from the node's disk.
func TestFinishedPodLogsAfterRestart(t *testing.T) {
	host := testRegistry(t, map[string][]byte{"printenv:1": testGuest(t, "printenv")})
	cfg := Config{DataDir: t.TempDir(), NodeName: "wasm-5", PodCIDR: "127.66.240.0/20"}
	e := startEngine(t, cfg)
	cs, err := e.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "once"}, Spec: corev1.PodSpec{NodeName: "wasm-5",
		RestartPolicy: corev1.RestartPolicyNever,
		Containers:    []corev1.Container{{Name: "p", Image: host + "/printenv:1", Env: []corev1.EnvVar{{Name: "GREETING", Value: "before the restart"}}}}}}
	if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPod(t, cs, "default", "once", 60*time.Second, "succeeds", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodSucceeded })
	if err := e.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	e = startEngine(t, cfg)
	if cs, err = e.Clientset(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, func() error {
		b, err := cs.CoreV1().Pods("default").GetLogs("once", &corev1.PodLogOptions{}).DoRaw(ctx)
		if err != nil {
			return err
		}
		if !strings.Contains(string(b), "GREETING=before the restart") {
			return fmt.Errorf("log %q", b)
		}
		return nil
	})
	p, err := cs.CoreV1().Pods("default").Get(ctx, "once", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Status.Phase != corev1.PodSucceeded || p.Status.ContainerStatuses[0].RestartCount != 0 {
		t.Errorf("finished pod changed after the restart: phase %s, restarts %d", p.Status.Phase, p.Status.ContainerStatuses[0].RestartCount)
	}
}

// A ConfigMap volume follows its ConfigMap while the pod runs: changed keys
// are rewritten and removed keys disappear, within the sync period.
func TestConfigMapVolumeRefresh(t *testing.T) {
	host := testRegistry(t, map[string][]byte{"sleeper:1": sleeper.Module()})
	e := startEngine(t, Config{DataDir: t.TempDir(), NodeName: "wasm-6", PodCIDR: "127.66.232.0/22",
		VolumeSyncPeriod: 200 * time.Millisecond})
	cs, err := e.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cms := cs.CoreV1().ConfigMaps("default")
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "live"},
		Data: map[string]string{"color": "blue", "size": "L"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "reader"}, Spec: corev1.PodSpec{NodeName: "wasm-6",
		Containers: []corev1.Container{{Name: "s", Image: host + "/sleeper:1",
			VolumeMounts: []corev1.VolumeMount{{Name: "cfg", MountPath: "/etc/cfg"}}}},
		Volumes: []corev1.Volume{{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "live"}}}}}}}
	if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := waitPod(t, cs, "default", "reader", 60*time.Second, "runs", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	// The directory the guest has pre-opened at /etc/cfg.
	dir := filepath.Join(e.Config().DataDir, agentSubdir, "pods", string(p.UID), "volumes", "cfg")
	file := func(name string) (string, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		return string(b), err
	}
	if got, err := file("color"); err != nil || got != "blue" {
		t.Fatalf("color = %q, %v", got, err)
	}
	cm, err := cms.Get(ctx, "live", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data = map[string]string{"color": "green"}
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, func() error {
		if got, err := file("color"); err != nil || got != "green" {
			return fmt.Errorf("color = %q, %v", got, err)
		}
		if _, err := file("size"); !os.IsNotExist(err) {
			return fmt.Errorf("size still there: %v", err)
		}
		return nil
	})
}
