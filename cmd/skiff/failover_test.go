package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/skiffhq/skiff/engine"
)

// failoverCluster starts one server ("cp") and two agents ("edge-1",
// "edge-2") with the default failover settings, on this test's loopback
// ranges, and waits until both agents' Nodes are Ready.
func failoverCluster(t *testing.T, ctx context.Context) (kubernetes.Interface, *cluster, map[string]*agentProc) {
	t.Helper()
	dir := t.TempDir()
	startProcess(t, `msg="engine ready"`, "server", "--data-dir", dir, "--node-name", "cp", "--api-listen", "127.125.200.1:0",
		"--image-hosts", "loopback", "--cluster-pod-cidr", "127.124.0.0/16", "--service-cidr", "127.125.0.0/17")
	kubeconfig := filepath.Join(dir, "kubeconfig.yaml")
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	rc.QPS, rc.Burst = 200, 200 // the tests poll every 50ms: client-go's default 5/s would blur the figures
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	agents := map[string]*agentProc{}
	for _, name := range []string{"edge-1", "edge-2"} {
		cmd := startProcess(t, `msg="worker ready"`, "agent", "--server", strings.TrimPrefix(rc.Host, "https://"),
			"--token-file", filepath.Join(dir, "token"), "--data-dir", t.TempDir(), "--node-name", name,
			"--image-hosts", "loopback", "--no-cluster-dns")
		agents[name] = &agentProc{pid: cmd.Process.Pid, kill: func() error { return cmd.Process.Kill() }}
	}
	for name := range agents {
		if err := until(300, func() error {
			n, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if s := readyOf(n); s != corev1.ConditionTrue {
				return fmt.Errorf("%s Ready=%s", name, s)
			}
			// Heartbeats renew the node's Lease, served as coordination.k8s.io/v1.
			l, err := cs.CoordinationV1().Leases("kube-node-lease").Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return fmt.Errorf("%s's Lease: %w", name, err)
			}
			if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity != name || l.Spec.RenewTime == nil {
				return fmt.Errorf("%s's Lease: %+v", name, l.Spec)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	return cs, &cluster{t: t, dir: dir, kubeconfig: kubeconfig}, agents
}

// Failover with the defaults: one server and two agents; a Deployment's two
// Wasm pods run on the agents (never on the server); `kill -9` of an agent
// that holds one: its Node leaves Ready (Unknown), gets the unreachable
// NoExecute taint, its pods are evicted (DisruptionTarget, deletion) and
// the Deployment is whole again on the other agent. The test prints the
// time from the kill to NotReady, to the taint, and to all replicas Ready
// again elsewhere; it asserts none of them.
func TestAgentLossMovesPods(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cs, c, agents := failoverCluster(t, ctx)
	c.importModule("../../examples/httpserver", "web:1")
	before := startWeb(ctx, t, cs)
	// The pods' tolerations came from the DefaultTolerationSeconds admission.
	if s := tolerationSecondsOf(before[0], corev1.TaintNodeUnreachable); s != "1" {
		t.Errorf("a web pod's unreachable toleration: %s seconds, want the default 1", s)
	}
	victim := before[0].Spec.NodeName
	var onVictim []string
	for _, p := range before {
		if p.Spec.NodeName == victim {
			onVictim = append(onVictim, p.Name)
		}
	}
	t.Logf("pods before: %s on %s, %s on %s", before[0].Name, before[0].Spec.NodeName, before[1].Name, before[1].Spec.NodeName)

	killed := time.Now()
	if err := agents[victim].kill(); err != nil {
		t.Fatal(err)
	}
	var notReadyAt, taintAt, readyAt time.Time
	// Polled every 50ms, at most 3000 times (2.5 min): the figures are
	// printed, never asserted.
	for i := 0; i < 3000 && readyAt.IsZero(); i++ {
		n, err := cs.CoreV1().Nodes().Get(ctx, victim, metav1.GetOptions{})
		if err == nil {
			if notReadyAt.IsZero() && readyOf(n) == corev1.ConditionUnknown {
				notReadyAt = time.Now()
			}
			if taintAt.IsZero() && hasTaint(n, corev1.TaintNodeUnreachable, corev1.TaintEffectNoExecute) {
				taintAt = time.Now()
			}
		}
		if pods := readyWebPods(ctx, cs, victim); len(pods) == 2 && !taintAt.IsZero() {
			readyAt = time.Now()
		}
		time.Sleep(50 * time.Millisecond)
	}
	if notReadyAt.IsZero() || taintAt.IsZero() || readyAt.IsZero() {
		t.Fatalf("after killing %s: Unknown at %v, tainted at %v, replicas Ready elsewhere at %v", victim,
			notReadyAt, taintAt, readyAt)
	}
	// The lost node's pods were evicted by the taint-eviction controller:
	// marked and deleted (Terminating, or gone once fenced).
	for _, name := range onVictim {
		p, err := cs.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		if err == nil && p.DeletionTimestamp == nil {
			t.Errorf("pod %s on the lost node is not being deleted", name)
		}
		if err == nil && !hasCondition(p, corev1.DisruptionTarget, "DeletionByTaintManager") {
			t.Errorf("pod %s lacks the DisruptionTarget condition: %+v", name, p.Status.Conditions)
		}
	}
	evs, err := cs.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "reason=TaintManagerEviction"})
	if err == nil && len(evs.Items) == 0 {
		t.Errorf("no TaintManagerEviction event")
	}
	t.Logf("kill -9 of %s (%d pod(s)): Ready=Unknown after %v, unreachable:NoExecute after %v, 2/2 replicas Ready elsewhere after %v",
		victim, len(onVictim), notReadyAt.Sub(killed).Round(time.Millisecond), taintAt.Sub(killed).Round(time.Millisecond),
		readyAt.Sub(killed).Round(time.Millisecond))
}

// agentProc is an agent started by the test, killed by its own PID.
type agentProc struct {
	pid  int
	kill func() error
}

func readyOf(n *corev1.Node) corev1.ConditionStatus {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status
		}
	}
	return corev1.ConditionUnknown
}

