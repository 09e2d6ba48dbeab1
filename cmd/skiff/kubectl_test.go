package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// cluster is a `skiff server` process started by a test, and a kubectl
// pointed at it with its own kubeconfig and discovery cache.
type cluster struct {
	t          *testing.T
	dir        string
	kubeconfig string
	cacheDir   string
}

var (
	serverMu  sync.Mutex
	shared    *cluster
	sharedErr error
	// served are the tests that used the shared server. A test asking
	// again is a new round of `go test -count=N`: it gets a fresh server,
	// since the tests' objects (namespaces, deployments) carry fixed names.
	served = map[string]bool{}
)

// startServer runs one skiff server for the kubectl tests of this package
// (starting one per test would spend most of the time on elections). Tests
// use their own namespaces so they do not see each other.
func startServer(t *testing.T) *cluster {
	t.Helper()
	if _, err := exec.LookPath("kubectl"); err != nil {
		t.Skip("kubectl is not installed: ", err)
	}
	serverMu.Lock()
	defer serverMu.Unlock()
	if served[t.Name()] {
		stopSharedServer()
		served = map[string]bool{}
	}
	served[t.Name()] = true
	if shared == nil && sharedErr == nil {
		func() {
			bin := buildSkiffOnce(t)
			dir, err := os.MkdirTemp("", "skiff-kubectl-test")
			if err != nil {
				sharedErr = err
				return
			}
			cmd := exec.Command(bin, "server", "--data-dir", dir, "--node-name", "kubectl-test", "--api-listen", "127.0.0.1:0",
				"--image-hosts", "loopback", "--pod-cidr", "127.70.0.0/16", "--crash-loop-backoff", "1s")
			stderr, _ := cmd.StderrPipe()
			if err := cmd.Start(); err != nil {
				sharedErr = err
				return
			}
			serverProc = cmd
			lines := make(chan string, 1000)
			go func() {
				sc := bufio.NewScanner(stderr)
				for sc.Scan() {
					select {
					case lines <- sc.Text():
					default: // nobody reads after start-up; drop rather than block the server
					}
				}
			}()
			deadline := time.After(60 * time.Second)
			for {
				select {
				case l := <-lines:
					if strings.Contains(l, `msg="engine ready"`) {
						shared = &cluster{dir: dir, kubeconfig: filepath.Join(dir, "kubeconfig.yaml"), cacheDir: filepath.Join(dir, "kubectl-cache")}
						return
					}
				case <-deadline:
					sharedErr = fmt.Errorf("server not ready within 60s")
					return
				}
			}
		}()
	}
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	c := *shared
	c.t = t
	return &c
}

var (
	serverProc *exec.Cmd
	binOnce    sync.Once
	binPath    string
	binErr     error
)

// startOwnServer runs a skiff server of one test's own, every address in
// that test's loopback range prefix ("127.132" for 127.132.0.0/16: the API
// on .0.1, Services in .64.0/18, pods in .128.0/17), with no raft or bus
// listener and no cluster DNS; extra flags are appended. It is stopped (our
// own child, by its PID) at the end. Tests that change what the server is
// (its flags, its RBAC) use it instead of the shared startServer.
func startOwnServer(t *testing.T, name, prefix string, extra ...string) *cluster {
	t.Helper()
	if _, err := exec.LookPath("kubectl"); err != nil {
		t.Skip("kubectl is not installed: ", err)
	}
	dir := t.TempDir()
	args := append([]string{"server", "--data-dir", dir, "--node-name", name, "--api-listen", prefix + ".0.1:0",
		"--raft-listen", "none", "--bus-listen", "none", "--no-cluster-dns", "--image-hosts", "loopback",
		"--service-cidr", prefix + ".64.0/18", "--cluster-pod-cidr", prefix + ".128.0/17", "--pod-cidr", prefix + ".128.0/20"},
		extra...)
	startProcess(t, `msg="engine ready"`, args...)
	return &cluster{t: t, dir: dir, kubeconfig: filepath.Join(dir, "kubeconfig.yaml"), cacheDir: filepath.Join(dir, "kubectl-cache")}
}

func buildSkiffOnce(t *testing.T) string {
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "skiff-bin")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "skiff")
		if out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// stopSharedServer ends the shared server (our own child, by its PID) and
