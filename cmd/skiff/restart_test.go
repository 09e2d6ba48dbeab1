package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/skiffhq/skiff/internal/node/join"
)

// This file's tests listen only in 127.126.0.0/16 and 127.127.0.0/16: pods
// in 127.126.0.0/17, Services in 127.127.0.0/17, the API (and the bus, on
// the API's host) on restartAPIHost, outside both.
const (
	restartAPIHost  = "127.126.200.1"
	restartPodCIDR  = "127.126.0.0/17"
	restartSvcCIDR  = "127.127.0.0/17"
	restartNodeName = "edge-r"
)

// proc is a skiff process whose log goes to a file, for the test's
// failure messages.
type proc struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed when the process has exited and its log is drained
}

// startLogged runs skiff with args and waits up to 60s for a log line
// containing ready; the process is ended (by its PID) when the test ends.
func startLogged(t *testing.T, logPath, ready string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(buildSkiffOnce(t), args...), log: logPath, done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), tokenEnv+"=") // only what the test passes
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		f.Close()
		t.Fatal(err)
	}
	found := make(chan struct{})
	go func() {
		defer close(p.done)
		defer f.Close()
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		once := false
		for sc.Scan() { // drains the log for the process's life
			fmt.Fprintln(f, sc.Text())
			if !once && strings.Contains(sc.Text(), ready) {
				once = true
				close(found)
			}
		}
		p.cmd.Wait()
	}()
	t.Cleanup(func() { p.stop(t, syscall.SIGTERM) })
	select {
	case <-found:
	case <-p.done:
		t.Fatalf("skiff %s exited before %q:\n%s", args[0], ready, tail(logPath, 30))
	case <-time.After(60 * time.Second):
		t.Fatalf("skiff %s: no %q within 60s:\n%s", args[0], ready, tail(logPath, 30))
	}
	return p
}

// stop sends sig to the process (our own child, by its PID) and waits for
// it to exit, killing it after 30s.
func (p *proc) stop(t *testing.T, sig syscall.Signal) {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Errorf("skiff did not exit within 30s of %v; killing it", sig)
		p.cmd.Process.Kill()
		<-p.done
	}
}

