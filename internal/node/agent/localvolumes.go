package agent

import (
	"path/filepath"
)

// localVolumesDirAnnotation is put on the agent's Node: the directory its
// local persistent volumes live under, which the control plane's
// provisioner (internal/controllers/volume, the same key) writes into each
// volume's spec.local.path.
const localVolumesDirAnnotation = "skiff.dev/local-volumes-dir"

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
