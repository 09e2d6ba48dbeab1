package agent

import (
	"io/fs"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"

	"github.com/skiffhq/skiff/internal/node/agent/logs"
	"github.com/skiffhq/skiff/internal/node/agent/volumes"
	skiffrt "github.com/skiffhq/skiff/runtime"
)

// A pod's local storage (volumes.Storage): its emptyDirs get quotas that
// refuse writes past their sizeLimit and the pod's ephemeral-storage limit,
// and its container logs are bounded per container and counted for the
// pod.

// newStorage is the pod's storage accounting, raising its events on the pod.
func (w *podWorker) newStorage(pod *corev1.Pod) *volumes.Storage {
	return volumes.NewStorage(pod, func(msg string) {
		w.event("", corev1.EventTypeWarning, volumes.ReasonStorageLimit, msg)
	})
}

// trackStorage starts counting the pod's emptyDirs (from what they hold:
// an engine restart keeps them) and logs, and returns the emptyDirs'
// quotas by volume name. Called once the volumes are set up.
func (w *podWorker) trackStorage(pod *corev1.Pod, vols map[string]string) (map[string]skiffrt.DiskQuota, error) {
	quotas := map[string]skiffrt.DiskQuota{}
	for _, v := range pod.Spec.Volumes {
		if v.EmptyDir == nil {
			continue
		}
		q, err := w.storage.Track(v, vols[v.Name])
		if err != nil {
			return nil, err
		}
		quotas[v.Name] = q
	}
	w.mu.Lock()
	counted := w.logsCounted
	w.logsCounted = true
	w.mu.Unlock()
	if !counted {
		w.storage.LogsChanged(filesSize(filepath.Join(w.dir, "logs")))
	}
	return quotas, nil
}

// filesSize is what the regular files under dir hold.
func filesSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// openLog opens the log of the container's start number start, after
// removing what no reader needs any more (the logs of starts before the
// previous one): a container keeps at most ContainerLogMaxFiles files of
// ContainerLogMaxSize for its current start, and its previous start's last
// file; its own ephemeral-storage limit, when set, bounds the current
// start's files together.
func (c *container) openLog(dir, path string, start int) (*logs.File, error) {
	a := c.w.a
	c.w.storage.LogsChanged(-logs.RemoveOldStarts(dir, start))
	opts := logs.Options{MaxSize: a.cfg.ContainerLogMaxSize, MaxFiles: a.cfg.ContainerLogMaxFiles,
		OnChange: c.w.storage.LogsChanged}
	if q, ok := c.spec.Resources.Limits[corev1.ResourceEphemeralStorage]; ok && q.Value() > 0 {
		opts.MaxTotal = q.Value()
	}
	return logs.Open(path, opts)
}
