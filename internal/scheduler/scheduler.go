// Package scheduler is skiff's minimal default scheduler: it binds each pod
// that names it (schedulerName default-scheduler, or none) and has no node
// yet to a node that is Ready and schedulable, whose taints the pod
// tolerates, that matches the pod's nodeSelector and required node
// affinity, offers its runtime class, and has room for its requests;
// among those it picks the least allocated. A pod that fits nowhere gets a
// FailedScheduling event and PodScheduled=False (Unschedulable), and is
// tried again, with back-off, when nodes or pods change.
//
// Placement is a pipeline as in Kubernetes and Nomad: named filters
// (filters.go), then named, weighted scores (scores.go), then the binding.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/skiffhq/skiff/internal/informer"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	coreinformers "k8s.io/client-go/informers/core/v1"
	policyinformers "k8s.io/client-go/informers/policy/v1"
	storageinformers "k8s.io/client-go/informers/storage/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	storagelisters "k8s.io/client-go/listers/storage/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiffhq/skiff/internal/controllers/controller"
)

// Name is the scheduler's name: the schedulerName pods ask for, and the
// source of its events.
const Name = corev1.DefaultSchedulerName

// Back-off of a pod that fit nowhere, as Kubernetes' podInitialBackoff and
// podMaxBackoff: a change to nodes or pods retries it no sooner than this
// after its last attempt.
const (
	initialBackoff = time.Second
	maxBackoff     = 10 * time.Second
)

// FlushInterval is how often pods that fit nowhere are retried even with
// no change seen, in case the change that would let them fit was missed.
const FlushInterval = 30 * time.Second

// Config of a scheduler.
type Config struct {
	Client   kubernetes.Interface       // required
	Pods     coreinformers.PodInformer  // required
	Nodes    coreinformers.NodeInformer // required
	Recorder record.EventRecorder       // required
	Logger   *slog.Logger               // default slog.Default()
	// Claims, Volumes and StorageClasses, all or none, let pods with
	// PersistentVolumeClaims be placed (VolumeBinding); without them such
	// pods wait.
	Claims         coreinformers.PersistentVolumeClaimInformer
	Volumes        coreinformers.PersistentVolumeInformer
	StorageClasses storageinformers.StorageClassInformer
	// PodDisruptionBudgets, when set, are respected by preemption
	// (preemption.go), which deletes lower-priority pods to make room.
	PodDisruptionBudgets policyinformers.PodDisruptionBudgetInformer
}

// Scheduler places pods on nodes. Its event handlers run on the
// informers' goroutines and only enqueue; one worker schedules one pod at
// a time, so each decision sees the previous one.
type Scheduler struct {
	client   kubernetes.Interface
	pods     corelisters.PodLister
	nodes    corelisters.NodeLister
	recorder record.EventRecorder
	log      *slog.Logger
	queue    workqueue.TypedRateLimitingInterface[string]
	loop     *controller.Loop
	claims   corelisters.PersistentVolumeClaimLister // nil without Config.Claims
	volumes  corelisters.PersistentVolumeLister      // nil without Config.Claims
	classes  storagelisters.StorageClassLister       // nil without Config.Claims
	// preemption is what preemption.go reads.
	preemption *preemptor

	mu sync.Mutex
	// assumed are pods bound by this scheduler that the pod informer has
	// not yet shown bound: they already take room on their node.
	assumed map[types.UID]*corev1.Pod
	// waiting are the pods that fit nowhere, until a change may let them.
	waiting map[string]attempt
	// moves counts retryWaiting calls. A change seen while a pod was being
	// placed (after its attempt read the listers, before it joined
	// waiting) would otherwise find nothing to retry and be lost until the
	// next flush: an attempt that fails while moves changed is queued
	// again at once, as Kubernetes' scheduling queue does with its
	// moveRequestCycle.
	moves uint64
}

type attempt struct {
	count int
	last  time.Time
}

