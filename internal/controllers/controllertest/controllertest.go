// Package controllertest starts a real engine for the tests of skiff's
// scheduler and controllers, and plays the kubelet for fake nodes: it
// registers Node objects through the API and marks the pods bound to them
// Running and Ready (when the test says so) and finishes deleting them, as
// a kubelet would. Tests place their pods on these fake nodes (with a
// nodeSelector) so the engine's own node agent, which really runs pods,
// never touches them. For tests only.
package controllertest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiffhq/skiff/engine"
	"github.com/skiffhq/skiff/internal/testutil"
)

// FakeNodeLabel marks the fake nodes; pods select them with
// FakeNodeSelector.
const FakeNodeLabel = "skiff.test/fake-node"

// FakeNodeSelector is the nodeSelector that keeps a pod on fake nodes.
var FakeNodeSelector = map[string]string{FakeNodeLabel: "true"}

// Timeout bounds every wait of these tests: generous for a loaded
// 2-core machine, never a performance claim.
const Timeout = 30 * time.Second

// Cluster is a started single-node engine.
type Cluster struct {
	Engine *engine.Engine
	Client kubernetes.Interface
	// Node is the engine's own node.
	Node string
}

// Start starts an engine in a temporary directory with the API on a free
// loopback port, and waits until its own node is registered and Ready.
// The engine stops when the test ends.
func Start(t *testing.T) *Cluster {
	t.Helper()
	e, err := engine.New(engine.Config{DataDir: t.TempDir(), NodeName: "ctl-node", APIListen: "127.0.0.1:0", ImageHosts: []string{"loopback"},
		// Fake nodes send no heartbeats: keep them Ready for the test.
		NodeGracePeriod: time.Hour, Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Stop(context.Background()) })
	cs, err := e.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{Engine: e, Client: cs, Node: e.Config().NodeName}
	testutil.Eventually(t, Timeout, func() error {
		n, err := cs.CoreV1().Nodes().Get(context.Background(), c.Node, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return fmt.Errorf("node %s not Ready: %+v", c.Node, n.Status.Conditions)
	})
	return c
}

// Resources is a ResourceList of cpu, memory and pods.
func Resources(cpu, memory string, pods int64) corev1.ResourceList {
	return corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(memory),
		corev1.ResourcePods: *resource.NewQuantity(pods, resource.DecimalSI),
	}
}

// AddNode registers a fake node through the API with FakeNodeLabel and
// extra labels, alloc as capacity and allocatable (4 cpu, 8Gi, 110 pods if
// nil), and a Ready condition (written through nodes/status, as a kubelet
// does).
func (c *Cluster) AddNode(t *testing.T, name string, extra map[string]string, alloc corev1.ResourceList) *corev1.Node {
	t.Helper()
	ctx := context.Background()
	if alloc == nil {
		alloc = Resources("4", "8Gi", 110)
	}
	lbls := map[string]string{FakeNodeLabel: "true", corev1.LabelHostname: name}
	for k, v := range extra {
		lbls[k] = v
	}
	n, err := c.Client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbls}},
		metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	now := metav1.Now()
	n.Status = corev1.NodeStatus{
		Capacity: alloc, Allocatable: alloc.DeepCopy(),
		Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
			Message: "fake kubelet is ready", LastHeartbeatTime: now, LastTransitionTime: now}},
	}
	if n, err = c.Client.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	return n
}

// Kubelet plays the kubelet of fake nodes.
type Kubelet struct {
	client kubernetes.Interface
	nodes  map[string]bool
	lister cache.Indexer
	queue  workqueue.TypedRateLimitingInterface[string]

	mu    sync.Mutex
	ready func(*corev1.Pod) bool
}

// StartKubelet serves the pods bound to nodes until the test ends: it marks
// them Running and Ready when ready(pod) (all of them at first), and
// deletes terminating ones at once (grace 0), as a kubelet does once their
// containers stopped.
func (c *Cluster) StartKubelet(t *testing.T, nodes ...string) *Kubelet {
	t.Helper()
	k := &Kubelet{client: c.Client, nodes: map[string]bool{}, ready: func(*corev1.Pod) bool { return true },
		queue: workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())}
	for _, n := range nodes {
		k.nodes[n] = true
	}
	ctx, cancel := context.WithCancel(context.Background())
	factory := informers.NewSharedInformerFactory(c.Client, 0)
	inf := factory.Core().V1().Pods().Informer()
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			k.queue.Add(key)
		}
	}
	inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: enqueue, UpdateFunc: func(_, o any) { enqueue(o) }})
	k.lister = inf.GetIndexer()
	factory.Start(ctx.Done())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
			return
		}
		for {
			key, quit := k.queue.Get()
			if quit {
				return
			}
			if err := k.sync(ctx, key); err != nil && ctx.Err() == nil && k.queue.NumRequeues(key) < 10 {
				k.queue.AddRateLimited(key)
			} else {
				k.queue.Forget(key)
			}
			k.queue.Done(key)
		}
	}()
	t.Cleanup(func() {
		cancel()
		k.queue.ShutDown()
		<-done
		factory.Shutdown()
	})
	return k
}

