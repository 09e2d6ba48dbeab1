package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/skiffhq/skiff/internal/bus"
	"github.com/skiffhq/skiff/internal/node/protocol"
)

// localVolumesDirAnnotation is put on the agent's Node: the directory its
// local persistent volumes live under, which the control plane's
// provisioner (internal/controllers/volume, the same key) writes into each
// volume's spec.local.path.
const localVolumesDirAnnotation = "skiff.dev/local-volumes-dir"

// localVolumeMinAge: a directory younger than this is never removed. A
// volume created after the control plane computed its answer has its
// directory made after that too, so within localVolumesTimeout of the
// answer's arrival: such a directory is never taken for a deleted one's.
const (
	localVolumesTimeout = 10 * time.Second
	localVolumeMinAge   = localVolumesTimeout + 5*time.Second
)

// localVolumesDir is DataDir/local-volumes, absolute, or "" without a
// DataDir.
func (a *Agent) localVolumesDir() string {
	if a.cfg.DataDir == "" {
		return ""
	}
	dir, err := filepath.Abs(filepath.Join(a.cfg.DataDir, "local-volumes"))
	if err != nil {
		return ""
	}
	return dir
}

// nodeAnnotations are the annotations the agent keeps on its Node.
func (a *Agent) nodeAnnotations() map[string]string {
	if dir := a.localVolumesDir(); dir != "" {
		return map[string]string{localVolumesDirAnnotation: dir}
	}
	return nil
}

// collectLocalVolumes removes, every VolumeSyncPeriod, the directories of
// local volumes that no longer exist (reclaim policy Delete), until ctx
// ends.
func (a *Agent) collectLocalVolumes(ctx context.Context) {
	t := time.NewTicker(a.cfg.VolumeSyncPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := a.removeDeletedVolumes(ctx); err != nil && ctx.Err() == nil {
				a.log.Debug("local volumes not collected", "err", err)
			}
		}
	}
}

// removeDeletedVolumes removes the directories under the local volumes
// directory that no PersistentVolume on this node names, no pod mounts,
// and that are older than localVolumeMinAge.
func (a *Agent) removeDeletedVolumes(ctx context.Context) error {
	dir := a.localVolumesDir()
	if dir == "" {
		return nil
	}
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) || (err == nil && len(entries) == 0) {
		return nil
	} else if err != nil {
		return fmt.Errorf("read local volumes: %w", err)
	}
	subject, err := bus.SubjectNodeObjects(a.cfg.NodeName)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, localVolumesTimeout)
	defer cancel()
	resp, err := bus.Request[protocol.ObjectRequest, protocol.ObjectResponse](rctx, a.cfg.Bus, subject,
		protocol.ObjectRequest{Node: a.cfg.NodeName, Kind: "LocalVolumes"})
	if err != nil {
		return fmt.Errorf("list local volumes: %w", err)
	}
	keep := map[string]bool{}
	for _, p := range resp.LocalVolumePaths {
		keep[filepath.Clean(p)] = true
	}
	for _, p := range a.pods.mountedDirs() {
		keep[filepath.Clean(p)] = true
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if keepsAny(p, keep) {
			continue
		}
		info, err := e.Info()
		if err != nil || time.Since(info.ModTime()) < localVolumeMinAge {
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("remove deleted volume %s: %w", e.Name(), err)
		}
		a.log.Info("removed the directory of a deleted volume", "volume", e.Name())
	}
	return nil
}

// mountedDirs are the host directories of every running pod's volumes.
func (m *podManager) mountedDirs() []string {
	m.mu.Lock()
	workers := make([]*podWorker, 0, len(m.workers))
	for _, w := range m.workers {
		workers = append(workers, w)
	}
	m.mu.Unlock()
	var out []string
	for _, w := range workers {
		w.mu.Lock()
		for _, d := range w.vols {
			out = append(out, d)
		}
		w.mu.Unlock()
	}
	return out
}

// keepsAny: dir is, or holds, a path to keep.
func keepsAny(dir string, keep map[string]bool) bool {
	for p := range keep {
		if p == dir || strings.HasPrefix(p, dir+string(filepath.Separator)) {
			return true
		}
	}
	return false
}
