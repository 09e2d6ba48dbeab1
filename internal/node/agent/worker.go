package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiffhq/skiff/internal/node/agent/volumes"
	"github.com/skiffhq/skiff/internal/node/protocol"
	skiffrt "github.com/skiffhq/skiff/runtime"
)

// podWorker drives one pod to its spec: address, volumes, init
// containers in order, then the containers, each with its restart loop;
// and, when the pod is deleted, stops them within the grace period.
type podWorker struct {
	a   *Agent
	uid string
	dir string // DataDir/pods/<uid>

	ctx    context.Context // ends when the pod must stop
	cancel context.CancelFunc
	done   chan struct{} // closed when everything is stopped and reported

	mu           sync.Mutex
	pod          *corev1.Pod
	ip           string
	startTime    metav1.Time
	readyToStart bool
	initialized  bool
	failed       string // a reason that makes the pod Failed for good (an init container under Never)
	containers   []*container
	inits        []*container
	ephemerals   []*container // kubectl debug's (ephemeral.go)
	started      bool         // the containers were started: ephemerals start at once
	stopping     bool         // no more ephemerals start: run waits for them
	vols         map[string]string
	quotas       map[string]skiffrt.DiskQuota
	ephWG        sync.WaitGroup
	grace        time.Duration
	deleting     bool
	storage      *volumes.Storage // the pod's emptyDirs and logs (storage.go)
	etcDir       string           // the pod's resolv.conf, hosts and hostname (dns.go)
	dns          *skiffrt.DNSConfig
	logsCounted  bool // the logs on disk at setUp were counted

	// failedReason is the pod's status.reason when failed is set: "Failed"
	// when empty, "Evicted" after an eviction.
	failedReason string
	// disruption is the DisruptionTarget condition of an evicted pod.
	disruption *corev1.PodCondition

	// memLimit is the pod's memory limits, node defaults included, as
	// admission counted them; set before run.
	memLimit int64
}

func (a *Agent) newPodWorker(pod *corev1.Pod) *podWorker {
	ctx, cancel := context.WithCancel(a.runCtx)
	w := &podWorker{a: a, uid: string(pod.UID), pod: pod.DeepCopy(), ctx: ctx, cancel: cancel, done: make(chan struct{}),
		dir: filepath.Join(a.cfg.DataDir, "pods", string(pod.UID))}
	w.storage = w.newStorage(pod)
	w.startTime = metav1.Now()
	if pod.Status.StartTime != nil {
		w.startTime = *pod.Status.StartTime
	}
	for i := range pod.Spec.InitContainers {
		w.inits = append(w.inits, newContainer(w, pod.Spec.InitContainers[i], true, previousStatus(pod.Status.InitContainerStatuses, pod.Spec.InitContainers[i].Name)))
	}
	for i := range pod.Spec.Containers {
		c := newContainer(w, pod.Spec.Containers[i], false, previousStatus(pod.Status.ContainerStatuses, pod.Spec.Containers[i].Name))
		if len(w.inits) > 0 && c.status.State.Waiting != nil {
			c.status.State.Waiting.Reason = "PodInitializing" // as the kubelet says while init containers run
		}
		w.containers = append(w.containers, c)
	}
	for i := range pod.Spec.EphemeralContainers {
		w.addEphemeralLocked(pod, &pod.Spec.EphemeralContainers[i])
	}
	return w
}

func previousStatus(list []corev1.ContainerStatus, name string) *corev1.ContainerStatus {
	for i := range list {
		if list[i].Name == name {
			return &list[i]
		}
	}
	return nil
}

// ref names the pod for events and logs.
func (w *podWorker) ref() (ns, name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pod.Namespace, w.pod.Name
}

func (w *podWorker) event(fieldPath, typ, reason, msg string) {
	ns, name := w.ref()
	w.a.reports.event(protocol.Event{Namespace: ns, Pod: name, UID: w.uid, FieldPath: fieldPath, Type: typ, Reason: reason, Message: msg})
}