func hasTaint(n *corev1.Node, key string, effect corev1.TaintEffect) bool {
	for _, t := range n.Spec.Taints {
		if t.Key == key && t.Effect == effect {
			return true
		}
	}
	return false
}

func hasCondition(p *corev1.Pod, typ corev1.PodConditionType, reason string) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == typ && c.Status == corev1.ConditionTrue && c.Reason == reason {
			return true
		}
	}
	return false
}

func tolerationSecondsOf(p corev1.Pod, key string) string {
	for _, t := range p.Spec.Tolerations {
		if t.Key == key && t.Effect == corev1.TaintEffectNoExecute && t.TolerationSeconds != nil {
			return fmt.Sprint(*t.TolerationSeconds)
		}
	}
	return "none"
}

// readyWebPods lists the web pods that are Ready, not being deleted, and
// not on the node skip.
func readyWebPods(ctx context.Context, cs kubernetes.Interface, skip string) []corev1.Pod {
	list, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		return nil
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp != nil || p.Spec.NodeName == "" || p.Spec.NodeName == skip {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				out = append(out, p)
			}
		}
	}
	return out
}

// startWeb creates the Deployment "web" of two Wasm pods spread over the
// agents (never on the server) and returns them once both are Ready.
func startWeb(ctx context.Context, t *testing.T, cs kubernetes.Interface) []corev1.Pod {
	t.Helper()
	const deployment = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      runtimeClassName: wasm
      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
            - matchExpressions: [{key: kubernetes.io/hostname, operator: NotIn, values: [cp]}]
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: ScheduleAnyway, labelSelector: {matchLabels: {app: web}}}
      containers:
      - {name: web, image: web:1, ports: [{containerPort: 8080}]}