// New registers the scheduler's handlers on the informers, which the
// caller starts.
func New(cfg Config) (*Scheduler, error) {
	if cfg.Client == nil || cfg.Pods == nil || cfg.Nodes == nil || cfg.Recorder == nil {
		return nil, errors.New("scheduler: Client, Pods, Nodes and Recorder are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Scheduler{
		client: cfg.Client, pods: cfg.Pods.Lister(), nodes: cfg.Nodes.Lister(), recorder: cfg.Recorder,
		log: cfg.Logger.With("component", "scheduler"), queue: controller.NewQueue("scheduler"),
		assumed: map[types.UID]*corev1.Pod{}, waiting: map[string]attempt{},
	}
	podInf, nodeInf := cfg.Pods.Informer(), cfg.Nodes.Informer()
	if _, err := podInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: s.addPod, UpdateFunc: s.updatePod, DeleteFunc: s.deletePod,
	}); err != nil {
		return nil, err
	}
	if _, err := nodeInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { s.retryWaiting("node added") },
		UpdateFunc: func(old, cur any) {
			if nodeChanged(old.(*corev1.Node), cur.(*corev1.Node)) {
				s.retryWaiting("node changed")
			}
		},
	}); err != nil {
		return nil, err
	}
	synced := []cache.InformerSynced{podInf.HasSynced, nodeInf.HasSynced}
	if cfg.Claims != nil && cfg.Volumes != nil && cfg.StorageClasses != nil {
		s.claims, s.volumes, s.classes = cfg.Claims.Lister(), cfg.Volumes.Lister(), cfg.StorageClasses.Lister()
		// A claim or volume that appears or binds may let a waiting pod fit.
		for _, inf := range []cache.SharedIndexInformer{cfg.Claims.Informer(), cfg.Volumes.Informer()} {
			if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
				AddFunc:    func(any) { s.retryWaiting("volume or claim added") },
				UpdateFunc: func(any, any) { s.retryWaiting("volume or claim changed") },
			}); err != nil {
				return nil, err
			}
			synced = append(synced, inf.HasSynced)
		}
		synced = append(synced, cfg.StorageClasses.Informer().HasSynced)
	}
	preemption, err := newPreemptor(cfg)
	if err != nil {
		return nil, err
	}
	s.preemption = preemption
	if cfg.PodDisruptionBudgets != nil {
		synced = append(synced, cfg.PodDisruptionBudgets.Informer().HasSynced)
	}
	s.loop = &controller.Loop{Name: Name, Queue: s.queue, Sync: s.schedule, Log: s.log, Synced: synced}
	return s, nil
}

// Run schedules until ctx ends.
func (s *Scheduler) Run(ctx context.Context) {
	go func() {
		t := time.NewTicker(FlushInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				s.retryWaiting("periodic flush")
			}
		}
	}()
	s.loop.Run(ctx, 1)
}

// responsible reports whether pod is this scheduler's to place now.
func responsible(pod *corev1.Pod) bool {
	return pod.Spec.NodeName == "" && pod.DeletionTimestamp == nil &&
		(pod.Spec.SchedulerName == "" || pod.Spec.SchedulerName == Name) &&
		pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed
}

func (s *Scheduler) addPod(obj any) {
	if pod := obj.(*corev1.Pod); responsible(pod) {
		s.queue.Add(controller.KeyOf(pod))
	}
}

func (s *Scheduler) updatePod(old, cur any) {
	oldPod, pod := old.(*corev1.Pod), cur.(*corev1.Pod)
	if pod.Spec.NodeName != "" {
		s.mu.Lock()
		delete(s.assumed, pod.UID) // the informer has caught up
		s.mu.Unlock()
		if occupies(oldPod) && !occupies(pod) {
			s.retryWaiting("pod finished")
		}
		return
	}
	// Our own status write (PodScheduled=False) must not retry the pod at
	// once: only a change of what placement reads does.
	if responsible(pod) && (!equality.Semantic.DeepEqual(oldPod.Spec, pod.Spec) || !labels.Equals(oldPod.Labels, pod.Labels)) {
		s.queue.Add(controller.KeyOf(pod))
	}
}

func (s *Scheduler) deletePod(obj any) {
	pod, ok := informer.ObjectOf[*corev1.Pod](obj)
	if !ok {
		return
	}
	s.mu.Lock()
	_, wasAssumed := s.assumed[pod.UID]
	delete(s.assumed, pod.UID)
	delete(s.waiting, controller.KeyOf(pod))
	s.mu.Unlock()
	if pod.Spec.NodeName != "" || wasAssumed {
		s.retryWaiting("pod deleted")
	}
}