// update takes a newer version of the pod from the control plane. Only
// deletion changes what runs: a pod's spec is immutable where it matters.
func (w *podWorker) update(pod *corev1.Pod) {
	w.mu.Lock()
	w.pod.ObjectMeta = *pod.ObjectMeta.DeepCopy()
	// Ephemeral containers are the one part of a pod's spec that grows
	// (pods/ephemeralcontainers): kubectl debug's start as they come.
	var start []*container
	for i := range pod.Spec.EphemeralContainers {
		if c := w.addEphemeralLocked(pod, &pod.Spec.EphemeralContainers[i]); c != nil && w.started && !w.deleting {
			start = append(start, c)
		}
	}
	w.pod.Spec.EphemeralContainers = pod.DeepCopy().Spec.EphemeralContainers
	deleting := pod.DeletionTimestamp != nil && !w.deleting
	if deleting {
		w.deleting = true
		w.grace = 30 * time.Second
		if pod.DeletionGracePeriodSeconds != nil {
			w.grace = time.Duration(*pod.DeletionGracePeriodSeconds) * time.Second
		}
	}
	w.mu.Unlock()
	for _, c := range start {
		w.startEphemeral(c)
	}
	if deleting {
		w.cancel()
	}
}

// kill stops the pod with no grace: it is gone from the control plane.
func (w *podWorker) kill() {
	w.mu.Lock()
	w.grace = 0
	w.mu.Unlock()
	w.cancel()
}

func (w *podWorker) report() {
	w.a.reports.status(w.status(false))
}

// run is the worker's goroutine.
func (w *podWorker) run() {
	defer close(w.done)
	defer w.a.pods.finished(w)
	w.setUp()
	go w.refreshVolumes()
	if w.ctx.Err() == nil {
		w.runInits()
	}
	var wg sync.WaitGroup
	if w.ctx.Err() == nil && w.isInitialized() {
		for _, c := range w.containers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.loop(w.ctx)
			}()
		}
		w.mu.Lock()
		w.started = true
		pending := w.pendingEphemeralsLocked()
		w.mu.Unlock()
		for _, c := range pending {
			w.startEphemeral(c)
		}
	}
	<-w.ctx.Done()
	wg.Wait() // each loop stops its process within the grace period
	w.mu.Lock()
	w.stopping = true
	w.mu.Unlock()
	w.ephWG.Wait()
	w.tearDown()
}

// setUp gives the pod its address and volumes, retrying while that fails
// (a missing ConfigMap may be created later).
func (w *podWorker) setUp() {
	ip, err := w.a.ipam.claim(w.uid, w.pod.Status.PodIP)
	if err != nil {
		w.event("", corev1.EventTypeWarning, "FailedCreatePodSandBox", err.Error())
		w.report()
		<-w.ctx.Done()
		return
	}
	w.mu.Lock()
	w.ip = ip
	w.pod.Status.PodIP = ip
	w.mu.Unlock()
	w.report()
	for attempt := 0; w.ctx.Err() == nil; attempt++ {
		if err := os.MkdirAll(filepath.Join(w.dir, "logs"), 0o700); err != nil {
			w.event("", corev1.EventTypeWarning, "FailedCreatePodSandBox", err.Error())
		} else {
			w.mu.Lock()
			pod := w.pod.DeepCopy()
			w.mu.Unlock()
			vols, err := volumes.SetUp(w.ctx, pod, w.dir, w.a.volumeSources(pod.Namespace))
			var quotas map[string]skiffrt.DiskQuota
			if err == nil {
				quotas, err = w.trackStorage(pod, vols)
			}
			if err == nil {
				err = w.setUpNodeFiles(pod, ip)
			}
			if err == nil {
				w.mu.Lock()
				w.readyToStart = true
				w.vols, w.quotas = vols, quotas
				for _, c := range append(append([]*container{}, w.inits...), w.containers...) {
					c.volumes, c.quotas = vols, quotas
				}
				w.mu.Unlock()
				w.report()
				return
			}
			w.event("", corev1.EventTypeWarning, "FailedMount", fmt.Sprintf("MountVolume.SetUp failed: %v", err))
		}
		select {
		case <-w.ctx.Done():
		case <-time.After(min(time.Duration(1<<min(attempt, 6))*500*time.Millisecond, 30*time.Second)):
		}
	}
}

