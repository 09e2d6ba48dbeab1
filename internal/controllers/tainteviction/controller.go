// Package tainteviction is skiff's taint-eviction controller, in the shape
// of Kubernetes' (pkg/controller/tainteviction, the "taint manager"): a pod
// on a node with a NoExecute taint it does not tolerate is deleted at once;
// one it tolerates for tolerationSeconds is deleted when they have run out
// (counted from the taint's timeAdded, so a new raft leader does not start
// the count again); one it tolerates without seconds stays. Each eviction
// first sets the pod's DisruptionTarget condition (reason
// DeletionByTaintManager) and records a TaintManagerEviction event, as
// Kubernetes does.
//
// One thing Kubernetes leaves to an operator (the out-of-service taint)
// is automatic here, because skiff's agents fence themselves: a pod evicted
// from an unreachable node stays Terminating (its agent cannot confirm the
// stop), and once the node has been unreachable for ForceDeleteAfter, long
// enough that its agent has stopped its StatefulSet pods (the agent's
// fence, internal/node/agent/fence.go), the pod is deleted with grace 0, so
// its StatefulSet can start the ordinal again elsewhere and never twice.
package tainteviction

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"

	"github.com/skiffhq/skiff/internal/controllers/controller"
)

// Name is the controller's name, as its events' source.
const Name = "taint-eviction-controller"

// Kubernetes' words for an eviction.
const (
	EventReason     = "TaintManagerEviction"
	ConditionReason = "DeletionByTaintManager"
)

// Config of a controller.
type Config struct {
	Client   kubernetes.Interface       // required
	Pods     coreinformers.PodInformer  // required
	Nodes    coreinformers.NodeInformer // required
	Recorder record.EventRecorder       // required
	// ForceDeleteAfter is how long after a node's unreachable NoExecute
	// taint was added the pods still Terminating on it are deleted with
	// grace 0. It must cover the agents' fence timeout (less the grace
	// period the taint waited for) plus a margin; the engine computes it.
	// Zero or negative: never (Kubernetes' behaviour).
	ForceDeleteAfter time.Duration
	Clock            clock.Clock  // default the real clock
	Logger           *slog.Logger // default slog.Default()
}

// Controller evicts pods from NoExecute-tainted nodes. Its handlers only
// enqueue pod keys; Run's workers do the rest, and a pod whose eviction is
// due later is queued again for then.
type Controller struct {
	cfg   Config
	pods  corelisters.PodLister
	nodes corelisters.NodeLister
	log   *slog.Logger
	queue workqueue.TypedRateLimitingInterface[string]
	loop  *controller.Loop

	// seen is when this controller first saw each NoExecute taint, by
	// node and taint: a taint's timeAdded is stored to the second, so
	// counting from it could evict up to a second early (with tolerations
	// of a second or two, that matters); see observe.
	mu   sync.Mutex
	seen map[string]map[string]time.Time // node → taintID → first seen
}

// New registers the controller's handlers on the informers, which the
// caller starts.
func New(cfg Config) (*Controller, error) {
	if cfg.Client == nil || cfg.Pods == nil || cfg.Nodes == nil || cfg.Recorder == nil {
		return nil, errors.New("taint eviction: Client, Pods, Nodes and Recorder are required")
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Controller{cfg: cfg, pods: cfg.Pods.Lister(), nodes: cfg.Nodes.Lister(), seen: map[string]map[string]time.Time{},
		log: cfg.Logger.With("controller", Name), queue: controller.NewQueue("taint-eviction")}
	podInf, nodeInf := cfg.Pods.Informer(), cfg.Nodes.Informer()
	if _, err := podInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.podChanged,
		UpdateFunc: func(_, cur any) { c.podChanged(cur) },
	}); err != nil {
		return nil, err
	}
	if _, err := nodeInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: c.nodeChanged,
		UpdateFunc: func(old, cur any) {
			if !sameNoExecute(old.(*corev1.Node).Spec.Taints, cur.(*corev1.Node).Spec.Taints) {
				c.nodeChanged(cur)
			}
		},
		DeleteFunc: func(obj any) {
			if n, ok := obj.(*corev1.Node); ok {
				c.mu.Lock()
				delete(c.seen, n.Name)
				c.mu.Unlock()
			}
		},
	}); err != nil {
		return nil, err
	}
	c.loop = &controller.Loop{Name: Name, Queue: c.queue, Log: c.log,
		Sync: func(ctx context.Context, key string) error {
			next, err := c.sync(ctx, key)
			if err == nil && next > 0 {
				c.queue.AddAfter(key, next)
			}
			return err
		},
		Synced: []cache.InformerSynced{podInf.HasSynced, nodeInf.HasSynced}}
	return c, nil
}