// nodeChanged reports a change that may let a waiting pod fit. Heartbeat
// times alone are not one.
func nodeChanged(old, cur *corev1.Node) bool {
	return !labels.Equals(old.Labels, cur.Labels) || old.Spec.Unschedulable != cur.Spec.Unschedulable ||
		!equality.Semantic.DeepEqual(old.Spec.Taints, cur.Spec.Taints) ||
		!equality.Semantic.DeepEqual(old.Status.Allocatable, cur.Status.Allocatable) ||
		readyStatus(old) != readyStatus(cur) ||
		conditionStatus(old, corev1.NodeDiskPressure) != conditionStatus(cur, corev1.NodeDiskPressure)
}

// retryWaiting queues every waiting pod again, each no sooner than its
// back-off after its last attempt.
func (s *Scheduler) retryWaiting(why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.moves++
	if len(s.waiting) == 0 {
		return
	}
	s.log.Debug("retrying unschedulable pods", "pods", len(s.waiting), "why", why)
	for key, a := range s.waiting {
		delete(s.waiting, key)
		s.requeueLocked(key, a)
	}
}

// requeueLocked queues a pod that fit nowhere no sooner than its back-off
// after its last attempt. s.mu is held.
func (s *Scheduler) requeueLocked(key string, a attempt) {
	backoff := min(initialBackoff<<min(a.count-1, 10), maxBackoff)
	if wait := backoff - time.Since(a.last); wait > 0 {
		s.queue.AddAfter(key, wait)
	} else {
		s.queue.Add(key)
	}
}

// schedule places one pod.
func (s *Scheduler) schedule(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	pod, err := s.pods.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	s.mu.Lock()
	_, isAssumed := s.assumed[pod.UID]
	prev := s.waiting[key]
	delete(s.waiting, key)
	moves := s.moves // before the listers are read below
	s.mu.Unlock()
	if isAssumed || !responsible(pod) {
		return nil
	}
	nodes, err := s.nodes.List(labels.Everything())
	if err != nil {
		return err
	}
	infos, err := s.nodeInfos(nodes)
	if err != nil {
		return err
	}
	claims, msg, err := s.podClaims(pod)
	if err != nil {
		return err
	}
	node := ""
	if msg == "" {
		s.addNominated(pod, infos)
		node, msg = placeWith(pod, claims, infos)
	}
	if node == "" && claims != nil && len(infos) > 0 {
		var more string
		if pod, more, err = s.preempt(ctx, pod, claims, infos); err != nil {
			return err
		}
		if more != "" {
			msg += " " + more
		}
	}
	if node == "" {
		a := attempt{count: prev.count + 1, last: time.Now()}
		s.mu.Lock()
		if s.moves != moves {
			s.requeueLocked(key, a) // something changed meanwhile: look again
		} else {
			s.waiting[key] = a
		}
		s.mu.Unlock()
		return s.unschedulable(ctx, pod, msg)
	}
	if err := s.selectNode(ctx, claims, node); err != nil {
		return err
	}
	err = s.client.CoreV1().Pods(ns).Bind(ctx, &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: ns, UID: pod.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: node},
	}, metav1.CreateOptions{})
	switch {
	case apierrors.IsNotFound(err), apierrors.IsConflict(err):
		return nil // deleted, or bound meanwhile: nothing to place
	case err != nil:
		s.recorder.Eventf(pod, corev1.EventTypeWarning, "FailedScheduling", "Binding rejected: %v", err)
		return fmt.Errorf("bind %s to %s: %w", key, node, err)
	}
	bound := pod.DeepCopy()
	bound.Spec.NodeName = node
	s.mu.Lock()
	s.assumed[pod.UID] = bound
	s.mu.Unlock()
	s.recorder.Eventf(pod, corev1.EventTypeNormal, "Scheduled", "Successfully assigned %s/%s to %s", ns, pod.Name, node)
	s.log.Debug("scheduled", "pod", key, "node", node)
	return nil
}