// setUpNodeFiles writes the pod's /etc files (dns.go) and keeps what its
// containers' specs need of them.
func (w *podWorker) setUpNodeFiles(pod *corev1.Pod, ip string) error {
	etc, d, warnings, err := w.a.writeNodeFiles(pod, ip, w.dir)
	for _, msg := range warnings {
		reason := "DNSConfigForming"
		if strings.Contains(msg, "ClusterDNS") {
			reason = "MissingClusterDNS"
		}
		w.event("", corev1.EventTypeWarning, reason, msg)
	}
	if err != nil {
		return err
	}
	w.mu.Lock()
	w.etcDir, w.dns = etc, d.runtimeDNS()
	w.mu.Unlock()
	return nil
}

// refreshVolumes rewrites the pod's ConfigMap, Secret, downward API and
// projected volumes every VolumeSyncPeriod, as the kubelet's sync does, so a
// changed ConfigMap reaches a running pod's files (env does not change: it
// is fixed when a container starts, as in Kubernetes).
func (w *podWorker) refreshVolumes() {
	w.mu.Lock()
	ready := w.readyToStart
	refreshable := false
	for i := range w.pod.Spec.Volumes {
		refreshable = refreshable || volumes.NodeWritten(&w.pod.Spec.Volumes[i])
	}
	w.mu.Unlock()
	if !ready || !refreshable {
		return // nothing to follow: no goroutine per idle pod
	}
	t := time.NewTicker(w.a.cfg.VolumeSyncPeriod)
	defer t.Stop()
	for {
		select {
		case <-w.ctx.Done():
			return
		case <-t.C:
		}
		w.mu.Lock()
		pod := w.pod.DeepCopy()
		pod.Status.PodIP = w.ip
		w.mu.Unlock()
		sources := w.a.volumeSources(pod.Namespace)
		for _, v := range pod.Spec.Volumes {
			if !volumes.NodeWritten(&v) {
				continue
			}
			if _, err := volumes.SetUpVolume(w.ctx, pod, w.dir, v, sources); err != nil && w.ctx.Err() == nil {
				w.event("", corev1.EventTypeWarning, "FailedMount", fmt.Sprintf("MountVolume.SetUp failed for volume %q: %v", v.Name, err))
			}
		}
	}
}

// runInits runs the init containers one after the other, each to success.
func (w *podWorker) runInits() {
	for _, c := range w.inits {
		if !c.loop(w.ctx) { // an init container's loop ends once it succeeded
			return
		}
	}
	w.mu.Lock()
	w.initialized = true
	w.mu.Unlock()
	w.report()
}

func (w *podWorker) isInitialized() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.initialized
}

// tearDown reports the pod's final status (Terminated when it was being
// deleted, so the control plane completes the deletion), then frees the
// address and the pod's directory. A pod killed because it disappeared is
// not reported.
func (w *podWorker) tearDown() {
	w.mu.Lock()
	deleting := w.deleting
	w.mu.Unlock()
	if deleting {
		w.a.reports.status(w.status(true))
	}
	w.a.ipam.release(w.uid)
	if deleting || !w.a.pods.desired(w.uid) {
		if err := os.RemoveAll(w.dir); err != nil {
			w.a.log.Warn("pod directory not removed", "dir", w.dir, "err", err)
		}
	}
}