// SetReady changes which pods the kubelet reports Ready, and looks at every
// pod again.
func (k *Kubelet) SetReady(ready func(*corev1.Pod) bool) {
	k.mu.Lock()
	k.ready = ready
	k.mu.Unlock()
	for _, key := range k.lister.ListKeys() {
		k.queue.Add(key)
	}
}

func (k *Kubelet) sync(ctx context.Context, key string) error {
	obj, ok, err := k.lister.GetByKey(key)
	if err != nil || !ok {
		return err
	}
	pod := obj.(*corev1.Pod)
	if !k.nodes[pod.Spec.NodeName] {
		return nil
	}
	pods := k.client.CoreV1().Pods(pod.Namespace)
	if pod.DeletionTimestamp != nil {
		zero := int64(0)
		err := pods.Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero,
			Preconditions: &metav1.Preconditions{UID: &pod.UID}})
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return nil
		}
		return err
	}
	k.mu.Lock()
	want := k.ready(pod)
	k.mu.Unlock()
	if !want || isReady(pod) {
		return nil
	}
	cp := pod.DeepCopy()
	now := metav1.Now()
	cp.Status.Phase = corev1.PodRunning
	cp.Status.StartTime = &now
	for _, t := range []corev1.PodConditionType{corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
		setCondition(cp, corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: now})
	}
	cp.Status.ContainerStatuses = nil
	for _, ctr := range cp.Spec.Containers {
		cp.Status.ContainerStatuses = append(cp.Status.ContainerStatuses, corev1.ContainerStatus{
			Name: ctr.Name, Image: ctr.Image, Ready: true, Started: ptr(true),
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}}})
	}
	_, err = pods.UpdateStatus(ctx, cp, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

func ptr[T any](v T) *T { return &v }

func isReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func setCondition(p *corev1.Pod, c corev1.PodCondition) {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == c.Type {
			p.Status.Conditions[i] = c
			return
		}
	}
	p.Status.Conditions = append(p.Status.Conditions, c)
}

// Pods lists the pods of ns that sel selects.
func (c *Cluster) Pods(t *testing.T, ns string, sel map[string]string) []corev1.Pod {
	t.Helper()
	l, err := c.Client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{
		LabelSelector: labels.SelectorFromSet(sel).String()})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

// ActivePods are Pods without the terminating and finished ones.
func (c *Cluster) ActivePods(t *testing.T, ns string, sel map[string]string) []corev1.Pod {
	t.Helper()
	var out []corev1.Pod
	for _, p := range c.Pods(t, ns, sel) {
		if p.DeletionTimestamp == nil && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			out = append(out, p)
		}
	}
	return out
}

// Events lists the events about the object of that kind and name in ns.
func (c *Cluster) Events(t *testing.T, ns, kind, name string) []corev1.Event {
	t.Helper()
	l, err := c.Client.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{
		FieldSelector: fields.Set{"involvedObject.kind": kind, "involvedObject.name": name}.String()})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

// WaitEvent waits for an event with reason about the object whose message
// satisfies match (nil: any), and returns it.
func (c *Cluster) WaitEvent(t *testing.T, ns, kind, name, reason string, match func(string) bool) corev1.Event {
	t.Helper()
	var found corev1.Event
	testutil.Eventually(t, Timeout, func() error {
		evs := c.Events(t, ns, kind, name)
		for _, ev := range evs {
			if ev.Reason == reason && (match == nil || match(ev.Message)) {
				found = ev
				return nil
			}
		}
		var seen []string
		for _, ev := range evs {
			seen = append(seen, ev.Reason+": "+ev.Message)
		}
		return fmt.Errorf("no %s event for %s %s/%s; have %q", reason, kind, ns, name, seen)
	})
	return found
}
