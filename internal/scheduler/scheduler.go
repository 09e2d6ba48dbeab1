// Package scheduler is skiff's default scheduler: it binds each pod that
// names it (schedulerName default-scheduler, or none) and has no node yet
// to a node, with the filters and weighted scores of Kubernetes 1.32's
// default profile (node readiness, cordons and taints, nodeSelector and
// node affinity, RuntimeClass, host ports, PersistentVolumeClaims,
// requests, topology spread, inter-pod affinity and anti-affinity). A pod
// that fits nowhere gets a FailedScheduling event in Kubernetes' words and
// PodScheduled=False (Unschedulable), and is tried again, with back-off,
// when nodes or pods change.
//
// Placement is a pipeline as in Kubernetes and Nomad: named filters
// (filters.go), then named, weighted scores (scores.go), then the binding.
// Decisions read an indexed cache (cache.go) kept by the informers'
// events, so each costs O(nodes); one worker decides one pod at a time and
// assumes it on its node, and a bounded pool of goroutines writes the
// bindings meanwhile.
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

	// cache is the indexed view decisions read: pods by node, their
	// requests, ports and labels, and the pods assumed while they bind.
	cache *podCache
	// binds limits the bindings in flight: decisions go on while up to
	// cap(binds) pods are written, as Kubernetes binds in goroutines.
	binds    chan struct{}
	bindsWG  sync.WaitGroup
	bindsCtx context.Context // Run's: binding stops with the scheduler

	mu sync.Mutex
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
	// podAffinity: the pod has pod affinity terms, or spread constraints,
	// so a pod bound anywhere may let it fit.
	podAffinity bool
}

