package engine

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiffhq/skiff/internal/apiserver/podstreams"
	"github.com/skiffhq/skiff/internal/testutil"
)

// kubectl's cp, attach and debug against Wasm pods, with the real kubectl
// binary. Pod addresses come from 127.66.228.0/22, one /24 per test.

// kubectlRunner runs the installed kubectl against an engine, with its
// own discovery cache.
type kubectlRunner struct {
	t          *testing.T
	kubeconfig string
	cacheDir   string
	env        []string // added to the environment of every run
}

func newKubectl(t *testing.T, e *Engine) *kubectlRunner {
	t.Helper()
	if _, err := exec.LookPath("kubectl"); err != nil {
		t.Skip("kubectl is not installed: ", err)
	}
	return &kubectlRunner{t: t, kubeconfig: e.KubeconfigPath(), cacheDir: t.TempDir()}
}

// run runs kubectl (bounded in time) in dir and returns its stdout, stderr
// and exit code.
func (k *kubectlRunner) run(dir, stdin string, args ...string) (string, string, int) {
	k.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kubectl", append([]string{"--kubeconfig", k.kubeconfig, "--cache-dir", k.cacheDir}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), k.env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		k.t.Fatalf("kubectl %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// ok runs kubectl and fails the test unless it succeeds.
func (k *kubectlRunner) ok(dir, stdin string, args ...string) string {
	k.t.Helper()
	out, errOut, code := k.run(dir, stdin, args...)
	if code != 0 {
		k.t.Fatalf("kubectl %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// `kubectl cp` both ways with a Wasm pod: the node serves kubectl's tar and
// test itself, on the pod's volumes only. The module then reads what was
// copied in, and what it wrote comes back out.
func TestKubectlCpWasmPod(t *testing.T) {
	host := testRegistry(t, map[string][]byte{"web:1": httpserverModule(t)})
	e, cs := moreEngine(t, "cp-1", "127.66.228.0/24")
	k := newKubectl(t, e)
	c := webContainer("web", host+"/web:1")
	c.VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}, {Name: "cfg", MountPath: "/config", ReadOnly: true}}
	limit := resource.MustParse("1Mi")
	createPods(t, cs, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "box"}, Spec: corev1.PodSpec{NodeName: "cp-1",
		Containers: []corev1.Container{c},
		Volumes: []corev1.Volume{
			{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: &limit}}},
			{Name: "cfg", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		}}})
	waitPod(t, cs, "default", "box", moreWait, "runs", func(p *corev1.Pod) bool { return isRunning(p, "web") })

	local := t.TempDir()
	if err := os.WriteFile(filepath.Join(local, "hello.txt"), []byte("hello from kubectl cp\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(local, "tree", "sub"), 0o755)
	os.WriteFile(filepath.Join(local, "tree", "sub", "deep.txt"), []byte("deep\n"), 0o644)

	// Into the pod: a file to a file name, a file into a directory, a
	// directory.
	k.ok(local, "", "cp", "hello.txt", "box:/data/hello.txt")
	k.ok(local, "", "cp", "hello.txt", "box:/data")
	k.ok(local, "", "cp", "tree", "box:/data/tree")
	k.ok(local, "", "cp", "--no-preserve", "hello.txt", "box:/data/plain.txt")
	// The module sees them.
	if out := k.ok(local, "", "exec", "box", "--", "httpserver", "cat", "/data/hello.txt", "/data/tree/sub/deep.txt", "/data/plain.txt"); out != "hello from kubectl cp\ndeep\nhello from kubectl cp\n" {
		t.Fatalf("the module reads %q", out)
	}
	// Out of the pod: a file, and a directory.
	k.ok(local, "", "cp", "box:/data/hello.txt", "back.txt")
	if b, _ := os.ReadFile(filepath.Join(local, "back.txt")); string(b) != "hello from kubectl cp\n" {
		t.Fatalf("copied back: %q", b)
	}
	k.ok(local, "", "cp", "box:/data/tree", "tree-back")
	if b, _ := os.ReadFile(filepath.Join(local, "tree-back", "sub", "deep.txt")); string(b) != "deep\n" {
		t.Fatalf("directory copied back: %q", b)
	}

	// Outside the pod's volumes there is nothing, and read-only volumes and
	// the emptyDir's sizeLimit hold.
	// kubectl cp prints the remote tar's stderr on its stdout, and may exit
	// 0 (the empty archive arrives before the exit code, as with GNU tar in
	// a container); exec shows what the node's tar answers.
	out, _, _ := k.run(local, "", "cp", "box:/etc/passwd", "passwd")
	if _, err := os.Stat(filepath.Join(local, "passwd")); err == nil {
		t.Fatalf("a file from outside the pod's volumes was copied (kubectl said %q)", out)
	}
	_, errOut, code := k.run(local, "", "exec", "box", "--", "tar", "cf", "-", "/etc/passwd")
	if code != 2 || !strings.Contains(errOut, "tar: /etc/passwd: Cannot stat: No such file or directory\n") {
		t.Fatalf("tar of /etc/passwd: exit %d %s", code, errOut)
	}
	_, errOut, code = k.run(local, "", "cp", "hello.txt", "box:/config/hello.txt")
	if code == 0 || !strings.Contains(errOut, "Read-only file system") {
		t.Fatalf("cp into a read-only volume: exit %d %s", code, errOut)
	}
	if err := os.WriteFile(filepath.Join(local, "big"), bytes.Repeat([]byte("x"), 2<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, code = k.run(local, "", "cp", "big", "box:/data/big")
	if code == 0 || !strings.Contains(errOut, "No space left on device") {
		t.Fatalf("cp past the emptyDir's sizeLimit: exit %d %s", code, errOut)
	}
}

// `kubectl attach -i` to a Wasm pod whose container reads its stdin
// (stdin: true, stdinOnce: true) and echoes it: the lines come back through
// the attach, the end of kubectl's input is the container's (stdinOnce), and
// the container then ends; its log has the lines too.
func TestKubectlAttachWasmPod(t *testing.T) {
	host := testRegistry(t, map[string][]byte{"web:1": httpserverModule(t)})
	e, cs := moreEngine(t, "attach-1", "127.66.229.0/24")
	k := newKubectl(t, e)
	createPods(t, cs, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "echo"}, Spec: corev1.PodSpec{NodeName: "attach-1",
		RestartPolicy: corev1.RestartPolicyNever,
		Containers: []corev1.Container{{Name: "echo", Image: host + "/web:1", Command: []string{"httpserver", "cat", "-"},
			Stdin: true, StdinOnce: true}}}})
	waitPod(t, cs, "default", "echo", moreWait, "runs", func(p *corev1.Pod) bool { return isRunning(p, "echo") })

	out := k.ok("", "hello\nworld\n", "attach", "-i", "echo", "-c", "echo")
	if !strings.Contains(out, "hello\nworld\n") {
		t.Fatalf("kubectl attach printed %q", out)
	}
	p := waitPod(t, cs, "default", "echo", moreWait, "ends", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodSucceeded })
	if st := containerStatus(p.Status.ContainerStatuses, "echo"); st == nil || st.State.Terminated == nil || st.State.Terminated.ExitCode != 0 {
		t.Fatalf("container status after stdin closed: %+v", st)
	}
	waitLogs(t, cs, "echo", corev1.PodLogOptions{Container: "echo"}, "hello\nworld\n")
	// kubectl run -i --rm: a pod with stdin and stdinOnce, attached to as
	// soon as it runs, deleted afterwards; here over SPDY, kubectl's
	// fallback and older kubectls' only protocol.
	k.env = []string{"KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false"}
	out = k.ok("", "one line\n", "run", "once", "-i", "--rm", "--restart=Never", "--image="+host+"/web:1",
		"--overrides", `{"spec":{"nodeName":"attach-1"}}`, "--command", "--", "httpserver", "cat", "-")
	if !strings.Contains(out, "one line\n") || !strings.Contains(out, `pod "once" deleted`) {
		t.Fatalf("kubectl run -i --rm printed %q", out)
	}
	k.env = nil
	if up := podstreams.Upgrades(); up["attach-v5"] == 0 || up["attach-spdy"] == 0 {
		t.Fatalf("attach protocols served: %v, want WebSocket v5 and SPDY", up)
	}
	// Attach to a finished pod is refused, as kubectl refuses it.
	_, errOut, code := k.run("", "", "attach", "echo")
	if code == 0 || !strings.Contains(errOut, "completed pod") {
		t.Fatalf("attach to a completed pod: exit %d %s", code, errOut)
	}
}

