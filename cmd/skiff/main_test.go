package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildSkiff builds the real binary once per test run.
func buildSkiff(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "skiff")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestServerStartsAndStopsOnSignal runs `skiff server` as a user would, waits
// for it to say it is ready, and stops it with SIGINT and then SIGTERM.
func TestServerStartsAndStopsOnSignal(t *testing.T) {
	bin := buildSkiff(t)
	dir := filepath.Join(t.TempDir(), "data")
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := exec.Command(bin, "server", "--data-dir", dir, "--node-name", "cli-test", "--api-listen", "127.0.0.1:0", "--image-hosts", "loopback")
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill() // our own child, by its PID; a no-op once it exited

			lines := make(chan string, 100)
			go func() {
				sc := bufio.NewScanner(stderr)
				for sc.Scan() {
					lines <- sc.Text()
				}
				close(lines)
			}()
			ready := waitLine(t, lines, `msg="engine ready"`, 30*time.Second)
			if !strings.Contains(ready, "data_dir="+dir) {
				t.Errorf("ready line does not say where the data lives: %s", ready)
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			waitLine(t, lines, `msg="engine stopped"`, 30*time.Second)
			for range lines { // drain until the pipe closes
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("server exited with %v after %v", err, sig)
			}
		})
	}
	kc, err := exec.Command(bin, "kubeconfig", "--data-dir", dir).Output()
	if err != nil || !strings.Contains(string(kc), "certificate-authority-data:") || !strings.Contains(string(kc), "token:") {
		t.Errorf("skiff kubeconfig: %v\n%s", err, kc)
	}
	for _, f := range []string{"token", "node-name", "raft/wal", "kubeconfig.yaml", "pki/ca.crt"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("data dir lacks %s: %v", f, err)
		}
	}
}

func waitLine(t *testing.T, lines <-chan string, want string, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	var seen []string
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("output ended before %q:\n%s", want, strings.Join(seen, "\n"))
			}
			if strings.Contains(l, want) {
				return l
			}
			seen = append(seen, l)
		case <-deadline:
			t.Fatalf("no %q within %v:\n%s", want, timeout, strings.Join(seen, "\n"))
		}
	}
}

func TestServerRejectsBadFlags(t *testing.T) {
	bin := buildSkiff(t)
	out, err := exec.Command(bin, "server", "--data-dir", t.TempDir(), "--service-cidr", "nonsense").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "ServiceCIDR") {
		t.Fatalf("bad --service-cidr: err %v, output %s", err, out)
	}
}

// A second server on a data directory in use exits at once, naming the
// directory and the holder's pid, instead of waiting on the raft log's lock.
func TestSecondServerOnTheSameDataDirExits(t *testing.T) {
	dir := t.TempDir()
	first := startProcess(t, `msg="engine ready"`, "server", "--data-dir", dir, "--node-name", "lock-test",
		"--api-listen", "127.0.0.1:0", "--image-hosts", "loopback", "--service-cidr", "127.79.0.0/16", "--cluster-pod-cidr", "127.80.0.0/16")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second) // bounds a hang; not a timing assertion
	defer cancel()
	out, err := exec.CommandContext(ctx, buildSkiffOnce(t), "server", "--data-dir", dir, "--node-name", "lock-test",
		"--api-listen", "127.0.0.1:0", "--image-hosts", "loopback").CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("the second server did not exit: %s", out)
	}
	if err == nil {
		t.Fatalf("the second server on %s started:\n%s", dir, out)
	}
	for _, want := range []string{dir, fmt.Sprintf("process %d", first.Process.Pid), "in use"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the second server's error lacks %q:\n%s", want, out)
		}
	}
}

// Two `skiff server`s on one machine, given no ranges, choose disjoint pod
// and Service ranges and record them in their data directories, and both
// run a Deployment serving the same container port at once, with kubectl.
func TestTwoServersChooseDisjointRanges(t *testing.T) {
	type ranges struct {
		ClusterPodCIDR string `json:"clusterPodCIDR"`
		ServiceCIDR    string `json:"serviceCIDR"`
	}
	var got []netip.Prefix
	var clusters []*cluster
	for _, name := range []string{"ranges-one", "ranges-two"} {
		dir := t.TempDir()
		startProcess(t, `msg="engine ready"`, "server", "--data-dir", dir, "--node-name", name,
			"--api-listen", "127.0.0.1:0", "--bus-listen", "none", "--image-hosts", "loopback")
		clusters = append(clusters, &cluster{t: t, dir: dir, kubeconfig: filepath.Join(dir, "kubeconfig.yaml"), cacheDir: t.TempDir()})
		b, err := os.ReadFile(filepath.Join(dir, "network-ranges.json"))
		if err != nil {
			t.Fatal(err)
		}
		var r ranges
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		for _, s := range []string{r.ClusterPodCIDR, r.ServiceCIDR} {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				t.Fatalf("%s records %q: %v", name, b, err)
			}
			got = append(got, p)
		}
	}
	for i := range got {
		for j := i + 1; j < len(got); j++ {
			if got[i].Overlaps(got[j]) {
				t.Fatalf("the servers' ranges overlap: %v", got)
			}
		}
	}
	if _, err := exec.LookPath("kubectl"); err != nil {
		t.Skip("kubectl is not installed: ", err)
	}
	const deployment = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: web:1, ports: [{containerPort: 8080, name: http}],
         readinessProbe: {tcpSocket: {port: http}, periodSeconds: 1}}
`
	for _, c := range clusters {
		c.importModule("../../examples/httpserver", "web:1")
		c.ok(deployment, "apply", "-f", "-")
	}
	for i, c := range clusters {
		c.ok("", "rollout", "status", "deployment/web", "--timeout=120s")
		for _, ip := range strings.Fields(c.ok("", "get", "pods", "-l", "app=web", "-o", "jsonpath={.items[*].status.podIP}")) {
			if a, err := netip.ParseAddr(ip); err != nil || !got[2*i].Contains(a) {
				t.Errorf("server %d's pod IP %q is not in its range %v", i, ip, got[2*i])
			}
			if code, _, err := httpGet("http://" + ip + ":8080/"); err != nil || code != 200 {
				t.Errorf("GET %s:8080: %d %v", ip, code, err)
			}
		}
	}
}