// tail is the last n lines of a log file.
func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// freeAddr is host with a port free now, for a process that must be
// restarted on the same address.
func freeAddr(t *testing.T, host string) string {
	t.Helper()
	l, err := net.Listen("tcp", host+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startRestartServer starts `skiff server` on dir for this file's tests.
// The first start names the ranges; they are recorded in dir, so
// restarts need only --data-dir and --api-listen.
func startRestartServer(t *testing.T, dir, api string, first bool) *proc {
	args := []string{"server", "--data-dir", dir, "--api-listen", api}
	if first {
		args = append(args, "--cluster-pod-cidr", restartPodCIDR, "--service-cidr", restartSvcCIDR)
	}
	return startLogged(t, filepath.Join(dir, "..", "server.log"), `msg="engine ready"`, args...)
}

// An agent given a token that pins another CA is refused before it sends
// the secret, and so is a bare secret (which pins nothing) with no CA
// file; nothing joins. The full token joins.
func TestAgentRefusesAnotherCA(t *testing.T) {
	if _, err := exec.LookPath("kubectl"); err != nil {
		t.Skip("kubectl is not installed: ", err)
	}
	root := t.TempDir()
	dir := filepath.Join(root, "server")
	api := freeAddr(t, restartAPIHost)
	startRestartServer(t, dir, api, true)
	c := &cluster{t: t, dir: dir, kubeconfig: filepath.Join(dir, "kubeconfig.yaml"), cacheDir: filepath.Join(root, "kubectl-cache")}
	full, err := os.ReadFile(filepath.Join(dir, "token"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := join.ParseToken(string(full))
	if err != nil || tok.CAHash == nil {
		t.Fatalf("DATA-DIR/token %q does not pin the CA: %v", full, err)
	}
	other := join.NewToken([]byte("another cluster's CA"), tok.Secret).String()

	for _, tc := range []struct {
		name, token, want string
	}{
		{"another CA", other, "does not chain to the cluster CA the token names"},
		{"bare secret", tok.Secret, "DATA-DIR/token"},
	} {
		tokFile := filepath.Join(root, "token-"+strings.ReplaceAll(tc.name, " ", "-"))
		if err := os.WriteFile(tokFile, []byte(tc.token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(buildSkiffOnce(t), "agent", "--server", api, "--token-file", tokFile,
			"--data-dir", filepath.Join(root, "agent-"+tc.name), "--node-name", "intruder", "--no-cluster-dns")
		cmd.Env = append(os.Environ(), tokenEnv+"=")
		done := make(chan struct{})
		var out []byte
		var runErr error
		go func() { out, runErr = cmd.CombinedOutput(); close(done) }()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			cmd.Process.Kill() // our own child, by its PID
			<-done
			t.Fatalf("%s: the agent still runs after 60s:\n%s", tc.name, out)
		}
		var exit *exec.ExitError
		if !errors.As(runErr, &exit) || !strings.Contains(string(out), tc.want) {
			t.Errorf("%s: agent ended with %v, output lacks %q:\n%s", tc.name, runErr, tc.want, out)
		}
		t.Logf("%s: refused: %s", tc.name, lastLine(string(out)))
	}
	// The same token in $SKIFF_TOKEN is refused the same way.
	cmd := exec.Command(buildSkiffOnce(t), "agent", "--server", api, "--data-dir", filepath.Join(root, "agent-env"),
		"--node-name", "intruder", "--no-cluster-dns")
	cmd.Env = append(os.Environ(), tokenEnv+"="+other)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "does not chain to the cluster CA") {
		t.Errorf("agent with another CA's token in $%s: %v\n%s", tokenEnv, err, out)
	}
	if nodes := c.ok("", "get", "nodes", "-o", "name"); strings.Contains(nodes, "intruder") {
		t.Fatalf("a refused agent's Node exists:\n%s", nodes)
	}
	// kubectl takes the full token as its bearer token, as it takes the
	// kubeconfig's.
	r := c.kubectlEnv(nil, "", "get", "nodes", "--token", strings.TrimSpace(string(full)))
	if r.code != 0 {
		t.Errorf("kubectl --token <DATA-DIR/token>: exit %d: %s", r.code, r.err)
	}
	// The full token joins.
	startLogged(t, filepath.Join(root, "agent.log"), `msg="worker ready"`, "agent", "--server", api,
		"--token-file", filepath.Join(dir, "token"), "--data-dir", filepath.Join(root, "agent-ok"), "--node-name", "welcome",
		"--no-cluster-dns")
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

const restartManifest = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      runtimeClassName: wasm
      nodeSelector: {kubernetes.io/hostname: ` + restartNodeName + `}
      containers:
      - name: web
        image: web:1
        env: [{name: GREETING, value: "hello from the edge"}]
        ports: [{containerPort: 8080}]
        readinessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 1}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: default}
spec:
  replicas: 1
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      runtimeClassName: wasm
      nodeSelector: {kubernetes.io/hostname: ` + restartNodeName + `}
      containers:
      - {name: db, image: web:1, ports: [{containerPort: 8080}]}
`

// A worker survives its server's restarts (SIGTERM, kill -9, SIGTERM), each
// with `skiff server --data-dir DIR --api-listen ADDR` alone: its Node is
// Ready again and reachable through the bus, its pods keep their UIDs and
// restart counts, and they answer HTTP on their pod IPs all along, the
// outages included (edge autonomy). Its StatefulSet pod too: an outage as
// long as a restart is shorter than the StatefulSet fence, so the agent
// never stops it.
func TestServerRestartKeepsWorker(t *testing.T) {
	if _, err := exec.LookPath("kubectl"); err != nil {
		t.Skip("kubectl is not installed: ", err)
	}
	root := t.TempDir()
	dir := filepath.Join(root, "server")
	api := freeAddr(t, restartAPIHost)
	server := startRestartServer(t, dir, api, true)
	c := &cluster{t: t, dir: dir, kubeconfig: filepath.Join(dir, "kubeconfig.yaml"), cacheDir: filepath.Join(root, "kubectl-cache")}
	agentLog := filepath.Join(root, "agent.log")
	// The agent knows two servers; the first never answers (nothing listens
	// there), so every discovery goes on to the second.
	dead := freeAddr(t, restartAPIHost)
	startLogged(t, agentLog, `msg="worker ready"`, "agent", "--server", dead+","+api, "--token-file", filepath.Join(dir, "token"),
		"--data-dir", filepath.Join(root, "agent"), "--node-name", restartNodeName, "--no-cluster-dns")
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf(format+"\n--- server log:\n%s\n--- agent log:\n%s", append(args, tail(filepath.Join(root, "server.log"), 40), tail(agentLog, 40))...)
	}

	c.importModule("../../examples/httpserver", "web:1")
	c.ok(restartManifest, "apply", "-f", "-")
	c.ok("", "rollout", "status", "deployment/web", "--timeout=120s")
	c.ok("", "rollout", "status", "statefulset/db", "--timeout=120s")
	// name uid restartCount podIP, one line a pod
	const podsQuery = `jsonpath={range .items[*]}{.metadata.name} {.metadata.uid} {.status.containerStatuses[0].restartCount} {.status.podIP}{"\n"}{end}`
	before := c.ok("", "get", "pods", "-l", "app in (web,db)", "-o", podsQuery)
	var ips, names []string
	for _, line := range strings.Split(strings.TrimSpace(before), "\n") {
		f := strings.Fields(line)
		if len(f) != 4 || f[2] != "0" {
			fail("pods before the restarts: %q", before)
		}
		if f[0] != "db-0" {
			names, ips = append(names, f[0]), append(ips, f[3])
		}
	}
	if len(ips) != 2 || !strings.Contains(before, "db-0 ") {
		fail("pods before the restarts: %q", before)
	}

	// The pods answer all along: a bounded poll of every pod IP, from now
	// until the last restart is over.
	var (
		mu       sync.Mutex
		answered int
		failures []string
	)
	stopPoll, pollDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(pollDone)
		for range 5000 { // ~200ms apart: 16 minutes at most
			for _, ip := range ips {
				code, body, err := httpGet("http://" + ip + ":8080/")
				mu.Lock()
				if err != nil || code != 200 || !strings.Contains(body, "hello from the edge") {
					failures = append(failures, fmt.Sprintf("%s %s: %d %v", time.Now().Format("15:04:05.000"), ip, code, err))
				} else {
					answered++
				}
				mu.Unlock()
			}
			select {
			case <-stopPoll:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()

	for i, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL, syscall.SIGTERM} {
		server.stop(t, sig)
		// While the server is down the pods keep answering (the poll) and
		// the agent keeps looking for the bus.
		time.Sleep(2 * time.Second)
		start := time.Now()
		server = startRestartServer(t, dir, api, false)
		up := time.Since(start)
		// Ready again, and reachable: logs travel from the agent over the
		// bus, so they answer only once it found the new server.
		if err := until(300, func() error {
			out := c.ok("", "get", "node", restartNodeName, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}")
			if out != "True" {
				return fmt.Errorf("Ready %q", out)
			}
			if r := c.kubectl("", "logs", names[0], "--tail=1", "--request-timeout=5s"); r.code != 0 {
				return fmt.Errorf("logs through the bus: %s", strings.TrimSpace(r.err))
			}
			return nil
		}); err != nil {
			fail("restart %d (%v): the worker did not come back: %v", i+1, sig, err)
		}
		t.Logf("restart %d (%v): server ready in %.1fs, worker Ready and reachable %.1fs after the restart began",
			i+1, sig, up.Seconds(), time.Since(start).Seconds())
		if after := c.ok("", "get", "pods", "-l", "app in (web,db)", "-o", podsQuery); after != before {
			fail("restart %d (%v): pods changed:\nbefore:\n%s\nafter:\n%s", i+1, sig, before, after)
		}
	}
	close(stopPoll)
	<-pollDone
	mu.Lock()
	defer mu.Unlock()
	t.Logf("pods answered %d requests over the restarts, %d failed", answered, len(failures))
	if len(failures) > 0 || answered == 0 {
		fail("the pods did not answer throughout the restarts: %d answered, failures:\n%s", answered, strings.Join(failures[:min(len(failures), 20)], "\n"))
	}
}