// status is the pod's status as the node sees it.
func (w *podWorker) status(terminated bool) protocol.PodStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	st := corev1.PodStatus{
		HostIP:    w.a.hostIP,
		HostIPs:   []corev1.HostIP{{IP: w.a.hostIP}},
		StartTime: &w.startTime,
		QOSClass:  w.pod.Status.QOSClass,
	}
	if w.ip != "" {
		st.PodIP = w.ip
		st.PodIPs = []corev1.PodIP{{IP: w.ip}}
	}
	for _, c := range w.inits {
		st.InitContainerStatuses = append(st.InitContainerStatuses, c.snapshot())
	}
	for _, c := range w.containers {
		st.ContainerStatuses = append(st.ContainerStatuses, c.snapshot())
	}
	for _, c := range w.ephemerals {
		st.EphemeralContainerStatuses = append(st.EphemeralContainerStatuses, c.snapshot())
	}
	st.Phase = w.phaseLocked(st.ContainerStatuses)
	if w.failed != "" {
		st.Phase = corev1.PodFailed
		st.Reason, st.Message = "Failed", w.failed
		if w.failedReason != "" {
			st.Reason = w.failedReason
		}
	}
	now := metav1.Now()
	cond := func(t corev1.PodConditionType, ok bool, reason, msg string) corev1.PodCondition {
		s := corev1.ConditionFalse
		if ok {
			s, reason, msg = corev1.ConditionTrue, "", ""
		}
		return corev1.PodCondition{Type: t, Status: s, Reason: reason, Message: msg, LastTransitionTime: now}
	}
	var unready []string
	for _, cs := range st.ContainerStatuses {
		if !cs.Ready {
			unready = append(unready, cs.Name)
		}
	}
	notReadyMsg := fmt.Sprintf("containers with unready status: [%s]", strings.Join(unready, " "))
	readyReason := "ContainersNotReady"
	switch st.Phase { // the kubelet's reasons for a finished pod, with no message
	case corev1.PodSucceeded:
		readyReason, notReadyMsg = "PodCompleted", ""
	case corev1.PodFailed:
		readyReason, notReadyMsg = "PodFailed", ""
	}
	initReason, initMsg := "", ""
	if !w.initialized {
		initReason = "ContainersNotInitialized"
		var pending []string
		for _, c := range st.InitContainerStatuses {
			if c.State.Terminated == nil || c.State.Terminated.ExitCode != 0 {
				pending = append(pending, c.Name)
			}
		}
		initMsg = fmt.Sprintf("containers with incomplete status: [%s]", strings.Join(pending, " "))
	}
	ready := len(unready) == 0 && w.initialized && st.Phase == corev1.PodRunning
	st.Conditions = []corev1.PodCondition{
		cond(corev1.PodReadyToStartContainers, w.readyToStart && !terminated, "", ""),
		cond(corev1.PodInitialized, w.initialized, initReason, initMsg),
		cond(corev1.ContainersReady, ready, readyReason, notReadyMsg),
		cond(corev1.PodReady, ready, readyReason, notReadyMsg),
	}
	if w.disruption != nil {
		st.Conditions = append(st.Conditions, *w.disruption)
	}
	return protocol.PodStatus{Namespace: w.pod.Namespace, Name: w.pod.Name, UID: w.uid, Status: st, Terminated: terminated}
}

// active reports whether the pod runs or will run again (it is neither
// Succeeded nor Failed): until then its memory limit counts in admission.
func (w *podWorker) active() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failed != "" {
		return false
	}
	statuses := make([]corev1.ContainerStatus, 0, len(w.containers))
	for _, c := range w.containers {
		c.mu.Lock()
		statuses = append(statuses, corev1.ContainerStatus{State: c.status.State, LastTerminationState: c.status.LastTerminationState})
		c.mu.Unlock()
	}
	p := w.phaseLocked(statuses)
	return p != corev1.PodSucceeded && p != corev1.PodFailed
}

// phaseLocked follows the kubelet's phase rules: Pending while a container
// has never run, Running while one runs or will restart, then Succeeded or
// Failed by exit codes and the restart policy.
func (w *podWorker) phaseLocked(statuses []corev1.ContainerStatus) corev1.PodPhase {
	if !w.initialized {
		return corev1.PodPending
	}
	var waiting, running, stopped, succeeded int
	for _, cs := range statuses {
		switch {
		case cs.State.Running != nil:
			running++
		case cs.State.Terminated != nil:
			stopped++
			if cs.State.Terminated.ExitCode == 0 {
				succeeded++
			}
		case cs.LastTerminationState.Terminated != nil:
			stopped++
		default:
			waiting++
		}
	}
	switch {
	case waiting > 0:
		return corev1.PodPending
	case running > 0:
		return corev1.PodRunning
	case stopped == 0:
		return corev1.PodPending
	}
	switch w.pod.Spec.RestartPolicy {
	case corev1.RestartPolicyNever:
		if stopped == succeeded {
			return corev1.PodSucceeded
		}
		return corev1.PodFailed
	case corev1.RestartPolicyOnFailure:
		if stopped == succeeded {
			return corev1.PodSucceeded
		}
	}
	return corev1.PodRunning
}