// nodeInfos sums, for each node, the pods bound to it, counting the
// assumed pods the informer does not yet show bound.
func (s *Scheduler) nodeInfos(nodes []*corev1.Node) (map[string]*nodeInfo, error) {
	infos := make(map[string]*nodeInfo, len(nodes))
	for _, n := range nodes {
		infos[n.Name] = &nodeInfo{node: n}
	}
	pods, err := s.pods.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	for _, p := range pods {
		if n := infos[p.Spec.NodeName]; n != nil && occupies(p) {
			n.place(p)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for uid, p := range s.assumed {
		cur, err := s.pods.Pods(p.Namespace).Get(p.Name)
		if err != nil || cur.UID != uid {
			continue // gone: the delete handler drops it
		}
		if n := infos[p.Spec.NodeName]; n != nil && cur.Spec.NodeName == "" {
			n.place(p)
		}
	}
	return infos, nil
}

// place runs the filters and the scores over infos: the chosen node, or ""
// and why none fits.
func place(pod *corev1.Pod, infos map[string]*nodeInfo) (string, string) {
	return placeWith(pod, nil, infos)
}

// placeWith is place honouring the pod's claims.
func placeWith(pod *corev1.Pod, claims *claimConstraints, infos map[string]*nodeInfo) (string, string) {
	if len(infos) == 0 {
		return "", "no nodes available to schedule pods"
	}
	p := newPodInfo(pod)
	p.claims = claims
	reasons := map[string]int{}
	type ranked struct {
		*nodeInfo
		score int64
	}
	var fit []ranked
	for _, n := range infos {
		var why []string
		for _, f := range filters {
			if why = f.fn(p, n); len(why) > 0 {
				break
			}
		}
		if len(why) == 0 {
			fit = append(fit, ranked{n, totalScore(p, n)})
		}
		for _, r := range why {
			reasons[r]++
		}
	}
	if len(fit) == 0 {
		return "", unschedulableMessage(len(infos), reasons)
	}
	// Best score first; ties to the node with fewer pods, then by name, so
	// the choice is reproducible.
	sort.Slice(fit, func(i, j int) bool {
		if fit[i].score != fit[j].score {
			return fit[i].score > fit[j].score
		}
		if fit[i].pods != fit[j].pods {
			return fit[i].pods < fit[j].pods
		}
		return fit[i].node.Name < fit[j].node.Name
	})
	return fit[0].node.Name, ""
}

// unschedulableMessage is Kubernetes' FailedScheduling text:
// "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't match
// Pod's node affinity/selector."
func unschedulableMessage(total int, reasons map[string]int) string {
	parts := make([]string, 0, len(reasons))
	for r, n := range reasons {
		parts = append(parts, fmt.Sprintf("%d %s", n, r))
	}
	sort.Strings(parts)
	return fmt.Sprintf("0/%d nodes are available: %s.", total, strings.Join(parts, ", "))
}

// unschedulable reports that pod fits nowhere: a FailedScheduling event,
// and PodScheduled=False with reason Unschedulable (written only when it
// says something new, so retries do not churn the pod).
func (s *Scheduler) unschedulable(ctx context.Context, pod *corev1.Pod, msg string) error {
	s.recorder.Event(pod, corev1.EventTypeWarning, "FailedScheduling", msg)
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse &&
			c.Reason == corev1.PodReasonUnschedulable && c.Message == msg {
			return nil
		}
	}
	cp := pod.DeepCopy()
	cond := corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionFalse,
		Reason: corev1.PodReasonUnschedulable, Message: msg, LastProbeTime: metav1.Now(), LastTransitionTime: metav1.Now()}
	replaced := false
	for i := range cp.Status.Conditions {
		if c := &cp.Status.Conditions[i]; c.Type == corev1.PodScheduled {
			if c.Status == corev1.ConditionFalse {
				cond.LastTransitionTime = c.LastTransitionTime
			}
			*c, replaced = cond, true
		}
	}
	if !replaced {
		cp.Status.Conditions = append(cp.Status.Conditions, cond)
	}
	if cp.Status.Phase == "" {
		cp.Status.Phase = corev1.PodPending
	}
	_, err := s.client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, cp, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil // gone, or changed: the change brings it back to the queue if it matters
	}
	return err
}
