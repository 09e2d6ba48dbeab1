package volumes

import (
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	skiffrt "github.com/skiffhq/skiff/runtime"
)

// Storage is a pod's local storage, counted as its containers write: each
// emptyDir volume against its sizeLimit, and the emptyDirs and the container
// logs together against the pod's ephemeral-storage limit (the sum of its
// containers' limits, as the kubelet computes it). A Wasm container has no
// writable layer of its own, so these are everything a pod can put on the
// node's disk.
//
// The kubelet measures the same things every few seconds and evicts a pod
// that went over; a fast writer fills gigabytes in between. Here the
// emptyDirs' quotas refuse the write that would go over (the runtime turns
// the refusal into ENOSPC for the guest), so a volume never holds more than
// its limit. Logs are not refused (a container's own ephemeral-storage limit
// already bounds its log files, and losing its output would hide why it
// failed): they count, so an emptyDir gets what they leave of the pod's
// limit.
//
// Every method is safe for concurrent use; the quotas are called from the
// guests' WASI calls and must not block.
type Storage struct {
	full func(msg string) // the Warning event for a refused write
	now  func() time.Time

	mu        sync.Mutex
	podLimit  int64 // 0: none
	podText   string
	podUsed   int64 // emptyDirs and logs
	vols      map[string]*volumeQuota
	lastEvent map[string]time.Time // by volume name, "" for the pod's limit
}

// ReasonStorageLimit is the reason of the Warning event a refused write
// raises. The message is the kubelet's for the eviction it would make.
const ReasonStorageLimit = "StorageLimitReached"

// eventInterval is how often one limit raises its event while writes keep
// hitting it: a guest retrying in a loop should not flood the events.
const eventInterval = time.Minute

// NewStorage counts the pod's storage; full receives the message of the
// Warning event to record when a write is refused (at most once a minute
// per limit).
func NewStorage(pod *corev1.Pod, full func(msg string)) *Storage {
	s := &Storage{full: full, now: time.Now, vols: map[string]*volumeQuota{}, lastEvent: map[string]time.Time{}}
	if q, ok := PodEphemeralLimit(pod); ok {
		s.podLimit, s.podText = q.Value(), q.String()
	}
	return s
}

// PodEphemeralLimit is the pod's ephemeral-storage limit as the kubelet's
// eviction manager computes it: the sum over its containers, or the
// largest init container's when that is more; ok is false when no
// container sets one.
func PodEphemeralLimit(pod *corev1.Pod) (resource.Quantity, bool) {
	var sum resource.Quantity
	found := false
	for _, c := range pod.Spec.Containers {
		if q, ok := c.Resources.Limits[corev1.ResourceEphemeralStorage]; ok {
			sum.Add(q)
			found = true
		}
	}
	for _, c := range pod.Spec.InitContainers {
		if q, ok := c.Resources.Limits[corev1.ResourceEphemeralStorage]; ok {
			found = true
			if q.Cmp(sum) > 0 {
				sum = q.DeepCopy()
			}
		}
	}
	return sum, found
}

// Track starts counting an emptyDir volume whose directory is dir, from
// what dir holds now (an engine restart keeps a pod's volumes), and returns
// the quota its mounts get. Called again for the same volume, it returns
// the same quota.
func (s *Storage) Track(v corev1.Volume, dir string) (skiffrt.DiskQuota, error) {
	if v.EmptyDir == nil {
		return nil, fmt.Errorf("volume %q is not an emptyDir", v.Name)
	}
	s.mu.Lock()
	q := s.vols[v.Name]
	s.mu.Unlock()
	if q != nil {
		return q, nil
	}
	used, err := skiffrt.DiskUsage(dir)
	if err != nil {
		return nil, fmt.Errorf("emptyDir %q: %w", v.Name, err)
	}
	q = &volumeQuota{s: s, name: v.Name, used: used}
	if l := v.EmptyDir.SizeLimit; l != nil && l.Sign() > 0 {
		q.limit, q.limitText = l.Value(), l.String()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if prev := s.vols[v.Name]; prev != nil {
		return prev, nil
	}
	s.vols[v.Name] = q
	s.podUsed += used
	return q, nil
}

// LogsChanged counts a change of the bytes the pod's container logs hold.
func (s *Storage) LogsChanged(delta int64) {
	s.mu.Lock()
	s.podUsed = max(0, s.podUsed+delta)
	s.mu.Unlock()
}

// Used is what the pod's emptyDirs and logs hold, as counted.
func (s *Storage) Used() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.podUsed
}

// volumeQuota is one emptyDir's skiffrt.DiskQuota.
type volumeQuota struct {
	s         *Storage
	name      string
	limit     int64 // 0: no sizeLimit
	limitText string
	used      int64 // guarded by s.mu
}

// Reserve implements skiffrt.DiskQuota: what fits under the sizeLimit and
// the pod's limit.
func (q *volumeQuota) Reserve(n int64) int64 {
	s := q.s
	s.mu.Lock()
	got := n
	byVolume := q.limit > 0 && q.limit-q.used < got
	if q.limit > 0 {
		got = min(got, q.limit-q.used)
	}
	if s.podLimit > 0 && s.podLimit-s.podUsed < got {
		got = s.podLimit - s.podUsed
		byVolume = false
	}
	got = max(got, 0)
	q.used += got
	s.podUsed += got
	var msg string
	if got < n {
		key := ""
		if byVolume {
			key = q.name
		}
		if last, ok := s.lastEvent[key]; !ok || s.now().Sub(last) >= eventInterval {
			s.lastEvent[key] = s.now()
			if byVolume {
				msg = fmt.Sprintf("Usage of EmptyDir volume %q exceeds the limit %q. Writes past it fail with ENOSPC (no space left on device).",
					q.name, q.limitText)
			} else {
				msg = fmt.Sprintf("Pod ephemeral local storage usage exceeds the total limit of containers %s. Writes to its emptyDir volumes past it fail with ENOSPC (no space left on device).",
					s.podText)
			}
		}
	}
	s.mu.Unlock()
	if msg != "" && s.full != nil {
		s.full(msg)
	}
	return got
}

// Release implements skiffrt.DiskQuota.
func (q *volumeQuota) Release(n int64) {
	s := q.s
	s.mu.Lock()
	defer s.mu.Unlock()
	n = min(n, q.used) // never below what this volume counted
	q.used -= n
	s.podUsed = max(0, s.podUsed-n)
}