// MaxBindsInFlight bounds the binding goroutines. Each binding is one
// store write; enough in flight lets the store batch them into one raft
// entry (group commit), and the bound keeps a burst of pods from opening
// thousands of requests.
const MaxBindsInFlight = 64

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
		cache: newPodCache(), binds: make(chan struct{}, MaxBindsInFlight), waiting: map[string]attempt{},
		bindsCtx: context.Background(),
	}
	podInf, nodeInf := cfg.Pods.Informer(), cfg.Nodes.Informer()
	if _, err := podInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: s.addPod, UpdateFunc: s.updatePod, DeleteFunc: s.deletePod,
	}); err != nil {
		return nil, err
	}
	if _, err := nodeInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			s.cache.setNode(obj.(*corev1.Node))
			s.retryWaiting("node added")
		},
		UpdateFunc: func(old, cur any) {
			s.cache.setNode(cur.(*corev1.Node))
			if nodeChanged(old.(*corev1.Node), cur.(*corev1.Node)) {
				s.retryWaiting("node changed")
			}
		},
		DeleteFunc: func(obj any) {
			if n, ok := informer.ObjectOf[*corev1.Node](obj); ok {
				s.cache.deleteNode(n.Name)
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

// Run schedules until ctx ends, and returns once the bindings in flight
// have ended too. It is called once.
func (s *Scheduler) Run(ctx context.Context) {
	s.bindsCtx = ctx // before the loop starts: no worker reads it yet
	defer s.bindsWG.Wait()
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
	pod := obj.(*corev1.Pod)
	s.cache.setPod(pod)
	if responsible(pod) {
		s.queue.Add(controller.KeyOf(pod))
	} else if occupies(pod) {
		s.retryAffinityWaiting()
	}
}

func (s *Scheduler) updatePod(old, cur any) {
	oldPod, pod := old.(*corev1.Pod), cur.(*corev1.Pod)
	s.cache.setPod(pod)
	if pod.Spec.NodeName != "" {
		switch {
		case occupies(oldPod) && !occupies(pod):
			s.retryWaiting("pod finished")
		case oldPod.Spec.NodeName == "" || !labels.Equals(oldPod.Labels, pod.Labels):
			s.retryAffinityWaiting() // newly bound, or relabelled
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
	wasAssumed := s.cache.isAssumed(pod.UID)
	s.cache.deletePod(pod)
	s.mu.Lock()
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

// retryAffinityWaiting queues again the waiting pods that a newly bound or
// relabelled pod may let fit: those with pod affinity terms or spread
// constraints. Others cannot gain from another pod's arrival, and retrying
// them on every binding would churn them in a burst.
func (s *Scheduler) retryAffinityWaiting() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.moves++
	for key, a := range s.waiting {
		if a.podAffinity {
			delete(s.waiting, key)
			s.requeueLocked(key, a)
		}
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
	prev := s.waiting[key]
	delete(s.waiting, key)
	moves := s.moves // before the cache is read below
	s.mu.Unlock()
	if !responsible(pod) || s.cache.isAssumed(pod.UID) {
		return nil
	}
	claims, msg, err := s.podClaims(pod)
	if err != nil {
		return err
	}
	node := ""
	var bound *corev1.Pod
	var plan *preemptionPlan
	if msg == "" {
		s.cache.mu.Lock()
		infos := s.cache.withNominatedLocked(pod)
		node, msg = placeWith(pod, claims, infos)
		if node != "" {
			// Assumed before the next decision: it sees this pod's room taken.
			bound = pod.DeepCopy()
			bound.Spec.NodeName = node
			s.cache.assumeLocked(bound)
		} else if claims != nil && len(infos) > 0 {
			plan, err = s.planPreemption(pod, claims, infos)
		}
		s.cache.mu.Unlock()
		if err != nil {
			return err
		}
	}
	if node == "" && plan != nil {
		var more string
		if pod, more, err = s.preempt(ctx, pod, plan); err != nil {
			return err
		}
		if more != "" {
			msg += " " + more
		}
	}
	if node == "" {
		a := attempt{count: prev.count + 1, last: time.Now(), podAffinity: hasPodAffinity(pod) || len(pod.Spec.TopologySpreadConstraints) > 0}
		s.mu.Lock()
		if s.moves != moves {
			s.requeueLocked(key, a) // something changed meanwhile: look again
		} else {
			s.waiting[key] = a
		}
		s.mu.Unlock()
		return s.unschedulable(ctx, pod, msg)
	}
	select {
	case s.binds <- struct{}{}:
	case <-ctx.Done():
		s.cache.forget(pod.UID)
		return ctx.Err()
	}
	s.bindsWG.Add(1)
	go func() {
		defer func() { <-s.binds; s.bindsWG.Done() }()
		s.bind(s.bindsCtx, key, bound, claims)
	}()
	return nil
}

// bind writes the decision for pod (its copy with the chosen node): the
// claims' selected node, then the Binding. On failure the assumption is
// forgotten and the pod queued again, as Kubernetes' binding cycle does.
func (s *Scheduler) bind(ctx context.Context, key string, pod *corev1.Pod, claims *claimConstraints) {
	node := pod.Spec.NodeName
	err := s.selectNode(ctx, claims, node)
	if err == nil {
		err = s.client.CoreV1().Pods(pod.Namespace).Bind(ctx, &corev1.Binding{
			ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID},
			Target:     corev1.ObjectReference{Kind: "Node", Name: node},
		}, metav1.CreateOptions{})
	}
	switch {
	case err == nil:
		s.recorder.Eventf(pod, corev1.EventTypeNormal, "Scheduled", "Successfully assigned %s/%s to %s", pod.Namespace, pod.Name, node)
		s.log.Debug("scheduled", "pod", key, "node", node)
		return
	case apierrors.IsNotFound(err), apierrors.IsConflict(err):
		// Deleted, or bound meanwhile: the informer brings the truth.
		s.cache.forget(pod.UID)
		s.queue.Add(key)
	default:
		s.cache.forget(pod.UID)
		if ctx.Err() != nil {
			return // stopping: the next leader starts from its own lists
		}
		s.recorder.Eventf(pod, corev1.EventTypeWarning, "FailedScheduling", "Binding rejected: %v", err)
		s.log.Warn("binding failed", "pod", key, "node", node, "err", fmt.Errorf("bind %s to %s: %w", key, node, err))
		s.queue.AddRateLimited(key)
	}
	s.retryWaiting("binding undone") // its room is free again
}

// place runs the filters and the scores over infos: the chosen node, or ""
// and why none fits.
func place(pod *corev1.Pod, infos map[string]*nodeInfo) (string, string) {
	return placeWith(pod, nil, infos)
}

// placeWith is place honouring the pod's claims. infos are the nodes to
// consider, with the pods on them; placeWith only reads them.
func placeWith(pod *corev1.Pod, claims *claimConstraints, infos map[string]*nodeInfo) (string, string) {
	if len(infos) == 0 {
		return "", "no nodes available to schedule pods"
	}
	p := newPodInfo(pod)
	p.claims = claims
	// PreFilter: the counts over the cluster that pod affinity and spread
	// constraints compare against.
	p.inter = newInterPodState(pod, infos)
	p.spread = newSpreadState(p, infos)
	reasons := map[string]int{}
	want := feasibleToFind(len(infos))
	fit := make([]*nodeInfo, 0, want)
	for _, n := range infos {
		if len(fit) == want {
			break
		}
		var why []string
		for _, f := range filters {
			if why = f.fn(p, n); len(why) > 0 {
				break
			}
		}
		if len(why) == 0 {
			fit = append(fit, n)
		}
		for _, r := range why {
			reasons[r]++
		}
	}
	if len(fit) == 0 {
		return "", unschedulableMessage(len(infos), reasons)
	}
	if len(fit) == 1 {
		return fit[0].node.Name, "" // nothing to rank, as Kubernetes skips scoring
	}
	if len(p.spread.soft) > 0 {
		p.spreadScore = newSpreadScorer(p, fit, infos)
	}
	total := scoreNodes(p, fit)
	// Best score first; ties to the node with fewer pods, then by name, so
	// the choice is reproducible.
	best := 0
	for i := 1; i < len(fit); i++ {
		a, b := fit[i], fit[best]
		switch {
		case total[i] != total[best]:
			if total[i] > total[best] {
				best = i
			}
		case a.pods != b.pods:
			if a.pods < b.pods {
				best = i
			}
		case a.node.Name < b.node.Name:
			best = i
		}
	}
	return fit[best].node.Name, ""
}

// Kubernetes' adaptive percentageOfNodesToScore: in a large cluster a
// decision stops filtering once it has found this many feasible nodes and
// ranks only those, trading the best node for a good one found sooner.
const (
	minFeasibleNodesToFind           = 100
	minFeasibleNodesPercentageToFind = 5
)

// feasibleToFind is how many feasible nodes a decision among n looks for,
// as Kubernetes' numFeasibleNodesToFind computes it with the default
// (adaptive) percentage: all of them up to 100 nodes, 42% of 1,000, 10%
// of 5,000, never under 5% or 100 nodes. The nodes are visited in map
// order, which Go randomizes, so the ones left out differ each time as
// Kubernetes' rotating start index makes them.
func feasibleToFind(n int) int {
	if n < minFeasibleNodesToFind {
		return n
	}
	pct := max(50-n/125, minFeasibleNodesPercentageToFind)
	return max(n*pct/100, minFeasibleNodesToFind)
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