// removes its directory.
func stopSharedServer() {
	if serverProc != nil {
		serverProc.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { serverProc.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			serverProc.Process.Kill()
			<-done
		}
		serverProc = nil
	}
	if shared != nil {
		os.RemoveAll(shared.dir)
		shared = nil
	}
}

// TestMain stops the shared server (our own child, by its PID) and removes
// its directory after the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	stopSharedServer()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// result is one kubectl run.
type result struct {
	out, err string
	code     int
}

// kubectl runs the installed kubectl with a bounded time.
func (c *cluster) kubectl(stdin string, args ...string) result {
	c.t.Helper()
	return c.kubectlEnv(nil, stdin, args...)
}

func (c *cluster) kubectlEnv(env []string, stdin string, args ...string) result {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	full := append([]string{"--kubeconfig", c.kubeconfig, "--cache-dir", c.cacheDir}, args...)
	cmd := exec.CommandContext(ctx, "kubectl", full...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatalf("kubectl %v: %v", args, err)
	}
	return result{out: out.String(), err: errb.String(), code: code}
}

// ok runs kubectl and fails the test unless it succeeds.
func (c *cluster) ok(stdin string, args ...string) string {
	c.t.Helper()
	r := c.kubectl(stdin, args...)
	if r.code != 0 {
		c.t.Fatalf("kubectl %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.out, r.err)
	}
	return r.out
}

// fails runs kubectl, expects a failure, and returns its stderr.
func (c *cluster) fails(stdin string, args ...string) string {
	c.t.Helper()
	r := c.kubectl(stdin, args...)
	if r.code == 0 {
		c.t.Fatalf("kubectl %s succeeded, expected a failure:\n%s", strings.Join(args, " "), r.out)
	}
	return r.err
}

func contains(t *testing.T, what, got string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Fatalf("%s: %q not in:\n%s", what, w, got)
		}
	}
}

