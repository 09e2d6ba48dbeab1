package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/wasmbuild"
)

// importModule builds an example as a Wasm module and puts it into the
// server's embedded registry with `skiff image import`.
func (c *cluster) importModule(pkg, nameTag string) {
	c.t.Helper()
	file := filepath.Join(c.t.TempDir(), "module.wasm")
	if err := os.WriteFile(file, wasmbuild.Build(c.t, pkg, false), 0o600); err != nil {
		c.t.Fatal(err)
	}
	out, err := runSkiff(c.t, "image", "import", "--kubeconfig", c.kubeconfig, file, nameTag)
	if err != nil {
		c.t.Fatalf("skiff image import %s: %v\n%s", nameTag, err, out)
	}
}

func runSkiff(t *testing.T, args ...string) (string, error) {
	out, err := exec.Command(buildSkiffOnce(t), args...).CombinedOutput()
	return string(out), err
}

// until polls fn every 200 ms, at most n times; it returns fn's last error.
func until(n int, fn func() error) error {
	var err error
	for range n {
		if err = fn(); err == nil {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return err
}

func httpGet(url string) (int, string, error) {
	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b), err
}

const webManifest = `apiVersion: v1
kind: ConfigMap
metadata: {name: web-config, namespace: wasm-acc}
data: {GREETING: "hello from a ConfigMap"}
---
apiVersion: v1
kind: Secret
metadata: {name: web-secret, namespace: wasm-acc}
stringData: {message: "s3cret value"}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: wasm-acc}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      runtimeClassName: wasm
      containers:
      - name: web
        image: web:1
        envFrom: [{configMapRef: {name: web-config}}]
        ports: [{containerPort: 8080, name: http}]
        volumeMounts: [{name: secret, mountPath: /etc/secret}]
        readinessProbe: {httpGet: {path: /healthz, port: http}, periodSeconds: 1}
        livenessProbe: {httpGet: {path: /healthz, port: http}, periodSeconds: 1, failureThreshold: 2}
      volumes:
      - name: secret
        secret: {secretName: web-secret}
`

// The acceptance, with the real kubectl against a `skiff server`:
// a Deployment of a Wasm HTTP module with env from a ConfigMap and a Secret
// volume becomes Ready and serves on each pod IP; logs, exec and liveness
// restarts work; a crashing module backs off; a memory bomb ends OOMKilled
// while the rest keeps serving.
func TestKubectlWasmDeployment(t *testing.T) {
	c := startServer(t)
	const ns = "wasm-acc"
	c.ok("", "create", "namespace", ns)
	c.importModule("../../examples/httpserver", "web:1")
	c.ok(webManifest, "apply", "-f", "-")
	c.ok("", "rollout", "status", "deployment/web", "-n", ns, "--timeout=120s")

	names := strings.Fields(c.ok("", "get", "pods", "-n", ns, "-l", "app=web", "-o", "jsonpath={.items[*].metadata.name}"))
	if len(names) != 2 {
		t.Fatalf("pods of web: %q", names)
	}
	ips := map[string]string{}
	for _, name := range names {
		ip := c.ok("", "get", "pod", name, "-n", ns, "-o", "jsonpath={.status.podIP}")
		if !strings.HasPrefix(ip, "127.70.") {
			t.Fatalf("pod %s IP %q is not from the server's pod range", name, ip)
		}
		ips[name] = ip
		code, body, err := httpGet("http://" + ip + ":8080/")
		if err != nil || code != 200 {
			t.Fatalf("GET %s:8080: %d %v", ip, code, err)
		}
		contains(t, "answer of "+name, body, "hello from a ConfigMap from "+name, "secret: s3cret value")
	}
	pod := names[0]
	contains(t, "logs", c.ok("", "logs", pod, "-n", ns), "serving on the container ports", "GET /")
	contains(t, "logs --tail", c.ok("", "logs", pod, "-n", ns, "--tail=1", "--timestamps"), "Z GET ")
	contains(t, "exec", c.ok("", "exec", pod, "-n", ns, "--", "httpserver", "cat", "/etc/secret/message"), "s3cret value")
	contains(t, "exec -i", c.ok("typed into kubectl exec -i\n", "exec", "-i", pod, "-n", ns, "--", "httpserver", "cat", "-"), "typed into kubectl exec -i")
	if r := c.kubectl("", "exec", pod, "-n", ns, "--", "httpserver", "cat", "/etc/passwd"); r.code == 0 {
		t.Fatalf("exec reading a host file outside the pod's volumes succeeded:\n%s", r.out)
	}

	// port-forward: a local port on 127.0.0.1 reaches the pod's port.
	local := c.portForward(pod, ns, 8080)
	if code, body, err := httpGet("http://" + local + "/"); err != nil || code != 200 || !strings.Contains(body, "from "+pod) {
		t.Fatalf("GET through port-forward: %d %v %q", code, err, body)
	}

	// Liveness: make /healthz fail; the probe restarts the container, which
	// serves again (a new instance has a healthy /healthz).
	if code, _, err := httpGet("http://" + ips[pod] + ":8080/fail"); err != nil || code != 200 {
		t.Fatalf("GET /fail: %d %v", code, err)
	}
	if err := until(150, func() error {
		n := c.ok("", "get", "pod", pod, "-n", ns, "-o", "jsonpath={.status.containerStatuses[0].restartCount}")
		if n == "0" || n == "" {
			return fmt.Errorf("restartCount %q", n)
		}
		return nil
	}); err != nil {
		t.Fatalf("liveness failure did not restart the container: %v\n%s", err, c.ok("", "describe", "pod", pod, "-n", ns))
	}
	contains(t, "describe after liveness failure", c.ok("", "describe", "pod", pod, "-n", ns),
		"Unhealthy", "Liveness probe failed: HTTP probe failed with statuscode: 500", "failed liveness probe, will be restarted")
	c.ok("", "rollout", "status", "deployment/web", "-n", ns, "--timeout=60s")
	if err := until(100, func() error {
		code, _, err := httpGet("http://" + ips[pod] + ":8080/healthz")
		if err != nil || code != 200 {
			return fmt.Errorf("%d %v", code, err)
		}
		return nil
	}); err != nil {
		t.Fatalf("restarted container does not serve: %v", err)
	}
	contains(t, "logs --previous", c.ok("", "logs", pod, "-n", ns, "--previous"), "GET /fail")
}

// portForward runs `kubectl port-forward` for the test's lifetime (ended by
// its PID at cleanup) and returns the local address it forwards from.
func (c *cluster) portForward(pod, ns string, port int) string {
	c.t.Helper()
	cmd := exec.Command("kubectl", "--kubeconfig", c.kubeconfig, "--cache-dir", c.cacheDir,
		"port-forward", "pod/"+pod, "-n", ns, "--address", "127.0.0.1", fmt.Sprintf(":%d", port))
	out, err := cmd.StdoutPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	lines := make(chan string, 8)
	go func() {
		defer close(lines)
		buf := make([]byte, 4096)
		var acc string
		for {
			n, err := out.Read(buf)
			acc += string(buf[:n])
			if i := strings.Index(acc, "\n"); i >= 0 {
				lines <- acc[:i]
				acc = acc[i+1:]
			}
			if err != nil {
				return
			}
		}
	}()
	re := regexp.MustCompile(`Forwarding from (127\.0\.0\.1:\d+) -> \d+`)
	select {
	case l := <-lines:
		if m := re.FindStringSubmatch(l); m != nil {
			return m[1]
		}
		c.t.Fatalf("port-forward said %q", l)
	case <-time.After(30 * time.Second):
		c.t.Fatal("port-forward did not start within 30s")
	}
	return ""
}

// A module that exits non-zero goes to CrashLoopBackOff, and its back-off
// grows (the server's is 1s, doubling).
func TestKubectlWasmCrashLoopBackOff(t *testing.T) {
	c := startServer(t)
	const ns = "wasm-crash"
	c.ok("", "create", "namespace", ns)
	c.importModule("../../examples/crasher", "crasher:1")
	c.ok("", "run", "crasher", "-n", ns, "--image=crasher:1", "--overrides", `{"spec":{"runtimeClassName":"wasm"}}`)
	backoffs := map[int]bool{}
	re := regexp.MustCompile(`back-off (\d+)s restarting failed container`)
	err := until(200, func() error {
		msg := c.ok("", "get", "pod", "crasher", "-n", ns, "-o", "jsonpath={.status.containerStatuses[0].state.waiting.message}")
		if m := re.FindStringSubmatch(msg); m != nil {
			n, _ := strconv.Atoi(m[1])
			backoffs[n] = true
		}
		if backoffs[1] && backoffs[2] && backoffs[4] {
			return nil
		}
		return fmt.Errorf("back-offs seen: %v", backoffs)
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, c.ok("", "describe", "pod", "crasher", "-n", ns))
	}
	pods := c.ok("", "get", "pod", "crasher", "-n", ns)
	if !regexp.MustCompile(`crasher\s+0/1\s+(CrashLoopBackOff|Error)\s+[3-9]`).MatchString(pods) {
		t.Fatalf("get pod:\n%s", pods)
	}
	describe := c.ok("", "describe", "pod", "crasher", "-n", ns)
	contains(t, "describe", describe, "Scheduled", "Pulling", "Pulled", "Created", "Started", "BackOff",
		"Back-off restarting failed container crasher", "Last State:", "Terminated", "Exit Code:")
	contains(t, "logs --previous", c.ok("", "logs", "crasher", "-n", ns, "--previous"), "crasher: starting and failing")
}

// A memory bomb with a memory limit ends OOMKilled, and other pods keep
// serving meanwhile.
func TestKubectlWasmMemoryBomb(t *testing.T) {
	c := startServer(t)
	const ns = "wasm-oom"
	c.ok("", "create", "namespace", ns)
	c.importModule("../../examples/membomb", "membomb:1")
	c.importModule("../../examples/httpserver", "web:1")
	c.ok(`apiVersion: v1
kind: Pod
metadata: {name: steady, namespace: wasm-oom}
spec:
  runtimeClassName: wasm
  containers: [{name: web, image: web:1, ports: [{containerPort: 8080}], readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}}]
`, "apply", "-f", "-")
	c.ok("", "wait", "pod/steady", "-n", ns, "--for=condition=Ready", "--timeout=60s")
	ip := c.ok("", "get", "pod", "steady", "-n", ns, "-o", "jsonpath={.status.podIP}")
	c.ok(`apiVersion: v1
kind: Pod
metadata: {name: bomb, namespace: wasm-oom}
spec:
  runtimeClassName: wasm
  restartPolicy: Never
  containers: [{name: bomb, image: membomb:1, resources: {limits: {memory: 64Mi}}}]
`, "apply", "-f", "-")
	served := 0
	err := until(200, func() error {
		if code, _, err := httpGet("http://" + ip + ":8080/"); err == nil && code == 200 {
			served++
		}
		reason := c.ok("", "get", "pod", "bomb", "-n", ns, "-o", "jsonpath={.status.containerStatuses[0].state.terminated.reason}")
		if reason != "OOMKilled" {
			return fmt.Errorf("bomb's terminated reason %q", reason)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, c.ok("", "describe", "pod", "bomb", "-n", ns))
	}
	if served == 0 {
		t.Fatal("the steady pod served nothing while the bomb ran")
	}
	if got := c.ok("", "get", "pod", "bomb", "-n", ns, "-o", "jsonpath={.status.phase} {.status.containerStatuses[0].state.terminated.exitCode}"); got != "Failed 137" {
		t.Fatalf("bomb: %q", got)
	}
	if code, body, err := httpGet("http://" + ip + ":8080/"); err != nil || code != 200 {
		t.Fatalf("steady pod after the bomb: %d %v %s", code, err, body)
	}
	contains(t, "logs of the bomb", c.ok("", "logs", "bomb", "-n", ns), "holding 16 MiB")
}