// Run works until ctx ends.
func (c *Controller) Run(ctx context.Context, workers int) { c.loop.Run(ctx, workers) }

func (c *Controller) podChanged(obj any) {
	if p, ok := obj.(*corev1.Pod); ok && p.Spec.NodeName != "" {
		c.queue.Add(controller.KeyOf(p))
	}
}

// nodeChanged queues every pod on a node whose NoExecute taints changed.
// Listing all pods is fine at the scale of an edge cluster; an index by
// node would have to be shared with the other controllers' informers.
func (c *Controller) nodeChanged(obj any) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return
	}
	c.observe(n.Name, noExecute(n.Spec.Taints), c.cfg.Clock.Now())
	if len(noExecute(n.Spec.Taints)) == 0 {
		return // taints gone: the pods queued for later find nothing to do
	}
	pods, err := c.pods.List(labels.Everything())
	if err != nil {
		return
	}
	for _, p := range pods {
		if p.Spec.NodeName == n.Name {
			c.queue.Add(controller.KeyOf(p))
		}
	}
}

// observe records when the node's NoExecute taints were first seen,
// forgets those it no longer has, and returns the taints with timeAdded
// set to when each surely was added: the end of its stored second, or its
// first sight if that came earlier. A new leader thus keeps the count.
func (c *Controller) observe(node string, taints []corev1.Taint, now time.Time) []corev1.Taint {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.seen[node]
	cur := make(map[string]time.Time, len(taints))
	out := make([]corev1.Taint, len(taints))
	for i, t := range taints {
		id := t.Key + "=" + t.Value
		if t.TimeAdded != nil {
			id += "@" + t.TimeAdded.UTC().Format(time.RFC3339)
		}
		first, ok := old[id]
		if !ok {
			first = now
		}
		cur[id] = first
		out[i] = t
		// The taint came at or after its stored second and at or before its
		// first sight: the earlier of its stored second's end and the first
		// sight is never early, and at most a second late.
		at := first
		if t.TimeAdded != nil {
			if end := t.TimeAdded.Add(time.Second); end.Before(at) {
				at = end
			}
		}
		out[i].TimeAdded = &metav1.Time{Time: at}
	}
	if len(cur) == 0 {
		delete(c.seen, node)
	} else {
		c.seen[node] = cur
	}
	return out
}

func noExecute(taints []corev1.Taint) []corev1.Taint {
	var out []corev1.Taint
	for _, t := range taints {
		if t.Effect == corev1.TaintEffectNoExecute {
			out = append(out, t)
		}
	}
	return out
}

func sameNoExecute(a, b []corev1.Taint) bool {
	x, y := noExecute(a), noExecute(b)
	if len(x) != len(y) {
		return false
	}
	for i := range x {
		if x[i].Key != y[i].Key || x[i].Value != y[i].Value || !x[i].TimeAdded.Equal(y[i].TimeAdded) {
			return false
		}
	}
	return true
}

// sync looks at one pod: evicts it if due, and says when to look again
// (0: not needed, an informer event will bring it back).
func (c *Controller) sync(ctx context.Context, key string) (time.Duration, error) {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return 0, nil
	}
	pod, err := c.pods.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if pod.Spec.NodeName == "" || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return 0, nil
	}
	node, err := c.nodes.Get(pod.Spec.NodeName)
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	taints := noExecute(node.Spec.Taints)
	if len(taints) == 0 {
		return 0, nil
	}
	now := c.cfg.Clock.Now()
	taints = c.observe(node.Name, taints, now)
	if pod.DeletionTimestamp != nil {
		return c.forceDeleteIfFenced(ctx, pod, taints, now)
	}
	due, ok := evictionTime(pod.Spec.Tolerations, taints, now)
	if !ok {
		return 0, nil // tolerated for ever
	}
	if wait := due.Sub(now); wait > 0 {
		return wait, nil
	}
	if err := c.evict(ctx, pod); err != nil {
		return 0, err
	}
	// Look again: a pod left Terminating on an unreachable node is deleted
	// for good once its agent's fence has passed.
	return c.forceDeleteWait(taints, now), nil
}

