package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiffhq/skiff/internal/bus"
	"github.com/skiffhq/skiff/internal/node/protocol"
	"github.com/skiffhq/skiff/internal/testutil"
	"github.com/skiffhq/skiff/raft"
)

// startEngine starts an engine for a test. Its node pulls images from
// loopback registries only: a test pod's made-up image never sends traffic
// off the machine.
func startEngine(t *testing.T, cfg Config) *Engine {
	t.Helper()
	if cfg.ImageHosts == nil {
		cfg.ImageHosts = []string{"loopback"}
	}
	e := mustNew(t, cfg)
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Stop(context.Background()) })
	return e
}

func TestEngineRestartKeepsStateAndIdentity(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	e := startEngine(t, Config{DataDir: dir, NodeName: "edge-1"})
	kv, err := e.testStore().Create(ctx, "/registry/namespaces/default", []byte(`{"kind":"Namespace"}`))
	if err != nil {
		t.Fatal(err)
	}
	token, err := os.ReadFile(filepath.Join(dir, "token"))
	if err != nil || len(token) < 32 {
		t.Fatalf("token file: %q %v", token, err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "token")); fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v, want 0600", fi.Mode().Perm())
	}
	if err := e.Start(ctx); !errors.Is(err, ErrAlreadyStarted) {
		t.Fatalf("second Start: %v", err)
	}
	if err := e.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if e.testStore() != nil {
		t.Fatal("store still set after Stop")
	}

	// The same directory under another name is refused, and nothing starts.
	if err := mustNew(t, Config{DataDir: dir, NodeName: "edge-2"}).Start(ctx); !errors.Is(err, ErrNodeRenamed) {
		t.Fatalf("start with another node name: %v", err)
	}

	e2 := startEngine(t, Config{DataDir: dir, NodeName: "edge-1"})
	got, _, err := e2.testStore().Get(ctx, kv.Key, raft.ReadOptions{})
	if err != nil || got.ModRev != kv.ModRev {
		t.Fatalf("after restart: %+v %v", got, err)
	}
	token2, _ := os.ReadFile(filepath.Join(dir, "token"))
	if string(token2) != string(token) {
		t.Fatal("token changed across restart")
	}
	// The bus serves in-process with no listening port.
	if url := e2.testBus().ClientURL(); url != "" {
		t.Fatalf("single-node bus listens on %q", url)
	}
}

func mustNew(t *testing.T, cfg Config) *Engine {
	t.Helper()
	cfg.Logger = testutil.Logger(t)
	cfg.APIListen = "127.0.0.1:0"
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestConfigValidation(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no data dir":         {NodeName: "a"},
		"bad node name":       {DataDir: "x", NodeName: "Not_DNS"},
		"dash at end":         {DataDir: "x", NodeName: "node-"},
		"bad raft bind":       {DataDir: "x", NodeName: "a", RaftBind: "nonsense"},
		"bad api address":     {DataDir: "x", NodeName: "a", APIListen: "6443"},
		"bad cidr":            {DataDir: "x", NodeName: "a", ServiceCIDR: "10.0.0.0/99"},
		"bad pod cidr":        {DataDir: "x", NodeName: "a", ClusterPodCIDR: "127.66.0.0"},
		"bad audit level":     {DataDir: "x", NodeName: "a", AuditLogPath: "audit.log", AuditLevel: "Everything"},
		"negative audit size": {DataDir: "x", NodeName: "a", AuditLogPath: "audit.log", AuditLogMaxSizeMB: -1},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New accepted %+v", name, cfg)
		}
	}
	e, err := New(Config{DataDir: "rel", NodeName: "a"})
	if err != nil {
		t.Fatal(err)
	}
	c := e.Config()
	// The ranges are chosen at Start (ranges_test.go), not by New.
	if !filepath.IsAbs(c.DataDir) || c.RaftBind != "" || c.ServiceCIDR != "" || c.ClusterPodCIDR != "" ||
		c.ReadyTimeout != 30*time.Second {
		t.Fatalf("defaults not filled: %+v", c)
	}
}

// Events recorded by an engine component land in the API, findable the way
// kubectl describe looks for them.
func TestEventRecorder(t *testing.T) {
	e := startEngine(t, Config{DataDir: t.TempDir(), NodeName: "events"})
	ctx := context.Background()
	cs, err := e.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	cm, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "watched"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := e.EventRecorder("test-controller")
	if err != nil {
		t.Fatal(err)
	}
	rec.Event(cm, corev1.EventTypeNormal, "Checked", "looked at it")
	rec.Event(cm, corev1.EventTypeNormal, "Checked", "looked at it") // a repeat: aggregated into count 2
	sel := "involvedObject.uid=" + string(cm.UID) + ",involvedObject.name=watched,involvedObject.namespace=default,involvedObject.kind=ConfigMap"
	testutil.Eventually(t, 10*time.Second, func() error {
		evs, err := cs.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: sel})
		if err != nil {
			return err
		}
		if len(evs.Items) != 1 || evs.Items[0].Count != 2 || evs.Items[0].Source.Component != "test-controller" ||
			evs.Items[0].Source.Host != "events" || evs.Items[0].Reason != "Checked" {
			return fmt.Errorf("events: %+v", evs.Items)
		}
		return nil
	})
}

