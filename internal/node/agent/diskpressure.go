package agent

import (
	"fmt"
	"github.com/skiffhq/skiff/internal/node/agent/nodestats"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// The node's DiskPressure, decided as the kubelet's eviction manager decides
// it for nodefs: the file system holding the data directory (pods' volumes
// and logs, the module store) has less than DiskPressureAvailable of its
// space, or DiskPressureInodesFree of its inodes, left. While it does, the
// node says so (its DiskPressure condition, sent with the heartbeats; the
// scheduler then treats it as tainted node.kubernetes.io/disk-pressure) and
// refuses new pods as the kubelet does, so the disk is not filled by pods
// that arrive after the warning.

// diskMonitor decides DiskPressure from statfs of the data directory.
type diskMonitor struct {
	path                 string
	minAvailable         float64 // fraction; <= 0: not checked
	minInodesFree        float64
	transition           time.Duration
	statfs               func(path string) (nodestats.Disk, error)
	now                  func() time.Time
	recheckAfter         time.Duration // admission re-reads statfs at most this often
	onError, onPressured func(msg string)

	mu           sync.Mutex
	checked      time.Time // last statfs
	lastPressure time.Time // last time pressure was seen; zero: never
	detail       string    // what the last pressure was
}

func newDiskMonitor(cfg Config) *diskMonitor {
	return &diskMonitor{path: cfg.DataDir, minAvailable: cfg.DiskPressureAvailable, minInodesFree: cfg.DiskPressureInodesFree,
		transition: cfg.DiskPressureTransitionPeriod, statfs: nodestats.Statfs, now: time.Now, recheckAfter: time.Second}
}

// check reads statfs and reports whether the node is under disk pressure:
// now, or within the transition period after it was last seen, so that the
// condition does not flap around the threshold (the kubelet's
// evictionPressureTransitionPeriod). A failed statfs changes nothing.
func (m *diskMonitor) check() (bool, string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.checkLocked()
}

func (m *diskMonitor) checkLocked() (bool, string) {
	now := m.now()
	m.checked = now
	if m.path != "" && (m.minAvailable > 0 || m.minInodesFree > 0) {
		st, err := m.statfs(m.path)
		if err != nil {
			if m.onError != nil {
				m.onError(err.Error())
			}
		} else if detail := m.judge(st); detail != "" {
			if m.lastPressure.IsZero() || now.Sub(m.lastPressure) >= m.transition {
				if m.onPressured != nil {
					m.onPressured(detail)
				}
			}
			m.lastPressure, m.detail = now, detail
		}
	}
	if m.lastPressure.IsZero() || now.Sub(m.lastPressure) >= m.transition {
		return false, ""
	}
	return true, m.detail
}

// judge says which threshold st is under, or "".
func (m *diskMonitor) judge(st nodestats.Disk) string {
	if m.minAvailable > 0 && st.Blocks > 0 {
		if f := float64(st.Available) / float64(st.Blocks); f < m.minAvailable {
			return fmt.Sprintf("nodefs.available %.1f%% < %g%%", 100*f, 100*m.minAvailable)
		}
	}
	if m.minInodesFree > 0 && st.Inodes > 0 { // some file systems (btrfs) report no inode count
		if f := float64(st.FreeInodes) / float64(st.Inodes); f < m.minInodesFree {
			return fmt.Sprintf("nodefs.inodesFree %.1f%% < %g%%", 100*f, 100*m.minInodesFree)
		}
	}
	return ""
}

// pressure is check, re-reading statfs only when the last read is older
// than recheckAfter: a burst of new pods costs one statfs.
func (m *diskMonitor) pressure() (bool, string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.checked.IsZero() && m.now().Sub(m.checked) < m.recheckAfter {
		if m.lastPressure.IsZero() || m.now().Sub(m.lastPressure) >= m.transition {
			return false, ""
		}
		return true, m.detail
	}
	return m.checkLocked()
}

// condition is the node's DiskPressure condition now, in the kubelet's
// words.
func (m *diskMonitor) condition() corev1.NodeCondition {
	on, detail := m.check()
	c := corev1.NodeCondition{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse,
		Reason: "KubeletHasNoDiskPressure", Message: "skiff agent has no disk pressure"}
	if on {
		c.Status, c.Reason, c.Message = corev1.ConditionTrue, "KubeletHasDiskPressure", "skiff agent has disk pressure: "+detail
	}
	return c
}

// systemCriticalPriority is where the kubelet admits pods whatever the
// node's pressure: they keep the node itself working.
const systemCriticalPriority = 2000000000

// admitDisk is the kubelet's eviction admission for disk: while the node
// has DiskPressure, no new pod starts but a system-critical one.
func (a *Agent) admitDisk(pod *corev1.Pod) (string, bool) {
	if a.disk == nil {
		return "", true
	}
	if pod.Spec.Priority != nil && *pod.Spec.Priority >= systemCriticalPriority {
		return "", true
	}
	if on, _ := a.disk.pressure(); on {
		return fmt.Sprintf("The node had condition: %v. ", []corev1.NodeConditionType{corev1.NodeDiskPressure}), false
	}
	return "", true
}