// evictionTime is when the pod must leave a node with these NoExecute
// taints: now if one is not tolerated; else, per taint, its timeAdded plus
// the least tolerationSeconds among the tolerations that match it, the
// earliest of those; ok false when every taint is tolerated for ever.
// Kubernetes takes the least seconds over all used tolerations counted from
// when it noticed; counting from timeAdded keeps the deadline across a
// change of leader.
func evictionTime(tols []corev1.Toleration, taints []corev1.Taint, now time.Time) (time.Time, bool) {
	var due time.Time
	found := false
	for i := range taints {
		taint := &taints[i]
		tolerated, forever := false, true
		var secs int64
		for j := range tols {
			if !tols[j].ToleratesTaint(taint) {
				continue
			}
			tolerated = true
			if s := tols[j].TolerationSeconds; s != nil {
				if forever || *s < secs {
					secs = *s
				}
				forever = false
			}
		}
		if !tolerated {
			return now, true
		}
		if forever {
			continue
		}
		added := now
		if taint.TimeAdded != nil {
			added = taint.TimeAdded.Time
		}
		t := added.Add(time.Duration(max(secs, 0)) * time.Second)
		if !found || t.Before(due) {
			due, found = t, true
		}
	}
	return due, found
}

// evict marks the pod a disruption target and deletes it with its own
// grace period, as Kubernetes' taint manager does.
func (c *Controller) evict(ctx context.Context, pod *corev1.Pod) error {
	c.cfg.Recorder.Eventf(pod, corev1.EventTypeNormal, EventReason, "Marking for deletion Pod %s", controller.PodKey(pod))
	cp := pod.DeepCopy()
	cond := corev1.PodCondition{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue, Reason: ConditionReason,
		Message: "Taint manager: deleting due to NoExecute taint", LastTransitionTime: metav1.NewTime(c.cfg.Clock.Now())}
	replaced := false
	for i := range cp.Status.Conditions {
		if cp.Status.Conditions[i].Type == corev1.DisruptionTarget {
			cp.Status.Conditions[i], replaced = cond, true
		}
	}
	if !replaced {
		cp.Status.Conditions = append(cp.Status.Conditions, cond)
	}
	pods := c.cfg.Client.CoreV1().Pods(pod.Namespace)
	if _, err := pods.UpdateStatus(ctx, cp, metav1.UpdateOptions{}); err != nil && !apierrors.IsConflict(err) {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("mark pod %s for eviction: %w", controller.PodKey(pod), err)
	}
	uid := pod.UID
	err := pods.Delete(ctx, pod.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("evict pod %s: %w", controller.PodKey(pod), err)
	}
	c.log.Info("evicted pod from a NoExecute-tainted node", "pod", controller.PodKey(pod), "node", pod.Spec.NodeName)
	return nil
}

// unreachableSince is when the node's unreachable NoExecute taint was
// added (its agent stopped heartbeating a grace period before); ok false
// when it has none.
func unreachableSince(taints []corev1.Taint, now time.Time) (time.Time, bool) {
	for _, t := range taints {
		if t.Key == corev1.TaintNodeUnreachable {
			if t.TimeAdded == nil {
				return now, true
			}
			return t.TimeAdded.Time, true
		}
	}
	return time.Time{}, false
}

// forceDeleteWait is how long until pods Terminating on the node may be
// deleted with grace 0; 0 when never.
func (c *Controller) forceDeleteWait(taints []corev1.Taint, now time.Time) time.Duration {
	since, ok := unreachableSince(taints, now)
	if !ok || c.cfg.ForceDeleteAfter <= 0 {
		return 0
	}
	return max(since.Add(c.cfg.ForceDeleteAfter).Sub(now), time.Millisecond)
}

// forceDeleteIfFenced deletes with grace 0 a Terminating pod on a node
// unreachable for ForceDeleteAfter: its agent, cut off that long, has
// stopped it (StatefulSet pods) or will when it returns (the others).
func (c *Controller) forceDeleteIfFenced(ctx context.Context, pod *corev1.Pod, taints []corev1.Taint, now time.Time) (time.Duration, error) {
	since, ok := unreachableSince(taints, now)
	if !ok || c.cfg.ForceDeleteAfter <= 0 {
		return 0, nil
	}
	if wait := since.Add(c.cfg.ForceDeleteAfter).Sub(now); wait > 0 {
		return wait, nil
	}
	uid := pod.UID
	err := c.cfg.Client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name,
		metav1.DeleteOptions{GracePeriodSeconds: new(int64), Preconditions: &metav1.Preconditions{UID: &uid}})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("force-delete pod %s from unreachable node %s: %w", controller.PodKey(pod), pod.Spec.NodeName, err)
	}
	c.log.Info("deleted pod of a fenced unreachable node", "pod", controller.PodKey(pod), "node", pod.Spec.NodeName,
		"unreachable_for", now.Sub(since))
	return 0, nil
}