// The engine's own node agent registers its Node, keeps it Ready with
// heartbeats over the bus, and the node turns Unknown when they stop and
// Ready when they resume.
func TestNodeRegistrationAndLifecycle(t *testing.T) {
	e := startEngine(t, Config{DataDir: t.TempDir(), NodeName: "edge-1.site.example",
		NodeHeartbeatInterval: 50 * time.Millisecond, NodeGracePeriod: 1500 * time.Millisecond})
	cs, err := e.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ready := func(want corev1.ConditionStatus) func() error {
		return func() error {
			n, err := cs.CoreV1().Nodes().Get(ctx, "edge-1.site.example", metav1.GetOptions{})
			if err != nil {
				return err
			}
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady {
					if c.Status != want {
						return fmt.Errorf("Ready is %s (%s), want %s", c.Status, c.Reason, want)
					}
					return nil
				}
			}
			return errors.New("no Ready condition")
		}
	}
	testutil.Eventually(t, 10*time.Second, ready(corev1.ConditionTrue))
	n, _ := cs.CoreV1().Nodes().Get(ctx, "edge-1.site.example", metav1.GetOptions{})
	if n.Status.Capacity.Cpu().IsZero() || n.Status.Capacity.Memory().IsZero() || n.Status.Allocatable.Pods().Value() != 110 ||
		n.Status.NodeInfo.KubeletVersion == "" || n.Labels["kubernetes.io/hostname"] != "edge-1.site.example" {
		t.Fatalf("registered node: %+v %+v", n.Labels, n.Status)
	}
	// Heartbeats are not written: with the node Ready, its resourceVersion
	// stays put while heartbeats keep arriving.
	rv := n.ResourceVersion
	time.Sleep(300 * time.Millisecond) // several heartbeat intervals; the assertion is on writes, not on time
	if n2, _ := cs.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{}); n2.ResourceVersion != rv {
		t.Fatalf("heartbeats were written: resourceVersion %s → %s", rv, n2.ResourceVersion)
	}

	e.agent.Stop() // the node goes silent
	testutil.Eventually(t, 10*time.Second, ready(corev1.ConditionUnknown))
	if err := e.agent.Start(ctx); err != nil { // and comes back
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, ready(corev1.ConditionTrue))

	// After a control plane restart, heartbeats alone (no new registration)
	// bring back a node the store still holds as Unknown.
	e.agent.Stop()
	testutil.Eventually(t, 10*time.Second, ready(corev1.ConditionUnknown))
	e.testRestartControlPlane(t)
	conn, err := e.testBus().Connect(ctx, "test-node")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	subject, _ := bus.SubjectHeartbeat("edge-1.site.example")
	testutil.Eventually(t, 10*time.Second, func() error {
		if err := bus.Publish(ctx, conn, subject, protocol.Heartbeat{Node: "edge-1.site.example", Time: time.Now()}); err != nil {
			return err
		}
		return ready(corev1.ConditionTrue)()
	})
}

// Pods bound to the node reach its agent over the bus; a gap in the event
// numbers, or a new control plane instance, makes the agent fetch the full
// set, which still matches the API.
func TestPodsReachTheirNode(t *testing.T) {
	e := startEngine(t, Config{DataDir: t.TempDir(), NodeName: "worker-1"})
	cs, err := e.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pods := cs.CoreV1().Pods("default")
	newPod := func(name, node string) {
		t.Helper()
		if _, err := pods.Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.PodSpec{NodeName: node, SchedulerName: "manual", // bound by this test, not the scheduler
				Containers: []corev1.Container{{Name: "c", Image: "example.com/m:1"}}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	desired := func(want ...string) func() error {
		return func() error {
			var got []string
			for _, p := range e.agent.DesiredPods() {
				got = append(got, p.Name)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				return fmt.Errorf("agent wants %v, expected %v", got, want)
			}
			return nil
		}
	}
	newPod("bound-at-create", "worker-1")
	newPod("elsewhere", "worker-2")
	newPod("unscheduled", "")
	testutil.Eventually(t, 10*time.Second, desired("bound-at-create"))
	if err := pods.Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: "unscheduled"},
		Target: corev1.ObjectReference{Kind: "Node", Name: "worker-1"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, desired("bound-at-create", "unscheduled"))
	zero := int64(0)
	if err := pods.Delete(ctx, "bound-at-create", metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, desired("unscheduled"))

	// A forged event far ahead in the numbering: the agent sees a gap and
	// resyncs instead of applying it.
	before := e.agent.Resyncs()
	subject, _ := bus.SubjectNodePods("worker-1")
	conn, err := e.bus.Connect(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ghost := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "ghost", Namespace: "default", UID: "ghost"}}
	epoch := e.testDispatcher(t, nil).Epoch()
	if err := bus.Publish(ctx, conn, subject, protocol.PodEvent{Epoch: epoch, Seq: 1 << 40, Type: "ADDED", Pod: ghost}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		if e.agent.Resyncs() == before {
			return errors.New("no resync after a gap")
		}
		return desired("unscheduled")()
	})

	// A new dispatcher (as after a control plane restart) numbers from a new
	// epoch: the agent resyncs on its first event and follows it.
	// (Counted from before the restart: the new term's first events, for
	// the pods already bound, may reach the agent before this test looks.)
	before = e.agent.Resyncs()
	e.testRestartControlPlane(t)
	newPod("after-restart", "worker-1")
	testutil.Eventually(t, 10*time.Second, desired("after-restart", "unscheduled"))
	if e.agent.Resyncs() == before {
		t.Fatal("no resync for a new control plane epoch")
	}
}
