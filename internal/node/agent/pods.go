package agent

import (
	"sort"
	"sync"

	corev1 "k8s.io/api/core/v1"

	"github.com/skiffhq/skiff/internal/node/protocol"
)

// podManager keeps one worker per pod bound to the node and hands each the
// newest version of its pod.
type podManager struct {
	a *Agent

	mu      sync.Mutex
	workers map[string]*podWorker // by UID
	want    map[string]bool       // UIDs in the last desired set
	// ended holds the pods this node failed for good (rejected at
	// admission, evicted) while the control plane may not know yet: they
	// are never started again, however the next sync shows them.
	ended  map[string]bool
	closed bool
	// fenced: cut off from every server too long, no StatefulSet pod
	// runs (fence.go).
	fenced bool
}

func newPodManager(a *Agent) *podManager {
	return &podManager{a: a, workers: map[string]*podWorker{}, want: map[string]bool{}, ended: map[string]bool{}}
}

// sync takes the desired set: new pods get a worker if the node admits
// them, known ones their update, and workers whose pod is gone are killed.
func (m *podManager) sync(pods []corev1.Pod) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	want := make(map[string]bool, len(pods))
	var fresh []*corev1.Pod
	for i := range pods {
		pod := &pods[i]
		uid := string(pod.UID)
		want[uid] = true
		if w := m.workers[uid]; w != nil {
			w.update(pod)
			continue
		}
		if pod.DeletionTimestamp != nil || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			// Nothing runs for it here (it finished, or the engine restarted
			// while it was being deleted): complete a deletion at once, and
			// never start a finished pod again.
			if pod.DeletionTimestamp != nil {
				m.a.reports.status(protocol.PodStatus{Namespace: pod.Namespace, Name: pod.Name, UID: uid,
					Status: pod.Status, Terminated: true})
			}
			continue
		}
		if m.ended[uid] || m.fenced && isStatefulSetPod(pod) {
			continue
		}
		fresh = append(fresh, pod)
	}
	// Admission in the order the pods were created, as the kubelet admits
	// them: the older pod gets the memory when not both fit.
	sort.SliceStable(fresh, func(i, j int) bool {
		return fresh[i].CreationTimestamp.Before(&fresh[j].CreationTimestamp)
	})
	used := m.memoryInUseLocked()
	for _, pod := range fresh {
		if msg, ok := m.a.admitDisk(pod); !ok {
			m.rejectLocked(pod, ReasonEvicted, msg)
			continue
		}
		if msg, ok := m.a.admitUnderPressure(pod); !ok {
			m.rejectLocked(pod, ReasonEvicted, msg)
			continue
		}
		limit, _ := m.a.podMemoryLimit(pod)
		if msg, ok := m.a.admit(limit, used); !ok {
			m.rejectLocked(pod, ReasonOutOfMemory, msg)
			continue
		}
		used += limit
		w := m.a.newPodWorker(pod)
		w.memLimit = limit
		m.workers[string(pod.UID)] = w
		go w.run()
	}
	for uid := range m.ended {
		if !want[uid] {
			delete(m.ended, uid) // gone from the control plane: forgotten
		}
	}
	m.want = want
	for uid, w := range m.workers {
		if !want[uid] {
			w.kill()
		}
	}
}

func (m *podManager) desired(uid string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.want[uid]
}

// finished forgets a worker whose pod has stopped.
func (m *podManager) finished(w *podWorker) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.workers[w.uid] == w {
		delete(m.workers, w.uid)
		m.a.tokens.forget(w.uid)
	}
}

// find returns the worker of a running pod by namespace and name (and UID
// when given).
func (m *podManager) find(ns, name, uid string) *podWorker {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, w := range m.workers {
		if uid != "" && w.uid != uid {
			continue
		}
		if pns, pname := w.ref(); pns == ns && pname == name {
			return w
		}
	}
	return nil
}

// stopAll kills every worker and waits for them: the agent is stopping.
// The pods keep their status; a restarted agent starts them again.
func (m *podManager) stopAll() {
	m.mu.Lock()
	m.closed = true
	ws := make([]*podWorker, 0, len(m.workers))
	for _, w := range m.workers {
		ws = append(ws, w)
	}
	m.mu.Unlock()
	for _, w := range ws {
		w.mu.Lock()
		w.grace = 0
		w.mu.Unlock()
		w.cancel()
	}
	for _, w := range ws {
		<-w.done
	}
}

// count is the number of pods with a worker.
func (m *podManager) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.workers)
}

// memoryInUseLocked is the sum of the memory limits (node defaults included)
// of the pods that run or will run again: what admission counts as used.
func (m *podManager) memoryInUseLocked() int64 {
	var used int64
	for _, w := range m.workers {
		if w.active() {
			used += w.memLimit
		}
	}
	return used
}

// rejectLocked fails a pod the node will not run, as the kubelet's
// rejectPod does: phase Failed with the reason, and a Warning event.
func (m *podManager) rejectLocked(pod *corev1.Pod, reason, msg string) {
	uid := string(pod.UID)
	m.ended[uid] = true
	m.a.log.Info("pod rejected", "pod", pod.Namespace+"/"+pod.Name, "reason", reason, "message", msg)
	m.a.reports.event(protocol.Event{Namespace: pod.Namespace, Pod: pod.Name, UID: uid,
		Type: corev1.EventTypeWarning, Reason: reason, Message: msg})
	m.a.reports.status(protocol.PodStatus{Namespace: pod.Namespace, Name: pod.Name, UID: uid, Status: corev1.PodStatus{
		Phase:    corev1.PodFailed,
		Reason:   reason,
		Message:  "Pod was rejected: " + msg,
		QOSClass: pod.Status.QOSClass,
		HostIP:   m.a.hostIP,
		HostIPs:  []corev1.HostIP{{IP: m.a.hostIP}},
	}})
}

// admit is the node's memory admission of a pod whose limits (defaults
// included) come to limit, beside running pods holding used. A node that
// does not know its memory admits everything.
func (a *Agent) admit(limit, used int64) (string, bool) {
	capacity := a.allocatableMemory()
	if capacity <= 0 {
		return "", true
	}
	return admitMemory(limit, used, capacity)
}

// admitUnderPressure is the kubelet's eviction admission: while the node
// is under memory pressure a BestEffort pod, which is first in line for
// eviction, is not started unless it tolerates the memory-pressure taint.
func (a *Agent) admitUnderPressure(pod *corev1.Pod) (string, bool) {
	a.memMu.Lock()
	pressure := a.memoryPressure
	a.memMu.Unlock()
	if !pressure || pod.Status.QOSClass != corev1.PodQOSBestEffort {
		return "", true
	}
	taint := corev1.Taint{Key: corev1.TaintNodeMemoryPressure, Effect: corev1.TaintEffectNoSchedule}
	for i := range pod.Spec.Tolerations {
		if pod.Spec.Tolerations[i].ToleratesTaint(&taint) {
			return "", true
		}
	}
	return "The node had condition: [MemoryPressure]. ", false
}

// allocatableMemory is the node's allocatable memory in bytes, 0 when
// unknown.
func (a *Agent) allocatableMemory() int64 {
	if a.allocatable == nil {
		return 0
	}
	return a.allocatable.Memory().Value()
}
