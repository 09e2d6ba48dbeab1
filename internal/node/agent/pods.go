package agent

import (
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
	// rejected are the pods refused at admission (disk pressure), so each
	// is refused once while its Failed status travels.
	rejected rejectedSet
	closed   bool
}

func newPodManager(a *Agent) *podManager {
	return &podManager{a: a, workers: map[string]*podWorker{}, want: map[string]bool{}, rejected: rejectedSet{}}
}

// sync takes the desired set: new pods get a worker, known ones their
// update, and workers whose pod is gone are killed.
func (m *podManager) sync(pods []corev1.Pod) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	want := make(map[string]bool, len(pods))
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
		if m.rejected[pod.UID] {
			continue
		}
		if ok, msg := m.a.admit(pod); !ok {
			m.rejected[pod.UID] = true
			m.a.reject(pod, reasonEvicted, msg)
			continue
		}
		w := m.a.newPodWorker(pod)
		m.workers[uid] = w
		go w.run()
	}
	m.want = want
	for uid := range m.rejected {
		if !want[string(uid)] {
			delete(m.rejected, uid)
		}
	}
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