`
	var d appsv1.Deployment
	if err := yaml.UnmarshalStrict([]byte(deployment), &d); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.AppsV1().Deployments("default").Create(ctx, &d, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create the deployment: %v", err)
	}
	var before []corev1.Pod
	if err := until(600, func() error {
		before = readyWebPods(ctx, cs, "")
		if len(before) != 2 {
			return fmt.Errorf("%d web pods Ready", len(before))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return before
}

// The StatefulSet fence end to end: a StatefulSet's one Wasm pod runs on an
// agent; `kill -9` of that agent: the pod is evicted (Terminating, as
// nobody can confirm it stopped), deleted for good only once the agents'
// fence timeout plus the margin has passed, and then its StatefulSet starts
// web-0 again on the other agent: one ordinal, never two at once. The test
// prints the time from the kill to the eviction, to the deletion and to the
// new web-0 being Ready.
func TestAgentLossMovesStatefulSetPodAfterFence(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cs, c, agents := failoverCluster(t, ctx)
	c.importModule("../../examples/httpserver", "web:1")
	// Both agents hold the module compiled before the clock starts (a first
	// start pulls and compiles it: seconds on a loaded machine).
	if warm := startWeb(ctx, t, cs); warm[0].Spec.NodeName == warm[1].Spec.NodeName {
		t.Logf("the warm-up pods share %s: the other agent compiles the module on failover", warm[0].Spec.NodeName)
	}
	if err := cs.AppsV1().Deployments("default").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	const set = `apiVersion: apps/v1
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
      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
            - matchExpressions: [{key: kubernetes.io/hostname, operator: NotIn, values: [cp]}]
      containers:
      - {name: web, image: web:1, ports: [{containerPort: 8080}]}
`
	var sts appsv1.StatefulSet
	if err := yaml.UnmarshalStrict([]byte(set), &sts); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.AppsV1().StatefulSets("default").Create(ctx, &sts, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create the StatefulSet: %v", err)
	}
	var first *corev1.Pod
	if err := until(600, func() error {
		p, err := cs.CoreV1().Pods("default").Get(ctx, "db-0", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if !podReady(p) {
			return fmt.Errorf("db-0 not Ready")
		}
		first = p
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	victim := first.Spec.NodeName
	t.Logf("db-0 (%s) on %s", first.UID, victim)

	killed := time.Now()
	if err := agents[victim].kill(); err != nil {
		t.Fatal(err)
	}
	var evictedAt, goneAt, createdAt, runningAt, readyAt time.Time
	var second *corev1.Pod
	// Polled every 50ms, at most 3000 times: figures printed, not asserted.
	for i := 0; i < 3000 && readyAt.IsZero(); i++ {
		p, err := cs.CoreV1().Pods("default").Get(ctx, "db-0", metav1.GetOptions{})
		switch {
		case err == nil && p.UID == first.UID:
			if evictedAt.IsZero() && p.DeletionTimestamp != nil {
				evictedAt = time.Now()
			}
		case err == nil || apierrors.IsNotFound(err):
			if goneAt.IsZero() {
				goneAt = time.Now()
			}
			if err == nil && createdAt.IsZero() {
				createdAt = time.Now()
			}
			if err == nil && runningAt.IsZero() && p.Status.Phase == corev1.PodRunning {
				runningAt = time.Now()
			}
			if err == nil && podReady(p) {
				readyAt, second = time.Now(), p
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if evictedAt.IsZero() || goneAt.IsZero() || readyAt.IsZero() {
		t.Fatalf("after killing %s: db-0 evicted at %v, deleted at %v, Ready again at %v", victim, evictedAt, goneAt, readyAt)
	}
	if second.Spec.NodeName == victim || second.Spec.NodeName == "cp" {
		t.Fatalf("the new db-0 runs on %s", second.Spec.NodeName)
	}
	if !goneAt.After(evictedAt) {
		t.Fatal("db-0 deleted for good without being evicted first")
	}
	ms := func(at time.Time) time.Duration { return at.Sub(killed).Round(time.Millisecond) }
	t.Logf("kill -9 of %s: db-0 evicted (Terminating) after %v, deleted for good after %v (fence %v + margin), "+
		"created again after %v, Running on %s after %v, Ready after %v", victim, ms(evictedAt), ms(goneAt),
		engine.DefaultStatefulSetFenceTimeout, ms(createdAt), second.Spec.NodeName, ms(runningAt), ms(readyAt))
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
