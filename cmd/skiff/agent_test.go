package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
)

// startProcess runs the skiff binary with args, waits until a line of its
// log contains ready, and ends it (by its PID) when the test ends.
func startProcess(t *testing.T, ready string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(buildSkiffOnce(t), args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	found := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		once := false
		for sc.Scan() { // drains the log for the process's life
			if !once && strings.Contains(sc.Text(), ready) {
				once = true
				close(found)
			}
		}
	}()
	select {
	case <-found:
	case <-time.After(60 * time.Second):
		t.Fatalf("skiff %s: no %q within 60s", args[0], ready)
	}
	return cmd
}

// The command-line contract's worker: `skiff agent --server HOST:PORT --token
// T --data-dir DIR --node-name NAME` joins a node to a `skiff server`
// through its API address and its bus; the scheduler places a Wasm pod on it,
// which serves on its own pod range, and kubectl reaches its logs and exec
// through the bus.
func TestAgentJoinsAndRunsPods(t *testing.T) {
	if _, err := exec.LookPath("kubectl"); err != nil {
		t.Skip("kubectl is not installed: ", err)
	}
	dir := t.TempDir()
	startProcess(t, `msg="engine ready"`, "server", "--data-dir", dir, "--node-name", "cp", "--api-listen", "127.0.0.1:0",
		"--image-hosts", "loopback", "--cluster-pod-cidr", "127.73.0.0/16", "--service-cidr", "127.74.0.0/16")
	kubeconfig := filepath.Join(dir, "kubeconfig.yaml")
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	startProcess(t, `msg="worker ready"`, "agent", "--server", strings.TrimPrefix(rc.Host, "https://"),
		"--token-file", filepath.Join(dir, "token"), "--data-dir", t.TempDir(), "--node-name", "edge-1", "--image-hosts", "loopback")

	c := &cluster{t: t, dir: dir, kubeconfig: kubeconfig, cacheDir: filepath.Join(dir, "kubectl-cache")}
	if err := until(150, func() error {
		out := c.ok("", "get", "node", "edge-1", "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status} {.spec.podCIDR} {.metadata.labels.skiff\\.dev/runtime-wasm}")
		if out != "True 127.73.16.0/20 true" {
			return fmt.Errorf("edge-1: %q", out)
		}
		return nil
	}); err != nil {
		t.Fatalf("the worker's node: %v\n%s", err, c.ok("", "get", "nodes", "-o", "wide"))
	}
	contains(t, "get nodes", c.ok("", "get", "nodes", "-o", "wide"), "cp ", "edge-1", "wazero://")

	c.importModule("../../examples/httpserver", "web:1")
	c.ok(`apiVersion: v1
kind: Pod
metadata: {name: on-edge, namespace: default}
spec:
  runtimeClassName: wasm
  nodeSelector: {kubernetes.io/hostname: edge-1}
  containers:
  - name: web
    image: web:1
    env: [{name: GREETING, value: "hello from the edge"}]
    ports: [{containerPort: 8080}]
    readinessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 1}
`, "apply", "-f", "-")
	c.ok("", "wait", "pod/on-edge", "--for=condition=Ready", "--timeout=90s")
	got := c.ok("", "get", "pod", "on-edge", "-o", "jsonpath={.spec.nodeName} {.status.podIP}")
	node, ip, _ := strings.Cut(got, " ")
	if node != "edge-1" || !strings.HasPrefix(ip, "127.73.1") {
		t.Fatalf("pod on %q with IP %q, want edge-1 with an IP of 127.73.16.0/20", node, ip)
	}
	code, body, err := httpGet("http://" + ip + ":8080/")
	if err != nil || code != 200 {
		t.Fatalf("GET %s: %d %v", ip, code, err)
	}
	contains(t, "answer", body, "hello from the edge from on-edge")
	contains(t, "logs through the bus", c.ok("", "logs", "on-edge"), "GET /")
	contains(t, "exec through the bus", c.ok("", "exec", "on-edge", "--", "httpserver", "env"), "GREETING=hello from the edge")
	contains(t, "events from the worker's kubelet", c.ok("", "describe", "pod", "on-edge"), "Successfully assigned default/on-edge to edge-1", "Started")
}

// The README's first command: `skiff server --demo` prints a curl command
// that answers.
func TestServerDemo(t *testing.T) {
	cmd := exec.Command(buildSkiffOnce(t), "server", "--data-dir", t.TempDir(), "--node-name", "demo", "--api-listen", "127.0.0.1:0",
		"--demo", "--image-hosts", "loopback", "--service-cidr", "127.75.0.0/16", "--cluster-pod-cidr", "127.76.0.0/16")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	})
	urls := make(chan string, 1)
	var mu sync.Mutex
	var printed strings.Builder
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			mu.Lock()
			printed.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if u, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "curl "); ok {
				urls <- u
			}
		}
	}()
	select {
	case u := <-urls:
		code, body, err := httpGet(u)
		if err != nil || code != 200 || !strings.Contains(body, "Hello from a Wasm pod on skiff from hello-") {
			t.Fatalf("GET %s: %d %v %q", u, code, err, body)
		}
	case <-time.After(120 * time.Second):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("no curl line within 120s; printed:\n%s", printed.String())
	}
}