func TestKubectlVersionAndDiscovery(t *testing.T) {
	c := startServer(t)
	var v struct {
		ServerVersion struct{ Major, Minor, GitVersion string } `json:"serverVersion"`
	}
	if err := json.Unmarshal([]byte(c.ok("", "version", "-o", "json")), &v); err != nil {
		t.Fatal(err)
	}
	if v.ServerVersion.Major != "1" || v.ServerVersion.Minor != "32" {
		t.Fatalf("server version %+v", v.ServerVersion)
	}
	out := c.ok("", "api-resources")
	for _, re := range []string{
		`(?m)^deployments\s+deploy\s+apps/v1\s+true\s+Deployment$`,
		`(?m)^pods\s+po\s+v1\s+true\s+Pod$`,
		`(?m)^namespaces\s+ns\s+v1\s+false\s+Namespace$`,
		`(?m)^leases\s+coordination.k8s.io/v1\s+true\s+Lease$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Fatalf("api-resources lacks %s:\n%s", re, out)
		}
	}
	wide := c.ok("", "api-resources", "-o", "wide", "--api-group=apps")
	contains(t, "api-resources -o wide", wide, "all", "create,delete,deletecollection,get,list,patch,update,watch")
	// The default namespaces exist.
	contains(t, "get ns", c.ok("", "get", "namespaces"), "default", "kube-system", "kube-public", "kube-node-lease")
}

func TestKubectlUnauthenticated(t *testing.T) {
	c := startServer(t)
	stderr := c.fails("", "get", "pods", "--token", "wrong-token")
	contains(t, "wrong token", stderr, "Unauthorized")
}

func TestKubectlCreateGetDelete(t *testing.T) {
	c := startServer(t)
	ns := "crud"
	c.ok("", "create", "namespace", ns) // typed client: a protobuf body
	c.ok("", "create", "configmap", "settings", "-n", ns, "--from-literal=color=blue", "--from-literal=size=2")
	if got := c.ok("", "get", "configmap", "settings", "-n", ns, "-o", "jsonpath={.data.color}"); got != "blue" {
		t.Fatalf("jsonpath: %q", got)
	}
	table := c.ok("", "get", "cm", "-n", ns)
	if !regexp.MustCompile(`(?m)^NAME\s+DATA\s+AGE\n(?:.*\n)*settings\s+2\s+\d+s`).MatchString(table) {
		t.Fatalf("server-side table:\n%s", table)
	}
	contains(t, "-o name", c.ok("", "get", "cm", "settings", "-n", ns, "-o", "name"), "configmap/settings")
	var obj map[string]any
	if err := json.Unmarshal([]byte(c.ok("", "get", "cm", "settings", "-n", ns, "-o", "json")), &obj); err != nil {
		t.Fatal(err)
	}
	md := obj["metadata"].(map[string]any)
	for _, f := range []string{"uid", "resourceVersion", "creationTimestamp"} {
		if md[f] == nil || md[f] == "" {
			t.Fatalf("metadata.%s missing: %v", f, md)
		}
	}
	contains(t, "-o yaml", c.ok("", "get", "cm", "settings", "-n", ns, "-o", "yaml"), "kind: ConfigMap", "color: blue")

	// Already exists: 409 AlreadyExists.
	contains(t, "create twice", c.fails("", "create", "configmap", "settings", "-n", ns), `configmaps "settings" already exists`)
	// An invalid name: 422 with the field.
	contains(t, "invalid name", c.fails("", "create", "configmap", "Bad_Name", "-n", ns), "Invalid value: \"Bad_Name\"", "metadata.name")
	// A namespace that does not exist.
	contains(t, "missing namespace", c.fails("", "create", "configmap", "x", "-n", "nowhere"), `namespaces "nowhere" not found`)

	c.ok("", "delete", "configmap", "settings", "-n", ns)
	contains(t, "get deleted", c.fails("", "get", "configmap", "settings", "-n", ns), `configmaps "settings" not found`)
	c.ok("", "delete", "namespace", ns)
	contains(t, "get deleted ns", c.fails("", "get", "namespace", ns), `namespaces "crud" not found`)
}

const manifest = `apiVersion: v1
kind: Namespace
metadata:
  name: applied
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: app-config
  namespace: applied
  labels:
    tier: web
data:
  greeting: hello
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: applied
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: example.com/web:1.0
        ports:
        - containerPort: 8080
`

func TestKubectlApply(t *testing.T) {
	c := startServer(t)
	out := c.ok(manifest, "apply", "-f", "-")
	contains(t, "first apply", out, "namespace/applied created", "configmap/app-config created", "deployment.apps/web created")
	out = c.ok(manifest, "apply", "-f", "-")
	contains(t, "second apply", out, "namespace/applied unchanged", "configmap/app-config unchanged", "deployment.apps/web unchanged")
	changed := strings.Replace(strings.Replace(manifest, "greeting: hello", "greeting: bonjour", 1), "replicas: 2", "replicas: 3", 1)
	out = c.ok(changed, "apply", "-f", "-")
	contains(t, "changed apply", out, "configmap/app-config configured", "deployment.apps/web configured", "namespace/applied unchanged")
	if got := c.ok("", "get", "deploy", "web", "-n", "applied", "-o", "jsonpath={.spec.replicas} {.metadata.generation} {.spec.strategy.type}"); got != "3 2 RollingUpdate" {
		t.Fatalf("replicas, generation, defaulted strategy: %q", got)
	}
	// Deployment defaults a kubectl user expects to see.
	contains(t, "describe", c.ok("", "describe", "deployment", "web", "-n", "applied"),
		"StrategyType:", "RollingUpdate", "25% max unavailable, 25% max surge", "8080/TCP")
}

func TestKubectlLabelAnnotatePatch(t *testing.T) {
	c := startServer(t)
	ns := "patching"
	c.ok("", "create", "namespace", ns)
	c.ok("", "create", "configmap", "p", "-n", ns, "--from-literal=a=1")
	c.ok("", "label", "configmap", "p", "-n", ns, "env=prod")
	c.ok("", "annotate", "configmap", "p", "-n", ns, "owner=team-a")
	contains(t, "--show-labels", c.ok("", "get", "cm", "p", "-n", ns, "--show-labels"), "env=prod")
	contains(t, "label selector", c.ok("", "get", "cm", "-n", ns, "-l", "env=prod", "-o", "name"), "configmap/p")
	if got := c.ok("", "get", "cm", "-n", ns, "-l", "env=dev", "-o", "name"); got != "" {
		t.Fatalf("selector env=dev matched: %q", got)
	}
	c.ok("", "label", "configmap", "p", "-n", ns, "env-") // removal: {"env":null}
	if got := c.ok("", "get", "cm", "p", "-n", ns, "-o", "jsonpath={.metadata.labels.env}"); got != "" {
		t.Fatalf("label not removed: %q", got)
	}
	c.ok("", "patch", "configmap", "p", "-n", ns, "--type=merge", "-p", `{"data":{"b":"2"}}`)
	c.ok("", "patch", "configmap", "p", "-n", ns, "--type=json", "-p", `[{"op":"replace","path":"/data/a","value":"10"}]`)
	c.ok("", "patch", "configmap", "p", "-n", ns, "--type=strategic", "-p", `{"data":{"c":"3"}}`)
	if got := c.ok("", "get", "cm", "p", "-n", ns, "-o", "jsonpath={.data.a},{.data.b},{.data.c},{.metadata.annotations.owner}"); got != "10,2,3,team-a" {
		t.Fatalf("after patches: %q", got)
	}
	// A JSON patch that does not apply is 422, and the object is unchanged.
	c.fails("", "patch", "configmap", "p", "-n", ns, "--type=json", "-p", `[{"op":"replace","path":"/data/missing/x","value":"1"}]`)
}

func TestKubectlStaleUpdateConflicts(t *testing.T) {
	c := startServer(t)
	ns := "conflict"
	c.ok("", "create", "namespace", ns)
	c.ok("", "create", "configmap", "v", "-n", ns, "--from-literal=a=1")
	old := c.ok("", "get", "cm", "v", "-n", ns, "-o", "json")
	c.ok("", "patch", "configmap", "v", "-n", ns, "--type=merge", "-p", `{"data":{"a":"2"}}`)
	// replace sends the old resourceVersion: 409 Conflict.
	stderr := c.fails(old, "replace", "-f", "-")
	contains(t, "stale replace", stderr, "Conflict", "the object has been modified")
}

func TestKubectlWatch(t *testing.T) {
	c := startServer(t)
	ns := "watching"
	c.ok("", "create", "namespace", ns)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kubectl", "--kubeconfig", c.kubeconfig, "--cache-dir", c.cacheDir,
		"get", "configmaps", "-n", ns, "-w", "--output-watch-events")
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill() // our own child, by its PID
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	next := func(want string) {
		t.Helper()
		timeout := time.After(20 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("watch ended before %q", want)
				}
				if strings.Contains(l, want) {
					return
				}
			case <-timeout:
				t.Fatalf("no %q from kubectl get -w", want)
			}
		}
	}
	// The header comes with the (empty) list; then events as they happen.
	time.Sleep(500 * time.Millisecond) // give kubectl time to list and start watching (the events are checked, not this)
	c.ok("", "create", "configmap", "w1", "-n", ns, "--from-literal=a=1")
	next("ADDED")
	c.ok("", "label", "configmap", "w1", "-n", ns, "x=y")
	next("MODIFIED")
	c.ok("", "delete", "configmap", "w1", "-n", ns)
	next("DELETED")
}

func TestKubectlDeletePropagation(t *testing.T) {
	c := startServer(t)
	ns := "propagation"
	c.ok("", "create", "namespace", ns)
	for _, policy := range []string{"background", "foreground", "orphan"} {
		owner := "owner-" + policy
		c.ok("", "create", "configmap", owner, "-n", ns)
		uid := c.ok("", "get", "cm", owner, "-n", ns, "-o", "jsonpath={.metadata.uid}")
		dep := fmt.Sprintf(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"dep-%s","namespace":"%s",
			"ownerReferences":[{"apiVersion":"v1","kind":"ConfigMap","name":"%s","uid":"%s"}]}}`, policy, ns, owner, uid)
		c.ok(dep, "create", "-f", "-")
		c.ok("", "delete", "configmap", owner, "-n", ns, "--cascade="+policy)
		// The garbage collector handles the dependent, after kubectl's
		// delete returned (background) or before (foreground, orphan:
		// kubectl waits for the owner, which waits for the collector).
		deadline := time.Now().Add(30 * time.Second)
		for {
			r := c.kubectl("", "get", "configmap", "dep-"+policy, "-n", ns, "-o", "jsonpath={.metadata.ownerReferences}")
			var err error
			switch {
			case policy == "orphan" && (r.code != 0 || r.out != ""):
				err = fmt.Errorf("orphan: dependent %+v", r)
			case policy != "orphan" && r.code == 0:
				err = fmt.Errorf("%s: dependent still there: %s", policy, r.out)
			}
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal(err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

func TestKubectlExplain(t *testing.T) {
	c := startServer(t)
	out := c.ok("", "explain", "deployment.spec.strategy")
	contains(t, "explain", out, "KIND:", "Deployment", "FIELD: strategy", "rollingUpdate", "type")
}

func TestKubectlOutputs(t *testing.T) {
	c := startServer(t)
	for _, ns := range []string{"out-a", "out-b"} {
		c.ok("", "create", "namespace", ns)
		c.ok("", "create", "configmap", "zeta", "-n", ns, "--from-literal=k=v")
		c.ok("", "create", "configmap", "alpha", "-n", ns, "--from-literal=k=v", "--from-literal=l=w")
	}
	all := c.ok("", "get", "cm", "-A")
	if !regexp.MustCompile(`(?m)^out-a\s+alpha\s+2\s+`).MatchString(all) || !regexp.MustCompile(`(?m)^out-b\s+zeta\s+1\s+`).MatchString(all) {
		t.Fatalf("-A lacks namespaces:\n%s", all)
	}
	// Every namespace gets the cluster CA's ConfigMap, as in Kubernetes;
	// wait for it, so the sort has three names to order.
	for i := 0; i < 50 && c.kubectl("", "get", "cm", "kube-root-ca.crt", "-n", "out-a").code != 0; i++ {
		time.Sleep(200 * time.Millisecond)
	}
	sorted := c.ok("", "get", "cm", "-n", "out-a", "--sort-by=.metadata.name", "-o", "name")
	if sorted != "configmap/alpha\nconfigmap/kube-root-ca.crt\nconfigmap/zeta\n" {
		t.Fatalf("--sort-by: %q", sorted)
	}
	c.ok("", "create", "deployment", "web", "-n", "out-a", "--image=example.com/web:2", "--replicas=2")
	wide := c.ok("", "get", "deploy", "web", "-n", "out-a", "-o", "wide")
	if !regexp.MustCompile(`(?m)^NAME\s+READY\s+UP-TO-DATE\s+AVAILABLE\s+AGE\s+CONTAINERS\s+IMAGES\s+SELECTOR\n` +
		`web\s+0/2\s+[02]\s+0\s+\S+\s+web\s+example.com/web:2\s+app=web$`).MatchString(strings.TrimSpace(wide)) {
		t.Fatalf("-o wide:\n%s", wide)
	}
}

func TestKubectlServerSideApply(t *testing.T) {
	c := startServer(t)
	c.ok("", "create", "namespace", "ssa")
	m := strings.ReplaceAll(manifest[strings.Index(manifest, "apiVersion: apps/v1"):], "namespace: applied", "namespace: ssa")
	contains(t, "first server-side apply", c.ok(m, "apply", "--server-side", "-f", "-"), "deployment.apps/web serverside-applied")
	managers := c.ok("", "get", "deploy", "web", "-n", "ssa", "--show-managed-fields", "-o", "jsonpath={.metadata.managedFields[*].manager}")
	contains(t, "managedFields", managers, "kubectl")
	c.ok("", "scale", "deployment", "web", "-n", "ssa", "--replicas=5")
	changed := strings.Replace(m, "replicas: 2", "replicas: 3", 1)
	stderr := c.fails(changed, "apply", "--server-side", "-f", "-")
	contains(t, "conflicting apply", stderr, "conflict", ".spec.replicas")
	c.ok(changed, "apply", "--server-side", "--force-conflicts", "-f", "-")
	if got := c.ok("", "get", "deploy", "web", "-n", "ssa", "-o", "jsonpath={.spec.replicas}"); got != "3" {
		t.Fatalf("replicas after forced apply: %q", got)
	}
	// Removing a field from the applied configuration removes it from the object.
	noPort := strings.Replace(changed, "        ports:\n        - containerPort: 8080\n", "", 1)
	c.ok(noPort, "apply", "--server-side", "--force-conflicts", "-f", "-")
	if got := c.ok("", "get", "deploy", "web", "-n", "ssa", "-o", "jsonpath={.spec.template.spec.containers[0].ports}"); got != "" {
		t.Fatalf("ports after applying without them: %q", got)
	}
}

func TestKubectlEdit(t *testing.T) {
	c := startServer(t)
	c.ok("", "create", "namespace", "editing")
	c.ok("", "create", "configmap", "e", "-n", "editing", "--from-literal=mode=old")
	editor := filepath.Join(t.TempDir(), "editor.sh")
	if err := os.WriteFile(editor, []byte("#!/bin/sh\nsed -i 's/mode: old/mode: new/' \"$1\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := c.kubectlEnv([]string{"KUBE_EDITOR=" + editor}, "", "edit", "configmap", "e", "-n", "editing")
	if r.code != 0 {
		t.Fatalf("edit: %d %s %s", r.code, r.out, r.err)
	}
	contains(t, "edit", r.out, "configmap/e edited")
	if got := c.ok("", "get", "cm", "e", "-n", "editing", "-o", "jsonpath={.data.mode}"); got != "new" {
		t.Fatalf("after edit: %q", got)
	}
}

func TestKubectlServicesGetAddresses(t *testing.T) {
	c := startServer(t)
	ns := "services"
	c.ok("", "create", "namespace", ns)
	c.ok("", "create", "service", "clusterip", "web", "-n", ns, "--tcp=80:8080")
	c.ok("", "create", "service", "nodeport", "edge", "-n", ns, "--tcp=443:8443")
	// The server chose its service range (none was given) and recorded it.
	var ranges struct {
		ServiceCIDR string `json:"serviceCIDR"`
	}
	if b, err := os.ReadFile(filepath.Join(c.dir, "network-ranges.json")); err != nil {
		t.Fatal(err)
	} else if err := json.Unmarshal(b, &ranges); err != nil {
		t.Fatal(err)
	}
	svcRange, err := netip.ParsePrefix(ranges.ServiceCIDR)
	if err != nil {
		t.Fatalf("recorded service range: %v", err)
	}
	ip := c.ok("", "get", "svc", "web", "-n", ns, "-o", "jsonpath={.spec.clusterIP}")
	if a, err := netip.ParseAddr(ip); err != nil || !svcRange.Contains(a) {
		t.Fatalf("ClusterIP %q not from the service CIDR %s", ip, svcRange)
	}
	np := c.ok("", "get", "svc", "edge", "-n", ns, "-o", "jsonpath={.spec.ports[0].nodePort}")
	if np < "30000" || np > "32767" || len(np) != 5 {
		t.Fatalf("NodePort %q", np)
	}
	table := c.ok("", "get", "svc", "-n", ns)
	if !regexp.MustCompile(`(?m)^edge\s+NodePort\s+127\.\S+\s+<none>\s+443:` + np + `/TCP\s+`).MatchString(table) {
		t.Fatalf("service table:\n%s", table)
	}
	// The same ClusterIP cannot be taken twice.
	taken := fmt.Sprintf(`{"apiVersion":"v1","kind":"Service","metadata":{"name":"dup","namespace":"%s"},"spec":{"clusterIP":"%s","ports":[{"port":80}]}}`, ns, ip)
	contains(t, "duplicate ClusterIP", c.fails(taken, "create", "-f", "-"), "provided IP is already allocated")
	// Deleting a Service frees its address for a new one.
	c.ok("", "delete", "svc", "web", "-n", ns)
	c.ok(taken, "create", "-f", "-")
	// NodePort → ClusterIP drops the node ports and frees them; back to
	// NodePort allocates again.
	c.ok("", "patch", "svc", "edge", "-n", ns, "-p", `{"spec":{"type":"ClusterIP"}}`)
	if got := c.ok("", "get", "svc", "edge", "-n", ns, "-o", "jsonpath={.spec.type} {.spec.ports[0].nodePort}"); got != "ClusterIP " {
		t.Fatalf("after NodePort → ClusterIP: %q", got)
	}
	reuse := fmt.Sprintf(`{"apiVersion":"v1","kind":"Service","metadata":{"name":"reuse","namespace":"%s"},"spec":{"type":"NodePort","ports":[{"port":80,"nodePort":%s}]}}`, ns, np)
	c.ok(reuse, "create", "-f", "-")
	c.ok("", "patch", "svc", "edge", "-n", ns, "-p", `{"spec":{"type":"NodePort"}}`)
	if got := c.ok("", "get", "svc", "edge", "-n", ns, "-o", "jsonpath={.spec.ports[0].nodePort}"); got == "" || got == np {
		t.Fatalf("NodePort after switching back: %q (the freed %s went to another service)", got, np)
	}
	// The kubernetes Service has the first address.
	if got := c.ok("", "get", "svc", "kubernetes", "-n", "default", "-o", "jsonpath={.spec.clusterIP}"); got != svcRange.Addr().Next().String() {
		t.Fatalf("kubernetes service ClusterIP %q", got)
	}
}

func TestKubectlDescribeShowsEvents(t *testing.T) {
	c := startServer(t)
	c.ok("", "create", "namespace", "described")
	c.ok("", "create", "configmap", "subject", "-n", "described")
	uid := c.ok("", "get", "cm", "subject", "-n", "described", "-o", "jsonpath={.metadata.uid}")
	ev := fmt.Sprintf(`{"apiVersion":"v1","kind":"Event","metadata":{"name":"subject.1","namespace":"described"},
		"involvedObject":{"apiVersion":"v1","kind":"ConfigMap","name":"subject","namespace":"described","uid":"%s"},
		"reason":"Reloaded","message":"configuration reloaded","type":"Normal","count":3,
		"firstTimestamp":"2026-01-01T00:00:00Z","lastTimestamp":"2026-01-01T00:00:00Z","source":{"component":"edge-agent"}}`, uid)
	c.ok(ev, "create", "-f", "-")
	out := c.ok("", "describe", "configmap", "subject", "-n", "described")
	if !regexp.MustCompile(`(?m)^Events:\n\s+Type\s+Reason\s+Age\s+From\s+Message\n.*\n\s+Normal\s+Reloaded\s+.*edge-agent\s+configuration reloaded`).MatchString(out) {
		t.Fatalf("describe does not show the event:\n%s", out)
	}
	contains(t, "get events", c.ok("", "get", "events", "-n", "described"), "Reloaded", "configmap/subject")
}

func TestKubectlRunAndGetAll(t *testing.T) {
	c := startServer(t)
	ns := "running"
	c.ok("", "create", "namespace", ns)
	contains(t, "run", c.ok("", "run", "solo", "-n", ns, "--image=example.com/solo:1", "--labels=app=solo"), "pod/solo created")
	// The scheduler binds it to the server's node, which gives it an address
	// and tries to pull the image; the server pulls from loopback
	// registries only, so the pull fails as a missing image does.
	var pods string
	wide := regexp.MustCompile(`(?m)^NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE\s+IP\s+NODE\s+NOMINATED NODE\s+READINESS GATES\nsolo\s+0/1\s+(ErrImagePull|ImagePullBackOff)\s+0\s+\S+\s+127\.70\.\d+\.\d+\s+kubectl-test\s+<none>\s+<none>$`)
	for range 100 { // bounded: 100 × 100 ms
		if pods = c.ok("", "get", "pods", "-n", ns, "-o", "wide"); wide.MatchString(strings.TrimSpace(pods)) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !wide.MatchString(strings.TrimSpace(pods)) {
		t.Fatalf("pods -o wide:\n%s", pods)
	}
	if got := c.ok("", "get", "pod", "solo", "-n", ns, "-o", "jsonpath={.spec.restartPolicy} {.spec.containers[0].imagePullPolicy} {.status.phase}"); got != "Always IfNotPresent Pending" {
		t.Fatalf("pod defaults: %q", got)
	}
	contains(t, "describe", c.ok("", "describe", "pod", "solo", "-n", ns), "Scheduled", "Pulling", "not allowed on this node")
	c.ok("", "create", "service", "clusterip", "solo", "-n", ns, "--tcp=80:80")
	all := c.ok("", "get", "all", "-n", ns)
	contains(t, "get all", all, "pod/solo", "service/solo")
}

func TestKubectlNodes(t *testing.T) {
	c := startServer(t)
	var out string
	for range 100 { // the agent registers right after start-up; bounded wait
		out = c.ok("", "get", "nodes")
		if strings.Contains(out, "kubectl-test") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Every server is a control-plane Node (the label kubeadm and k3s give their servers; no taint: it runs pods).
	if !regexp.MustCompile(`(?m)^kubectl-test\s+Ready\s+control-plane\s+\S+\s+v1\.32\.13-skiff$`).MatchString(out) {
		t.Fatalf("get nodes:\n%s", out)
	}
	desc := c.ok("", "describe", "node", "kubectl-test")
	contains(t, "describe node", desc, "Capacity:", "pods:", "110", "Allocatable:", "KubeletReady", "Kubelet Version:")
	if strings.Contains(desc, "-9223372036854775808") {
		t.Fatalf("describe node prints garbage percentages:\n%s", desc)
	}
}