// `kubectl debug POD --image=... --target=c -- cmd`: an ephemeral container
// runs once in the pod, with the target's volumes and environment, and its
// output is in its log; its status is in ephemeralContainerStatuses. A
// second one of the same name is refused, as by Kubernetes' validation.
func TestKubectlDebugWasmPod(t *testing.T) {
	host := testRegistry(t, map[string][]byte{"web:1": httpserverModule(t)})
	e, cs := moreEngine(t, "debug-1", "127.66.230.0/24")
	k := newKubectl(t, e)
	c := webContainer("web", host+"/web:1")
	c.Env = []corev1.EnvVar{{Name: "GREETING", Value: "hello from the target"}}
	c.VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
	createPods(t, cs, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "app"}, Spec: corev1.PodSpec{NodeName: "debug-1",
		Containers: []corev1.Container{c},
		Volumes:    []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}}})
	waitPod(t, cs, "default", "app", moreWait, "runs", func(p *corev1.Pod) bool { return isRunning(p, "web") })
	local := t.TempDir()
	os.WriteFile(filepath.Join(local, "note.txt"), []byte("a note in the volume\n"), 0o644)
	k.ok(local, "", "cp", "note.txt", "app:/data/note.txt", "-c", "web")

	k.ok(local, "", "debug", "app", "--image="+host+"/web:1", "-c", "dbg", "--target=web", "--", "httpserver", "cat", "/data/note.txt")
	k.ok(local, "", "debug", "app", "--image="+host+"/web:1", "-c", "dbg-env", "--target=web", "--", "httpserver", "env")
	waitLogs(t, cs, "app", corev1.PodLogOptions{Container: "dbg"}, "a note in the volume\n")
	waitLogs(t, cs, "app", corev1.PodLogOptions{Container: "dbg-env"}, "GREETING=hello from the target")
	if out := k.ok(local, "", "logs", "app", "-c", "dbg"); out != "a note in the volume\n" {
		t.Fatalf("kubectl logs -c dbg: %q", out)
	}
	p := waitPod(t, cs, "default", "app", moreWait, "reports the debug container", func(p *corev1.Pod) bool {
		st := containerStatus(p.Status.EphemeralContainerStatuses, "dbg")
		return st != nil && st.State.Terminated != nil
	})
	if st := containerStatus(p.Status.EphemeralContainerStatuses, "dbg"); st.State.Terminated.ExitCode != 0 {
		t.Fatalf("debug container ended %+v", st.State.Terminated)
	}
	if !isRunning(p, "web") || p.Status.Phase != corev1.PodRunning {
		t.Fatalf("the pod after debugging: %s, web running %v", p.Status.Phase, isRunning(p, "web"))
	}
	// kubectl debug -i: the ephemeral container gets stdin, and kubectl
	// attaches once it runs. Without stdinOnce (kubectl debug sets none)
	// the container's input stays open after kubectl's ends, as with any
	// runtime, so `cat -` keeps running: kubectl is stopped once the echo
	// came back.
	debugInteractive(t, k, local, "app", "--image="+host+"/web:1", "-c", "dbg-i", "--target=web", "--", "httpserver", "cat", "-")

	// The subresource's validation, as Kubernetes': names are unique in the
	// pod, an image is required, ports and resources are not for an
	// ephemeral container, and existing ones stay as they are.
	for _, tc := range []struct {
		change func(p *corev1.Pod)
		want   string
	}{
		{func(p *corev1.Pod) {
			p.Spec.EphemeralContainers = append(p.Spec.EphemeralContainers, corev1.EphemeralContainer{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
				Name: "web", Image: host + "/web:1"}})
		}, "Duplicate value"},
		{func(p *corev1.Pod) {
			p.Spec.EphemeralContainers = append(p.Spec.EphemeralContainers, corev1.EphemeralContainer{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
				Name: "noimage"}})
		}, "image: Required value"},
		{func(p *corev1.Pod) {
			p.Spec.EphemeralContainers = append(p.Spec.EphemeralContainers, corev1.EphemeralContainer{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
				Name: "ported", Image: host + "/web:1", Ports: []corev1.ContainerPort{{ContainerPort: 9000}}}})
		}, "ports: Forbidden"},
		{func(p *corev1.Pod) {
			p.Spec.EphemeralContainers = append(p.Spec.EphemeralContainers, corev1.EphemeralContainer{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
				Name: "limited", Image: host + "/web:1", Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")}}}})
		}, "resources: Forbidden"},
		{func(p *corev1.Pod) { p.Spec.EphemeralContainers = p.Spec.EphemeralContainers[1:] }, "may not be removed"},
		{func(p *corev1.Pod) { p.Spec.EphemeralContainers[0].Command = []string{"other"} }, "may not be changed"},
	} {
		cur, err := cs.CoreV1().Pods("default").Get(context.Background(), "app", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		tc.change(cur)
		_, err = cs.CoreV1().Pods("default").UpdateEphemeralContainers(context.Background(), "app", cur, metav1.UpdateOptions{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ephemeral containers update: %v, want %q", err, tc.want)
		}
	}
	// Through the pod itself they cannot be changed at all.
	cur, _ := cs.CoreV1().Pods("default").Get(context.Background(), "app", metav1.GetOptions{})
	cur.Spec.EphemeralContainers = cur.Spec.EphemeralContainers[:1]
	if _, err := cs.CoreV1().Pods("default").Update(context.Background(), cur, metav1.UpdateOptions{}); err == nil {
		t.Error("a pod update removed an ephemeral container")
	}
}

// debugInteractive runs `kubectl debug -i` with a line on its stdin and
// waits (bounded) until the line comes back through the attach; then it
// ends kubectl, its own child, by its pid.
func debugInteractive(t *testing.T, k *kubectlRunner, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("kubectl", append([]string{"--kubeconfig", k.kubeconfig, "--cache-dir", k.cacheDir, "debug", "-i"}, args...)...)
	cmd.Dir = dir
	pr, pw := io.Pipe()
	cmd.Stdin = pr
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		pw.Close()
		cmd.Process.Kill()
		cmd.Wait()
	}()
	// The line goes in once the container runs and kubectl attached; a
	// line sent earlier would wait in kubectl's input until then anyway.
	go func() { io.WriteString(pw, "ping through debug -i\n") }()
	if err := testutil.Poll(moreWait, func() error {
		if !strings.Contains(out.String(), "ping through debug -i") {
			return fmt.Errorf("kubectl debug -i printed %q", out.String())
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// syncBuffer is a bytes.Buffer safe for a process's writes and the test's
// reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
